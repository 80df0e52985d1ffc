/**
 * Completeness of a bundle (PROTOCOL.md §7.10): the device's tip anchored on chain, proven by the
 * bundle's tip proof, against the bundle's last record. Judged online only: offline nothing ties
 * the tip proof's checkpoint to the chain, so a forged one would prove anything.
 */
import {
  ProtocolError, decodeBundleRecord, decodeEnvelope, fromHex, noteKeyId, openCheckpoint, parseCheckpoint, parseProof, parseTipProof,
  sha256, tipRootOfCheckpoint, toHex, verifyTipProof, type Bundle, type BundleAnchor, type Checkpoint, type DeviceTipValue,
  type NoteVerifierKey, type SignedRecord, type VerifierBackend
} from '../../protocol/index.js'
import type { FailureReason } from './reasons.js'

/** What the verdict says about completeness. */
export interface Completeness {
  /**
   * complete: the bundle reaches the anchored tip · incomplete: records `missing` are not in it ·
   * absent: the device had no record at the anchor (the tip tree proves it) · unknown: not judged
   * (offline, no tip proof, a window, an anchor from before tip trees, or a tip proof that failed).
   */
  status: 'complete' | 'incomplete' | 'absent' | 'unknown'
  message: string
  /** The anchor judged at: the batch checkpoint's origin, and its block on chain. */
  anchor?: { origin: string, blockNumber: number, onChainBatchId: string }
  /** The anchored tip. */
  tip?: { seq: number, hash: string }
  /** Seqs the bundle lacks, first and last. */
  missing?: { fromSeq: number, toSeq: number }
}

export interface CompletenessFinding { reason: FailureReason, message: string, seq?: number, lastSeq?: number }

export interface CompletenessInput {
  bundle: Bundle
  mode: 'offline' | 'online'
  /** Anchors as the chain has them (online), by hex root. */
  anchors: ReadonlyMap<string, BundleAnchor>
  /** A window is judged (fromMs / toMs given to verify). */
  windowed: boolean
  verifier: VerifierBackend
}

function unknown (message: string): { completeness: Completeness, findings: CompletenessFinding[] } {
  return { completeness: { status: 'unknown', message }, findings: [] }
}

function decodeOr (b64: string): SignedRecord | undefined {
  try {
    return decodeEnvelope(decodeBundleRecord(b64))
  } catch {
    return undefined
  }
}

/** `<prefix>/batch/<n>` → [prefix, n]; undefined for another shape. */
function batchOf (origin: string): [string, number] | undefined {
  const m = /^(.*)\/batch\/([1-9][0-9]{0,15})$/.exec(origin)
  return m === null ? undefined : [m[1] as string, Number(m[2])]
}

/**
 * Judges completeness; findings are failures of the verdict (`incomplete`, `tip-proof-invalid`,
 * `tip-mismatch`).
 */
export function judgeCompleteness (input: CompletenessInput): { completeness: Completeness, findings: CompletenessFinding[] } {
  const { bundle } = input
  if (bundle.tip === undefined) return unknown('the bundle carries no tip proof (a gateway without tip trees, an export before any was anchored, or a windowed export): completeness is not judged')
  if (input.mode === 'offline') return unknown('offline: the tip proof is not checked against the chain, so completeness cannot be judged (verify --online)')
  if (input.windowed) return unknown('a time window is judged: completeness concerns the whole history')
  const checked = checkTipProof(input, bundle.tip.proof)
  return 'completeness' in checked ? checked : compareWithTip(bundle, checked)
}

/** A tip proof checked against the chain: its checkpoint, the anchor of its root, and the device's tip in it (undefined: proven absent). */
interface CheckedTip {
  checkpoint: Checkpoint
  anchor: BundleAnchor
  at: NonNullable<Completeness['anchor']>
  tip: DeviceTipValue | undefined
}

type Judged = { completeness: Completeness, findings: CompletenessFinding[] }

/** Checks the bundle's tip proof (present: the caller looked): its device, checkpoint signature, anchor and tip-tree path; or the judgement when one fails, or when the batch has no tip root. */
function checkTipProof (input: CompletenessInput, proofText: string): CheckedTip | Judged {
  const { bundle } = input
  const invalid = (message: string): { completeness: Completeness, findings: CompletenessFinding[] } =>
    ({ completeness: { status: 'unknown', message: `tip proof rejected: ${message}` }, findings: [{ reason: 'tip-proof-invalid', message }] })

  let file
  let checkpoint: Checkpoint
  let unsignedText: string
  try {
    file = parseTipProof(proofText)
    const cut = file.checkpoint.indexOf('\n\n')
    unsignedText = cut < 0 ? file.checkpoint : file.checkpoint.slice(0, cut + 2)
    checkpoint = parseCheckpoint(unsignedText)
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e
    return invalid(`${e.code}: ${e.message}`)
  }
  if (file.proof.deviceId !== bundle.device.id) return invalid(`it proves device "${file.proof.deviceId}", the bundle is of "${bundle.device.id}"`)
  // A signed checkpoint must verify under the bundle's gateway keys (as the record proofs' do).
  if (unsignedText.length < file.checkpoint.length && (bundle.gateways ?? []).length > 0) {
    const keys: NoteVerifierKey[] = (bundle.gateways ?? []).map(g => { const publicKey = fromHex(g.publicKey); return { name: g.keyName, keyId: noteKeyId(g.keyName, publicKey), publicKey } })
    try {
      openCheckpoint(file.checkpoint, keys, input.verifier)
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e
      return invalid(`its checkpoint signature fails: ${e.code}`)
    }
  }
  const anchor = input.anchors.get(toHex(checkpoint.rootHash))
  if (anchor === undefined) return invalid(`its batch root ${toHex(checkpoint.rootHash).slice(0, 16)}… is not anchored on chain`)
  if (toHex(sha256(new TextEncoder().encode(unsignedText))) !== anchor.metadataHash.toLowerCase() || checkpoint.size !== anchor.size) {
    return invalid('its checkpoint is not the one anchored with that root (metadataHash or size differ)')
  }
  const at = { origin: checkpoint.origin, blockNumber: anchor.blockNumber, onChainBatchId: anchor.onChainBatchId }
  let tipRoot
  try {
    tipRoot = tipRootOfCheckpoint(checkpoint.extensions)
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e
    return invalid(`${e.code}: ${e.message}`)
  }
  if (tipRoot === undefined) return { completeness: { status: 'unknown', anchor: at, message: `the anchored batch ${checkpoint.origin} carries no tip root (sealed before tip trees)` }, findings: [] }
  let tip: DeviceTipValue | undefined
  try {
    tip = verifyTipProof(file.proof, tipRoot)
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e
    return invalid(`${e.code}: ${e.message}`)
  }
  return { checkpoint, anchor, at, tip }
}

