/**
 * The main-thread side of a model worker: loads a model in its own worker thread and runs it
 * there, so that onnxruntime's synchronous run() never blocks the agent's event loop (log
 * completions, uplink, API). Inputs are copied once, into shared memory the worker reads; outputs
 * come back by transfer.
 */
import { Worker } from 'node:worker_threads'
import { Tensor, type InferenceSession } from 'onnxruntime-node'
import { canonicalTensor, ProtocolError, type TensorDigest, type TensorLike } from '../../protocol/index.js'
import { ModelError, type LoadedModel, type ModelErrorCode, type ModelInputInfo, type ModelSession } from '../model/index.js'
import { hashCanonicalYielding } from './digest-feeds.js'
import { LENDABLE_VIEWS, type LentTensor, type WireError, type WireTensor, type WorkerLoadRequest, type WorkerToMain } from './worker-messages.js'
import type { Logger } from '../../common/logger.js'
import { SpareBuffers } from '../../common/spare-buffers.js'

/** Options of {@link loadModelInWorker}; the same as loadModel's. */
export interface WorkerModelOptions {
  /** Largest file accepted, in bytes. Default: loadModel's (2 GiB). */
  readonly maxBytes?: number
  /** onnxruntime execution providers in order of preference. Default ['cpu']. */
  readonly executionProviders?: readonly string[]
  readonly intraOpNumThreads?: number
  readonly interOpNumThreads?: number
  /**
   * Linux nice value (0..19) of the worker thread, set before onnxruntime makes its threads (which
   * inherit it). Above 0 the main thread wins the CPU when both want it, so a woken worker does
   * not hold up the event loop on a machine with no core to spare; the model then also yields to
   * every other process at nice 0. Default 0 (unchanged). Elsewhere than Linux the call may change
   * the whole process's priority or fail: the worker then warns and runs on.
   */
  readonly niceness?: number
  readonly logger?: Logger
}

/** What one run in the worker gives back. */
export interface WorkerRunResult {
  readonly outputs: InferenceSession.OnnxValueMapType
  /** Output digests sorted by name, hashed in the worker right after the run. */
  readonly digests: Array<[string, TensorDigest]>
  /** onnxruntime's run() alone, in µs, measured in the worker. */
  readonly runUs: number
  /**
   * Gives the outputs' lent buffers back to the worker (a run started with `lendOutputs`): from
   * then on the worker may overwrite them, so nothing may read `outputs` after. Idempotent; a
   * no-op for a run that was not lent.
   */
  readonly release: () => void
}

/** How {@link WorkerSession.startRun} hands the outputs over. */
export interface StartRunOptions {
  /**
   * Lend the outputs instead of giving them: each output of 64 KiB or more arrives in a shared
   * buffer of the worker's pool that this thread already holds (no new buffer per run, so no
   * external memory piling up for a major GC), and stays the caller's until it calls the
   * result's `release()`; after that the worker reuses the buffer for a later run. A caller that
   * keeps an output must copy it first. Default false: the outputs are the caller's for good.
   */
  readonly lendOutputs?: boolean
  /**
   * Called once the inputs are hashed, with the bytes the model got and the digests cover (this
   * run's snapshot, by name), while the model may still compute, before `inputs` resolves; an
   * exception rejects `inputs`. They are valid during the call only, unless it calls `hold`:
   * then the snapshot is not reused for another run until the function `hold` returns is called
   * (once), so a caller may copy it later (the capture ring, when no spare buffer is at hand).
   */
  readonly onInputs?: (inputs: Readonly<Record<string, TensorLike>>, hold: () => () => void) => void
}

/** A run posted to the worker: its input digests and its result, each settling on its own. */
export interface StartedRun {
  /** Input digests sorted by name, hashed on the calling thread (in slices) from the bytes the worker got. */
  readonly inputs: Promise<Array<[string, TensorDigest]>>
  readonly result: Promise<WorkerRunResult>
}

/** A model loaded in a worker thread. `bytes` is the very buffer that was hashed and loaded. */
export type WorkerLoadedModel = LoadedModel<WorkerSession>

// Under tsx (tests, the bins) this module is a .ts file and the worker needs tsx registered first;
// compiled, model-worker.js sits beside this file and starts as it is.
const COMPILED = import.meta.url.endsWith('.js')
const WORKER_URL = new URL(COMPILED ? './model-worker.js' : './model-worker-entry.mjs', import.meta.url)

/**
 * Reads, hashes, inspects and opens a model in a new worker thread (see loadModel).
 * @throws {ModelError} the codes of loadModel; MODEL_SESSION_FAILED when the worker cannot start.
 * @throws {TypeError|RangeError} on bad options
 */
