/**
 * The SHA-256 of each tensor's raw_data, computed while the model is read (agent/model/load.ts):
 * ranges come from the read-time scan (raw-data-scan.ts) and are hashed on other threads where
 * that pays, the rest by the loading thread itself whenever it would otherwise wait for a read.
 * Results are keyed by exact byte range (`<offset>:<length>`), as prepareModelManifest expects.
 */
import { webcrypto } from 'node:crypto'
import { sha256Hex } from '../../protocol/hash.js'
import { HashWorker, SLOT_BYTES, type HashWorkerClient } from './hash-worker.js'
import type { ByteRange } from './raw-data-scan.js'

/**
 * Tensors from this size up may be hashed on libuv's thread pool. webcrypto's digest copies its
 * input on the calling thread first, at 0.2-0.3 ms/MiB from here up but 0.55-1.5 ms/MiB below
 * (measured on the 2-core bench machine), about what hashing them here costs (0.6 ms/MiB).
 */
const POOL_MIN_BYTES = 1024 ** 2
/**
 * Bytes of the copies pool jobs hold at once (webcrypto copies its input): the extra memory a load
 * may take beyond the model itself. Larger tensors are hashed on this thread.
 */
const POOL_MAX_BYTES = 64 * 1024 ** 2
/** Smaller tensors are left to the manifest, which hashes them after the read. */
const LOCAL_MIN_BYTES = 4 * 1024
/** Tensor bytes this thread hashes between two looks at the event loop while it waits for a read. */
export const LOCAL_BATCH_BYTES = 512 * 1024
/** Largest tensor this thread takes while reads are in flight: it must get back to them soon. */
export const LOCAL_WHILE_READING_MAX_BYTES = 8 * 1024 ** 2
/**
 * Tensor hashes at once on the pool: one, beside the reads and this thread on two cores (two
 * measured no faster: more copies here and one more thread sharing the cores).
 */
const POOL_JOBS = 1


/**
 * Hashes the ranges `next` gives on this thread into `known` until about `budgetBytes` are done
 * (both paths' `hashHere`; they differ in which range comes next). False when there was none.
 */
function hashRangesHere (bytes: Buffer, known: Map<string, string>, budgetBytes: number, next: () => ByteRange | undefined): boolean {
  let done = 0
  while (done < budgetBytes) {
    const range = next()
    if (range === undefined) break
    const [start, end] = range
    known.set(`${start}:${end - start}`, sha256Hex(bytes.subarray(start, end)))
    done += end - start
  }
  return done > 0
}

/** Tensor hashes of one load. */
export interface TensorHashes {
  /**
   * Whether the loader finds tensors while it reads (RawDataScanner) and adds them here; when
   * false the manifest hashes them all after the read (READ_SCAN_MIN_MODEL_BYTES).
   */
  readonly scans: boolean
  /** Whether `add` takes ranges not wholly read yet (RawDataScanner.discover rather than advance). */
  readonly partialRanges: boolean
  /** A range found by the scan. */
  add: (range: ByteRange) => void
  /** The first `filled` bytes of the model are read: pieces up to there may be handed over. */
  feed: (filled: number) => void
  /**
   * Hashes queued ranges on this thread, small ones first, until about `budgetBytes` are done;
   * a large range only if it has at most `largeMaxBytes`. False when there was none to hash.
   */
  hashHere: (budgetBytes: number, largeMaxBytes: number) => boolean
  /** Drops the ranges not started yet. */
  cancel: () => void
  /** Resolves when no hash of this load is running elsewhere (the queue being empty or cancelled). */
  settled: () => Promise<void>
  /** Every range's hash, keyed `<offset>:<length>`; a failed or lost job only leaves its range out. */
  results: () => Promise<ReadonlyMap<string, string>>
}

/**
 * Models from this size up hash their tensors on a worker thread (HashWorker). Below it the
 * worker's start (40-60 ms of CPU here, when it is not already running) would cost more than it
 * saves, and libuv's pool takes the large tensors as before.
 */
export const WORKER_MIN_MODEL_BYTES = 32 * 1024 ** 2
/** Tensors from this size up go to the worker; a message per tensor costs more than hashing a smaller one here. */
const WORKER_MIN_TENSOR_BYTES = 64 * 1024

