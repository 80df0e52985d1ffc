/**
 * Hash-chain verification of one device's records: signature, seq, boot counter and `prev` link,
 * with honest gaps. A device whose disk budget forces unsent records out drops a range and later
 * writes a signed gap record naming it (seq range, hash before it, hash of its last record); the
 * hole is honest only once such a record, verified under the device key, accounts for it. The
 * first broken link is named with its seq and a stable reason.
 */
import { ProtocolError } from './errors.js'
import { ZERO_HASH, equalBytes } from './hash.js'
import { verifyRecordSignature, type GapBody, type SignedRecord } from './record.js'
import type { VerifierBackend } from './ed25519.js'
import { checkKeyCertification } from './identity.js'

/** Why a chain is broken at a record. Stable API: tools branch on these. */
export type ChainFailureReason =
  | 'bad-signature'
  | 'unknown-key'
  | 'device-mismatch'
  | 'prev-hash-mismatch'
  | 'seq-gap'
  | 'seq-reuse'
  | 'boot-went-back'
  | 'boot-mismatch'
  | 'bad-gap'
  | 'bad-genesis'
  /** Identity-rooted device: a record of a boot whose record key no certification covers (§13). */
  | 'uncertified-key'
  /** The boot record's certification is not the registered identity's, or its signature does not verify. */
  | 'bad-certification'
  /** A valid certification of another device or another boot, carried by this boot record. */
  | 'certification-replayed'
  /** A record's device time outside its boot key's certified validity. */
  | 'certification-expired'
  /** The device's identity was revoked at or before the record's device time. */
  | 'identity-revoked'

export interface ChainFailure {
  reason: ChainFailureReason
  /** Position of the failing record in the input (0-based); for `seq-gap`, of the record after the hole. */
  index: number
  /** Its seq as it claims it; for `seq-gap`, the first missing seq (docs/PROTOCOL.md §6). */
  seq: number
  /** For `seq-gap`: the last missing seq. */
  lastSeq?: number
  message: string
}

/** Where the chain is known to stand before the first record given (e.g. a verified prefix). */
export interface ChainPoint { seq: number, boot: number, hash: Uint8Array }

/** Finds the device key valid at a device time; undefined when none is known. */
export type KeyLookup = (deviceId: string, timeMs: number) => Uint8Array | undefined

/**
 * A boot's record key as its certification established it (docs/PROTOCOL.md §13): the state a
 * verifier carries from a boot record to the records after it, and across inputs with `after`.
 */
export interface CertifiedKey {
  boot: number
  /** Ed25519 record key of that boot. */
  recordKey: Uint8Array
  /** The registry key slot (identity key id) it was certified under. */
  registryKey: Uint8Array
  validFromMs: number
  validUntilMs: number
}

export interface ChainVerifierOptions {
  deviceId: string
  keyAt: KeyLookup
  /** Last verified record before the input; absent: the input starts at seq 0 (genesis). */
  after?: ChainPoint
  backend?: VerifierBackend
  /**
   * Checks a record's signature under the key `keyAt` gave, instead of `backend` here: for a
   * caller that verified the signatures in bulk (on worker threads) before the chain walk.
   */
  checkSignature?: (signed: SignedRecord, publicKey: Uint8Array) => boolean
  /**
   * With `after`: the input is a window cut out of a longer chain (an export `--from`). If its
   * first record is a gap record whose declared range ends before it, that range lies before the
   * window: listed as declared, with `lastHash` checked against the record's `prev` when the range
   * ends right before it; `beforeHash` cannot be checked (docs/PROTOCOL.md §6, windows).
   */
  windowStart?: boolean
  /**
   * The device's record key is certified per boot by a hardware identity (docs/PROTOCOL.md §13):
   * a boot without a valid certification is `uncertified-key` rather than `bad-signature`. Also
   * set by itself once a certified boot record was seen.
   */
  identityRooted?: boolean
  /** With `after` inside a certified boot: that boot's key, as the boot record established it. */
  certified?: CertifiedKey
  /** True when the device (its identity) was revoked at or before the device time: `identity-revoked`. */
  isRevoked?: (deviceId: string, timeMs: number) => boolean
}

/** A hole in the seq numbers, waiting for the gap record that accounts for it. */
interface PendingHole {
  firstSeq: number
  lastSeq: number
  beforeHash: Uint8Array
  /** `prev` of the record after the hole: must be the gap record's lastHash. */
  nextPrev: Uint8Array
  index: number
}

export interface ChainResult {
  /** Records accepted. */
  count: number
  /** Honest gaps: ranges the device declared dropped. */
  gaps: Array<{ firstSeq: number, lastSeq: number, reason: string }>
  last: ChainPoint | undefined
  /** The first broken link, if any (including holes no gap record accounted for). */
  failure?: ChainFailure
}

/**
 * Checks records one at a time, in seq order. After the first failure every further push
 * returns that same failure: a chain is only as good as its first broken link. Holes stay
 * pending until a gap record explains them; `result()` reports the ones still open.
 */