/** The bundle against the anchored tip: does it reach the tip, hold the tip's record, and no record the tip tree says is not there? */
function compareWithTip (bundle: Bundle, { checkpoint, anchor, at, tip }: CheckedTip): Judged {
  // The bundle's side: its last decodable record, and any record proven in a batch up to the anchor
  // with a seq past the tip (the gateway then contradicts itself).
  let last: SignedRecord | undefined
  for (let i = bundle.records.length - 1; i >= 0 && last === undefined; i--) last = decodeOr(bundle.records[i] as string)
  const where = batchOf(checkpoint.origin)
  const provenUpTo = (fromSeqExclusive: number): number | undefined => {
    if (where === undefined) return undefined
    for (const p of bundle.proofs) {
      if (p.seq <= fromSeqExclusive) continue
      try {
        const b = batchOf(parseProof(p.proof).checkpoint.origin)
        if (b !== undefined && b[0] === where[0] && b[1] <= where[1]) return p.seq
      } catch {
        // a bad proof is the record loop's finding
      }
    }
    return undefined
  }
  const anchorText = `at ${checkpoint.origin} (on-chain batch ${anchor.onChainBatchId}, block ${anchor.blockNumber})`
  if (tip === undefined) {
    const contradiction = provenUpTo(-1)
    if (contradiction !== undefined) {
      return { completeness: { status: 'unknown', anchor: at, message: 'the tip tree contradicts the record proofs' }, findings: [{ reason: 'tip-mismatch', seq: contradiction, message: `the tip tree proves the device absent ${anchorText}, yet seq ${contradiction} is proven in a batch up to it` }] }
    }
    return { completeness: { status: 'absent', anchor: at, message: `the device is proven absent from the tip tree ${anchorText}: it had no record there; the bundle's records are later` }, findings: [] }
  }
  const tipOut = { seq: tip.seq, hash: toHex(tip.hash) }
  const lastSeq = last?.record.seq ?? -1
  if (lastSeq < tip.seq) {
    const missing = { fromSeq: lastSeq + 1, toSeq: tip.seq }
    const message = `the bundle stops at seq ${lastSeq < 0 ? 'none' : lastSeq}; the tip anchored ${anchorText} is seq ${tip.seq}: records ${missing.fromSeq}..${missing.toSeq} are missing`
    return { completeness: { status: 'incomplete', anchor: at, tip: tipOut, missing, message }, findings: [{ reason: 'incomplete', seq: missing.fromSeq, lastSeq: missing.toSeq, message }] }
  }
  // The record at the tip's seq must be the tip.
  let atTip: SignedRecord | undefined
  for (let i = bundle.records.length - 1; i >= 0; i--) {
    const s = decodeOr(bundle.records[i] as string)
    if (s !== undefined && s.record.seq <= tip.seq) { atTip = s.record.seq === tip.seq ? s : undefined; break }
  }
  if (atTip !== undefined && toHex(atTip.hash) !== tipOut.hash) {
    return { completeness: { status: 'unknown', anchor: at, tip: tipOut, message: 'the anchored tip is another record than the bundle\'s' }, findings: [{ reason: 'tip-mismatch', seq: tip.seq, message: `seq ${tip.seq} of the bundle has record hash ${toHex(atTip.hash).slice(0, 16)}…, the tip anchored ${anchorText} ${tipOut.hash.slice(0, 16)}…: another history` }] }
  }
  const beyond = provenUpTo(tip.seq)
  if (beyond !== undefined) {
    return { completeness: { status: 'unknown', anchor: at, tip: tipOut, message: 'the tip tree contradicts the record proofs' }, findings: [{ reason: 'tip-mismatch', seq: beyond, message: `the tip anchored ${anchorText} is seq ${tip.seq}, yet seq ${beyond} is proven in a batch up to it` }] }
  }
  return { completeness: { status: 'complete', anchor: at, tip: tipOut, message: `the bundle reaches the device's tip anchored ${anchorText} (seq ${tip.seq})${lastSeq > tip.seq ? ` and goes on to seq ${lastSeq}` : ''}` }, findings: [] }
}
