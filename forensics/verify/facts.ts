/**
 * The facts a verdict is judged against: the bundle's own (offline), or the registry's read over
 * JSON-RPC (online), with every disagreement between the two noted for the run to report. All the
 * chain reads of `verify` are here; the run over the records makes none.
 */
import { fromHex, parseCheckpoint, parseTipProof, toHex, verifyPruningStatement, type Bundle, type BundleAnchor, type BundleDevice, type BundleKey, type BundleModel } from '../../protocol/index.js'
import type { BlockTag, ChainReader } from '../chain/index.js'
import { ForensicsError } from '../errors.js'
import { tryDecode, tryParseProof } from './decode.js'
import { findKeyDifference } from './key-history.js'
import type { FailureReason, WarningReason } from './reasons.js'
import type { VerifyProgress } from './verify-bundle.js'

/** Records between two progress reports. */
export const PROGRESS_EVERY = 500

/** The facts a verdict is judged against, and the bundle-level disagreements found while reading them. */
export interface Facts {
  keys: readonly BundleKey[]
  revokedFromMs: number | undefined
  models: Map<string, BundleModel>
  anchors: Map<string, BundleAnchor>
  checkedAtBlock: number | null
  /** Device time from which the bundle's key history disagrees with the registry's. */
  keyMismatch: { fromMs: number, message: string } | undefined
  modelMismatch: Map<string, string>
  anchorMismatch: Map<string, string>
  /** Findings about the bundle as a whole (no record). */
  failures: Array<{ reason: FailureReason, message: string }>
  warnings: Array<{ reason: WarningReason, message: string }>
}

type ChainModule = typeof import('../chain/index.js')
type Progress = (p: VerifyProgress) => void

/** The bundle's own facts: what offline verification judges against. */
export function offlineFacts (bundle: Bundle): Facts {
  return {
    keys: bundle.device.keys,
    revokedFromMs: bundle.device.revokedFromMs,
    models: new Map(bundle.models.map(m => [m.hash, m])),
    anchors: new Map(bundle.anchors.map(a => [a.root, a])),
    checkedAtBlock: null,
    keyMismatch: undefined,
    modelMismatch: new Map(),
    anchorMismatch: new Map(),
    failures: [],
    warnings: []
  }
}

/**
 * The registry's facts about what the bundle names: today's for judging (a revocation after the
 * export counts), those at the bundle's block for comparing with the bundle's own.
 * @throws ForensicsError `RPC_FAILED`, `CHAIN_MISMATCH`, `REGISTRY_NOT_FOUND`.
 */
export async function onlineFacts (bundle: Bundle, rpcUrl: string, progress: Progress): Promise<Facts> {
  const named = scanBundle(bundle, progress)
  // Loaded here only: offline verification never loads ethers nor constructs a provider.
  const chain = await import('../chain/index.js')
  progress({ phase: 'facts', done: 0, total: 4 })
  const reader = await chain.openChainReader(rpcUrl, bundle.chain.registry, { expectChainId: bundle.chain.chainId })
  try {
    const facts = offlineFacts(bundle)
    facts.anchors = new Map()
    const latest = await chain.readLatestBlock(reader)
    facts.checkedAtBlock = latest
    const then = await checkBundleBlock(chain, reader, bundle, latest, facts)
    progress({ phase: 'facts', done: 1, total: 4 })
    const { deviceThen, modelsThen } = await readFactsThen(chain, reader, bundle, then, latest, facts)
    progress({ phase: 'facts', done: 2, total: 4 })

    // Judged against the facts of today: a revocation after the export counts.
    const deviceNow = await chain.readDeviceFacts(reader, bundle.device.id, latest)
    if (deviceNow === undefined) facts.failures.push({ reason: 'device-unknown', message: `the registry does not know device "${bundle.device.id}"` })
    facts.keys = deviceNow?.keys ?? []
    facts.revokedFromMs = deviceNow?.revokedFromMs
    compareDevice(bundle, deviceThen, then, facts)
    compareModels(bundle, modelsThen, then, facts)
    facts.models = new Map((await chain.readModelFacts(reader, named.models, latest)).map(m => [m.hash, m]))
    progress({ phase: 'facts', done: 3, total: 4 })

    // Anchors never change once written: the latest block answers for the bundle's block too.
    facts.anchors = await chain.readAnchorFacts(reader, named.roots, latest)
    compareAnchors(bundle, facts)
    await checkGatewayKeys(chain, reader, bundle, latest, facts)
    progress({ phase: 'facts', done: 4, total: 4 })
    return facts
  } finally {
    reader.close()
  }
}

