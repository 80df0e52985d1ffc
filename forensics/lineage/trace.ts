/**
 * `provenance trace`: from one record of a bundle back through its model-load, the model's
 * registration, its training run or federated round, to the datasets (and their field captures) or
 * contributions behind it, each link checked; the result is a tree with a reason on every broken link.
 */
import { decodeBundleRecord, decodeEnvelope, toHex, type Bundle, type SignedRecord } from '../../protocol/index.js'
import { ForensicsError } from '../errors.js'
import { verifyBundle, type VerifyOptions } from '../verify/index.js'
import { bundleAnchorFacts, checkCaptures, type CaptureAnchorFacts, type CaptureCheck, type CapturesFile, type DeviceKeyLookup } from './captures.js'
import { checkRound, parseRound, FL_ROUND_PREDICATE_TYPE, type ContributionsFile } from './federated.js'
import { parseManifest, verifyTree } from './manifest.js'
import { checkTrainingRun, parseTrainingRun, TRAINING_RUN_PREDICATE_TYPE } from './training.js'

export type TraceNodeKind = 'record' | 'model-load' | 'model' | 'training-run' | 'fl-round' | 'dataset' | 'capture' | 'contribution'

export interface TraceNode {
  kind: TraceNodeKind
  /** What the node is, in a few words. */
  label: string
  /** Its identity: a record hash, model hash, statement hash or dataset digest (hex). */
  id: string | null
  ok: boolean
  /** Why the link is broken (a reason code of the check that failed). */
  reason?: string
  detail?: string
  children: TraceNode[]
}

export interface TraceResult {
  ok: boolean
  device: string
  seq: number
  root: TraceNode
  /** Every broken link, root first: `kind label: REASON`. */
  broken: string[]
}

/** A dataset the investigator has: its manifest, optionally its folder and the captures behind it. */
export interface TraceDataset {
  name: string
  manifest: Uint8Array
  dir?: string
  captures?: CapturesFile
}

export interface TraceOptions {
  bundle: Bundle
  /** The traced record's seq (the bundle's device). */
  seq: number
  /** How the bundle is verified: offline against its facts, or online. */
  verify: VerifyOptions
  /** Training-run and round statement envelopes (file bytes); the one naming the model is used. */
  statements: Uint8Array[]
  /** Trusted trainer keys (offline) or a reader of them and the model's attached run (online). */
  trainerKeys?: Uint8Array[]
  lineageFacts?: (keyIds: string[], modelHash: string) => Promise<{ trainerKeys: Uint8Array[], registeredStatementHash: string | null }>
  datasets?: TraceDataset[]
  contributions?: ContributionsFile
  /** Device keys for captures and contributions (other devices than the bundle's). */
  keyAt?: DeviceKeyLookup
  /**
   * What the captures' inclusion proofs are judged against. Default: the chain of `verify.rpcUrl`
   * (the bundle's registry) online, the bundle's own anchors offline.
   */
  captureAnchors?: CaptureAnchorFacts
}

function node (kind: TraceNodeKind, label: string, id: string | null, failure?: [string, string]): TraceNode {
  return failure === undefined ? { kind, label, id, ok: true, children: [] } : { kind, label, id, ok: false, reason: failure[0], detail: failure[1], children: [] }
}

/**
 * Traces record `seq` of the bundle. Malformed statements and manifests become broken links with
 * their error code, so one bad input does not hide the rest of the tree.
 * @throws BundleError for a malformed bundle; ForensicsError RPC_FAILED (online), TRACE_RECORD_UNKNOWN
 */
export async function traceRecord (o: TraceOptions): Promise<TraceResult> {
  const verdict = await verifyBundle(o.bundle, o.verify)
  const records: SignedRecord[] = []
  for (const r of o.bundle.records) {
    try { records.push(decodeEnvelope(decodeBundleRecord(r))) } catch { /* judged by the verdict */ }
  }
  const target = records.find(r => r.record.seq === o.seq)
  if (target === undefined) throw new ForensicsError('TRACE_RECORD_UNKNOWN', `the bundle has no decodable record ${o.bundle.device.id}:${o.seq}`)
  const findingsAt = (seq: number): string[] => verdict.failures.filter(f => f.seq === seq || f.seq === undefined).map(f => f.reason)
  const recordNode = (r: SignedRecord, kind: TraceNodeKind, label: string): TraceNode => {
    const found = findingsAt(r.record.seq)
    return node(kind, label, toHex(r.hash), found.length === 0 ? undefined : [found[0] as string, `verify: ${found.join(', ')}`])
  }
  const body = target.record.body
  const root = recordNode(target, 'record', `${body.kind} ${o.bundle.device.id}:${o.seq}${body.kind === 'inference' && body.decision !== null ? ` decision "${body.decision}"` : ''}`)
  if (body.kind === 'inference' || body.kind === 'model-load') {
    const modelHash = toHex(body.modelHash)
    let parent = root
    if (body.kind === 'inference') {
      // The load this inference ran on: the last model-load of the same model before it.
      const load = records.filter(r => r.record.seq < o.seq && r.record.body.kind === 'model-load' && toHex(r.record.body.modelHash) === modelHash).at(-1)
      parent = load === undefined
        ? node('model-load', 'model-load', null, ['MODEL_LOAD_MISSING', `no model-load of ${modelHash.slice(0, 12)} before seq ${o.seq} in the bundle`])
        : recordNode(load, 'model-load', `model-load ${o.bundle.device.id}:${load.record.seq}`)
      root.children.push(parent)
    }
    parent.children.push(await traceModel(o, modelHash))
  }
  const broken: string[] = []
  const walk = (n: TraceNode): void => {
    if (!n.ok) broken.push(`${n.kind} ${n.label}: ${n.reason as string}`)
    n.children.forEach(walk)
  }
  walk(root)
  return { ok: broken.length === 0, device: o.bundle.device.id, seq: o.seq, root, broken }
}

