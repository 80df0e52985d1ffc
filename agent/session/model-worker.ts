/**
 * The body of a model worker thread: it loads one model (read, hash, manifest and session from
 * the same bytes, as agent/model/load.ts does) and runs it on request. onnxruntime-node's run()
 * blocks the thread that calls it, so it lives here and the agent's event loop stays free.
 */
import { readlinkSync } from 'node:fs'
import { setPriority } from 'node:os'
import { parentPort, workerData } from 'node:worker_threads'
import { performance } from 'node:perf_hooks'
import { Tensor, type InferenceSession } from 'onnxruntime-node'
// Not from protocol/index.js: every model loads in a fresh worker, and the whole protocol module
// graph (CBOR, Merkle, receipts, notes, …) cost 45-55 ms of each load's imports (2-core VM).
import { digestTensor, type TensorDigest } from '../../protocol/tensor.js'
import { releaseBytes } from '../../common/release-bytes.js'
import { describeInputs, loadModel, type LoadedModel } from '../model/index.js'
import { LENDABLE_VIEWS, MAX_LENT_SLOT_BYTES, toWireError, type LentSlot, type LentTensor, type MainToWorker, type WireTensor, type WorkerLoadRequest, type WorkerToMain } from './worker-messages.js'

const port = parentPort
if (port === null) throw new Error('model-worker.ts runs only as a worker thread')

/** Outputs smaller than this go by transfer even in a lent run: their garbage costs nothing worth a slot. */
const MIN_LENT_OUTPUT_BYTES = 64 * 1024
/** Most slots of one byte length: lent runs in flight at once (a caller that keeps more gets transferred outputs). */
const MAX_LENT_SLOTS_PER_SIZE = 8

function send (message: WorkerToMain, transfer: ArrayBuffer[] = []): void {
  port?.postMessage(message, transfer)
}

async function start (): Promise<void> {
  const request = workerData as WorkerLoadRequest
  if (request.niceness !== undefined) setOwnNiceness(request.niceness)
  let loaded: LoadedModel<InferenceSession>
  try {
    loaded = await loadModel(request.path, {
      executionProviders: request.executionProviders,
      ...(request.maxBytes !== undefined ? { maxBytes: request.maxBytes } : {}),
      ...(request.intraOpNumThreads !== undefined ? { intraOpNumThreads: request.intraOpNumThreads } : {}),
      ...(request.interOpNumThreads !== undefined ? { interOpNumThreads: request.interOpNumThreads } : {}),
      logger: { warn: (obj, msg) => { send({ op: 'warn', obj, msg: msg ?? '' }) } }
    })
  } catch (e) {
    send({ op: 'load-failed', error: toWireError(e) })
    return
  }
  const session = loaded.session
  // One run at a time, in the order posted: each run's input buffers are this thread's own and
  // reused by the next (see InputBuffers), which needs the previous run to be over.
  let queue = Promise.resolve()
  const buffers = new InputBuffers()
  const slots = new OutputSlots()
  port?.on('message', (message: MainToWorker) => {
    if (message.op === 'run') {
      queue = queue.then(async () => { await run(session, buffers, message.id, message.feeds, message.digestOutputs, message.lendOutputs === true ? slots : undefined) })
    } else if (message.op === 'give-back') {
      slots.giveBack(message.slots)
    } else if (message.op === 'release') {
      void loaded.release().finally(() => { send({ op: 'released' }); port?.close() })
    }
  })
  // onnxruntime has parsed its own copy of the model: the one buffer that was hashed goes back to
  // the main thread by transfer (no copy), where LoadedModel.bytes keeps it.
  const bytes = loaded.bytes
  send({
    op: 'loaded',
    bytes,
    fileHash: loaded.fileHash,
    manifest: loaded.manifest,
    executionProviders: loaded.executionProviders,
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    inputs: describeInputs(session.inputMetadata)
  }, transferable(bytes))
}

