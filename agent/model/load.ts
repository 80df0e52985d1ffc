/**
 * Loads a model the one safe way: read the file once into one buffer, hash that buffer, build the
 * manifest from it and open the onnxruntime session from the very same buffer, never from the path
 * again (so what was hashed is exactly what runs).
 */

import { createHash, webcrypto } from 'node:crypto'
import { constants as fsConstants } from 'node:fs'
import { availableParallelism } from 'node:os'
import { open, type FileHandle } from 'node:fs/promises'
import { constants as bufferConstants } from 'node:buffer'
import { InferenceSession, listSupportedBackends } from 'onnxruntime-node'
import { ModelError } from '../../protocol/model-errors.js'
import { buildModelManifestWithHashes, type ModelManifest } from '../../protocol/model-manifest.js'
import { RawDataScanner, type ByteRange } from './raw-data-scan.js'
import type { Logger } from '../../common/logger.js'

/** Largest model accepted by default: 2 GiB, protobuf's own ceiling for one ModelProto. */
export const DEFAULT_MAX_BYTES = 2 * 1024 ** 3
/** Execution providers tried when none are configured. */
export const DEFAULT_EXECUTION_PROVIDERS: readonly string[] = Object.freeze(['cpu'])
/** Read size of hashModelFile: large reads keep syscalls and hash calls off the profile. */
export const DEFAULT_HASH_CHUNK_BYTES = 8 * 1024 ** 2

/** Read size of loadModel: small enough that hashing one chunk overlaps the read of the next. */
export const DEFAULT_LOAD_CHUNK_BYTES = 2 * 1024 ** 2
/** Tensors from this size up are hashed on libuv's thread pool during the read; smaller ones after it. */
const OFFLOAD_MIN_BYTES = 64 * 1024
/** Tensor hashes in flight on the thread pool: the cores beside this thread, leaving one pool thread for reads. */
const OFFLOAD_JOBS = Math.max(1, Math.min(3, availableParallelism() - 1))

/** One read call is capped below libuv's INT32_MAX limit. */
const MAX_READ_BYTES = 256 * 1024 ** 2
// O_NONBLOCK keeps open() from hanging on a FIFO; it changes nothing for regular files.
const OPEN_FLAGS = fsConstants.O_RDONLY | (fsConstants.O_NONBLOCK ?? 0)

export interface LoadModelOptions {
  /** Largest file accepted, in bytes, checked with fstat before any allocation. Default 2 GiB. */
  readonly maxBytes?: number
  /**
   * onnxruntime execution providers in order of preference, e.g. ['tensorrt', 'cuda', 'cpu'].
   * One that is missing or fails is dropped with a warning and the rest are tried. Default ['cpu'].
   */
  readonly executionProviders?: readonly string[]
  /** Threads inside one operator; onnxruntime's default (cores) when omitted. */
  readonly intraOpNumThreads?: number
  /** Threads across independent operators; onnxruntime's default when omitted. */
  readonly interOpNumThreads?: number
  /** Only `warn` is used (execution-provider fallbacks). */
  readonly logger?: Pick<Logger, 'warn'>
  /** Called after each read with the bytes read so far and the file size (progress on large models). */
  readonly onProgress?: (readBytes: number, totalBytes: number) => void
}

/** A model's bytes and both identities, from one read (see identifyModel). */
export interface IdentifiedModel {
  readonly path: string
  /** The one buffer that was read and hashed. */
  readonly bytes: Buffer
  /** SHA-256 of `bytes`. */
  readonly fileHash: Buffer
  readonly manifest: ModelManifest
}

/** One input of a model as GET /status lists it. */
export interface ModelInputInfo {
  readonly name: string
  /** Element type (`float32`, `uint8`, …), or `non-tensor` (a sequence or map input). */
  readonly type: string
  /** Dims; a string is a symbolic dim (`batch`), -1 an unnamed dynamic one. Empty for non-tensors. */
  readonly dims: ReadonlyArray<number | string>
}

/** The inputs of a session from onnxruntime's metadata. */
export function describeInputs (metadata: readonly InferenceSession.ValueMetadata[]): ModelInputInfo[] {
  return metadata.map(m => m.isTensor ? { name: m.name, type: m.type, dims: [...m.shape] } : { name: m.name, type: 'non-tensor', dims: [] })
}