/** What the records and proofs name, so that the chain is asked about exactly that. */
function scanBundle (bundle: Bundle, progress: Progress): { models: Set<string>, roots: Set<string> } {
  const models = new Set(bundle.models.map(m => m.hash))
  const roots = new Set(bundle.anchors.map(a => a.root))
  const total = bundle.records.length
  bundle.records.forEach((b64, i) => {
    const signed = tryDecode(b64)
    const body = signed?.record.body
    if (body?.kind === 'model-load' || body?.kind === 'inference') models.add(toHex(body.modelHash))
    if ((i + 1) % PROGRESS_EVERY === 0) progress({ phase: 'scan', done: i + 1, total })
  })
  for (const p of bundle.proofs) {
    const proof = tryParseProof(p.proof)
    if (proof !== undefined) roots.add(toHex(proof.checkpoint.rootHash))
  }
  // The checkpoints that commit pruning statements, and the batches the pruned records were in:
  // their anchors are asked for too.
  const gatewayKeys = (bundle.gateways ?? []).map(g => fromHex(g.publicKey))
  for (const p of bundle.prunings ?? []) {
    try {
      for (const b of verifyPruningStatement(Buffer.from(p.statement, 'base64'), gatewayKeys).statement.batches) roots.add(toHex(b.root))
    } catch { /* judged by checkPrunings */ }
    if (p.checkpoint === undefined) continue
    try {
      roots.add(toHex(parseCheckpoint(p.checkpoint.slice(0, p.checkpoint.indexOf('\n\n') + 2)).rootHash))
    } catch { /* judged by checkPrunings */ }
  }
  // The tip proof's batch too (§7.10): its anchor is what completeness is judged at.
  if (bundle.tip !== undefined) {
    try {
      roots.add(toHex(parseCheckpoint(parseTipProof(bundle.tip.proof).checkpoint).rootHash))
    } catch {
      // judged (and named) by judgeCompleteness
    }
  }
  progress({ phase: 'scan', done: total, total })
  return { models, roots }
}

/** The bundle's facts must be the chain's facts at the bundle's block: that block, or 'latest' when the chain has not reached it. */
async function checkBundleBlock (chain: ChainModule, reader: ChainReader, bundle: Bundle, latest: number, facts: Facts): Promise<BlockTag> {
  const at = bundle.chain.readAtBlock
  if (at > latest) {
    facts.failures.push({ reason: 'chain-mismatch', message: `the bundle was read at block ${at}, beyond this chain's latest block ${latest}` })
    return 'latest'
  }
  if (bundle.chain.readAtBlockHash !== undefined) {
    const hash = await chain.readBlockHash(reader, at)
    if (hash?.toLowerCase() !== bundle.chain.readAtBlockHash.toLowerCase()) {
      facts.failures.push({ reason: 'chain-mismatch', message: `block ${at} of this chain has hash ${String(hash)}, the bundle names ${bundle.chain.readAtBlockHash}` })
    }
  }
  return at
}

/** The device's and the bundle's models' facts at block `then`, to compare the bundle's own with. */
async function readFactsThen (
  chain: ChainModule, reader: ChainReader, bundle: Bundle, then: BlockTag, latest: number, facts: Facts
): Promise<{ deviceThen: BundleDevice | undefined, modelsThen: BundleModel[] }> {
  const bundleModelHashes = bundle.models.map(m => m.hash)
  try {
    return {
      deviceThen: await chain.readDeviceFacts(reader, bundle.device.id, then),
      modelsThen: await chain.readModelFacts(reader, bundleModelHashes, then)
    }
  } catch (e) {
    if (!(e instanceof ForensicsError) || then === 'latest') throw e
    // A node that prunes old state cannot answer at the bundle's block: compare with today's facts.
    facts.warnings.push({ reason: 'facts-not-historic', message: `the node cannot read state at block ${bundle.chain.readAtBlock} (${e.message}); facts compared at block ${latest}` })
    return {
      deviceThen: await chain.readDeviceFacts(reader, bundle.device.id, latest),
      modelsThen: await chain.readModelFacts(reader, bundleModelHashes, latest)
    }
  }
}

