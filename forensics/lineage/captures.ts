/**
 * Field captures behind a dataset: a captures file pairs files of a dataset manifest with the
 * device data-capture records (kind 10) that vouch for them, the salts that open their commitments
 * and the records' inclusion proofs. Checking it proves each file was kept by a registered device
 * at a time, in a batch anchored on chain (§5).
 */
import {
  commitSample, decodeEnvelope, equalBytes, fromHex, hashLeaf, MAX_PROOF_BYTES, parseProof, ProvenanceError, toHex, verifyProof, verifyRecordSignature,
  type Bundle, type BundleAnchor, type DataCaptureBody, type SignedRecord
} from '../../protocol/index.js'
import { ForensicsError } from '../errors.js'
import { ProofJudge } from '../verify/proof-check.js'
import { fileOfResource, type Manifest } from './manifest.js'

export const CAPTURES_FORMAT = 'edge-provenance/data-captures/v1'
/** Captures files above this size are refused before reading. */
export const DEFAULT_CAPTURES_MAX_BYTES = 64 * 1024 * 1024

/** One file of a dataset and the device record that vouches for it. */
export interface CaptureEntry {
  /** The file's name in the dataset manifest. */
  name: string
  /** The data-capture record's envelope, hex. */
  envelope: string
  /** The salt of the record's seq, hex (opens the commitment). */
  salt: string
  /**
   * The record's inclusion proof: the gateway's C2SP tlog-proof text (docs/PROTOCOL.md §7.5: leaf
   * index, audit path, checkpoint with root and size, anchoring in its extra lines). Absent while
   * the record's batch is not anchored.
   */
  proof?: string
}

export interface CapturesFile { format: typeof CAPTURES_FORMAT, captures: CaptureEntry[] }

/**
 * The device key in force at a device time, as the registry says; undefined for a device (or a
 * time) the registry does not know. Registry device ids are the device id strings here.
 */
export type DeviceKeyLookup = (deviceId: string, timeMs: number) => Promise<{ publicKey: Uint8Array, revoked: boolean } | undefined>

export type CaptureCheckReason =
  | 'RECORD_INVALID' | 'NOT_DATA_CAPTURE' | 'DEVICE_UNKNOWN' | 'DEVICE_REVOKED' | 'SIGNATURE_INVALID'
  | 'FILE_NOT_IN_MANIFEST' | 'COMMITMENT_MISMATCH' | 'SIZE_MISMATCH'
  | 'PROOF_MISSING' | 'PROOF_INVALID' | 'PROOF_UNANCHORED' | 'ANCHOR_MISMATCH'

/** Where a capture's proof was anchored, once the proof checked out against the anchor facts. */
export interface CaptureAnchor {
  /** RFC 9162 root, hex. */
  root: string
  /** Registry batch id, decimal. */
  batchId: string
  txHash: string
  blockNumber: number
  leafIndex: number
}

/**
 * The anchor facts proofs are judged against: the chain (authoritative: a root it does not return
 * is not anchored) or a bundle's facts (a root they lack is left unchecked, not failed).
 */
export interface CaptureAnchorFacts {
  chainId: number
  /** ProvenanceRegistry address the proofs' `contract` line must name. */
  registry: string
  authoritative: boolean
  /** The anchors of these roots (hex) that exist. */
  read: (roots: readonly string[]) => Promise<ReadonlyMap<string, BundleAnchor>>
}

/** Anchor facts from a bundle (offline): its chain and anchors; roots of other batches stay unchecked. */
export function bundleAnchorFacts (bundle: Pick<Bundle, 'chain' | 'anchors'>): CaptureAnchorFacts {
  const anchors = new Map(bundle.anchors.map(a => [a.root, a]))
  return { chainId: bundle.chain.chainId, registry: bundle.chain.registry, authoritative: false, read: async () => await Promise.resolve(anchors) }
}

export interface CheckCapturesOptions {
  /** Judge each proof against these facts. Without: a proof is only checked against its own checkpoint (`unchecked`). */
  anchors?: CaptureAnchorFacts
  /** A capture without a proof fails (PROOF_MISSING) instead of counting as `none`. Default false. */
  requireProofs?: boolean
}

export interface CaptureCheck {
  name: string
  deviceId: string | null
  seq: number | null
  recordHash: string | null
  dataset: string | null
  label: string | null
  capturedAtMs: number | null
  /**
   * `verified`: the proof leads to a root anchored on chain; `unchecked`: it leads to its own
   * checkpoint's root, but no anchor facts of that root were at hand; `none`: no proof given.
   */
  proof: 'verified' | 'unchecked' | 'none'
  /** The anchoring, when `proof` is `verified`. */
  anchor: CaptureAnchor | null
  ok: boolean
  reason?: CaptureCheckReason
  detail?: string
}

/**
 * Parses a captures file (JSON).
 * @throws ForensicsError `CAPTURES_INVALID` naming the first bad field.
 */
