/**
 * Loads a model the one safe way: read the file once into one buffer, hash that buffer, build the
 * manifest from it and open the onnxruntime session from the very same buffer, never from the path
 * again (so what was hashed is exactly what runs).
 */

import { createHash } from 'node:crypto'
import { constants as fsConstants } from 'node:fs'
import { open, type FileHandle } from 'node:fs/promises'
import { constants as bufferConstants } from 'node:buffer'
import { InferenceSession, listSupportedBackends } from 'onnxruntime-node'
import { ModelError } from '../../protocol/model-errors.js'
import { prepareModelManifest, type ModelManifest, type PendingModelManifest } from '../../protocol/model-manifest.js'
import { RawDataScanner } from './raw-data-scan.js'
import { LOCAL_BATCH_BYTES, LOCAL_WHILE_READING_MAX_BYTES, tensorHashesFor, type TensorHashes } from './tensor-hashes.js'
import type { Logger } from '../../common/logger.js'

/** Largest model accepted by default: 2 GiB, protobuf's own ceiling for one ModelProto. */
export const DEFAULT_MAX_BYTES = 2 * 1024 ** 3
/** Execution providers tried when none are configured. */
export const DEFAULT_EXECUTION_PROVIDERS: readonly string[] = Object.freeze(['cpu'])
/** Read size of hashModelFile: large reads keep syscalls and hash calls off the profile. */
export const DEFAULT_HASH_CHUNK_BYTES = 8 * 1024 ** 2

/** Read size of loadModel: small enough that hashing one chunk overlaps the read of the next. */
export const DEFAULT_LOAD_CHUNK_BYTES = 2 * 1024 ** 2
/** Reads of loadModel in flight at once: the pool faults in and fills the next chunks while this thread hashes. */
const READS_IN_FLIGHT = 2
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
 * file hash follows the reads chunk by chunk, and in a model of 16 MiB or more the raw_data of
 * large tensors is hashed on another thread as soon as it has been read; after the read, only
 * parsing, the other tensors and the graph hash remain. What loadModel does before it opens the
 * session from `bytes`.
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
 * Three streams run at once: the thread pool fills the next chunks (the kernel's copy and the page
 * faults of the fresh buffer), this thread hashes the file chunk by chunk as they arrive, and the
 * raw_data of each large tensor is hashed as soon as its bytes are in (RawDataScanner): from 32
 * MiB on a worker thread, piece by piece from a shared ring (tensor-hashes.ts), from 16 MiB on the
 * pool, and by this thread itself whenever it would otherwise wait for a read. After the read this
 * thread parses the model and hashes its graph while the last tensor hashes finish; below 16 MiB
 * it hashes every tensor then (READ_SCAN_MIN_MODEL_BYTES says why).
 */
async function readAndIdentify (path: string, maxBytes: number, onProgress?: (read: number, total: number) => void): Promise<Omit<IdentifiedModel, 'path'>> {
  const { handle, size } = await openRegularFile(path)
  let tensors: TensorHashes | undefined
  const reads: PendingRead[] = []
  let eofProbe: Promise<number> | undefined
  let bytes: Buffer
  let fileHash: Buffer
  try {
    if (size > maxBytes) {
      throw new ModelError('MODEL_TOO_LARGE', `${path} has ${size} bytes, more than the ${maxBytes} allowed`)
    }
    // Not from the shared pool: the session and the caller get a buffer that is this file only.
    bytes = Buffer.allocUnsafeSlow(size)
    const buffer = bytes
    tensors = tensorHashesFor(buffer)
    // Small models leave every tensor to the manifest, after the read (READ_SCAN_MIN_MODEL_BYTES).
    const scanner = tensors.scans ? new RawDataScanner(buffer) : undefined
    const hash = createHash('sha256')
    let requested = 0
    const requestReads = (): void => {
      while (reads.length < READS_IN_FLIGHT && requested < size) {
        const end = Math.min(requested + DEFAULT_LOAD_CHUNK_BYTES, size)
        reads.push(new PendingRead(readRange(handle, buffer, requested, end)))
        requested = end
      }
    }
    requestReads()
    let filled = 0
    while (filled < size) {
      const next = reads[0] as PendingRead
      // Rather than wait for the pool to fill the next chunk, hash a tensor here meanwhile.
      while (!next.done && tensors.hashHere(LOCAL_BATCH_BYTES, LOCAL_WHILE_READING_MAX_BYTES)) await yieldToIo()
      const complete = await next.promise
      reads.shift()
      if (!complete) throw new ModelError('MODEL_UNREADABLE', `${path} shrank while being read`)
      const start = filled
      filled = Math.min(start + DEFAULT_LOAD_CHUNK_BYTES, size)
      requestReads()
      // Asked before this chunk is hashed, so that the answer is in by the time the hash is done.
      if (filled === size) {
        eofProbe = readAt(handle, Buffer.alloc(1), size)
        eofProbe.catch(() => undefined)
      }
      if (scanner !== undefined) for (const range of tensors.partialRanges ? scanner.discover(filled) : scanner.advance(filled)) tensors.add(range)
      tensors.feed(filled)
      hash.update(buffer.subarray(start, filled))
      onProgress?.(filled, size)
      // Reads already done never take this thread back to the event loop, and a pool job that
      // finished waits there for its successor: one turn per chunk keeps the pool fed.
      await yieldToIo()
    }
    if (await (eofProbe ?? readAt(handle, Buffer.alloc(1), size)) !== 0) {
      throw new ModelError('MODEL_UNREADABLE', `${path} grew while being read`)
    }
    fileHash = hash.digest()
  } catch (e) {
    // A failed read leaves no hash job behind.
    tensors?.cancel()
    await tensors?.settled()
    throw e instanceof ModelError ? e : new ModelError('MODEL_UNREADABLE', `cannot read ${path}: ${describe(e)}`, { cause: e })
  } finally {
    // Never close the descriptor under a read that is still in flight.
    await Promise.all([...reads.map((r) => r.promise), eofProbe].map(async (p) => await p?.catch(() => undefined)))
    await handle.close().catch(() => undefined)
  }
  let pending: PendingModelManifest
  try {
    pending = prepareModelManifest(bytes, fileHash)
  } catch (e) {
    tensors.cancel()
    await tensors.settled()
    throw e
  }
  // The pool finishes its jobs while this thread takes the ones still queued.
  while (tensors.hashHere(LOCAL_BATCH_BYTES, Infinity)) await yieldToIo()
  return { bytes, fileHash, manifest: pending.complete(await tensors.results()) }
}

/** A read in flight, with a flag that says it has completed (without awaiting it). */
class PendingRead {
  readonly promise: Promise<boolean>
  done = false

  constructor (promise: Promise<boolean>) {
    this.promise = promise
    // Also handles a failure here, so that one behind the read awaited is not an unhandled rejection.
    promise.then(() => { this.done = true }, () => { this.done = true })
  }
}

/** One turn of the event loop: lets completed reads and hash jobs in. */
async function yieldToIo (): Promise<void> {
  await new Promise<void>((resolve) => { setImmediate(resolve) })
}

/** Fills [start, end) of `buffer` from the same offsets of the file; false when EOF comes first. */
async function readRange (handle: FileHandle, buffer: Buffer, start: number, end: number): Promise<boolean> {
  let at = start
  while (at < end) {
    const { bytesRead } = await handle.read(buffer, at, Math.min(end - at, MAX_READ_BYTES), at)
    if (bytesRead === 0) return false
    at += bytesRead
  }
  return true
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
