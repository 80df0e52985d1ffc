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
  gaps: ReadonlyArray<{ firstSeq: number, lastSeq: number, reason: string }>
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
  // The last linked record, as three locals rather than a tip object per record (the ingest links
  // every stored record here: a closure and an object each were ~650 bytes of garbage per record).
  let started = tip !== undefined
  let lastSeq = tip?.seq ?? -1
  let lastHash = tip?.hash ?? ZERO_HASH
  let lastBoot = tip?.boot
  // Both stay empty for a record that links at the tip (nearly every one): shared until written.
  let holes: Hole[] = NO_HOLES
  let gaps: Array<LinkResult['gaps'][number]> = NO_GAPS
  // Accepted prefix: records before the first still-open hole.
  let settledUpTo = 0
  for (let i = 0; i < records.length; i++) {
    const signed = records[i] as SignedRecord
    const r = signed.record
    if (started) {
      if (r.seq <= lastSeq) return failed(records, holes, gaps, settledUpTo, i, 'seq-reuse', `seq does not advance past ${lastSeq}`)
      if (lastBoot !== undefined) {
        if (r.boot < lastBoot) return failed(records, holes, gaps, settledUpTo, i, 'boot-went-back', `boot counter ${r.boot} after ${lastBoot}`)
        if (r.body.kind === 'boot' ? r.boot === lastBoot : r.boot !== lastBoot) {
          return failed(records, holes, gaps, settledUpTo, i, 'boot-mismatch', r.body.kind === 'boot'
            ? `boot record does not advance the boot counter ${lastBoot}`
            : `boot counter ${r.boot} changed without a boot record (was ${lastBoot})`)
        }
      }
    }
    const expectedSeq = started ? lastSeq + 1 : 0
    const expectedPrev = started ? lastHash : ZERO_HASH
    if (r.seq > expectedSeq) {
      if (holes === NO_HOLES) holes = []
      holes.push({ firstSeq: expectedSeq, lastSeq: r.seq - 1, beforeHash: expectedPrev, nextPrev: r.prev, index: i })
    } else if (!equalBytes(r.prev, expectedPrev)) {
      return !started
        ? failed(records, holes, gaps, settledUpTo, i, 'bad-genesis', 'the first record must have a zero prev hash')
        : failed(records, holes, gaps, settledUpTo, i, 'prev-hash-mismatch', `prev hash does not match the hash of record ${lastSeq}`)
    }
    if (r.body.kind === 'gap') {
      const gap = r.body
      // As in ChainVerifier: two drops in a row leave one hole declared by two gap records, each
      // settling the front of what is left of it, chained by hashes.
      const at = holes.findIndex(h => h.firstSeq === gap.firstSeq && gap.lastSeq <= h.lastSeq)
      const hole = holes[at]
      if (hole === undefined) return failed(records, holes, gaps, settledUpTo, i, 'bad-gap', `gap record declares ${gap.firstSeq}..${gap.lastSeq} dropped, but no such hole precedes it`)
      const whole = gap.lastSeq === hole.lastSeq
      if (!equalBytes(gap.beforeHash, hole.beforeHash) || (whole && !equalBytes(gap.lastHash, hole.nextPrev))) {
        return failed(records, holes, gaps, settledUpTo, i, 'bad-gap', `gap record for ${gap.firstSeq}..${gap.lastSeq} does not match the hashes around the hole`)
      }
      if (whole) {
        holes.splice(at, 1)
      } else {
        hole.firstSeq = gap.lastSeq + 1
        hole.beforeHash = gap.lastHash
      }
      if (gaps === NO_GAPS) gaps = []
      gaps.push({ firstSeq: gap.firstSeq, lastSeq: gap.lastSeq, reason: gap.reason })
    }
    started = true
    lastSeq = r.seq
    lastHash = signed.hash
    lastBoot = r.boot
    if (holes.length === 0) settledUpTo = i + 1
  }
  return { accepted: holes.length === 0 ? records.length : Math.min(settledUpTo, (holes[0] as Hole).index), gaps }
}

// Frozen: a push onto the shared empties would be a bug, and throws rather than leak across calls.
const NO_HOLES: Hole[] = Object.freeze([]) as unknown as Hole[]
const NO_GAPS: Array<LinkResult['gaps'][number]> = Object.freeze([]) as unknown as Array<LinkResult['gaps'][number]>

function failed (records: readonly SignedRecord[], holes: readonly Hole[], gaps: LinkResult['gaps'], settledUpTo: number, i: number, reason: LinkFailureReason, message: string): LinkResult {
  return {
    accepted: holes.length === 0 ? i : Math.min(settledUpTo, (holes[0] as Hole).index),
    gaps,
    failure: { reason, index: i, message: `seq ${(records[i] as SignedRecord).record.seq}: ${message}` }
  }
}