export async function loadModelInWorker (path: string, options: WorkerModelOptions = {}): Promise<WorkerLoadedModel> {
  if (typeof path !== 'string' || path === '') throw new TypeError('path must be a non-empty string')
  if (options.niceness !== undefined && (!Number.isInteger(options.niceness) || options.niceness < 0 || options.niceness > 19)) {
    throw new RangeError('niceness must be an integer in 0..19')
  }
  const request: WorkerLoadRequest = {
    path,
    executionProviders: [...(options.executionProviders ?? ['cpu'])],
    ...(options.maxBytes !== undefined ? { maxBytes: options.maxBytes } : {}),
    ...(options.intraOpNumThreads !== undefined ? { intraOpNumThreads: options.intraOpNumThreads } : {}),
    ...(options.interOpNumThreads !== undefined ? { interOpNumThreads: options.interOpNumThreads } : {}),
    ...(options.niceness !== undefined && options.niceness !== 0 ? { niceness: options.niceness } : {})
  }
  // The worker needs none of this thread's module hooks (compiled it is plain JS; from sources its
  // entry registers tsx): inherited --import flags (tsx, tap's loaders) would each load again per worker,
  // ~1 s of CPU per model.
  const worker = new Worker(WORKER_URL, { workerData: request, execArgv: [] })
  const loaded = await new Promise<Extract<WorkerToMain, { op: 'loaded' }>>((resolve, reject) => {
    const onMessage = (m: WorkerToMain): void => {
      if (m.op === 'warn') { options.logger?.warn(m.obj, m.msg); return }
      cleanup()
      if (m.op === 'loaded') resolve(m)
      else if (m.op === 'load-failed') reject(fromLoadError(m.error))
      else reject(new ModelError('MODEL_SESSION_FAILED', `model worker sent ${m.op} before loading`))
    }
    const onError = (cause: unknown): void => {
      cleanup()
      reject(new ModelError('MODEL_SESSION_FAILED', `model worker failed to start: ${describe(cause)}`, { cause }))
    }
    const onExit = (code: number): void => {
      cleanup()
      reject(new ModelError('MODEL_SESSION_FAILED', `model worker exited with code ${code} while loading`))
    }
    const cleanup = (): void => {
      worker.off('message', onMessage)
      worker.off('error', onError)
      worker.off('exit', onExit)
    }
    worker.on('message', onMessage)
    worker.on('error', onError)
    worker.on('exit', onExit)
  }).catch(async (e: unknown) => {
    await worker.terminate()
    throw e
  })
  const session = new WorkerSession(worker, loaded.inputNames, loaded.outputNames, options.logger, loaded.inputs)
  const fileHash = Buffer.from(loaded.fileHash.buffer, loaded.fileHash.byteOffset, loaded.fileHash.byteLength)
  return {
    path,
    bytes: loaded.bytes,
    fileHash,
    fileHashHex: fileHash.toString('hex'),
    manifest: loaded.manifest,
    session,
    executionProviders: loaded.executionProviders,
    release: async () => { await session.release() }
  }
}

interface Pending {
  resolve: (r: WorkerRunResult) => void
  reject: (e: Error) => void
}

/**
 * An onnxruntime session that lives in a worker thread. Runs queue in the worker in the order
 * they were asked; the worker keeps the process alive only while a run is pending.
 */
export class WorkerSession implements ModelSession {
  readonly inputNames: readonly string[]
  readonly outputNames: readonly string[]
  readonly inputs: readonly ModelInputInfo[]
  private readonly worker: Worker
  private readonly pending = new Map<number, Pending>()
  private readonly snapshots = new SnapshotPool()
  /** The worker's output slots that lent runs used so far, by id (each crossed once). */
  private readonly slots = new Map<number, SharedArrayBuffer>()
  private nextId = 1
  private failure: Error | undefined
  private released: Promise<void> | undefined

  /** @internal Made by loadModelInWorker. */
  constructor (worker: Worker, inputNames: readonly string[], outputNames: readonly string[], logger?: Logger, inputs: readonly ModelInputInfo[] = []) {
    this.worker = worker
    this.inputs = inputs
    this.inputNames = inputNames
    this.outputNames = outputNames
    worker.on('message', (m: WorkerToMain) => {
      if (m.op === 'warn') logger?.warn(m.obj, m.msg)
      else if (m.op === 'result') {
        for (const s of m.slots ?? []) this.slots.set(s.id, s.buffer)
        // Idle slots the worker let go (its pool is bounded in bytes): nothing here views them.
        for (const id of m.dropped ?? []) this.slots.delete(id)
        this.settle(m.id, p => {
          const release = this.releaser(m.outputs)
          let outputs: InferenceSession.OnnxValueMapType
          try {
            outputs = this.toOrtOutputs(m.outputs)
          } catch (e) {
            release()
            p.reject(e as Error)
            return
          }
          p.resolve({ outputs, digests: (m.digests ?? []).map(([n, d]) => [n, d]), runUs: m.runUs, release })
        })
      }
      else if (m.op === 'run-failed') this.settle(m.id, p => { p.reject(fromRunError(m.error)) })
    })
    worker.on('error', (e) => { this.fail(new Error(`model worker failed: ${describe(e)}`, { cause: e })) })
    worker.on('exit', (code) => { this.fail(new Error(`model worker exited with code ${code}`)) })
    worker.unref()
  }

