/**
 * Ed25519 verification off the gateway's event loop: a pool of worker threads sized to the cores,
 * fed in batches (requests made in the same turn of the event loop travel together), with a
 * bounded number of signatures queued or in flight (verify() waits beyond it: backpressure).
 * A worker that dies is replaced and its batch verified again, so no request is lost; the answers
 * are the same as protocol's verifySignature on the calling thread (size 0 verifies there).
 * Workers start the first time enough signatures wait at once (startAtQueued): a trickle is
 * verified on the calling thread, without a worker's start-up (~0.3 s of CPU under tsx) or a round trip.
 */
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { concat, verifySignature } from '../../protocol/index.js'

/** Workers by default: one per core. */
export const DEFAULT_VERIFY_WORKERS = availableParallelism()
/** Signatures queued or in flight before verify() waits. */
export const DEFAULT_VERIFY_MAX_QUEUED = 8192
/** Most signatures in one message to a worker. */
export const DEFAULT_VERIFY_BATCH_MAX = 256
/** Signatures waiting at once that start the workers. */
export const DEFAULT_VERIFY_START_AT_QUEUED = 64
/** Times a batch is retried on a fresh worker after its worker died; then its requests are verified on the calling thread. */
const MAX_ATTEMPTS = 2
/** Worker deaths in a row without one answered batch before the pool gives up its workers and verifies inline. */
const MAX_DEATHS_IN_A_ROW = 8
/**
 * Young generation of a worker's heap, MiB. A worker's garbage is per batch (the batch received,
 * a view per signature and message) and none of it survives: with V8's default the two workers
 * scavenged ~95 times each in the bench's 50 000-record ingest, with this ~25 (pauses ~150 → ~40 ms
 * per worker); it costs at most this much more memory per worker.
 */
const WORKER_YOUNG_GENERATION_MB = 32
/** Batches a worker holds at once: one being verified, one waiting, so it never idles on a round trip. */
const BATCHES_PER_WORKER = 2

export interface VerifyPoolOptions {
  /** Worker threads; 0 verifies on the calling thread. Default: one per core (DEFAULT_VERIFY_WORKERS). */
  workers?: number
  /** Signatures queued or in flight before verify() waits for room. Default 8192. */
  maxQueued?: number
  /** Most signatures in one message to a worker. Default 256. */
  batchMax?: number
  /** The workers start the first time this many signatures wait at once; until then each is verified on the calling thread. 0 starts them at once. Default 64. */
  startAtQueued?: number
  /** Told when a worker died (and was replaced) or when the pool fell back to the calling thread. */
  onWorkerLost?: (event: { error: string, restarts: number, inline: boolean }) => void
}

/** A batch as a worker gets it; its buffers are transferred, not copied. */
export interface VerifyBatch {
  readonly id: number
  readonly count: number
  /** Distinct keys of the batch; keyIndex[i] points into it. */
  readonly keys: Uint8Array[]
  readonly keyIndex: Uint32Array
  /** Signatures back to back; i is [signatureOffsets[i], signatureOffsets[i+1]) (any length: hostile input). */
  readonly signatures: Uint8Array
  readonly signatureOffsets: Uint32Array
  /** Signed messages back to back; i is [offsets[i], offsets[i+1]). */
  readonly messages: Uint8Array
  readonly offsets: Uint32Array
}

export interface VerifyBatchResult {
  readonly id: number
  /** 1 where the signature verifies. */
  readonly valid: Uint8Array
}

/**
 * One signature for {@link VerifyPool.submit}, told its answer by a call rather than a promise:
 * for a caller that verifies every record it receives and keeps an object per record anyway (the
 * gateway's pipeline), the promise, its resolver and a `.then` per record were garbage.
 */
export interface VerifyJob {
  readonly signature: Uint8Array
  /** The signed message is prefix ‖ message. */
  readonly prefix: Uint8Array
  readonly message: Uint8Array
  readonly publicKey: Uint8Array
  /** Called once with the answer: at once when verified on the calling thread, else from a worker's reply. */
  answered: (valid: boolean) => void
}