/** The bundle's key history and revocation against the registry's at its block: the earliest device time they differ from. */
function compareDevice (bundle: Bundle, deviceThen: BundleDevice | undefined, then: BlockTag, facts: Facts): void {
  const keyDiff = findKeyDifference(bundle.device.keys, deviceThen?.keys ?? [])
  if (keyDiff !== undefined) {
    facts.keyMismatch = {
      fromMs: keyDiff.fromMs,
      message: deviceThen === undefined
        ? `the bundle lists keys of a device the registry did not know at block ${String(then)}`
        : `key ${keyDiff.index} of the bundle differs from the registry's at block ${String(then)} (from device time ${keyDiff.fromMs})`
    }
  }
  const revokedThen = deviceThen?.revokedFromMs
  if (revokedThen !== bundle.device.revokedFromMs) {
    const fromMs = Math.min(...[revokedThen, bundle.device.revokedFromMs].filter((v): v is number => v !== undefined))
    if (facts.keyMismatch === undefined || fromMs < facts.keyMismatch.fromMs) {
      facts.keyMismatch = { fromMs, message: `the bundle's revocation (${String(bundle.device.revokedFromMs ?? 'none')}) differs from the registry's (${String(revokedThen ?? 'none')})` }
    }
  }
}

/** The bundle's model entries against the registry's at its block. */
function compareModels (bundle: Bundle, modelsThen: BundleModel[], then: BlockTag, facts: Facts): void {
  const byHash = new Map(modelsThen.map(m => [m.hash, m]))
  for (const m of bundle.models) {
    const c = byHash.get(m.hash)
    const diff = c === undefined ? ['entry'] : (Object.keys(m) as Array<keyof BundleModel>).filter(k => m[k] !== c[k])
    if (diff.length > 0) facts.modelMismatch.set(m.hash, `the bundle's ${diff.join(', ')} of model ${m.hash.slice(0, 16)}… differ from the registry's at block ${String(then)}`)
  }
}

/** The bundle's anchors against the chain's (already in `facts.anchors`): changed, invented and left-out ones. */
function compareAnchors (bundle: Bundle, facts: Facts): void {
  const at = bundle.chain.readAtBlock
  const listed = new Set<string>()
  for (const a of bundle.anchors) {
    listed.add(a.root)
    const c = facts.anchors.get(a.root)
    if (c === undefined) {
      facts.anchorMismatch.set(a.root, `the bundle lists an anchor of root ${a.root.slice(0, 16)}… that the chain does not have`)
      continue
    }
    const diff = (Object.keys(a) as Array<keyof BundleAnchor>).filter(k => !sameValue(a[k], c[k]))
    if (diff.length > 0) facts.anchorMismatch.set(a.root, `the bundle's ${diff.join(', ')} of anchor ${a.root.slice(0, 16)}… differ from the chain's`)
  }
  for (const [root, c] of facts.anchors) {
    // Anchored after the bundle's block: the bundle could not know it.
    if (!listed.has(root) && c.blockNumber <= at) facts.anchorMismatch.set(root, `the bundle leaves out the anchor of root ${root.slice(0, 16)}…, which the chain had at block ${at}`)
  }
}

/** The gateways' log keys: each must be registered on chain under its gateway id (§7.8). */
async function checkGatewayKeys (chain: ChainModule, reader: ChainReader, bundle: Bundle, latest: number, facts: Facts): Promise<void> {
  for (const g of bundle.gateways ?? []) {
    const registered = await chain.readDeviceFacts(reader, g.id, latest)
    // Never registered: nothing on chain to compare with, as for an unsigned checkpoint (the
    // anchors still decide). Registered with another key: someone swapped the key in the bundle.
    if (registered === undefined) facts.warnings.push({ reason: 'gateway-key-unregistered', message: `the registry knows no key of gateway "${g.id}": its checkpoint signatures are checked against the bundle's key only` })
    else if (!registered.keys.some(k => k.publicKey.toLowerCase() === g.publicKey)) {
      facts.failures.push({ reason: 'gateway-key-mismatch', message: `the bundle's log key ${g.publicKey.slice(0, 16)}… of gateway "${g.id}" is not registered on chain under it` })
    }
  }
}

function sameValue (a: unknown, b: unknown): boolean {
  // 0x-hex from the chain may be checksummed or not: compare hex text case-insensitively.
  return typeof a === 'string' && typeof b === 'string' ? a.toLowerCase() === b.toLowerCase() : a === b
}