  /** Bytes this side keeps for reuse between runs: spare input snapshots, and the worker's output slots it knows. */
  get heldBytes (): { snapshots: number, slots: number } {
    let slots = 0
    for (const b of this.slots.values()) slots += b.byteLength
    return { snapshots: this.snapshots.spare.heldBytes, slots }
  }

  /** Runs the model in the worker; the bare run, without any digest, inputs passed as startRun passes them. */
  async run (feeds: InferenceSession.FeedsType): Promise<InferenceSession.ReturnType> {
    const wire = Object.entries(feeds).map(([name, t]) => this.snapshots.take(name, t))
    try {
      return (await this.post(wire, false)).outputs
    } finally {
      this.snapshots.give(wire)
    }
  }

  /**
   * Checks the feeds, snapshots them, posts the run and hashes the inputs while the model
   * computes; the worker hashes the outputs. The snapshot (one copy, into a SharedArrayBuffer the
   * worker copies from before it runs) is taken synchronously here, so the digests cover exactly
   * the bytes the model got even if the caller changes its feeds later; it is then hashed in
   * slices that yield to the event loop (DEFAULT_HASH_SLICE_BYTES), so no step of this run holds
   * the loop for longer than a slice takes.
   * @throws ProtocolError `TENSOR_INVALID` (synchronously, before anything is posted).
   */
  startRun (feeds: Readonly<Record<string, TensorLike>>, options: StartRunOptions = {}): StartedRun {
    const names = Object.keys(feeds).sort()
    for (const n of names) canonicalTensor(n, feeds[n] as TensorLike)
    const wire = names.map(n => this.snapshots.take(n, feeds[n] as TensorLike))
    const result = this.post(wire, true, options.lendOutputs === true)
    // One hold per run: a second call gets the same release.
    let held: Promise<void> | undefined
    let release: () => void = () => {}
    const hold = (): () => void => {
      held ??= new Promise<void>(resolve => { release = resolve })
      return release
    }
    const inputs = (async () => {
      const out: Array<[string, TensorDigest]> = []
      for (const w of wire) out.push([w.name, await hashCanonicalYielding(canonicalTensor(w.name, w))])
      options.onInputs?.(Object.fromEntries(wire.map(w => [w.name, w])), hold)
      return out
    })()
    // The snapshots are free again once hashed here, copied out there (the worker copies before
    // it runs, so before its result) and no longer held.
    void Promise.allSettled([inputs, result]).then(async () => {
      await held
      this.snapshots.give(wire)
    })
    return { inputs, result }
  }

  private async post (wire: WireTensor[], digestOutputs: boolean, lendOutputs = false): Promise<WorkerRunResult> {
    if (this.failure !== undefined) throw this.failure
    if (this.released !== undefined) throw new Error('the model session is released')
    const id = this.nextId++
    const result = new Promise<WorkerRunResult>((resolve, reject) => { this.pending.set(id, { resolve, reject }) })
    try {
      this.worker.postMessage({ op: 'run', id, feeds: wire, digestOutputs, ...(lendOutputs ? { lendOutputs } : {}) })
    } catch (e) {
      this.pending.delete(id)
      throw e
    }
    if (this.pending.size === 1) this.worker.ref()
    return await result
  }

  /** A result's outputs as onnxruntime tensors: transferred ones as they came, lent ones as views of their slot. */
  private toOrtOutputs (outputs: ReadonlyArray<WireTensor | LentTensor>): InferenceSession.OnnxValueMapType {
    const map: Record<string, Tensor> = {}
    for (const o of outputs) {
      let data = (o as WireTensor).data
      if ('slot' in o) {
        const buffer = this.slots.get(o.slot)
        const Ctor = LENDABLE_VIEWS[o.view]
        if (buffer === undefined || Ctor === undefined) throw new Error(`model worker lent output ${o.name} in unknown slot ${o.slot} (${o.view})`)
        data = new Ctor(buffer, 0, o.byteLength / Ctor.BYTES_PER_ELEMENT)
      }
      map[o.name] = new Tensor(o.type as 'float32', data as Float32Array, o.dims)
    }
    return map
  }

