/**
 * SHA-256 of byte ranges of files on worker threads: the pool behind dataset hashing. Each range is
 * read once, in 1 MiB blocks, with synchronous reads on its worker (no event-loop hop per block);
 * small files travel in batches so 100k of them do not cost 100k messages.
 */
import { Worker } from 'node:worker_threads'
import { availableParallelism } from 'node:os'
import { ForensicsError, type ForensicsErrorCode } from '../errors.js'

/** Hashing threads when none is asked: one per core, at most 4 (disks rarely feed more). */
export const DEFAULT_HASH_WORKERS = Math.max(1, Math.min(4, availableParallelism()))
/** A batch for one worker holds at most this many ranges ... */
export const DEFAULT_BATCH_RANGES = 256
/** ... and at most this many bytes, so the last batches spread over every worker. */
export const DEFAULT_BATCH_BYTES = 8 * 1024 * 1024

/** One byte range of one file. `endByte` null: to the end of the file, whatever its size now. */
export interface HashRange {
  path: string
  startByte: number
  endByte: number | null
  /** With endByte null: the size seen when listing, so batches balance by bytes (not read as truth). */
  sizeHintBytes?: number
}

/** Digest of a range and the bytes actually read. */
export interface RangeDigest {
  digest: Uint8Array
  sizeBytes: number
}

export interface HashRangesOptions {
  /** Worker threads. Default DEFAULT_HASH_WORKERS. */
  workers?: number
  /** Called after each batch with bytes hashed so far. */
  onProgress?: (doneBytes: number) => void
}