type Request = VerifyJob

interface Slot {
  readonly worker: Worker
  /** Batches sent and not answered, by id. */
  readonly inFlight: Map<number, Request[]>
  /** Set once the pool stopped it on purpose (close, or replaced after an error). */
  retired: boolean
}

const COMPILED = import.meta.url.endsWith('.js')
const WORKER_URL = new URL(COMPILED ? './verify-worker.js' : './verify-worker-entry.mjs', import.meta.url)

/** What the pool is doing, for metrics and tests. */
export interface VerifyPoolStats {
  workers: number
  /** Signatures waiting for a worker or in one. */
  queued: number
  /** Workers replaced after dying. */
  restarts: number
  /** True once it verifies on the calling thread (size 0, or after MAX_DEATHS_IN_A_ROW). */
  inline: boolean
  /** True once the workers were started (startAtQueued signatures waited at once). */
  started: boolean
}

/** A pool of verify workers; close() ends them. */
export class VerifyPool {
  private readonly maxQueued: number
  private readonly batchMax: number
  private readonly workers: number
  private readonly startAtQueued: number
  private started = false
  private readonly onWorkerLost: VerifyPoolOptions['onWorkerLost']
  private readonly slots: Slot[] = []
  private readonly waiting: Request[] = []
  private readonly roomWaiters = new Fifo<() => void>()
  /** Times a request's batch was lost with its worker (only requests that were: the rare path). */
  private readonly attempts = new Map<Request, number>()
  private queued = 0
  private nextId = 1
  private restarts = 0
  private deathsInARow = 0
  private inline: boolean
  private closed = false
  private flushScheduled = false

  constructor (options: VerifyPoolOptions = {}) {
    const workers = options.workers ?? DEFAULT_VERIFY_WORKERS
    const maxQueued = options.maxQueued ?? DEFAULT_VERIFY_MAX_QUEUED
    const batchMax = options.batchMax ?? DEFAULT_VERIFY_BATCH_MAX
    if (!Number.isSafeInteger(workers) || workers < 0) throw new RangeError('verify workers must be a non-negative integer')
    if (!Number.isSafeInteger(maxQueued) || maxQueued < 1) throw new RangeError('maxQueued must be a positive integer')
    if (!Number.isSafeInteger(batchMax) || batchMax < 1) throw new RangeError('batchMax must be a positive integer')
    const startAtQueued = options.startAtQueued ?? DEFAULT_VERIFY_START_AT_QUEUED
    if (!Number.isSafeInteger(startAtQueued) || startAtQueued < 0) throw new RangeError('startAtQueued must be a non-negative integer')
    this.workers = workers
    this.startAtQueued = startAtQueued
    this.maxQueued = maxQueued
    this.batchMax = batchMax
    this.onWorkerLost = options.onWorkerLost
    this.inline = workers === 0
    if (startAtQueued === 0) this.start()
  }

  private start (): void {
    if (this.started || this.inline || this.closed) return
    this.started = true
    for (let i = 0; i < this.workers; i++) this.slots.push(this.spawn())
  }

  get stats (): VerifyPoolStats {
    return { workers: this.inline ? 0 : this.slots.length, queued: this.queued, restarts: this.restarts, inline: this.inline, started: this.started }
  }

  /** The worker threads, for tests that kill one. */
  get threads (): readonly Worker[] {
    return this.slots.map(s => s.worker)
  }

  /**
   * True when `signature` is a valid Ed25519 signature of `prefix ‖ message` under `publicKey`
   * (protocol's verifySignature). The two parts are copied straight into the batch sent to a worker,
   * so a caller need not join them first. Waits while maxQueued signatures are queued. Never rejects.
   */
  verify (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array, prefix: Uint8Array = NO_PREFIX): Promise<boolean> {
    return new Promise<boolean>(resolve => { this.submit({ signature, prefix, message, publicKey, answered: resolve }) })
  }