/**
 * Models from this size up have their tensors found while they are read (raw-data-scan.ts) and
 * hashed meanwhile (pool, worker, or the loading thread between reads). Below it every tensor is
 * left to the manifest after the read: for such models the scan, the pool's jobs (webcrypto, whose
 * first use in a thread is costly) and their bookkeeping cost more than the overlap with the reads
 * gains. Measured 2026-12-03 on the 2-core Xeon VM, without / with the scan: PaddleOCR det (4.5
 * MiB) 12.2 / 12.9 ms settled, 33 / 42 ms on a first load (CPU 51 / 70); rec (10.3 MiB) 24.0 /
 * 24.8 and 43 / 52 (CPU 70 / 87); a 24 MiB model 40 / 36 ms settled, 50 / 50 first (CPU 65 / 74).
 */
export const READ_SCAN_MIN_MODEL_BYTES = 16 * 1024 ** 2

/**
 * Internal knobs: tests lower them to take the worker path, or the read-time scan, on small models
 * (the worker path always scans: it hashes nothing else).
 */
export const hashWorkerSettings = { minModelBytes: WORKER_MIN_MODEL_BYTES, readScanMinModelBytes: READ_SCAN_MIN_MODEL_BYTES }

/**
 * The worker path for a model of `bytes.length` when a worker can run here, else the pool path,
 * which scans while reading from READ_SCAN_MIN_MODEL_BYTES.
 */
export function tensorHashesFor (bytes: Buffer): TensorHashes {
  if (bytes.length >= hashWorkerSettings.minModelBytes) {
    const worker = HashWorker.forThisThread()
    if (worker !== undefined) return new WorkerTensorHashes(bytes, worker)
  }
  return new PoolTensorHashes(bytes, bytes.length >= hashWorkerSettings.readScanMinModelBytes)
}

/**
 * Large tensors on a worker thread, handed over piece by piece as their bytes are read (a tensor
 * need not be wholly read before its hash starts); small ones, and large ones the loading thread
 * steals from the back of the queue while it waits for a read, hashed here.
 */
export class WorkerTensorHashes implements TensorHashes, HashWorkerClient {
  readonly scans = true
  readonly partialRanges = true
  private readonly bytes: Buffer
  private readonly worker: HashWorker
  /** Ranges for the worker in file order; the first may be partly handed over (`feeding`). */
  private readonly queue: ByteRange[] = []
  private feeding: { id: number, at: number } | undefined
  /** For this thread only. */
  private readonly small: ByteRange[] = []
  private readonly known = new Map<string, string>()
  private filled = 0
  private outstanding = 0
  private readonly waiters: Array<() => void> = []
  private detached = false

  constructor (bytes: Buffer, worker: HashWorker) {
    this.bytes = bytes
    this.worker = worker
    worker.attach(this)
  }

  add (range: ByteRange): void {
    const length = range[1] - range[0]
    if (length >= WORKER_MIN_TENSOR_BYTES) {
      this.queue.push(range)
    } else if (length >= LOCAL_MIN_BYTES) {
      this.small.push(range)
    }
  }

  feed (filled: number): void {
    if (filled > this.filled) this.filled = filled
    this.onSlotFree()
  }

  /** Hands the worker the next pieces that are read, while it has free slots. */
  onSlotFree (): void {
    if (this.detached) return
    if (!this.worker.alive) {
      // Whatever was queued is left to the manifest, which hashes any range not known.
      this.queue.length = 0
      this.feeding = undefined
      this.wake()
      return
    }
    for (;;) {
      const range = this.queue[0]
      if (range === undefined) return
      const [start, end] = range
      const at = this.feeding?.at ?? start
      const pieceEnd = Math.min(end, at + SLOT_BYTES)
      if (pieceEnd > this.filled) return
      let feeding = this.feeding
      if (feeding === undefined) {
        const key = `${start}:${end - start}`
        this.outstanding++
        feeding = { id: this.worker.open((hex) => { this.arrived(key, hex) }), at }
        this.feeding = feeding
      }
      if (!this.worker.put(feeding.id, this.bytes, at, pieceEnd, pieceEnd === end)) return
      feeding.at = pieceEnd
      if (pieceEnd === end) {
        this.queue.shift()
        this.feeding = undefined
      }
    }
  }

  hashHere (budgetBytes: number, largeMaxBytes: number): boolean {
    return hashRangesHere(this.bytes, this.known, budgetBytes, () => this.small.pop() ?? this.stealLarge(largeMaxBytes))
  }