async function traceModel (o: TraceOptions, modelHash: string): Promise<TraceNode> {
  const m = o.bundle.models.find(x => x.hash === modelHash)
  const status = m?.status ?? 'none'
  const label = m === undefined || status === 'none' ? `model ${modelHash.slice(0, 12)}` : `model ${m.name} ${m.version}`
  const modelNode = node('model', label, modelHash, status === 'none'
    ? ['MODEL_UNREGISTERED', 'the registry does not know the model']
    : status === 'revoked' ? ['MODEL_REVOKED', 'the registry revoked the model'] : undefined)
  modelNode.detail ??= `registry status ${status}`
  modelNode.children.push(await traceTraining(o, modelHash))
  return modelNode
}

async function traceTraining (o: TraceOptions, modelHash: string): Promise<TraceNode> {
  // The statement naming the model; a malformed one is a broken link of its own.
  const errors: string[] = []
  for (const bytes of o.statements) {
    let payloadType: string
    try {
      const text = Buffer.from(bytes).toString('utf8')
      const env = JSON.parse(text) as { payload?: unknown }
      const statement = JSON.parse(Buffer.from(String(env.payload), 'base64').toString('utf8')) as { predicateType?: unknown, subject?: Array<{ digest?: { sha256?: unknown } }> }
      if (statement.subject?.[0]?.digest?.sha256 !== modelHash) continue
      payloadType = String(statement.predicateType)
    } catch {
      errors.push('a statement file is not a DSSE envelope of JSON')
      continue
    }
    try {
      if (payloadType === FL_ROUND_PREDICATE_TYPE) return await traceRound(o, modelHash, bytes)
      if (payloadType === TRAINING_RUN_PREDICATE_TYPE) return await traceRun(o, modelHash, bytes)
      errors.push(`statement of unknown predicate ${payloadType.slice(0, 80)}`)
    } catch (e) {
      if (!(e instanceof ForensicsError)) throw e
      return node('training-run', 'training run', null, [e.code, e.message])
    }
  }
  return node('training-run', 'training run', null, ['TRAINING_RUN_MISSING', errors.length > 0 ? errors.join('; ') : `no statement given names the model ${modelHash.slice(0, 12)}`])
}

async function trainerFacts (o: TraceOptions, keyIds: string[], modelHash: string): Promise<{ trainerKeys: Uint8Array[], registeredStatementHash?: string | null }> {
  if (o.lineageFacts !== undefined) return await o.lineageFacts(keyIds, modelHash)
  return { trainerKeys: o.trainerKeys ?? [] }
}