// Plain JavaScript run with `eval`, so the pool needs no loader for TypeScript in the worker. The
// digests of a batch travel back packed in one transferred buffer, not as a cloned Buffer each.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads')
const { openSync, readSync, closeSync } = require('node:fs')
const { createHash } = require('node:crypto')
const block = new Uint8Array(1024 * 1024)
parentPort.on('message', (batch) => {
  const digests = new Uint8Array(32 * batch.length)
  const sizes = new Float64Array(batch.length)
  for (let i = 0; i < batch.length; i++) {
    const r = batch[i]
    let fd
    try {
      fd = openSync(r.path, 'r')
      const h = createHash('sha256')
      let pos = r.startByte
      for (;;) {
        const want = r.endByte === null ? block.length : Math.min(block.length, r.endByte - pos)
        if (want === 0) break
        const n = readSync(fd, block, 0, want, pos)
        if (n === 0) break
        h.update(n === block.length ? block : block.subarray(0, n))
        pos += n
      }
      if (r.endByte !== null && pos !== r.endByte) {
        parentPort.postMessage({ error: { index: i, code: 'LINEAGE_UNREADABLE', message: r.path + ' ended at byte ' + pos + ', before ' + r.endByte + ' (changed while hashed?)' } })
        return
      }
      digests.set(h.digest(), 32 * i)
      sizes[i] = pos - r.startByte
    } catch (e) {
      parentPort.postMessage({ error: { index: i, code: 'LINEAGE_UNREADABLE', message: 'cannot read ' + r.path + ': ' + e.message } })
      return
    } finally {
      if (fd !== undefined) closeSync(fd)
    }
  }
  parentPort.postMessage({ digests, sizes }, [digests.buffer, sizes.buffer])
})
`

interface WorkerReply {
  digests?: Uint8Array
  sizes?: Float64Array
  error?: { index: number, code: ForensicsErrorCode, message: string }
}

/**
 * Ranges fed to the pool while they are still being found (a folder being listed): batches go to
 * idle threads as soon as they are cut, so listing and hashing overlap.
 */
export interface HashStream {
  /** Adds ranges; their results follow the ranges added before them. */
  add: (ranges: readonly HashRange[]) => void
  /** Waits for every range added; result i belongs to the i-th range added. */
  finish: () => Promise<RangeDigest[]>
}

/** Hashing threads started ahead of their work (they boot while the caller lists a folder). */
export interface HashPool {
  /** Hashes every range on the pool's threads; result i belongs to range i. One job at a time. */
  hash: (ranges: readonly HashRange[], options?: Pick<HashRangesOptions, 'onProgress'>) => Promise<RangeDigest[]>
  /** A job whose ranges are added as they are found. One job at a time. */
  stream: (options?: Pick<HashRangesOptions, 'onProgress'>) => HashStream
  close: () => Promise<void>
}

interface Batch { first: number, ranges: HashRange[], bytes: number }

/** What the pool's threads and its one running job share. */
interface PoolState {
  /** The running job's failure handler: a worker that errs or exits fails the job, not the process. */
  fail: ((e: ForensicsError) => void) | undefined
  /** The first worker failure: every later job fails with it. */
  broken: ForensicsError | undefined
  closing: boolean
}

/** Starts `workers` hashing threads (default DEFAULT_HASH_WORKERS). The caller must `close` it. */
export function openHashPool (workers: number = DEFAULT_HASH_WORKERS): HashPool {
  const workerCount = Math.max(1, workers)
  if (!Number.isSafeInteger(workerCount)) throw new RangeError('workers must be an integer')
  const state: PoolState = { fail: undefined, broken: undefined, closing: false }
  const threads = startThreads(workerCount, state)
  const stream = (options: Pick<HashRangesOptions, 'onProgress'> = {}): HashStream => startJob(threads, state, options)
  const hash = async (ranges: readonly HashRange[], options: Pick<HashRangesOptions, 'onProgress'> = {}): Promise<RangeDigest[]> => {
    const s = stream(options)
    s.add(ranges)
    return await s.finish()
  }
  const close = async (): Promise<void> => {
    state.closing = true
    await Promise.all(threads.map(async w => await w.terminate()))
  }
  return { hash, stream, close }
}

function startThreads (workerCount: number, state: PoolState): Worker[] {
  const onFailure = (e: ForensicsError): void => {
    if (state.closing) return
    state.broken ??= e
    state.fail?.(e)
  }
  const threads: Worker[] = []
  for (let i = 0; i < workerCount; i++) {
    // Plain CommonJS: the thread's inherited --import hooks (tsx, tap's loaders) would only load again.
    const w = new Worker(WORKER_SOURCE, { eval: true, execArgv: [] })
    w.on('error', e => { onFailure(new ForensicsError('LINEAGE_UNREADABLE', `hash worker failed: ${e.message}`, { cause: e })) })
    // A worker that ends without answering (killed, out of memory) must not leave the caller waiting.
    w.on('exit', code => { onFailure(new ForensicsError('LINEAGE_UNREADABLE', `hash worker exited (code ${code}) before finishing`)) })
    threads.push(w)
  }
  return threads
}

/** One job on the pool's threads: ranges are batched as they are added and handed to idle threads. */
function startJob (threads: readonly Worker[], state: PoolState, options: Pick<HashRangesOptions, 'onProgress'>): HashStream {
  const results: RangeDigest[] = []
  const queue: Batch[] = []
  const idle = [...threads]
  let added = 0
  let active = 0
  let doneBytes = 0
  let current: Batch = { first: 0, ranges: [], bytes: 0 }
  let failure: ForensicsError | undefined = state.broken
  let settle: (() => void) | undefined
  state.fail = (e) => { failure ??= e; settle?.() }
  const dispatch = (): void => {
    while (failure === undefined && idle.length > 0 && queue.length > 0) {
      const w = idle.pop() as Worker
      const b = queue.shift() as Batch
      active++
      w.once('message', (reply: WorkerReply) => {
        active--
        idle.push(w)
        if (reply.error !== undefined) { state.fail?.(new ForensicsError(reply.error.code, reply.error.message)); return }
        const digests = reply.digests as Uint8Array
        const sizes = reply.sizes as Float64Array
        for (let k = 0; k < b.ranges.length; k++) {
          results[b.first + k] = { digest: digests.subarray(32 * k, 32 * k + 32), sizeBytes: sizes[k] as number }
          doneBytes += sizes[k] as number
        }
        options.onProgress?.(doneBytes)
        dispatch()
        if (active === 0 && queue.length === 0) settle?.()
      })
      w.postMessage(b.ranges)
    }
  }
  const cut = (): void => {
    if (current.ranges.length === 0) return
    queue.push(current)
    current = { first: added, ranges: [], bytes: 0 }
  }
  return {
    add: (ranges) => {
      for (const r of ranges) {
        // Batches: consecutive ranges, cut at a count or byte budget.
        const bytes = r.endByte === null ? (r.sizeHintBytes ?? 0) : r.endByte - r.startByte
        if (current.ranges.length >= DEFAULT_BATCH_RANGES || (current.ranges.length > 0 && current.bytes + bytes > DEFAULT_BATCH_BYTES)) cut()
        current.ranges.push(r)
        current.bytes += bytes
        added++
      }
      dispatch()
    },
    finish: async () => {
      cut()
      dispatch()
      try {
        await new Promise<void>(resolve => {
          settle = resolve
          if (failure !== undefined || (active === 0 && queue.length === 0)) resolve()
        })
      } finally {
        state.fail = undefined
      }
      if (failure !== undefined) throw failure
      return results
    }
  }
}

/**
 * Hashes every range; result i belongs to range i. Ranges should name each byte once (the caller
 * splits files), so every file is read exactly once overall.
 * @throws ForensicsError LINEAGE_UNREADABLE when a file cannot be opened or is shorter than its range
 */
export async function hashRanges (ranges: readonly HashRange[], options: HashRangesOptions = {}): Promise<RangeDigest[]> {
  const workers = Math.max(1, Math.min(options.workers ?? DEFAULT_HASH_WORKERS, Math.max(1, ranges.length)))
  if (!Number.isSafeInteger(workers)) throw new RangeError('workers must be an integer')
  const pool = openHashPool(workers)
  try {
    return await pool.hash(ranges, options.onProgress === undefined ? {} : { onProgress: options.onProgress })
  } finally {
    await pool.close()
  }
}
