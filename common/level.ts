/**
 * Opening a LevelDB and writing to it so that one failed write stops the handle: LevelDB keeps
 * accepting writes after a failed one, and recovery after a crash drops everything after a torn
 * record, so a write acknowledged after a failure could vanish while an earlier one stays lost.
 */
import { Level } from 'level'

/** Key and value encodings of a handle (abstract-level's names). */
export interface LevelEncodings {
  keyEncoding: 'utf8'
  valueEncoding: 'view' | 'json' | 'utf8' | 'buffer'
}

/** One put or del of an atomic write. */
export type LevelOp<V> = { type: 'put', key: string, value: V } | { type: 'del', key: string }

/** A chained batch to fill (cheaper per operation than the array form, for many small ops). */
export interface LevelChainedBatch<V> {
  put: (key: string, value: V) => unknown
  del: (key: string) => unknown
}

/** LevelDB settings a part may tune when it opens a handle. */
export interface LevelTuning {
  /**
   * Write buffer (memtable) size in bytes: the write-ahead log grows to this before it becomes a
   * table, so it bounds what a reopen must write (the agent's record log sizes its disk reserve
   * from it). Default: LevelDB's 4 MiB.
   */
  writeBufferBytes?: number
  /**
   * Snappy-compress table blocks. Default true (LevelDB's). Off for data that does not compress
   * (hashes, signatures, ciphertext): Snappy then only costs CPU on every flush and compaction.
   * Either way a store reads blocks written with or without it.
   */
  compression?: boolean
}

/**
 * Opens (or creates) the LevelDB at `dir`.
 * @param openError the part's error for a failed open; `locked` is true when another process holds it.
 * @throws what `openError` returns.
 */
export async function openLevel<V> (dir: string, encodings: LevelEncodings, openError: (cause: unknown, locked: boolean) => Error, tuning: LevelTuning = {}): Promise<Level<string, V>> {
  const db = new Level<string, V>(dir, {
    ...encodings,
    ...(tuning.writeBufferBytes === undefined ? {} : { writeBufferSize: tuning.writeBufferBytes }),
    ...(tuning.compression === undefined ? {} : { compression: tuning.compression })
  })
  try {
    await db.open()
  } catch (e) {
    throw openError(e, (e as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED')
  }
  return db
}

/**
 * The write side of a LevelDB handle with the one rule: after a failed write, every later write
 * throws that first failure and touches nothing. Reads go to `db` directly.
 */
export class FatalWriteLevel<V> {
  private failure: Error | undefined

  /** @param writeError the part's error for a failed write (the first one is kept). */
  constructor (readonly db: Level<string, V>, private readonly writeError: (cause: unknown) => Error) {}

  /** The first write failure, if any: the handle writes nothing more. */
  get failed (): Error | undefined {
    return this.failure
  }

  /** Writes `ops` atomically. @throws the (first) write failure. */
  async batch (ops: Array<LevelOp<V>>, options: { sync: boolean }): Promise<void> {
    await this.guard(async () => { await this.db.batch(ops, options) })
  }

  /** Fills a chained batch with `fill` and writes it atomically. @throws the (first) write failure. */
  async chained (fill: (batch: LevelChainedBatch<V>) => void, options: { sync: boolean }): Promise<void> {
    if (this.failure !== undefined) throw this.failure
    const batch = this.db.batch()
    try {
      fill(batch)
    } catch (e) {
      // Nothing was written: a bug in `fill`, not a failed write.
      await batch.close()
      throw e
    }
    await this.guard(async () => { await batch.write(options) })
  }

  private async guard (write: () => Promise<void>): Promise<void> {
    if (this.failure !== undefined) throw this.failure
    try {
      await write()
    } catch (e) {
      this.failure = this.writeError(e)
      throw this.failure
    }
  }
}