/**
 * What the agent needs of an onnxruntime session: onnxruntime's own InferenceSession, or a
 * session that runs in a worker thread (agent/session).
 */
export interface ModelSession {
  readonly inputNames: readonly string[]
  readonly outputNames: readonly string[]
  /** Each input's element type and dims (a string dim is symbolic, e.g. `batch`), when known. */
  readonly inputs?: readonly ModelInputInfo[]
  run: (feeds: InferenceSession.FeedsType) => Promise<InferenceSession.ReturnType>
  release: () => Promise<void>
}

export interface LoadedModel<S extends ModelSession = ModelSession> {
  readonly path: string
  /** The one buffer that was read, hashed, parsed and given to onnxruntime. Do not modify. */
  readonly bytes: Uint8Array
  /** SHA-256 of `bytes` (32 bytes): the model's identity in records. */
  readonly fileHash: Uint8Array
  readonly fileHashHex: string
  readonly manifest: ModelManifest
  readonly session: S
  /**
   * Providers registered with the session, in order (the requested list minus the ones that
   * failed). onnxruntime still runs nodes no listed provider takes on its CPU provider.
   */
  readonly executionProviders: readonly string[]
  /** Releases the session; safe to call more than once. */
  release: () => Promise<void>
}

export interface HashModelFileOptions {
  /** Bytes per read; two buffers of this size are used. Default 8 MiB. */
  readonly chunkBytes?: number
}

/**
 * Reads, hashes, inspects and opens an ONNX model.
 * @throws {ModelError} MODEL_UNREADABLE, MODEL_TOO_LARGE, MODEL_NOT_ONNX, MODEL_CORRUPT,
 *   MODEL_EXTERNAL_DATA, MODEL_SESSION_FAILED
 * @throws {TypeError|RangeError} on bad options
 */
export async function loadModel (path: string, options: LoadModelOptions = {}): Promise<LoadedModel<InferenceSession>> {
  const resolved = resolveOptions(path, options)
  const { bytes, fileHash, manifest } = await readAndIdentify(path, resolved.maxBytes, options.onProgress)
  const { session, providers } = await createSession(bytes, resolved)
  let released = false
  return {
    path,
    bytes,
    fileHash,
    fileHashHex: fileHash.toString('hex'),
    manifest,
    session,
    executionProviders: providers,
    async release () {
      if (released) return
      released = true
      await session.release()
    }
  }
}

/**
 * Reads a model once and computes both identities (file hash, manifest) in that one pass: the
 * file hash follows the reads chunk by chunk, and the raw_data of large initializers is hashed on
 * libuv's thread pool as soon as it has been read; after the read, only parsing, small tensors
 * and the graph hash remain. What loadModel does before it opens the session from `bytes`.
 * @throws {ModelError} MODEL_UNREADABLE, MODEL_TOO_LARGE, MODEL_NOT_ONNX, MODEL_CORRUPT, MODEL_EXTERNAL_DATA
 */
export async function identifyModel (path: string, options: Pick<LoadModelOptions, 'maxBytes' | 'onProgress'> = {}): Promise<IdentifiedModel> {
  const resolved = resolveOptions(path, options)
  return { path, ...await readAndIdentify(path, resolved.maxBytes, options.onProgress) }
}

/**
 * Streaming SHA-256 of a file, reading the next chunk while the previous one is hashed.
 * For files too large to load; loadModel hashes its own buffer instead.
 * @throws {ModelError} MODEL_UNREADABLE
 */
export async function hashModelFile (path: string, options: HashModelFileOptions = {}): Promise<Uint8Array> {
  const chunkBytes = options.chunkBytes ?? DEFAULT_HASH_CHUNK_BYTES
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1 || chunkBytes > MAX_READ_BYTES) {
    throw new RangeError(`chunkBytes must be an integer in 1..${MAX_READ_BYTES}`)
  }
  const { handle } = await openRegularFile(path)
  const buffers = [Buffer.allocUnsafeSlow(chunkBytes), Buffer.allocUnsafeSlow(chunkBytes)] as const
  const hash = createHash('sha256')
  let pending: Promise<number> | undefined
  try {
    let position = 0
    let index = 0
    pending = readAt(handle, buffers[0], position)
    for (;;) {
      const n = await pending
      pending = undefined
      if (n === 0) break
      position += n
      // Double buffering: the thread pool fills one buffer while this thread hashes the other.
      pending = readAt(handle, buffers[(index + 1) % 2] as Buffer, position)
      hash.update((buffers[index % 2] as Buffer).subarray(0, n))
      index++
    }
    return hash.digest()
  } catch (e) {
    throw e instanceof ModelError ? e : new ModelError('MODEL_UNREADABLE', `cannot read ${path}: ${describe(e)}`, { cause: e })
  } finally {
    // Never close the descriptor under a read that is still in flight.
    await pending?.catch(() => 0)
    await handle.close().catch(() => undefined)
  }
}

