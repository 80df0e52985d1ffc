/**
 * One write of the record log's queue: what a batch of queued changes (records, acks, drops,
 * prunes) makes of the head, which stored records it deletes (read from disk, so the byte count
 * follows what is there), and the single atomic LevelDB batch that writes it all with the head.
 */
import type { SignedRecord } from '../../protocol/index.js'
import { HEAD_KEY, encodeMeta, recordKey, type Db, type Meta } from './log-store.js'

export type Put = { key: string, value: Uint8Array }

export interface Pending {
  /** A record to write (or, for a drop, a record that will not be written). */
  signed: SignedRecord | undefined
  /** Delete the stored records in these seq ranges (a fail-open drop at the budget). */
  dropRanges?: Array<[number, number]>
  /** Delete every stored record up to this seq, except the head (acknowledged records). */
  pruneThrough?: number
  /** What the caller read of the prune range beforehand, so the write path need not read it. */
  scan?: PruneScan
  ackedSeq?: number
  dropped?: number
  /** Drops this gap record declares: they settle with it. */
  covers?: Pending[]
  resolve: (s: SignedRecord | undefined) => void
  reject: (e: unknown) => void
}

/** Stored records in [from, through] with their sizes, read while `epoch` deletions had been committed. */
export interface PruneScan { epoch: number, from: number, through: number, entries: Array<[string, number]> }

/** The head after `batch` and the records it puts (deletions not yet counted: collectDeletions). */
export function planCommit (durable: Meta, batch: readonly Pending[]): { next: Meta, puts: Put[], putBytes: number } {
  const next: Meta = { ...durable }
  const puts: Put[] = []
  let putBytes = 0
  for (const p of batch) {
    if (p.signed !== undefined) {
      puts.push({ key: recordKey(p.signed.record.seq), value: p.signed.envelope })
      putBytes += p.signed.envelope.byteLength
      next.head = { seq: p.signed.record.seq, boot: p.signed.record.boot, hash: p.signed.hash }
    }
    if (p.ackedSeq !== undefined) next.ackedSeq = Math.max(next.ackedSeq, p.ackedSeq)
    if (p.dropped !== undefined) next.dropped += p.dropped
  }
  return { next, puts, putBytes }
}

/**
 * The stored records a batch deletes, with their exact sizes read from disk, so the byte count
 * follows what is there whatever was asked. The head after the batch is never deleted: the next
 * record's prev and verify-log's starting point stay checkable.
 */
export async function collectDeletions (db: Db, batch: Pending[], durable: Meta, next: Meta, deletionEpoch: number): Promise<{ keys: string[], bytes: number }> {
  const ranges: Array<[number, number]> = []
  let prune = -1
  for (const p of batch) {
    for (const r of p.dropRanges ?? []) ranges.push(r)
    if (p.pruneThrough !== undefined) prune = Math.max(prune, p.pruneThrough)
  }
  // Only what is on disk before this batch: a record of this batch is not seen by the
  // iterator, and the low mark must not pass it.
  prune = Math.min(prune, durable.head.seq)
  const keep = recordKey(next.head.seq)
  const found = new Map<string, number>()
  if (prune >= next.low) {
    // A scan read since the last deletion, from the same low mark, is what the disk holds.
    const scan = batch.reduce<PruneScan | undefined>((best, p) => {
      const s = p.scan
      return s !== undefined && s.epoch === deletionEpoch && s.from === next.low && s.through <= prune && (best === undefined || s.through > best.through) ? s : best
    }, undefined)
    if (scan !== undefined) {
      for (const [key, size] of scan.entries) if (key !== keep) found.set(key, size)
      if (prune > scan.through) ranges.push([scan.through + 1, prune])
    } else {
      ranges.push([next.low, prune])
    }
    next.low = prune >= next.head.seq ? next.head.seq : prune + 1
  }
  for (const [from, to] of ranges) {
    if (to < from) continue
    // One call for the whole range: an async step per entry costs more than reading it.
    for (const [key, value] of await db.iterator({ gte: recordKey(Math.max(from, 0)), lte: recordKey(to) }).all()) {
      if (key !== keep) found.set(key, value.byteLength)
    }
  }
  let bytes = 0
  for (const n of found.values()) bytes += n
  return { keys: [...found.keys()], bytes }
}

/** Deletions, records and the head in one atomic batch; `sync` waits for the fsync. */
export async function writeCommit (db: Db, deletions: readonly string[], puts: readonly Put[], next: Meta, sync: boolean): Promise<void> {
  // A chained batch: abstract-level's array form costs several times more per operation,
  // and every record is one operation.
  const write = db.batch()
  for (const key of deletions) write.del(key)
  for (const put of puts) write.put(put.key, put.value)
  write.put(HEAD_KEY, encodeMeta(next))
  await write.write({ sync })
}