async function run (session: InferenceSession, buffers: InputBuffers, id: number, feeds: readonly WireTensor[], digestOutputs: boolean, slots: OutputSlots | undefined): Promise<void> {
  try {
    const ortFeeds: Record<string, Tensor> = {}
    for (const f of feeds) ortFeeds[f.name] = new Tensor(f.type as 'float32', buffers.copyIn(f.name, f.data) as Float32Array, f.dims)
    const t0 = performance.now()
    const outputs = await session.run(ortFeeds)
    const runUs = Math.round((performance.now() - t0) * 1000)
    const names = Object.keys(outputs).sort()
    // This thread is idle once the run is done: hashing the outputs here costs the main thread nothing.
    const digests = digestOutputs
      ? names.map((n): [string, TensorDigest] => [n, digestTensor(n, outputs[n] as Tensor)])
      : null
    const wire: Array<WireTensor | LentTensor> = []
    const fresh: LentSlot[] = []
    const transfer = new Set<ArrayBuffer>()
    const copied = new Set<ArrayBufferView>()
    for (const name of Object.keys(outputs)) {
      const t = outputs[name] as Tensor
      // Lent: copied into a slot whose memory the main thread already holds, so that it gets no
      // new buffer (and no new external memory for its GC to account) per run.
      const slot = slots !== undefined && ArrayBuffer.isView(t.data) && LENDABLE_VIEWS[t.data.constructor.name] !== undefined ? slots.place(t.data, fresh) : undefined
      if (slot !== undefined) {
        wire.push({ name, type: t.type, dims: t.dims, slot, view: (t.data as ArrayBufferView).constructor.name, byteLength: (t.data as ArrayBufferView).byteLength })
        copied.add(t.data as ArrayBufferView)
        continue
      }
      wire.push({ name, type: t.type, dims: t.dims, data: t.data })
      if (ArrayBuffer.isView(t.data)) for (const b of transferable(t.data)) transfer.add(b)
    }
    // An output may be an input's own buffer (an Identity node): it leaves with the result.
    buffers.forget(transfer)
    // onnxruntime's own copies of the lent outputs are garbage now, and this thread allocates too
    // little else for its GC to come soon: freed here, or tens of MiB of them piled up (issue 11).
    // Not one that also leaves by transfer (two outputs over one buffer); one that is an input's
    // buffer is dropped from the kept ones first.
    const freed = new Set<ArrayBufferLike>()
    for (const view of copied) if (!transfer.has(view.buffer as ArrayBuffer)) freed.add(view.buffer)
    buffers.forget(freed)
    for (const view of copied) if (freed.has(view.buffer)) releaseBytes(view)
    const dropped = slots?.takeDropped() ?? []
    send({ op: 'result', id, outputs: wire, ...(fresh.length > 0 ? { slots: fresh } : {}), ...(dropped.length > 0 ? { dropped } : {}), digests, runUs }, [...transfer])
  } catch (e) {
    send({ op: 'run-failed', id, error: toWireError(e) })
  }
}

/**
 * The inputs' bytes as onnxruntime gets them: it refuses views over a SharedArrayBuffer, so each
 * run's shared snapshot is copied into a buffer of this thread (the only copy of the input bytes
 * here; the main thread hashes the snapshot). One buffer per input name is kept and reused while
 * the size and type stay the same: a fresh one per run would be garbage that V8 collects only
 * once tens of MiB of it have piled up (issue 11: daemon RSS under load).
 */
class InputBuffers {
  private readonly kept = new Map<string, ArrayBufferView>()

  copyIn (name: string, data: WireTensor['data']): WireTensor['data'] {
    if (!ArrayBuffer.isView(data) || !(data.buffer instanceof SharedArrayBuffer)) return data
    let own = this.kept.get(name)
    if (own === undefined || own.constructor !== data.constructor || own.byteLength !== data.byteLength) {
      const Ctor = data.constructor as new (b: ArrayBuffer) => ArrayBufferView
      own = new Ctor(new ArrayBuffer(data.byteLength))
      this.kept.set(name, own)
    }
    new Uint8Array(own.buffer, own.byteOffset, own.byteLength).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
    return own
  }