// ---------------------------------------------------------------------------------------------

interface ResolvedOptions {
  readonly maxBytes: number
  readonly executionProviders: readonly string[]
  readonly intraOpNumThreads?: number
  readonly interOpNumThreads?: number
  /** Only `warn` is used (execution-provider fallbacks). */
  readonly logger?: Pick<Logger, 'warn'>
}

function resolveOptions (path: unknown, options: LoadModelOptions): ResolvedOptions {
  if (typeof path !== 'string' || path === '') throw new TypeError('path must be a non-empty string')
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0 || maxBytes > bufferConstants.MAX_LENGTH) {
    throw new RangeError(`maxBytes must be an integer in 0..${bufferConstants.MAX_LENGTH}`)
  }
  const executionProviders = options.executionProviders ?? DEFAULT_EXECUTION_PROVIDERS
  if (!Array.isArray(executionProviders) || executionProviders.length === 0 ||
      !executionProviders.every((p) => typeof p === 'string' && p !== '')) {
    throw new TypeError('executionProviders must be a non-empty array of provider names')
  }
  for (const key of ['intraOpNumThreads', 'interOpNumThreads'] as const) {
    const v = options[key]
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0 || v > 1024)) {
      throw new RangeError(`${key} must be an integer in 0..1024`)
    }
  }
  return {
    maxBytes,
    executionProviders,
    ...(options.intraOpNumThreads !== undefined ? { intraOpNumThreads: options.intraOpNumThreads } : {}),
    ...(options.interOpNumThreads !== undefined ? { interOpNumThreads: options.interOpNumThreads } : {}),
    ...(options.logger !== undefined ? { logger: options.logger } : {})
  }
}

/**
 * One open, one fstat, one buffer of exactly the fstat size filled by reads that must end at EOF.
 * While the pool fills the next chunk this thread hashes the last one, and large initializers are
 * handed to the pool for hashing as soon as their bytes are in (RawDataScanner).
 */
async function readAndIdentify (path: string, maxBytes: number, onProgress?: (read: number, total: number) => void): Promise<Omit<IdentifiedModel, 'path'>> {
  const { handle, size } = await openRegularFile(path)
  const known = new Map<string, string>()
  const jobs = new Set<Promise<void>>()
  const queue: ByteRange[] = []
  let bytes: Buffer
  let pending: Promise<number> | undefined
  const startJobs = (): void => {
    while (jobs.size < OFFLOAD_JOBS && queue.length > 0) {
      const [start, end] = queue.shift() as ByteRange
      const job: Promise<void> = webcrypto.subtle.digest('SHA-256', bytes.subarray(start, end))
        .then((digest) => { known.set(`${start}:${end - start}`, Buffer.from(digest).toString('hex')) })
        // A failed offload only means the manifest hashes this tensor itself.
        .catch(() => undefined)
        .finally(() => { jobs.delete(job); startJobs() })
      jobs.add(job)
    }
  }
  let fileHash: Buffer
  try {
    if (size > maxBytes) {
      throw new ModelError('MODEL_TOO_LARGE', `${path} has ${size} bytes, more than the ${maxBytes} allowed`)
    }
    // Not from the shared pool: the session and the caller get a buffer that is this file only.
    bytes = Buffer.allocUnsafeSlow(size)
    const scanner = new RawDataScanner(bytes)
    const hash = createHash('sha256')
    let filled = 0
    pending = size > 0 ? readInto(handle, bytes, 0, Math.min(DEFAULT_LOAD_CHUNK_BYTES, size)) : undefined
    while (filled < size) {
      const n = await (pending as Promise<number>)
      pending = undefined
      if (n === 0) throw new ModelError('MODEL_UNREADABLE', `${path} shrank while being read`)
      const start = filled
      filled += n
      if (filled < size) pending = readInto(handle, bytes, filled, Math.min(DEFAULT_LOAD_CHUNK_BYTES, size - filled))
      hash.update(bytes.subarray(start, filled))
      for (const range of scanner.advance(filled)) {
        if (range[1] - range[0] >= OFFLOAD_MIN_BYTES) queue.push(range)
      }
      startJobs()
      onProgress?.(filled, size)
    }
    const { bytesRead } = await handle.read(Buffer.alloc(1), 0, 1, size)
    if (bytesRead !== 0) throw new ModelError('MODEL_UNREADABLE', `${path} grew while being read`)
    fileHash = hash.digest()
  } catch (e) {
    throw e instanceof ModelError ? e : new ModelError('MODEL_UNREADABLE', `cannot read ${path}: ${describe(e)}`, { cause: e })
  } finally {
    // Never close the descriptor under a read that is still in flight, nor leave hash jobs behind.
    await pending?.catch(() => 0)
    queue.length = 0
    await Promise.all([...jobs])
    await handle.close().catch(() => undefined)
  }
  return { bytes, fileHash, manifest: buildModelManifestWithHashes(bytes, fileHash, known) }
}

