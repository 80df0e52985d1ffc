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

// Plain JavaScript run with `eval`, so the pool needs no loader for TypeScript in the worker.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads')
const { openSync, readSync, closeSync } = require('node:fs')
const { createHash } = require('node:crypto')
const block = Buffer.allocUnsafe(1024 * 1024)
parentPort.on('message', (batch) => {
  const out = []
  for (let i = 0; i < batch.length; i++) {
    const r = batch[i]
    let fd
    try {
      fd = openSync(r.path, 'r')
      const h = createHash('sha256')
      let pos = r.startByte
      let read = 0
      for (;;) {
        const want = r.endByte === null ? block.length : Math.min(block.length, r.endByte - pos)
        if (want === 0) break
        const n = readSync(fd, block, 0, want, pos)
        if (n === 0) break
        h.update(n === block.length ? block : block.subarray(0, n))
        pos += n
        read += n
      }
      if (r.endByte !== null && pos !== r.endByte) {
        parentPort.postMessage({ error: { index: i, code: 'LINEAGE_UNREADABLE', message: r.path + ' ended at byte ' + pos + ', before ' + r.endByte + ' (changed while hashed?)' } })
        return
      }
      out.push({ digest: h.digest(), size: read })
    } catch (e) {
      parentPort.postMessage({ error: { index: i, code: 'LINEAGE_UNREADABLE', message: 'cannot read ' + r.path + ': ' + e.message } })
      return
    } finally {
      if (fd !== undefined) closeSync(fd)
    }
  }
  parentPort.postMessage({ out })
})
`

interface WorkerReply {
  out?: Array<{ digest: Uint8Array, size: number }>
  error?: { index: number, code: ForensicsErrorCode, message: string }
}

/**
 * Hashes every range; result i belongs to range i. Ranges should name each byte once (the caller
 * splits files), so every file is read exactly once overall.
 * @throws ForensicsError LINEAGE_UNREADABLE when a file cannot be opened or is shorter than its range
 */
export async function hashRanges (ranges: readonly HashRange[], options: HashRangesOptions = {}): Promise<RangeDigest[]> {
  const workerCount = Math.max(1, Math.min(options.workers ?? DEFAULT_HASH_WORKERS, Math.max(1, ranges.length)))
  if (!Number.isSafeInteger(workerCount)) throw new RangeError('workers must be an integer')
  // Batches: consecutive ranges, cut at a count or byte budget.
  const batches: Array<{ first: number, count: number, bytes: number }> = []
  let current = { first: 0, count: 0, bytes: 0 }
  for (let i = 0; i < ranges.length; i++) {
    const r = ranges[i] as HashRange
    const bytes = r.endByte === null ? (r.sizeHintBytes ?? 0) : r.endByte - r.startByte
    if (current.count > 0 && (current.count >= DEFAULT_BATCH_RANGES || current.bytes + bytes > DEFAULT_BATCH_BYTES)) {
      batches.push(current)
      current = { first: i, count: 0, bytes: 0 }
    }
    current.count++
    current.bytes += bytes
  }
  if (current.count > 0) batches.push(current)

  const results = new Array<RangeDigest>(ranges.length)
  let next = 0
  let doneBytes = 0
  const workers: Worker[] = []
  try {
    await new Promise<void>((resolve, reject) => {
      let active = 0
      let failed = false
      let settled = false
      const feed = (w: Worker): void => {
        if (failed) return
        const b = batches[next++]
        if (b === undefined) {
          if (active === 0) { settled = true; resolve() }
          return
        }
        active++
        w.once('message', (reply: WorkerReply) => {
          active--
          if (reply.error !== undefined) {
            failed = true
            reject(new ForensicsError(reply.error.code, reply.error.message))
            return
          }
          const out = reply.out ?? []
          for (let k = 0; k < out.length; k++) {
            const o = out[k] as { digest: Uint8Array, size: number }
            results[b.first + k] = { digest: new Uint8Array(o.digest), sizeBytes: o.size }
            doneBytes += o.size
          }
          options.onProgress?.(doneBytes)
          feed(w)
        })
        w.postMessage(ranges.slice(b.first, b.first + b.count))
      }
      if (batches.length === 0) { resolve(); return }
      for (let i = 0; i < workerCount; i++) {
        // Plain CommonJS: the thread's inherited --import hooks (tsx, tap's loaders) would only load again.
        const w = new Worker(WORKER_SOURCE, { eval: true, execArgv: [] })
        w.on('error', e => {
          if (failed) return
          failed = true
          reject(new ForensicsError('LINEAGE_UNREADABLE', `hash worker failed: ${e.message}`, { cause: e }))
        })
        // A worker that ends without answering (killed, out of memory) must not leave the caller waiting.
        w.on('exit', code => {
          if (failed || settled) return
          failed = true
          reject(new ForensicsError('LINEAGE_UNREADABLE', `hash worker exited (code ${code}) before finishing`))
        })
        workers.push(w)
      }
      for (const w of workers) feed(w)
    })
  } finally {
    await Promise.all(workers.map(async w => await w.terminate()))
  }
  return results
}