export class ChainVerifier {
  private readonly deviceId: string
  private readonly keyAt: KeyLookup
  private readonly backend: VerifierBackend
  private readonly checkSignature: ((signed: SignedRecord, publicKey: Uint8Array) => boolean) | undefined
  private last: ChainPoint | undefined
  private index = 0
  private count = 0
  private failure: ChainFailure | undefined
  private readonly gaps: ChainResult['gaps'] = []
  private readonly holes: PendingHole[] = []
  private readonly windowStart: boolean
  private identityRooted: boolean
  private certified: CertifiedKey | undefined
  private readonly isRevoked: ((deviceId: string, timeMs: number) => boolean) | undefined

  constructor (options: ChainVerifierOptions) {
    if (typeof options.keyAt !== 'function') throw new TypeError('keyAt must be a function')
    this.deviceId = options.deviceId
    this.keyAt = options.keyAt
    this.backend = options.backend ?? 'node'
    this.checkSignature = options.checkSignature
    this.last = options.after
    this.windowStart = options.windowStart === true && options.after !== undefined
    this.certified = options.certified
    this.identityRooted = options.identityRooted === true || options.certified !== undefined
    this.isRevoked = options.isRevoked
  }

  /** True once the device showed a certified boot (or the options said so): a failing key is `uncertified-key`. */
  isIdentityRooted (): boolean {
    return this.identityRooted
  }

  /** The record key of the current certified boot, if any (to carry into a later input's options). */
  certifiedKey (): CertifiedKey | undefined {
    return this.certified
  }

  /** Accepts the next record or returns the failure it causes. */
  push (signed: SignedRecord): ChainFailure | undefined {
    if (this.failure !== undefined) return this.failure
    const failure = this.check(signed)
    if (failure !== undefined) {
      this.failure = failure
      return failure
    }
    const r = signed.record
    this.last = { seq: r.seq, boot: r.boot, hash: signed.hash }
    this.count++
    this.index++
    return undefined
  }

  /** Holes seen but not (yet) accounted for by a gap record. */
  openHoles (): Array<{ firstSeq: number, lastSeq: number }> {
    return this.holes.map(h => ({ firstSeq: h.firstSeq, lastSeq: h.lastSeq }))
  }

  /** What has been accepted; an unexplained hole counts as a `seq-gap` failure here. */
  result (): ChainResult {
    const base = { count: this.count, gaps: [...this.gaps], last: this.last }
    if (this.failure !== undefined) return { ...base, failure: this.failure }
    const hole = this.holes[0]
    if (hole !== undefined) {
      return {
        ...base,
        failure: {
          reason: 'seq-gap',
          index: hole.index,
          seq: hole.firstSeq,
          lastSeq: hole.lastSeq,
          message: `seq ${hole.firstSeq}: records ${hole.firstSeq}..${hole.lastSeq} are missing and no gap record accounts for them`
        }
      }
    }
    return base
  }

  private fail (reason: ChainFailureReason, signed: SignedRecord, message: string): ChainFailure {
    return { reason, index: this.index, seq: signed.record.seq, message: `seq ${signed.record.seq}: ${message}` }
  }

  private check (signed: SignedRecord): ChainFailure | undefined {
    const r = signed.record
    if (r.deviceId !== this.deviceId) return this.fail('device-mismatch', signed, `record of device "${r.deviceId}" in the chain of "${this.deviceId}"`)
    if (this.isRevoked?.(r.deviceId, r.timeMs) === true) return this.fail('identity-revoked', signed, `"${r.deviceId}" was revoked at or before ${r.timeMs}`)
    const key = this.keyAt(r.deviceId, r.timeMs)
    if (key === undefined) return this.fail('unknown-key', signed, `no key of "${r.deviceId}" valid at ${r.timeMs}`)
    const failure = this.checkKey(signed, key)
    if (failure !== undefined) return failure
    const last = this.last
    if (last !== undefined) {
      if (r.seq <= last.seq) return this.fail('seq-reuse', signed, `seq does not advance past ${last.seq}`)
      if (r.boot < last.boot) return this.fail('boot-went-back', signed, `boot counter ${r.boot} after ${last.boot}`)
      if (r.body.kind === 'boot' ? r.boot === last.boot : r.boot !== last.boot) {
        return this.fail('boot-mismatch', signed, r.body.kind === 'boot'
          ? `boot record does not advance the boot counter ${last.boot}`
          : `boot counter ${r.boot} changed without a boot record (was ${last.boot})`)
      }
    }
    const expectedSeq = last === undefined ? 0 : last.seq + 1
    const expectedPrev = last === undefined ? ZERO_HASH : last.hash
    if (r.seq > expectedSeq) {
      // A hole: provisionally linked, honest only if a later gap record names exactly it.
      this.holes.push({ firstSeq: expectedSeq, lastSeq: r.seq - 1, beforeHash: expectedPrev, nextPrev: r.prev, index: this.index })
    } else if (!equalBytes(r.prev, expectedPrev)) {
      return last === undefined
        ? this.fail('bad-genesis', signed, 'the first record must have a zero prev hash')
        : this.fail('prev-hash-mismatch', signed, `prev hash does not match the hash of record ${last.seq}`)
    }
    if (r.body.kind === 'gap') return this.settleGap(signed, r.body)
    return undefined
  }

