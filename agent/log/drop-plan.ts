/**
 * Which stored records a fail-open drop at the budget removes: a run of contiguous unsent
 * records from the first unsent seq, never a boot record, merging the gap records of earlier
 * drops that declare the hole right before them.
 */
import { ZERO_HASH, type SignedRecord } from '../../protocol/index.js'

/** A drop: the records removed, the range the new gap record declares, and how many of it were already declared. */
export interface DropPlan {
  drop: SignedRecord[]
  firstSeq: number
  beforeHash: Uint8Array
  /** Seqs inside `drop` that earlier gap records had already declared (not counted again as dropped). */
  redeclared: number
}

/**
 * Reads `records` (the unsent ones, oldest first, from seq `start`) until the run frees `target`
 * bytes or ends; undefined when there is nothing to drop.
 */
export async function planDrop (records: AsyncIterable<SignedRecord>, start: number, target: number): Promise<DropPlan | undefined> {
  // The run dropped: contiguous unsent records, and the gap records of earlier drops that
  // declare the hole right before them (merged into the new declaration, so that gap records
  // cannot fill the budget). A gap declaring an older hole ends the run: its declaration stays.
  const drop: SignedRecord[] = []
  let freed = 0
  let firstSeq = -1
  let beforeHash = ZERO_HASH
  let redeclared = 0
  for await (const r of records) {
    const b = r.record.body
    const declaresBefore = b.kind === 'gap' && b.lastSeq === r.record.seq - 1
    const next = (drop.at(-1)?.record.seq ?? -2) + 1
    if (b.kind === 'boot') {
      // Never dropped: a verifier cannot tell a new boot inside a hole.
      if (drop.length === 0) continue
      break
    }
    if (drop.length === 0) {
      if (b.kind === 'gap') {
        // Only a hole that starts at the first unsent seq: one further back may be declared
        // by a gap record that stays, which the merged declaration would contradict.
        if (!declaresBefore || b.firstSeq !== start) continue
        firstSeq = b.firstSeq
        beforeHash = b.beforeHash
      } else {
        firstSeq = r.record.seq
        beforeHash = r.record.prev
      }
    } else if (b.kind === 'gap' ? !(declaresBefore && b.firstSeq === next) : r.record.seq !== next) {
      break
    }
    if (b.kind === 'gap') redeclared += b.lastSeq - b.firstSeq + 1
    drop.push(r)
    freed += r.envelope.byteLength
    if (freed >= target) break
  }
  return drop.length === 0 ? undefined : { drop, firstSeq, beforeHash, redeclared }
}