export function parseCaptures (bytes: Uint8Array): CapturesFile {
  let value: unknown
  try { value = JSON.parse(Buffer.from(bytes).toString('utf8')) } catch { throw new ForensicsError('CAPTURES_INVALID', 'captures file is not JSON') }
  const v = value as Partial<CapturesFile> | null
  if (typeof v !== 'object' || v === null || v.format !== CAPTURES_FORMAT) throw new ForensicsError('CAPTURES_INVALID', `captures file: format must be "${CAPTURES_FORMAT}"`)
  if (!Array.isArray(v.captures)) throw new ForensicsError('CAPTURES_INVALID', 'captures file: captures must be an array')
  v.captures.forEach((c: Partial<CaptureEntry> | null, i) => {
    if (typeof c !== 'object' || c === null) throw new ForensicsError('CAPTURES_INVALID', `captures[${i}]: not an object`)
    if (typeof c.name !== 'string' || c.name.length === 0) throw new ForensicsError('CAPTURES_INVALID', `captures[${i}].name: not a file name`)
    if (typeof c.envelope !== 'string' || !/^([0-9a-f]{2})+$/.test(c.envelope)) throw new ForensicsError('CAPTURES_INVALID', `captures[${i}].envelope: not lower-case hex`)
    if (typeof c.salt !== 'string' || !/^[0-9a-f]{64}$/.test(c.salt)) throw new ForensicsError('CAPTURES_INVALID', `captures[${i}].salt: not 64 hex digits`)
    if (c.proof !== undefined) {
      if (typeof c.proof !== 'string' || c.proof.length === 0 || c.proof.length > MAX_PROOF_BYTES) throw new ForensicsError('CAPTURES_INVALID', `captures[${i}].proof: not a text of 1..${MAX_PROOF_BYTES} characters`)
      try { parseProof(c.proof) } catch (e) {
        if (!(e instanceof ProvenanceError)) throw e
        throw new ForensicsError('CAPTURES_INVALID', `captures[${i}].proof: not a C2SP tlog-proof (${e.code}: ${e.message})`, { cause: e })
      }
    }
    const extra = Object.keys(c).filter(k => !['name', 'envelope', 'salt', 'proof'].includes(k))
    if (extra.length > 0) throw new ForensicsError('CAPTURES_INVALID', `captures[${i}]: unknown field ${extra[0] as string}`)
  })
  return v as CapturesFile
}

/**
 * The captures file of receipts the agent returned (ProvenanceAgent.recordDataCapture), one per file
 * name, with each record's proof when given (`attachCaptureProofs` adds them later).
 */
export function buildCaptures (entries: ReadonlyArray<{ name: string, record: SignedRecord, salt: Uint8Array, proof?: string }>): CapturesFile {
  return {
    format: CAPTURES_FORMAT,
    captures: entries.map(e => ({ name: e.name, envelope: toHex(e.record.envelope), salt: toHex(e.salt), ...(e.proof === undefined ? {} : { proof: e.proof }) }))
  }
}

/**
 * Adds each record's inclusion proof, asked of `proofOf` (a gateway's GET /v1/proof/<device>/<seq>),
 * to the entries that have none; `missing` names the records whose batch is not anchored yet.
 */
export async function attachCaptureProofs (captures: CapturesFile, proofOf: (deviceId: string, seq: number) => Promise<string | undefined>): Promise<{ captures: CapturesFile, missing: string[] }> {
  const missing: string[] = []
  const out: CaptureEntry[] = []
  for (const c of captures.captures) {
    if (c.proof !== undefined) { out.push(c); continue }
    let r: SignedRecord
    try { r = decodeEnvelope(fromHex(c.envelope)) } catch (e) {
      if (!(e instanceof ProvenanceError)) throw e
      throw new ForensicsError('CAPTURES_INVALID', `capture ${c.name}: the envelope does not decode (${e.code}: ${e.message})`, { cause: e })
    }
    const proof = await proofOf(r.record.deviceId, r.record.seq)
    if (proof === undefined) missing.push(`${c.name} (${r.record.deviceId}:${r.record.seq})`)
    out.push(proof === undefined ? c : { ...c, proof })
  }
  return { captures: { format: CAPTURES_FORMAT, captures: out }, missing }
}

/**
 * Checks every capture against the manifest's files and the device keys. A file of the manifest
 * without a capture is not a failure here (a dataset may mix field and other data); the caller
 * sees which files are covered.
 */
