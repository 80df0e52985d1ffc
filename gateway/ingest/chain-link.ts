/**
 * The hash-chain rules of protocol/chain.ts (ChainVerifier) applied to records whose signatures
 * the gateway has already checked on arrival: seq, boot counter, `prev` link and honest gaps.
 * Separate from ChainVerifier only so that a signature is verified once per record, not twice;
 * test/gateway/chain-link.test.ts checks both give the same verdicts.
 */
import { ZERO_HASH, equalBytes, type ChainFailureReason, type SignedRecord } from '../../protocol/index.js'
import type { DeviceTip } from '../store/index.js'

/** The chain reasons that remain once signatures are checked. */
export type LinkFailureReason = Exclude<ChainFailureReason, 'bad-signature' | 'unknown-key' | 'device-mismatch' | 'seq-gap' |
  'uncertified-key' | 'bad-certification' | 'certification-replayed' | 'certification-expired' | 'identity-revoked'>

export interface LinkFailure {
  reason: LinkFailureReason
  /** Position in the input of the record that breaks the chain. */
  index: number
  message: string
}

export interface LinkResult {
  /** How many leading records are accepted (linked to the tip, every hole before them explained). */
  accepted: number
  /** Honest gaps settled by gap records among the accepted ones. */
  gaps: Array<{ firstSeq: number, lastSeq: number, reason: string }>
  failure?: LinkFailure
}

interface Hole { firstSeq: number, lastSeq: number, beforeHash: Uint8Array, nextPrev: Uint8Array, index: number }

/**
 * Links `records` (ascending seq) after `tip` (undefined: the chain starts at seq 0). A hole in
 * the seqs is accepted only once a later record among them is the signed gap record naming it,
 * with the hashes on both sides; records after an unexplained hole are not accepted (they wait).
 * A tip learned from a peer's ack has no boot counter: the next record's boot is then taken as is.
 */
export function linkRecords (tip: DeviceTip | undefined, records: readonly SignedRecord[]): LinkResult {
  let last = tip
  const holes: Hole[] = []
  const gaps: LinkResult['gaps'] = []
  // Accepted prefix: records before the first still-open hole.
  let settledUpTo = 0
  for (let i = 0; i < records.length; i++) {
    const signed = records[i] as SignedRecord
    const r = signed.record
    const fail = (reason: LinkFailureReason, message: string): LinkResult =>
      ({ accepted: holes.length === 0 ? i : Math.min(settledUpTo, (holes[0] as Hole).index), gaps, failure: { reason, index: i, message: `seq ${r.seq}: ${message}` } })
    if (last !== undefined) {
      if (r.seq <= last.seq) return fail('seq-reuse', `seq does not advance past ${last.seq}`)
      if (last.boot !== undefined) {
        if (r.boot < last.boot) return fail('boot-went-back', `boot counter ${r.boot} after ${last.boot}`)
        if (r.body.kind === 'boot' ? r.boot === last.boot : r.boot !== last.boot) {
          return fail('boot-mismatch', r.body.kind === 'boot'
            ? `boot record does not advance the boot counter ${last.boot}`
            : `boot counter ${r.boot} changed without a boot record (was ${last.boot})`)
        }
      }
    }
    const expectedSeq = last === undefined ? 0 : last.seq + 1
    const expectedPrev = last === undefined ? ZERO_HASH : last.hash
    if (r.seq > expectedSeq) {
      holes.push({ firstSeq: expectedSeq, lastSeq: r.seq - 1, beforeHash: expectedPrev, nextPrev: r.prev, index: i })
    } else if (!equalBytes(r.prev, expectedPrev)) {
      return last === undefined
        ? fail('bad-genesis', 'the first record must have a zero prev hash')
        : fail('prev-hash-mismatch', `prev hash does not match the hash of record ${last.seq}`)
    }
    if (r.body.kind === 'gap') {
      const gap = r.body
      // As in ChainVerifier: two drops in a row leave one hole declared by two gap records, each
      // settling the front of what is left of it, chained by hashes.
      const at = holes.findIndex(h => h.firstSeq === gap.firstSeq && gap.lastSeq <= h.lastSeq)
      const hole = holes[at]
      if (hole === undefined) return fail('bad-gap', `gap record declares ${gap.firstSeq}..${gap.lastSeq} dropped, but no such hole precedes it`)
      const whole = gap.lastSeq === hole.lastSeq
      if (!equalBytes(gap.beforeHash, hole.beforeHash) || (whole && !equalBytes(gap.lastHash, hole.nextPrev))) {
        return fail('bad-gap', `gap record for ${gap.firstSeq}..${gap.lastSeq} does not match the hashes around the hole`)
      }
      if (whole) {
        holes.splice(at, 1)
      } else {
        hole.firstSeq = gap.lastSeq + 1
        hole.beforeHash = gap.lastHash
      }
      gaps.push({ firstSeq: gap.firstSeq, lastSeq: gap.lastSeq, reason: gap.reason })
    }
    last = { seq: r.seq, hash: signed.hash, boot: r.boot }
    if (holes.length === 0) settledUpTo = i + 1
  }
  return { accepted: holes.length === 0 ? records.length : Math.min(settledUpTo, (holes[0] as Hole).index), gaps }
}
