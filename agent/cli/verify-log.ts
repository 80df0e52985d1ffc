/**
 * Verification of the device's own log: every stored record's signature under the key its device
 * time selects from the key history, the seq, boot and hash links, honest gaps, and that every
 * key-rotation record announces a key of the history. Records the gateway acknowledged may be
 * deleted already; the check then starts at the oldest stored record, trusting its back link.
 */
import { ChainVerifier, ZERO_HASH, equalBytes, toHex, type ChainFailureReason, type KeyLookup, type SignedRecord } from '../../protocol/index.js'
import type { KeyPeriod } from '../keys/index.js'
import type { RecordSource } from './record-source.js'

export interface LogVerdict {
  ok: boolean
  deviceId: string
  via: 'log' | 'daemon'
  /** Records checked. */
  count: number
  firstSeq?: number
  lastSeq?: number
  /** Records below this seq are no longer on the device (acknowledged, or declared dropped). */
  startsAtSeq?: number
  ackedSeq: number
  boots?: { first: number, last: number }
  keys: number
  rotations: number
  gaps: Array<{ firstSeq: number, lastSeq: number, reason: string }>
  failure?: { seq: number, reason: ChainFailureReason | 'rotation-not-in-history', message: string }
}

export interface VerifyLogOptions {
  deviceId: string
  /** Confirmed key history, oldest first. */
  history: readonly KeyPeriod[]
  /** A rotation whose record may or may not be in the log (an interrupted `keys rotate`). */
  pending?: { publicKey: Uint8Array, validFromMs: number }
}

/** Verifies every record of `source`. */
export async function verifyLog (source: RecordSource, options: VerifyLogOptions): Promise<LogVerdict> {
  const periods: KeyPeriod[] = [...options.history]
  const keyAt: KeyLookup = (_device, timeMs) => {
    let key: Uint8Array | undefined
    for (const p of periods) if (p.validFromMs <= timeMs) key = p.publicKey
    return key
  }
  const verdict: LogVerdict = { ok: true, deviceId: options.deviceId, via: source.via, count: 0, ackedSeq: source.ackedSeq, keys: periods.length, rotations: 0, gaps: [] }
  let verifier: ChainVerifier | undefined
  const fail = (seq: number, reason: NonNullable<LogVerdict['failure']>['reason'], message: string): LogVerdict => {
    verdict.ok = false
    verdict.failure = { seq, reason, message }
    return verdict
  }
  for await (const signed of source.records(0, Number.MAX_SAFE_INTEGER)) {
    const r = signed.record
    if (verifier === undefined) {
      verdict.firstSeq = r.seq
      verdict.startsAtSeq = r.seq
      const after = r.seq === 0 ? undefined : await anchorBefore(source, signed)
      verifier = new ChainVerifier({ deviceId: options.deviceId, keyAt, ...(after !== undefined ? { after } : {}) })
    }
    const failure = verifier.push(signed)
    if (failure !== undefined) break
    verdict.count++
    verdict.lastSeq = r.seq
    verdict.boots = { first: verdict.boots?.first ?? r.boot, last: r.boot }
    if (r.body.kind === 'key-rotation') {
      const announced = r.body
      const known = periods.find(p => equalBytes(p.publicKey, announced.newPublicKey))
      const pending = options.pending
      if (known === undefined && pending !== undefined && equalBytes(pending.publicKey, announced.newPublicKey) && pending.validFromMs === announced.validFromMs) {
        // The interrupted rotation did reach the log: its key signs what follows.
        periods.push({ publicKey: pending.publicKey, validFromMs: pending.validFromMs })
        periods.sort((a, b) => a.validFromMs - b.validFromMs)
      } else if (known === undefined || known.validFromMs !== announced.validFromMs) {
        return fail(r.seq, 'rotation-not-in-history', `seq ${r.seq}: key-rotation record announces key ${toHex(announced.newPublicKey).slice(0, 16)}… valid from ${announced.validFromMs}, which the key file's history does not hold`)
      }
      verdict.rotations++
    }
  }
  verdict.keys = periods.length
  if (verifier === undefined) return verdict
  const result = verifier.result()
  verdict.gaps = result.gaps
  if (result.failure !== undefined) return fail(result.failure.seq, result.failure.reason, result.failure.message)
  return verdict
}

/**
 * Where the chain stands just before the oldest stored record. Normally its own back link (the
 * records before it were acknowledged and deleted). When unacknowledged records right before it
 * were dropped at the disk budget (fail-open), the gap record that declares them gives the hash
 * before the drop, so the hole is checked like any other.
 */
async function anchorBefore (source: RecordSource, first: SignedRecord): Promise<{ seq: number, boot: number, hash: Uint8Array } | undefined> {
  const r = first.record
  const boot = r.body.kind === 'boot' ? r.boot - 1 : r.boot
  if (r.seq > source.ackedSeq + 1) {
    for await (const s of source.records(r.seq, Number.MAX_SAFE_INTEGER)) {
      const b = s.record.body
      if (b.kind === 'gap' && b.lastSeq === r.seq - 1 && b.firstSeq <= source.ackedSeq + 1) {
        return { seq: b.firstSeq - 1, boot, hash: b.beforeHash }
      }
    }
    // Unacknowledged records are missing and nothing declares them: start at the ack point,
    // so the hole stays open and is reported.
    return source.ackedSeq >= 0 ? { seq: source.ackedSeq, boot, hash: ZERO_HASH } : undefined
  }
  return { seq: r.seq - 1, boot, hash: r.prev }
}