async function traceRun (o: TraceOptions, modelHash: string, bytes: Uint8Array): Promise<TraceNode> {
  const run = parseTrainingRun(bytes)
  const facts = await trainerFacts(o, run.envelope.signatures.map(s => s.keyid), modelHash)
  const p = run.statement.predicate
  const given = new Map<string, TraceDataset>((o.datasets ?? []).map(d => [d.name, d]))
  const datasetNodes: TraceNode[] = []
  const digests = new Map<string, string>()
  for (const d of p.datasets) {
    const label = `dataset ${d.name}@${d.version}`
    const have = given.get(d.name)
    if (have === undefined) { datasetNodes.push(node('dataset', label, d.digest.sha256, ['DATASET_NOT_GIVEN', 'no manifest of this dataset was given'])); continue }
    let manifest
    try { manifest = parseManifest(have.manifest) } catch (e) {
      if (!(e instanceof ForensicsError)) throw e
      datasetNodes.push(node('dataset', label, d.digest.sha256, [e.code, e.message])); continue
    }
    const digest = manifest.subject[0].digest.sha256
    digests.set(d.name, digest)
    let failure: [string, string] | undefined
    if (digest !== d.digest.sha256) failure = ['DATASET_MISMATCH', `manifest digest ${digest.slice(0, 12)}, statement ${d.digest.sha256.slice(0, 12)}`]
    else if (have.dir !== undefined) {
      const diff = await verifyTree(have.dir, manifest)
      if (!diff.equal) failure = ['DATASET_CHANGED', [...diff.added.map(f => `added ${f}`), ...diff.removed.map(f => `removed ${f}`), ...diff.changed.map(f => `changed ${f}`)].join(', ')]
    }
    const dn = node('dataset', label, d.digest.sha256, failure)
    if (have.captures !== undefined && o.keyAt !== undefined) {
      const anchors = await captureAnchorsOf(o)
      let checks: CaptureCheck[]
      try { checks = await checkCaptures(manifest, have.captures, o.keyAt, { anchors: anchors.facts }) } finally { anchors.close() }
      for (const c of checks) {
        const where = c.proof === 'verified' ? `, anchored in batch ${c.anchor?.batchId ?? '?'}` : c.proof === 'unchecked' ? ', proof not checked against an anchor' : ', no inclusion proof'
        dn.children.push(node('capture', `${c.name} by ${String(c.deviceId)}:${String(c.seq)}${c.ok ? where : ''}`, c.recordHash, c.ok ? undefined : [c.reason as string, c.detail ?? '']))
      }
    }
    datasetNodes.push(dn)
  }
  const { checks } = checkTrainingRun(run, {
    trainerKeys: facts.trainerKeys, modelHash, datasetDigests: digests,
    ...(facts.registeredStatementHash !== undefined ? { registeredStatementHash: facts.registeredStatementHash } : {})
  })
  // Dataset checks are shown on the dataset nodes; the run's own are signature, model and chain.
  const bad = checks.find(c => !c.ok && c.reason !== 'DATASET_MISMATCH')
  const runNode = node('training-run', `training run ${p.codeRevision}`, run.statementHash, bad === undefined ? undefined : [bad.reason as string, bad.detail])
  runNode.children.push(...datasetNodes)
  if (p.baseModel !== null) runNode.children.push(node('model', `base model ${p.baseModel.digest.sha256.slice(0, 12)}`, p.baseModel.digest.sha256))
  return runNode
}

// Online: the chain the bundle was verified against; offline: the bundle's anchors.
async function captureAnchorsOf (o: TraceOptions): Promise<{ facts: CaptureAnchorFacts, close: () => void }> {
  if (o.captureAnchors !== undefined) return { facts: o.captureAnchors, close: () => {} }
  if (o.verify.rpcUrl !== undefined && o.verify.offline !== true) {
    const { registryAnchorFacts } = await import('./device-keys.js')
    return await registryAnchorFacts(o.verify.rpcUrl, o.bundle.chain.registry)
  }
  return { facts: bundleAnchorFacts(o.bundle), close: () => {} }
}

async function traceRound (o: TraceOptions, modelHash: string, bytes: Uint8Array): Promise<TraceNode> {
  const round = parseRound(bytes)
  const facts = await trainerFacts(o, round.envelope.signatures.map(s => s.keyid), modelHash)
  const result = await checkRound(round, {
    ...facts, modelHash,
    ...(o.contributions !== undefined && o.keyAt !== undefined ? { contributions: o.contributions, keyAt: o.keyAt } : {})
  })
  const own = result.checks.find(c => !c.ok && !c.check.startsWith('contribution '))
  const p = round.statement.predicate
  const roundNode = node('fl-round', `federated round ${p.roundId} (${p.contributions.length} contributions, ${p.totalSamples} samples)`, round.statementHash,
    own === undefined ? undefined : [own.reason as string, own.detail ?? ''])
  for (const c of p.contributions) {
    const check = result.checks.find(x => x.check === `contribution ${c.deviceId}#${c.seq}`)
    roundNode.children.push(node('contribution', `${c.deviceId}:${c.seq} ${c.sampleCount} samples (${(c.weight * 100).toFixed(1)}%)`, c.recordHash,
      check === undefined ? ['CONTRIBUTION_UNCHECKED', 'no contributions file given'] : check.ok ? undefined : [check.reason as string, check.detail ?? '']))
  }
  roundNode.children.push(node('model', `base model ${p.baseModel.digest.sha256.slice(0, 12)}`, p.baseModel.digest.sha256))
  return roundNode
}

/** The tree as indented text, `ok` or `FAIL REASON` on each line. */
export function formatTrace (t: TraceResult): string {
  const lines: string[] = []
  const walk = (n: TraceNode, prefix: string, last: boolean, top: boolean): void => {
    const head = top ? '' : prefix + (last ? '└─ ' : '├─ ')
    lines.push(`${head}${n.ok ? 'ok  ' : `FAIL ${n.reason as string}  `}${n.label}${n.id === null ? '' : `  ${n.id.slice(0, 16)}`}${!n.ok && n.detail !== undefined ? `  (${n.detail})` : ''}`)
    n.children.forEach((c, i) => walk(c, top ? '' : prefix + (last ? '   ' : '│  '), i === n.children.length - 1, false))
  }
  walk(t.root, '', true, true)
  lines.push(t.ok ? 'TRACE OK: every link verified' : `TRACE BROKEN: ${t.broken.length} link(s)`)
  return lines.join('\n') + '\n'
}