async function readInto (handle: FileHandle, buffer: Buffer, position: number, length: number): Promise<number> {
  const { bytesRead } = await handle.read(buffer, position, Math.min(length, MAX_READ_BYTES), position)
  return bytesRead
}

async function openRegularFile (path: string): Promise<{ handle: FileHandle, size: number }> {
  let handle: FileHandle
  try {
    handle = await open(path, OPEN_FLAGS)
  } catch (e) {
    throw new ModelError('MODEL_UNREADABLE', `cannot open ${path}: ${describe(e)}`, { cause: e })
  }
  try {
    // Directories open fine on Linux, and a device such as /dev/zero would never reach EOF.
    const stat = await handle.stat()
    if (!stat.isFile()) throw new ModelError('MODEL_UNREADABLE', `${path} is not a regular file`)
    return { handle, size: stat.size }
  } catch (e) {
    await handle.close().catch(() => undefined)
    throw e instanceof ModelError ? e : new ModelError('MODEL_UNREADABLE', `cannot stat ${path}: ${describe(e)}`, { cause: e })
  }
}

async function readAt (handle: FileHandle, buffer: Buffer, position: number): Promise<number> {
  const { bytesRead } = await handle.read(buffer, 0, buffer.length, position)
  return bytesRead
}

/**
 * onnxruntime gives up when any listed provider fails to register, so providers are tried as a
 * shrinking tail of the list: [a, b, cpu], then [b, cpu], then [cpu]. Names this build does not
 * know at all are dropped without an attempt.
 */
async function createSession (bytes: Uint8Array, options: ResolvedOptions): Promise<{ session: InferenceSession, providers: string[] }> {
  const known = knownBackends()
  const candidates = options.executionProviders.filter((provider) => {
    if (known === undefined || known.has(provider)) return true
    options.logger?.warn({ provider }, 'execution provider not in this onnxruntime build; skipped')
    return false
  })
  const errors: unknown[] = []
  for (let i = 0; i < candidates.length; i++) {
    const providers = candidates.slice(i)
    try {
      const session = await InferenceSession.create(bytes, {
        executionProviders: providers,
        ...(options.intraOpNumThreads !== undefined ? { intraOpNumThreads: options.intraOpNumThreads } : {}),
        ...(options.interOpNumThreads !== undefined ? { interOpNumThreads: options.interOpNumThreads } : {})
      })
      return { session, providers }
    } catch (e) {
      errors.push(e)
      const next = candidates[i + 1]
      if (next !== undefined) {
        options.logger?.warn({ provider: candidates[i], fallback: next, error: describe(e) },
          'execution provider unavailable; falling back')
      }
    }
  }
  const detail = errors.length > 0 ? `: ${describe(errors[errors.length - 1])}` : ''
  throw new ModelError('MODEL_SESSION_FAILED',
    `onnxruntime refused the model with providers [${options.executionProviders.join(', ')}]${detail}`,
    { cause: errors.length === 1 ? errors[0] : new AggregateError(errors, 'every execution provider failed') })
}

function knownBackends (): Set<string> | undefined {
  try {
    return new Set(listSupportedBackends().map((b) => b.name))
  } catch {
    return undefined
  }
}

function describe (e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}
