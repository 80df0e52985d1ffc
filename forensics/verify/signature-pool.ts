/**
 * Ed25519 verification and inclusion proofs on every core: batches of (signature, signed message,
 * key) and, when the batch carries a proof context, (proof text, envelope) go to a pool of worker
 * threads, which answer one flag per signature and one proof judgement per record. The chain walk
 * stays on the calling thread and only looks the answers up.
 */
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { RECORD_SIGNING_PREFIX, type VerifierBackend } from '../../protocol/index.js'
import type { ProofContext, ProofJudgement } from './proof-check.js'
import { answerBatch } from './signature-answer.js'

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
  /** Set when the worker is to judge proofs too: the facts they are judged against. */
  readonly proofContext?: ProofContext
  /**
   * Per record: 0 no proof to judge here, 1 its proof text is ASCII and lies in `proofTexts` at
   * [proofOffsets[i], proofOffsets[i+1]), 2 it is in `otherProofs` (text with any other character).
   * ASCII bytes, not strings: a transferred buffer lies outside the worker's heap, where a batch
   * of ~1 MiB of strings was copied by every young-generation GC while the batch was judged.
   */
  readonly proofKinds: Uint8Array
  readonly proofTexts: Uint8Array
  readonly proofOffsets: Uint32Array
  readonly otherProofs: Map<number, string>
  /** Envelopes (the leaves) back to back; i is [envelopeOffsets[i], envelopeOffsets[i+1]). */
  readonly envelopes: Uint8Array
  readonly envelopeOffsets: Uint32Array
  /** Per record: seq and device time, which a proof's claims are compared with. */
  readonly seqs: Float64Array
  readonly times: Float64Array
  readonly deviceId: string
}

/** Proof judgements of a batch, compact: the common clean case is a code and a root, no object. */
export interface ProofResults {
  /** Per record: 0 not judged (no proof sent), 1 checked and clean (root in `roots`), 2 see `details`. */
  readonly codes: Uint8Array
  /** Index into `roots` for code 1. */
  readonly rootIndex: Int32Array
  readonly roots: string[]
  /** Judgements other than clean, by index in the batch. */
  readonly details: Map<number, ProofJudgement>
}

export interface SignatureBatchResult {
  readonly id: number
  /** 1 where the signature verifies, 0 where it does not. */
  readonly valid: Uint8Array
  readonly proofs?: ProofResults
}

/** A batch's answers: the signature flags and, if asked, the proof judgements. */
export interface BatchAnswer {
  readonly valid: Uint8Array
  readonly proofs: ProofResults | undefined
}

/**
 * Workers by default: one per core but one, the calling thread taking the last core (it walks the
 * chain and answers batches itself while it would wait, `helpOnce`); at least one.
 */
export const DEFAULT_SIGNATURE_WORKERS = Math.max(1, availableParallelism() - 1)

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
  private readonly proofs: Array<string | null> = []
  /** Per record: 1 its proof text is ASCII, 2 it is not (see SignatureBatch.proofKinds). */
  private readonly proofKinds: number[] = []
  private proofBytes = 0
  private readonly envelopes: Uint8Array[] = []
  private envelopeBytes = 0
  private readonly seqs: number[] = []
  private readonly times: number[] = []
  private readonly deviceId: string
  private readonly proofContext: ProofContext | undefined

  /** With a `proofContext`, proofs given to add() are judged in the worker too. */
  constructor (deviceId = '', proofContext?: ProofContext) {
    this.deviceId = deviceId
    this.proofContext = proofContext
  }

  get count (): number { return this.signatures.length }

  /**
   * Adds a record's signature and bytes under `key`, and its proof to judge (text, envelope, seq,
   * device time) when there is one; returns its index in the batch.
   */
  add (signature: Uint8Array, recordBytes: Uint8Array, key: Uint8Array, proof?: { text: string, envelope: Uint8Array, seq: number, timeMs: number }): number {
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
    if (proof !== undefined && this.proofContext !== undefined) {
      this.proofs.push(proof.text)
      // A text's UTF-8 length is its length only when every code unit is ASCII.
      const ascii = Buffer.byteLength(proof.text, 'utf8') === proof.text.length
      this.proofKinds.push(ascii ? 1 : 2)
      if (ascii) this.proofBytes += proof.text.length
      this.envelopes.push(proof.envelope)
      this.envelopeBytes += proof.envelope.byteLength
      this.seqs.push(proof.seq)
      this.times.push(proof.timeMs)
    } else {
      this.proofs.push(null)
      this.proofKinds.push(0)
      this.envelopes.push(EMPTY)
      this.seqs.push(NaN)
      this.times.push(NaN)
    }
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
    const envelopes = new Uint8Array(this.envelopeBytes)
    const envelopeOffsets = new Uint32Array(count + 1)
    at = 0
    for (let i = 0; i < count; i++) {
      const e = this.envelopes[i] as Uint8Array
      envelopeOffsets[i] = at
      envelopes.set(e, at)
      at += e.byteLength
    }
    envelopeOffsets[count] = at
    const proofKinds = Uint8Array.from(this.proofKinds)
    // Its own ArrayBuffer (not Buffer's pool), to be transferred; every byte of it is written below.
    const proofTexts = Buffer.allocUnsafeSlow(this.proofBytes)
    const proofOffsets = new Uint32Array(count + 1)
    const otherProofs = new Map<number, string>()
    at = 0
    for (let i = 0; i < count; i++) {
      proofOffsets[i] = at
      const text = this.proofs[i] as string
      if (proofKinds[i] === 1) at += proofTexts.write(text, at, 'latin1')
      else if (proofKinds[i] === 2) otherProofs.set(i, text)
    }
    proofOffsets[count] = at
    return {
      id,
      count,
      backend,
      keys: [...this.keys],
      keyIndex: Uint32Array.from(this.keyIndex),
      signatures,
      messages,
      offsets,
      ...(this.proofContext === undefined ? {} : { proofContext: this.proofContext }),
      proofKinds,
      proofTexts: new Uint8Array(proofTexts.buffer, 0, proofTexts.byteLength),
      proofOffsets,
      otherProofs,
      envelopes,
      envelopeOffsets,
      seqs: Float64Array.from(this.seqs),
      times: Float64Array.from(this.times),
      deviceId: this.deviceId
    }
  }
}