  /** The release() of a result: gives its lent slots back to the worker, once. */
  private releaser (outputs: ReadonlyArray<WireTensor | LentTensor>): () => void {
    const lent = outputs.flatMap(o => 'slot' in o ? [o.slot] : [])
    if (lent.length === 0) return () => {}
    let done = false
    return () => {
      if (done) return
      done = true
      // A worker that is gone or going needs nothing back.
      if (this.failure !== undefined || this.released !== undefined) return
      this.worker.postMessage({ op: 'give-back', slots: lent })
    }
  }

  private settle (id: number, action: (p: Pending) => void): void {
    const p = this.pending.get(id)
    if (p === undefined) return
    this.pending.delete(id)
    if (this.pending.size === 0) this.worker.unref()
    action(p)
  }

  private fail (e: Error): void {
    this.failure ??= e
    for (const p of this.pending.values()) p.reject(e)
    this.pending.clear()
  }

  /** Releases the session and ends the worker; safe to call more than once. */
  async release (): Promise<void> {
    this.released ??= (async () => {
      if (this.failure === undefined) {
        this.worker.ref()
        const done = new Promise<void>((resolve) => {
          this.worker.on('message', (m: WorkerToMain) => { if (m.op === 'released') resolve() })
          this.worker.once('exit', () => { resolve() })
        })
        this.worker.postMessage({ op: 'release' })
        await done
      }
      await this.worker.terminate()
    })()
    await this.released
  }
}

/**
 * Spare snapshot buffers kept per byte length: enough for this many runs in flight at once. A
 * run beyond them takes a fresh SharedArrayBuffer that becomes garbage (it cannot be freed by
 * transfer); the daemon's API admits 5 to 7 bodies of a 320×320 image under its default budget.
 */
export const DEFAULT_SPARE_SNAPSHOTS = 8
/**
 * Bytes of spare snapshots kept in all, whatever their lengths (SpareBuffers: the lengths used
 * least recently go first), so that inputs of ever other sizes cannot make the pool grow for good.
 */
export const SPARE_SNAPSHOT_BYTES = 32 * 1024 * 1024
/** Snapshots smaller than this are not kept: allocating them costs nothing worth the memory. */
const MIN_POOLED_BYTES = 64 * 1024

/**
 * Private copies of tensors for runs. A typed array's bytes go into a SharedArrayBuffer: the
 * worker copies them from there (no structured-clone copy of the bytes) while this thread hashes
 * them, and nobody else holds that memory. Strings are immutable: copying the array is enough.
 * Buffers come back once their run is over and serve the next runs: one fresh buffer per run
 * would be garbage that V8 collects only once tens of MiB of it have piled up.
 */
class SnapshotPool {
  readonly spare = new SpareBuffers<SharedArrayBuffer>(DEFAULT_SPARE_SNAPSHOTS, SPARE_SNAPSHOT_BYTES)

  take (name: string, tensor: TensorLike): WireTensor {
    const data = tensor.data
    if (!ArrayBuffer.isView(data)) return { name, type: tensor.type, dims: [...tensor.dims], data: [...data] }
    const shared = this.spare.take(data.byteLength) ?? new SharedArrayBuffer(data.byteLength)
    new Uint8Array(shared).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
    const Ctor = (Buffer.isBuffer(data) ? Uint8Array : data.constructor) as new (b: ArrayBufferLike) => ArrayBufferView
    return { name, type: tensor.type, dims: [...tensor.dims], data: new Ctor(shared) }
  }

  /** Takes back the snapshots of a run that is over (hashed, and copied out by the worker). */
  give (wire: readonly WireTensor[]): void {
    for (const w of wire) {
      if (!ArrayBuffer.isView(w.data) || !(w.data.buffer instanceof SharedArrayBuffer) || w.data.byteLength < MIN_POOLED_BYTES) continue
      this.spare.give(w.data.buffer)
    }
  }
}

function fromLoadError (e: WireError): Error {
  if (e.name === 'TypeError') return new TypeError(e.message)
  if (e.name === 'RangeError') return new RangeError(e.message)
  if (e.name === 'ModelError' && e.code !== undefined) return new ModelError(e.code as ModelErrorCode, e.message)
  return new ModelError('MODEL_SESSION_FAILED', `model worker failed to load: ${e.message}`)
}

function fromRunError (e: WireError): Error {
  if (e.name === 'ProtocolError' && e.code === 'TENSOR_INVALID') return new ProtocolError('TENSOR_INVALID', e.message)
  const error = new Error(e.message)
  error.name = e.name
  return error
}

function describe (e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}
