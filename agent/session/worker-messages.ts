/**
 * The messages between the agent's main thread and a model worker (agent/session/model-worker.ts),
 * with the plain-data tensor form that crosses the thread boundary. Internal to agent/session.
 */
import type { TensorDigest } from '../../protocol/index.js'
import type { ModelInputInfo, ModelManifest } from '../model/index.js'

/** What the worker needs to load its model; passed as `workerData`. */
export interface WorkerLoadRequest {
  readonly path: string
  readonly maxBytes?: number
  readonly executionProviders: readonly string[]
  readonly intraOpNumThreads?: number
  readonly interOpNumThreads?: number
  /** Nice value of the worker thread (and of onnxruntime's threads, made after it is set). */
  readonly niceness?: number
}

/** A tensor as it crosses threads: inputs as a private snapshot in a SharedArrayBuffer (strings: a copied array), outputs by transfer. */
export interface WireTensor {
  readonly name: string
  readonly type: string
  readonly dims: readonly number[]
  readonly data: ArrayBufferView | readonly string[]
}

/**
 * An output lent in a shared slot of the worker (see OutputSlots in model-worker.ts): its bytes
 * are at the start of slot `slot`, viewed as `view` (a typed-array constructor name). The slot's
 * SharedArrayBuffer crosses once, in `LentSlot`, the first time the worker fills it.
 */
export interface LentTensor {
  readonly name: string
  readonly type: string
  readonly dims: readonly number[]
  readonly slot: number
  readonly view: string
  readonly byteLength: number
}

type ViewConstructor = (new (buffer: ArrayBufferLike, byteOffset: number, length: number) => ArrayBufferView) & { readonly BYTES_PER_ELEMENT: number }

/**
 * The typed arrays an output may be lent as, by constructor name (what a LentTensor's `view`
 * names): the worker lends only these, the main thread rebuilds the view with them.
 */
export const LENDABLE_VIEWS: Readonly<Record<string, ViewConstructor | undefined>> = {
  Float32Array, Float64Array, Int8Array, Uint8Array, Int16Array, Uint16Array, Int32Array, Uint32Array, BigInt64Array, BigUint64Array
}

/**
 * Most bytes of the worker's output slots in all, whatever their lengths: a model whose outputs
 * change size with its inputs would otherwise keep slots of every size it ever lent. Idle slots
 * of the lengths used least recently are dropped to make room (the main thread is told with the
 * next result); when the busy ones fill it, outputs go by transfer.
 */
export const MAX_LENT_SLOT_BYTES = 32 * 1024 * 1024

/** A new shared slot of the worker's output pool, sent once with the first result it holds. */
export interface LentSlot {
  readonly id: number
  readonly buffer: SharedArrayBuffer
}

/** An error as it crosses threads: the class name and the stable code are kept. */
export interface WireError {
  readonly name: string
  readonly code?: string
  readonly message: string
}

export type MainToWorker =
  | { readonly op: 'run', readonly id: number, readonly feeds: readonly WireTensor[], readonly digestOutputs: boolean, readonly lendOutputs?: boolean }
  /** The main thread is done with these lent output slots: the worker may fill them again. */
  | { readonly op: 'give-back', readonly slots: readonly number[] }
  | { readonly op: 'release' }

export type WorkerToMain =
  | { readonly op: 'warn', readonly obj: object, readonly msg: string }
  | {
    readonly op: 'loaded'
    readonly bytes: Uint8Array
    readonly fileHash: Uint8Array
    readonly manifest: ModelManifest
    readonly executionProviders: readonly string[]
    readonly inputNames: readonly string[]
    readonly outputNames: readonly string[]
    readonly inputs: readonly ModelInputInfo[]
  }
  | { readonly op: 'load-failed', readonly error: WireError }
  | {
    readonly op: 'result'
    readonly id: number
    readonly outputs: ReadonlyArray<WireTensor | LentTensor>
    /** Slots of the output pool that this result is the first to use (lent runs only). */
    readonly slots?: readonly LentSlot[]
    /** Ids of idle slots the worker dropped to stay within its pool's bytes: forget them. */
    readonly dropped?: readonly number[]
    /** Output digests in output-name order, when the run asked for them. */
    readonly digests: ReadonlyArray<readonly [string, TensorDigest]> | null
    /** Wall time of onnxruntime's run() alone, in µs. */
    readonly runUs: number
  }
  | { readonly op: 'run-failed', readonly id: number, readonly error: WireError }
  | { readonly op: 'released' }

export function toWireError (e: unknown): WireError {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code
    return { name: e.name, message: e.message, ...(typeof code === 'string' ? { code } : {}) }
  }
  return { name: 'Error', message: String(e) }
}