const EMPTY = new Uint8Array(0)

/**
 * Batches posted to one worker ahead of its answers: the next one waits in the worker's port, so
 * that the worker goes on with it while the calling thread is busy (walking, or answering a batch
 * itself) and cannot hand out work.
 */
const POSTED_PER_WORKER = 2

interface Pending {
  resolve: (answer: BatchAnswer) => void
  reject: (e: Error) => void
}

/** A batch handed to the pool: its id (for `helpOnce` and `settled`) and its answer. */
export interface SubmittedBatch {
  readonly id: number
  readonly answer: Promise<BatchAnswer>
}

/**
 * A pool of signature workers; `close()` ends them. The calling thread can answer queued batches
 * itself (`helpOnce`) instead of waiting for a worker: with one worker fewer than cores, that
 * thread's idle time verifies, and a worker isolate's start, compiles and heap are saved.
 */
export class SignaturePool {
  private readonly workers: Worker[] = []
  /** Batches posted to each worker and not answered yet. */
  private readonly posted = new Map<Worker, number>()
  private readonly queue: SignatureBatch[] = []
  private readonly pending = new Map<number, Pending>()
  private nextId = 1
  private failure: Error | undefined

  constructor (size = DEFAULT_SIGNATURE_WORKERS) {
    if (!Number.isSafeInteger(size) || size < 1) throw new RangeError('a signature pool needs at least one worker')
    for (let i = 0; i < size; i++) {
      // The worker needs none of this thread's module hooks (compiled it is plain JS; from sources its
      // entry registers tsx): inherited --import flags (tsx, tap's loaders) would each load again per worker.
      const worker = new Worker(WORKER_URL, { execArgv: [] })
      worker.on('message', (r: SignatureBatchResult) => {
        this.posted.set(worker, (this.posted.get(worker) ?? 1) - 1)
        this.settle(r)
        this.dispatch()
      })
      worker.on('error', (e) => { this.fail(new Error(`signature worker failed: ${e.message}`, { cause: e })) })
      worker.on('exit', (code) => { if (code !== 0) this.fail(new Error(`signature worker exited with code ${code}`)) })
      this.workers.push(worker)
      this.posted.set(worker, 0)
    }
  }

  get size (): number { return this.workers.length }

  /** Queues a batch for the workers; its answer is one flag per record (and the proof judgements asked for). */
  submit (builder: SignatureBatchBuilder, backend: VerifierBackend): SubmittedBatch {
    const id = this.nextId++
    if (this.failure !== undefined) return { id, answer: Promise.reject(this.failure) }
    const batch = builder.build(id, backend)
    const answer = new Promise<BatchAnswer>((resolve, reject) => { this.pending.set(id, { resolve, reject }) })
    this.queue.push(batch)
    this.dispatch()
    return { id, answer }
  }

  /** Verifies a batch on the next free worker (submit, awaited). */
  async verify (builder: SignatureBatchBuilder, backend: VerifierBackend): Promise<BatchAnswer> {
    return await this.submit(builder, backend).answer
  }

  /** Whether batch `id` has its answer (or failed). */
  settled (id: number): boolean {
    return !this.pending.has(id)
  }

  /**
   * Answers one queued batch on the calling thread, synchronously: batch `prefer` if it is still
   * queued (the one the caller waits for), else the last queued (the workers take from the front).
   * False when no batch is queued.
   */
  helpOnce (prefer: number): boolean {
    if (this.failure !== undefined || this.queue.length === 0) return false
    let at = this.queue.findIndex(b => b.id === prefer)
    if (at < 0) at = this.queue.length - 1
    const batch = this.queue.splice(at, 1)[0] as SignatureBatch
    let result: SignatureBatchResult
    try {
      result = answerBatch(batch)
    } catch (e) {
      const p = this.pending.get(batch.id)
      this.pending.delete(batch.id)
      p?.reject(e instanceof Error ? e : new Error(String(e)))
      return true
    }
    this.settle(result)
    return true
  }

  private settle (r: SignatureBatchResult): void {
    const p = this.pending.get(r.id)
    this.pending.delete(r.id)
    p?.resolve({ valid: r.valid, proofs: r.proofs })
  }

  // Round by round, so that each worker has one batch before any has two.
  private dispatch (): void {
    for (let depth = 1; depth <= POSTED_PER_WORKER && this.queue.length > 0; depth++) {
      for (const worker of this.workers) {
        if (this.queue.length === 0) break
        if ((this.posted.get(worker) as number) >= depth) continue
        const batch = this.queue.shift() as SignatureBatch
        this.posted.set(worker, (this.posted.get(worker) as number) + 1)
        worker.postMessage(batch, [
          batch.signatures.buffer, batch.messages.buffer, batch.offsets.buffer, batch.keyIndex.buffer,
          batch.envelopes.buffer, batch.envelopeOffsets.buffer, batch.seqs.buffer, batch.times.buffer,
          batch.proofKinds.buffer, batch.proofTexts.buffer, batch.proofOffsets.buffer
        ] as ArrayBuffer[])
      }
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