  /**
   * {@link verify} without a promise: `job.answered` is called once with the answer (at once when
   * the pool verifies on the calling thread). Waits for room as verify() does. Never throws.
   */
  submit (job: VerifyJob): void {
    if (this.inline || this.closed) {
      job.answered(verifyPrefixed(job.signature, job.prefix, job.message, job.publicKey))
      return
    }
    if (this.queued >= this.maxQueued) {
      this.roomWaiters.push(() => { this.submit(job) })
      return
    }
    this.queued++
    this.waiting.push(job)
    if (this.waiting.length >= this.batchMax || (!this.started && this.waiting.length >= this.startAtQueued)) this.dispatch()
    else this.scheduleFlush()
  }

  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    // What is queued is verified here: no request is left unanswered.
    this.verifyInline(this.waiting.splice(0))
    for (const s of this.slots) {
      s.retired = true
      this.verifyInline([...s.inFlight.values()].flat())
      s.inFlight.clear()
    }
    for (const w of this.roomWaiters.takeAll()) w()
    await Promise.all(this.slots.map(async s => await s.worker.terminate()))
  }

  private scheduleFlush (): void {
    if (this.flushScheduled) return
    this.flushScheduled = true
    setImmediate(() => {
      this.flushScheduled = false
      this.dispatch()
    })
  }

  /** Sends what waits to the workers with room, spread evenly so that every core gets a share. */
  private dispatch (): void {
    if (!this.started) {
      if (this.waiting.length < this.startAtQueued) {
        this.verifyInline(this.waiting.splice(0))
        return
      }
      this.start()
    }
    while (this.waiting.length > 0) {
      const free = this.slots.filter(s => !s.retired && s.inFlight.size < BATCHES_PER_WORKER)
      if (free.length === 0) return
      const share = Math.min(this.batchMax, Math.ceil(this.waiting.length / free.length))
      for (const slot of free) {
        if (this.waiting.length === 0) break
        this.send(slot, this.waiting.splice(0, share))
      }
    }
  }

  private send (slot: Slot, requests: Request[]): void {
    const id = this.nextId++
    const count = requests.length
    const keys: Uint8Array[] = []
    const keyIds = new Map<string, number>()
    const keyIndex = new Uint32Array(count)
    let sigBytes = 0
    let msgBytes = 0
    for (const r of requests) {
      sigBytes += r.signature.byteLength
      msgBytes += r.prefix.byteLength + r.message.byteLength
    }
    const signatures = new Uint8Array(sigBytes)
    const signatureOffsets = new Uint32Array(count + 1)
    const messages = new Uint8Array(msgBytes)
    const offsets = new Uint32Array(count + 1)
    let s = 0
    let m = 0
    // Runs of one device's records share the key object its cache returned: compared by identity
    // first, the byte id (a string per request) only when the key object changes.
    let lastKey: Uint8Array | undefined
    let lastIndex = 0
    requests.forEach((r, i) => {
      if (r.publicKey !== lastKey) {
        const keyId = Buffer.from(r.publicKey.buffer, r.publicKey.byteOffset, r.publicKey.byteLength).toString('latin1')
        let k = keyIds.get(keyId)
        if (k === undefined) {
          k = keys.length
          keys.push(r.publicKey.slice())
          keyIds.set(keyId, k)
        }
        lastKey = r.publicKey
        lastIndex = k
      }
      keyIndex[i] = lastIndex
      signatureOffsets[i] = s
      signatures.set(r.signature, s)
      s += r.signature.byteLength
      offsets[i] = m
      messages.set(r.prefix, m)
      m += r.prefix.byteLength
      messages.set(r.message, m)
      m += r.message.byteLength
    })
    signatureOffsets[count] = s
    offsets[count] = m
    const batch: VerifyBatch = { id, count, keys, keyIndex, signatures, signatureOffsets, messages, offsets }
    slot.inFlight.set(id, requests)
    slot.worker.postMessage(batch, [signatures.buffer, signatureOffsets.buffer, messages.buffer, offsets.buffer, keyIndex.buffer])
  }

  private spawn (): Slot {
    // The worker needs none of this thread's module hooks (compiled it is plain JS; from sources its
    // entry registers tsx): inherited --import flags (tsx, tap's loaders) would each load again per worker.
    const worker = new Worker(WORKER_URL, { execArgv: [], resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB } })
    // The pool must not keep a stopping gateway alive; pending requests hold their own promises.
    worker.unref()
    const slot: Slot = { worker, inFlight: new Map(), retired: false }
    worker.on('message', (r: VerifyBatchResult) => {
      const requests = slot.inFlight.get(r.id)
      if (requests === undefined) return
      slot.inFlight.delete(r.id)
      this.deathsInARow = 0
      requests.forEach((q, i) => { this.answer(q, r.valid[i] === 1) })
      this.dispatch()
    })
    worker.on('error', (e) => { this.lost(slot, e.message) })
    worker.on('exit', (code) => { this.lost(slot, `exited with code ${code}`) })
    return slot
  }

  /** A worker died: its batches go back to the front of the queue (or inline after MAX_ATTEMPTS), a new worker takes its place. */
  private lost (slot: Slot, error: string): void {
    if (slot.retired) return
    slot.retired = true
    void slot.worker.terminate()
    const orphans = [...slot.inFlight.values()].flat()
    slot.inFlight.clear()
    const retry: Request[] = []
    for (const q of orphans) {
      const attempts = (this.attempts.get(q) ?? 0) + 1
      if (attempts >= MAX_ATTEMPTS) {
        this.verifyInline([q])
      } else {
        this.attempts.set(q, attempts)
        retry.push(q)
      }
    }
    this.waiting.unshift(...retry)
    this.deathsInARow++
    const at = this.slots.indexOf(slot)
    if (this.closed) return
    if (this.deathsInARow >= MAX_DEATHS_IN_A_ROW) {
      // Workers cannot be kept alive here: verify on the calling thread rather than lose records.
      this.inline = true
      for (const s of this.slots) {
        s.retired = true
        void s.worker.terminate()
        this.verifyInline([...s.inFlight.values()].flat())
        s.inFlight.clear()
      }
      this.verifyInline(this.waiting.splice(0))
      for (const w of this.roomWaiters.takeAll()) w()
      this.onWorkerLost?.({ error, restarts: this.restarts, inline: true })
      return
    }
    this.restarts++
    if (at !== -1) this.slots[at] = this.spawn()
    this.onWorkerLost?.({ error, restarts: this.restarts, inline: false })
    this.dispatch()
  }

  private verifyInline (requests: Request[]): void {
    for (const q of requests) this.answer(q, verifyPrefixed(q.signature, q.prefix, q.message, q.publicKey))
  }

  private answer (q: Request, valid: boolean): void {
    this.queued--
    if (this.attempts.size > 0) this.attempts.delete(q)
    q.answered(valid)
    const w = this.roomWaiters.shift()
    if (w !== undefined) w()
  }
}

const NO_PREFIX = new Uint8Array(0)

function verifyPrefixed (signature: Uint8Array, prefix: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  return verifySignature(signature, prefix.byteLength === 0 ? message : concat(prefix, message), publicKey)
}

/**
 * First in, first out, O(1) at both ends. Array.shift() copies the array once it is large: with
 * tens of thousands of callers waiting for room, shifting one per answer cost more than verifying.
 */
class Fifo<T> {
  private items: Array<T | undefined> = []
  private head = 0

  push (item: T): void {
    this.items.push(item)
  }

  shift (): T | undefined {
    if (this.head >= this.items.length) return undefined
    const item = this.items[this.head]
    this.items[this.head++] = undefined
    // Drop the consumed front now and then, never per item.
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
    return item
  }

  /** Removes and returns everything, in order. */
  takeAll (): T[] {
    const all = this.items.slice(this.head) as T[]
    this.items = []
    this.head = 0
    return all
  }
}
