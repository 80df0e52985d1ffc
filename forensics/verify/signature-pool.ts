/**
 * Ed25519 verification on every core: batches of (signature, signed message, key) go to a pool
 * of worker threads, which answer one flag per signature. The chain walk stays on the calling
 * thread and only looks the flags up (ChainVerifierOptions.checkSignature).
 */
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { RECORD_SIGNING_PREFIX, type VerifierBackend } from '../../protocol/index.js'

/** One batch as a worker gets it; its buffers are transferred, not copied. */
export interface SignatureBatch {
  readonly id: number
  readonly count: number
  readonly backend: VerifierBackend
  /** Distinct keys of the batch; `keyIndex[i]` points into it. */
  readonly keys: Uint8Array[]
  readonly keyIndex: Uint32Array
  /** `count` signatures of 64 bytes, back to back. */
  readonly signatures: Uint8Array
  /** Signed messages (RECORD_SIGNING_PREFIX ‖ record bytes) back to back; i is [offsets[i], offsets[i+1]). */
  readonly messages: Uint8Array
  readonly offsets: Uint32Array
}

export interface SignatureBatchResult {
  readonly id: number
  /** 1 where the signature verifies, 0 where it does not. */
  readonly valid: Uint8Array
}

/** Workers by default: one per core. */
export const DEFAULT_SIGNATURE_WORKERS = availableParallelism()

const COMPILED = import.meta.url.endsWith('.js')
const WORKER_URL = new URL(COMPILED ? './signature-worker.js' : './signature-worker-entry.mjs', import.meta.url)

/** Collects the records of one batch. */
export class SignatureBatchBuilder {
  private readonly keys: Uint8Array[] = []
  private readonly keyIds = new Map<Uint8Array, number>()
  private readonly keyIndex: number[] = []
  private readonly signatures: Uint8Array[] = []
  private readonly records: Uint8Array[] = []
  private bytes = 0

  get count (): number { return this.signatures.length }

  /** Adds a record's signature and bytes under `key`; returns its index in the batch. */
  add (signature: Uint8Array, recordBytes: Uint8Array, key: Uint8Array): number {
    let k = this.keyIds.get(key)
    if (k === undefined) {
      k = this.keys.length
      this.keys.push(key)
      this.keyIds.set(key, k)
    }
    this.keyIndex.push(k)
    this.signatures.push(signature)
    this.records.push(recordBytes)
    this.bytes += RECORD_SIGNING_PREFIX.length + recordBytes.byteLength
    return this.signatures.length - 1
  }

  build (id: number, backend: VerifierBackend): SignatureBatch {
    const count = this.count
    const signatures = new Uint8Array(count * 64)
    const messages = new Uint8Array(this.bytes)
    const offsets = new Uint32Array(count + 1)
    let at = 0
    for (let i = 0; i < count; i++) {
      const signature = this.signatures[i] as Uint8Array
      // A wrong-length signature cannot verify: leave zeros, which never verify either.
      if (signature.byteLength === 64) signatures.set(signature, i * 64)
      offsets[i] = at
      messages.set(RECORD_SIGNING_PREFIX, at)
      at += RECORD_SIGNING_PREFIX.length
      messages.set(this.records[i] as Uint8Array, at)
      at += (this.records[i] as Uint8Array).byteLength
    }
    offsets[count] = at
    return { id, count, backend, keys: [...this.keys], keyIndex: Uint32Array.from(this.keyIndex), signatures, messages, offsets }
  }
}

interface Pending {
  resolve: (valid: Uint8Array) => void
  reject: (e: Error) => void
}

/** A pool of signature workers; `close()` ends them. */
export class SignaturePool {
  private readonly workers: Worker[] = []
  private readonly idle: Worker[] = []
  private readonly queue: SignatureBatch[] = []
  private readonly pending = new Map<number, Pending>()
  private readonly busy = new Map<Worker, number>()
  private nextId = 1
  private failure: Error | undefined

  constructor (size = DEFAULT_SIGNATURE_WORKERS) {
    if (!Number.isSafeInteger(size) || size < 1) throw new RangeError('a signature pool needs at least one worker')
    for (let i = 0; i < size; i++) {
      const worker = new Worker(WORKER_URL)
      worker.on('message', (r: SignatureBatchResult) => {
        this.busy.delete(worker)
        const p = this.pending.get(r.id)
        this.pending.delete(r.id)
        p?.resolve(r.valid)
        this.idle.push(worker)
        this.dispatch()
      })
      worker.on('error', (e) => { this.fail(new Error(`signature worker failed: ${e.message}`, { cause: e })) })
      worker.on('exit', (code) => { if (code !== 0) this.fail(new Error(`signature worker exited with code ${code}`)) })
      this.workers.push(worker)
      this.idle.push(worker)
    }
  }

  get size (): number { return this.workers.length }

  /** Verifies a batch on the next free worker; resolves to one flag per record. */
  async verify (builder: SignatureBatchBuilder, backend: VerifierBackend): Promise<Uint8Array> {
    if (this.failure !== undefined) throw this.failure
    const batch = builder.build(this.nextId++, backend)
    const result = new Promise<Uint8Array>((resolve, reject) => { this.pending.set(batch.id, { resolve, reject }) })
    this.queue.push(batch)
    this.dispatch()
    return await result
  }

  private dispatch (): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const worker = this.idle.pop() as Worker
      const batch = this.queue.shift() as SignatureBatch
      this.busy.set(worker, batch.id)
      worker.postMessage(batch, [batch.signatures.buffer, batch.messages.buffer, batch.offsets.buffer, batch.keyIndex.buffer] as ArrayBuffer[])
    }
  }

  private fail (e: Error): void {
    this.failure ??= e
    for (const p of this.pending.values()) p.reject(e)
    this.pending.clear()
    this.queue.length = 0
  }

  async close (): Promise<void> {
    this.failure ??= new Error('the signature pool is closed')
    await Promise.all(this.workers.map(async (w) => await w.terminate()))
  }
}