  cancel (): void {
    this.queue.length = 0
    this.small.length = 0
    if (this.feeding !== undefined) this.worker.drop(this.feeding.id)
    this.feeding = undefined
    this.detach()
  }

  async settled (): Promise<void> {
    // The queue empties as the worker frees slots (or all at once if it dies).
    while (this.outstanding > 0 || (this.queue.length > 0 && !this.detached)) {
      await new Promise<void>((resolve) => { this.waiters.push(resolve) })
    }
  }

  async results (): Promise<ReadonlyMap<string, string>> {
    await this.settled()
    this.detach()
    return this.known
  }

  /** The last queued range wholly read, not being handed over, of at most `maxBytes`. */
  private stealLarge (maxBytes: number): ByteRange | undefined {
    for (let i = this.queue.length - 1; i >= (this.feeding === undefined ? 0 : 1); i--) {
      const range = this.queue[i] as ByteRange
      if (range[1] > this.filled) continue
      if (range[1] - range[0] > maxBytes) return undefined
      this.queue.splice(i, 1)
      return range
    }
    return undefined
  }

  private arrived (key: string, hex: string | undefined): void {
    if (hex !== undefined) this.known.set(key, hex)
    this.outstanding--
    this.wake()
  }

  private wake (): void {
    for (const resolve of this.waiters.splice(0)) resolve()
  }

  private detach (): void {
    if (this.detached) return
    this.detached = true
    this.worker.detach(this)
  }
}

/**
 * The SHA-256 of tensors' raw_data ranges, each hashed once: on libuv's thread pool (webcrypto's
 * digest, which copies the range on this thread, then hashes the copy there), POOL_JOBS at a time,
 * or on this thread by hashHere. Ranges below LOCAL_MIN_BYTES are left to the manifest.
 */
export class PoolTensorHashes implements TensorHashes {
  readonly scans: boolean
  readonly partialRanges = false
  private readonly bytes: Buffer
  /** For the pool (from the front) or this thread (from the back). */
  private readonly large: ByteRange[] = []
  /** For this thread only. */
  private readonly small: ByteRange[] = []
  private readonly jobs = new Set<Promise<void>>()
  private readonly known = new Map<string, string>()
  private bytesInFlight = 0

  constructor (bytes: Buffer, scans: boolean) {
    this.bytes = bytes
    this.scans = scans
  }

  feed (): void {}

  add (range: ByteRange): void {
    const length = range[1] - range[0]
    if (length >= POOL_MIN_BYTES && length <= POOL_MAX_BYTES) {
      this.large.push(range)
      this.start()
    } else if (length >= LOCAL_MIN_BYTES) {
      this.small.push(range)
    }
  }

  /**
   * Hashes queued ranges on this thread, small ones first, until about `budgetBytes` are done;
   * a large range only if it has at most `largeMaxBytes`. False when there was none to hash.
   */
  hashHere (budgetBytes: number, largeMaxBytes: number): boolean {
    return hashRangesHere(this.bytes, this.known, budgetBytes, () => {
      const last = this.large[this.large.length - 1]
      return this.small.pop() ?? (last !== undefined && last[1] - last[0] <= largeMaxBytes ? this.large.pop() : undefined)
    })
  }

  /** Drops the ranges not started yet. */
  cancel (): void {
    this.large.length = 0
    this.small.length = 0
  }

  /** Resolves when no job is running (the queue being empty or cancelled). */
  async settled (): Promise<void> {
    while (this.jobs.size > 0) await Promise.all([...this.jobs])
  }

  /** Every range's hash, keyed `<offset>:<length>`; a failed job only leaves its range out. */
  async results (): Promise<ReadonlyMap<string, string>> {
    await this.settled()
    return this.known
  }

  private start (): void {
    while (this.jobs.size < POOL_JOBS) {
      const range = this.large[0]
      if (range === undefined) return
      const [start, end] = range
      const length = end - start
      if (this.bytesInFlight + length > POOL_MAX_BYTES) return
      this.large.shift()
      this.bytesInFlight += length
      const job: Promise<void> = webcrypto.subtle.digest('SHA-256', this.bytes.subarray(start, end))
        .then((digest) => { this.known.set(`${start}:${length}`, Buffer.from(digest).toString('hex')) })
        // A failed offload only means the manifest hashes this tensor itself.
        .catch(() => undefined)
        .finally(() => { this.jobs.delete(job); this.bytesInFlight -= length; this.start() })
      this.jobs.add(job)
    }
  }
}