  /**
   * The record's signature under the key its boot is certified for, or, for a device without a
   * hardware identity, under the registry key itself (`key`).
   */
  private checkKey (signed: SignedRecord, key: Uint8Array): ChainFailure | undefined {
    const r = signed.record
    if (r.body.kind === 'boot' && r.body.certification !== undefined) {
      const checked = checkKeyCertification(r.body.certification.bytes, r.body.certification.signature,
        { registryKey: key, deviceId: r.deviceId, boot: r.boot, timeMs: r.timeMs }, this.backend)
      if ('problem' in checked) {
        this.identityRooted = true
        return this.fail(checked.problem, signed, checked.message)
      }
      const c = checked.certification
      // The boot record proves possession of the record key: it is signed by it.
      if (!verifyRecordSignature(signed, c.recordKey, this.backend)) return this.fail('bad-signature', signed, 'boot record not signed by the key its certification names')
      this.identityRooted = true
      this.certified = { boot: r.boot, recordKey: c.recordKey, registryKey: key, validFromMs: c.validFromMs, validUntilMs: c.validUntilMs }
      return undefined
    }
    const certified = this.certified
    if (certified !== undefined && certified.boot === r.boot && r.body.kind !== 'boot' && equalBytes(certified.registryKey, key)) {
      if (r.timeMs < certified.validFromMs || r.timeMs >= certified.validUntilMs) {
        return this.fail('certification-expired', signed, `device time ${r.timeMs} outside the boot key's certified [${certified.validFromMs}, ${certified.validUntilMs})`)
      }
      if (!verifyRecordSignature(signed, certified.recordKey, this.backend)) return this.fail('bad-signature', signed, 'signature does not verify under the boot\'s certified key')
      return undefined
    }
    const valid = this.checkSignature !== undefined ? this.checkSignature(signed, key) : verifyRecordSignature(signed, key, this.backend)
    if (valid) return undefined
    if (this.identityRooted) return this.fail('uncertified-key', signed, `no certification covers the record key of boot ${r.boot}`)
    return this.fail('bad-signature', signed, 'signature does not verify under the device key')
  }

  private settleGap (signed: SignedRecord, gap: GapBody): ChainFailure | undefined {
    // A device that dropped twice in a row leaves one hole the verifier sees whole, declared by
    // two gap records: each declaration may settle the front part of a hole, chained by hashes.
    const at = this.holes.findIndex(h => h.firstSeq === gap.firstSeq && gap.lastSeq <= h.lastSeq)
    const hole = this.holes[at]
    if (hole === undefined && this.windowStart && this.count === 0 && gap.lastSeq < signed.record.seq) {
      // The first record of a window declares a range before the window: nothing in the input
      // can contradict it but its own prev, when the range ends right before it.
      if (gap.lastSeq === signed.record.seq - 1 && !equalBytes(gap.lastHash, signed.record.prev)) {
        return this.fail('bad-gap', signed, `gap record for ${gap.firstSeq}..${gap.lastSeq} names a last hash that is not its own prev`)
      }
      this.gaps.push({ firstSeq: gap.firstSeq, lastSeq: gap.lastSeq, reason: gap.reason })
      return undefined
    }
    if (hole === undefined) {
      // Declared records that the chain did not miss: the device lies about what it dropped.
      return this.fail('bad-gap', signed, `gap record declares ${gap.firstSeq}..${gap.lastSeq} dropped, but no such hole precedes it`)
    }
    const whole = gap.lastSeq === hole.lastSeq
    if (!equalBytes(gap.beforeHash, hole.beforeHash) || (whole && !equalBytes(gap.lastHash, hole.nextPrev))) {
      return this.fail('bad-gap', signed, `gap record for ${gap.firstSeq}..${gap.lastSeq} does not match the hashes around the hole`)
    }
    if (whole) {
      this.holes.splice(at, 1)
    } else {
      hole.firstSeq = gap.lastSeq + 1
      hole.beforeHash = gap.lastHash
    }
    this.gaps.push({ firstSeq: gap.firstSeq, lastSeq: gap.lastSeq, reason: gap.reason })
    return undefined
  }
}

/** Verifies a whole sequence; returns the summary and the first failure, if any. */
export function verifyChain (records: Iterable<SignedRecord>, options: ChainVerifierOptions): ChainResult {
  const verifier = new ChainVerifier(options)
  for (const r of records) if (verifier.push(r) !== undefined) break
  return verifier.result()
}

/**
 * Like {@link verifyChain} but throws on the first broken link.
 * @throws ProtocolError `CHAIN_BROKEN` naming the seq and reason; `cause` is the ChainFailure.
 */
export function assertChain (records: Iterable<SignedRecord>, options: ChainVerifierOptions): ChainResult {
  const result = verifyChain(records, options)
  if (result.failure !== undefined) {
    throw new ProtocolError('CHAIN_BROKEN', `${result.failure.reason} at ${result.failure.message}`, { cause: result.failure })
  }
  return result
}

/** A key lookup for a device with one key. */
export function fixedKey (publicKey: Uint8Array): KeyLookup {
  return () => publicKey
}