  /** Drops the kept buffers among `given` (transferred away with a result). */
  forget (given: ReadonlySet<ArrayBufferLike>): void {
    for (const [name, own] of this.kept) if (given.has(own.buffer)) this.kept.delete(name)
  }
}

/**
 * The pool of shared slots that lent runs' outputs are copied into (opt-in, StartRunOptions
 * .lendOutputs). A slot is filled only while the main thread does not hold it: it is busy from
 * the result that carries it until the main thread gives it back (`give-back`, once its caller
 * released the outputs). Slots have the exact byte length of the output they were made for;
 * when none of that length is free and MAX_LENT_SLOTS_PER_SIZE exist, the output goes by
 * transfer as in a run that is not lent, so a caller that never gives back is never overwritten.
 */
class OutputSlots {
  /** Least recently filled first. */
  private readonly slots: Array<{ id: number, buffer: SharedArrayBuffer, busy: boolean }> = []
  private bytes = 0
  private dropped: number[] = []
  private nextId = 1

  /** Copies `view` into a free slot (made if needed, and then added to `fresh`) and returns its id, or undefined. */
  place (view: ArrayBufferView, fresh: LentSlot[]): number | undefined {
    const n = view.byteLength
    if (n < MIN_LENT_OUTPUT_BYTES || n > MAX_LENT_SLOT_BYTES) return undefined
    let at = this.slots.findIndex(s => !s.busy && s.buffer.byteLength === n)
    if (at === -1) {
      if (this.slots.filter(s => s.buffer.byteLength === n).length >= MAX_LENT_SLOTS_PER_SIZE || !this.makeRoom(n)) return undefined
      const made = { id: this.nextId++, buffer: new SharedArrayBuffer(n), busy: false }
      this.slots.push(made)
      this.bytes += n
      fresh.push({ id: made.id, buffer: made.buffer })
      at = this.slots.length - 1
    }
    const [slot] = this.slots.splice(at, 1) as [typeof this.slots[number]]
    this.slots.push(slot)
    new Uint8Array(slot.buffer).set(new Uint8Array(view.buffer, view.byteOffset, n))
    slot.busy = true
    return slot.id
  }

  /** Ids of the slots dropped since the last call: the main thread forgets them with the next result. */
  takeDropped (): number[] {
    const out = this.dropped
    this.dropped = []
    return out
  }

  /** Drops idle slots, least recently filled first, until `n` more bytes fit; false when busy ones leave no room. */
  private makeRoom (n: number): boolean {
    for (let i = 0; i < this.slots.length && this.bytes + n > MAX_LENT_SLOT_BYTES;) {
      const s = this.slots[i] as typeof this.slots[number]
      if (s.busy) {
        i++
        continue
      }
      this.slots.splice(i, 1)
      this.bytes -= s.buffer.byteLength
      this.dropped.push(s.id)
    }
    return this.bytes + n <= MAX_LENT_SLOT_BYTES
  }

  giveBack (ids: readonly number[]): void {
    for (const id of ids) {
      const slot = this.slots.find(s => s.id === id)
      if (slot !== undefined) slot.busy = false
    }
  }
}

/**
 * Lowers this thread's priority (Linux: nice is per thread, and threads made later by this one,
 * onnxruntime's pool among them, inherit it). Failing is not fatal: the model runs at the
 * process's priority and the main thread hears why.
 */
function setOwnNiceness (niceness: number): void {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop())
    if (!Number.isSafeInteger(tid) || tid <= 0) throw new Error('no thread id in /proc/thread-self')
    setPriority(tid, niceness)
  } catch (e) {
    send({ op: 'warn', obj: { niceness, err: (e as Error).message }, msg: 'model worker could not set its niceness; it runs at the process\'s priority' })
  }
}

/** The buffer under a view, when it is a plain ArrayBuffer that this thread may give away. */
function transferable (view: ArrayBufferView): ArrayBuffer[] {
  return view.buffer instanceof ArrayBuffer ? [view.buffer] : []
}

await start()