export async function checkCaptures (manifest: Manifest, captures: CapturesFile, keyAt: DeviceKeyLookup, options: CheckCapturesOptions = {}): Promise<CaptureCheck[]> {
  const files = new Map<string, { digest: string, size: number }>()
  for (const r of manifest.predicate.resources) {
    // Sharded manifests name pieces; a capture opens a whole file, so only `files` manifests count.
    if (manifest.predicate.serialization.method === 'files') files.set(fileOfResource(manifest, r), { digest: r.digest, size: r.size })
  }
  const judge = await proofJudge(captures, options.anchors)
  const out: CaptureCheck[] = []
  for (const c of captures.captures) {
    const check: CaptureCheck = { name: c.name, deviceId: null, seq: null, recordHash: null, dataset: null, label: null, capturedAtMs: null, proof: 'none', anchor: null, ok: false }
    out.push(check)
    let signed: SignedRecord
    try {
      signed = decodeEnvelope(fromHex(c.envelope))
    } catch (e) {
      if (!(e instanceof ProvenanceError)) throw e
      Object.assign(check, { reason: 'RECORD_INVALID', detail: `${e.code}: ${e.message}` })
      continue
    }
    const r = signed.record
    Object.assign(check, { deviceId: r.deviceId, seq: r.seq, recordHash: toHex(signed.hash) })
    if (r.body.kind !== 'data-capture') { Object.assign(check, { reason: 'NOT_DATA_CAPTURE', detail: `a ${r.body.kind} record` }); continue }
    const body: DataCaptureBody = r.body
    Object.assign(check, { dataset: body.dataset, label: body.label, capturedAtMs: body.capturedAtMs })
    const key = await keyAt(r.deviceId, r.timeMs)
    if (key === undefined) { Object.assign(check, { reason: 'DEVICE_UNKNOWN', detail: `no registered key of ${r.deviceId} at ${r.timeMs}` }); continue }
    if (!verifyRecordSignature(signed, key.publicKey)) { Object.assign(check, { reason: 'SIGNATURE_INVALID', detail: `not signed by ${r.deviceId}'s key at ${r.timeMs}` }); continue }
    if (key.revoked) { Object.assign(check, { reason: 'DEVICE_REVOKED', detail: `${r.deviceId} was revoked at ${r.timeMs}` }); continue }
    const file = files.get(c.name)
    if (file === undefined) { Object.assign(check, { reason: 'FILE_NOT_IN_MANIFEST', detail: c.name }); continue }
    if (!equalBytes(commitSample(fromHex(c.salt), fromHex(file.digest)), body.commitment)) {
      Object.assign(check, { reason: 'COMMITMENT_MISMATCH', detail: `the record does not commit to ${c.name} as the manifest hashes it` })
      continue
    }
    if (file.size !== body.sizeBytes) { Object.assign(check, { reason: 'SIZE_MISMATCH', detail: `${file.size} bytes in the manifest, ${body.sizeBytes} in the record` }); continue }
    const failure = judgeProof(c, signed, check, judge, options)
    if (failure !== undefined) { Object.assign(check, { reason: failure[0], detail: failure[1] }); continue }
    check.ok = true
  }
  return out
}

interface Judge { judge: ProofJudge, authoritative: boolean, anchors: ReadonlyMap<string, BundleAnchor> }

// One read of the anchor facts for every root the proofs name.
async function proofJudge (captures: CapturesFile, facts: CaptureAnchorFacts | undefined): Promise<Judge | undefined> {
  if (facts === undefined) return undefined
  const roots = new Set<string>()
  for (const c of captures.captures) if (c.proof !== undefined) roots.add(toHex(parseProof(c.proof).checkpoint.rootHash))
  const anchors = roots.size === 0 ? new Map<string, BundleAnchor>() : await facts.read([...roots])
  return { judge: new ProofJudge({ anchors: [...anchors], chainId: facts.chainId, registry: facts.registry }), authoritative: facts.authoritative, anchors }
}

// The proof's verdict on `check` (proof, anchor); a failure as [reason, detail].
function judgeProof (c: CaptureEntry, signed: SignedRecord, check: CaptureCheck, judge: Judge | undefined, options: CheckCapturesOptions): [CaptureCheckReason, string] | undefined {
  if (c.proof === undefined) return options.requireProofs === true ? ['PROOF_MISSING', 'the capture carries no inclusion proof of its record'] : undefined
  const r = signed.record
  // The size and root come from the anchor facts; the proof's own checkpoint is only a claim.
  const proof = parseProof(c.proof)
  const root = toHex(proof.checkpoint.rootHash)
  const j = judge?.judge.judge(c.proof, signed.envelope, { deviceId: r.deviceId, seq: r.seq, timeMs: r.timeMs })
  if (j === undefined || (j.kind === 'unanchored' && judge?.authoritative === false)) {
    // No facts of this root: the path must at least lead to the checkpoint it names.
    try { verifyProof(proof, hashLeaf(signed.envelope)) } catch (e) {
      if (!(e instanceof ProvenanceError)) throw e
      return ['PROOF_INVALID', `the proof does not lead from the record to its own checkpoint's root (${e.code})`]
    }
    check.proof = 'unchecked'
    return undefined
  }
  if (j.kind === 'malformed') return ['PROOF_INVALID', j.message]
  if (j.kind === 'unanchored') return ['PROOF_UNANCHORED', `the proof's root ${root.slice(0, 16)}… is not anchored in the registry`]
  if (j.inclusion !== undefined) return ['PROOF_INVALID', `the record is not leaf ${proof.index} of anchored root ${root.slice(0, 16)}…: ${j.inclusion.message}`]
  if (j.disagreements.length > 0) return ['ANCHOR_MISMATCH', j.disagreements.join('; ')]
  check.proof = 'verified'
  const anchor = judge?.anchors.get(root) as BundleAnchor
  check.anchor = { root, batchId: anchor.onChainBatchId, txHash: anchor.txHash, blockNumber: anchor.blockNumber, leafIndex: proof.index }
  return undefined
}
