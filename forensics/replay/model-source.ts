/**
 * Finds the model a record names by its file hash and opens it the agent's way: read the file once,
 * hash those bytes, create the onnxruntime session from the same bytes. A folder is indexed by
 * hashing its files; that index only finds candidates, the hash of the loaded bytes decides.
 */
import { createHash } from 'node:crypto'
import { constants as fsConstants, promises as fs } from 'node:fs'
import { join } from 'node:path'
import { InferenceSession } from 'onnxruntime-node'
import { ReplayError } from './errors.js'

/** Largest model file read by default: 2 GiB (protobuf's ceiling for one ModelProto). */
export const DEFAULT_REPLAY_MAX_MODEL_BYTES = 2 * 1024 ** 3

const OPEN_FLAGS = fsConstants.O_RDONLY | (fsConstants.O_NONBLOCK ?? 0)

/** What became of one model hash. */
export type ModelLookup =
  | { status: 'loaded', modelHash: string, path: string, session: InferenceSession }
  /** No file is known for the hash (not in the map; nothing in the folder hashes to it). */
  | { status: 'missing', modelHash: string, message: string }
  /** The file given for the hash has other bytes (the hash of what was loaded differs). */
  | { status: 'mismatch', modelHash: string, path: string, fileHash: string, message: string }
  /** The bytes match but onnxruntime cannot open them, or the file cannot be read. */
  | { status: 'failed', modelHash: string, path: string, message: string }

export interface ModelSourceOptions {
  maxModelBytes?: number
  executionProviders?: readonly string[]
  intraOpNumThreads?: number
}

export class ModelSource {
  private readonly cache = new Map<string, Promise<ModelLookup>>()
  private index: Promise<Map<string, string>> | undefined

  private readonly modelPaths: ReadonlyMap<string, string> | string

  /** `modelPaths`: hex SHA-256 (any case) → file, or a folder whose files are searched by hash. */
  constructor (modelPaths: ReadonlyMap<string, string> | string, private readonly options: ModelSourceOptions = {}) {
    this.modelPaths = typeof modelPaths === 'string' ? modelPaths : new Map([...modelPaths].map(([k, v]) => [k.toLowerCase(), v]))
  }

  /**
   * The model whose file hash is `modelHash` (hex), loaded once per source.
   * @throws ReplayError `REPLAY_MODELS_UNREADABLE` when the folder cannot be listed.
   */
  async get (modelHash: string): Promise<ModelLookup> {
    let p = this.cache.get(modelHash)
    if (p === undefined) {
      p = this.load(modelHash)
      this.cache.set(modelHash, p)
    }
    return await p
  }

  /** Releases every session opened. */
  async release (): Promise<void> {
    for (const p of this.cache.values()) {
      const m = await p.catch(() => undefined)
      if (m?.status === 'loaded') await m.session.release().catch(() => undefined)
    }
    this.cache.clear()
  }

  private async load (modelHash: string): Promise<ModelLookup> {
    const path = typeof this.modelPaths === 'string'
      ? (await this.indexFolder(this.modelPaths)).get(modelHash)
      : this.modelPaths.get(modelHash)
    if (path === undefined) {
      const where = typeof this.modelPaths === 'string' ? `no file in ${this.modelPaths} has this hash` : 'no file given for this hash'
      return { status: 'missing', modelHash, message: `model ${modelHash}: ${where}` }
    }
    let bytes: Buffer
    try {
      bytes = await readWhole(path, this.options.maxModelBytes ?? DEFAULT_REPLAY_MAX_MODEL_BYTES)
    } catch (e) {
      return { status: 'failed', modelHash, path, message: `cannot read ${path}: ${(e as Error).message}` }
    }
    const fileHash = createHash('sha256').update(bytes).digest('hex')
    if (fileHash !== modelHash) {
      return { status: 'mismatch', modelHash, path, fileHash, message: `${path} has sha256 ${fileHash}, the record names ${modelHash}` }
    }
    try {
      const session = await InferenceSession.create(bytes, {
        executionProviders: [...(this.options.executionProviders ?? ['cpu'])],
        ...(this.options.intraOpNumThreads !== undefined ? { intraOpNumThreads: this.options.intraOpNumThreads } : {})
      })
      return { status: 'loaded', modelHash, path, session }
    } catch (e) {
      return { status: 'failed', modelHash, path, message: `onnxruntime cannot open ${path}: ${(e as Error).message}` }
    }
  }

  private async indexFolder (dir: string): Promise<Map<string, string>> {
    this.index ??= (async () => {
      let names: string[]
      try {
        names = (await fs.readdir(dir)).sort()
      } catch (cause) {
        throw new ReplayError('REPLAY_MODELS_UNREADABLE', `cannot list model folder ${dir}: ${(cause as Error).message}`, { cause })
      }
      const max = this.options.maxModelBytes ?? DEFAULT_REPLAY_MAX_MODEL_BYTES
      const byHash = new Map<string, string>()
      for (const name of names) {
        const path = join(dir, name)
        try {
          const st = await fs.stat(path)
          if (!st.isFile() || st.size > max) continue
          const hash = await hashFile(path)
          if (!byHash.has(hash)) byHash.set(hash, path)
        } catch {
          // An unreadable file is simply not a candidate: the model it might be is then reported missing.
        }
      }
      return byHash
    })()
    return await this.index
  }
}

async function hashFile (path: string): Promise<string> {
  const h = createHash('sha256')
  const handle = await fs.open(path, OPEN_FLAGS)
  try {
    for await (const chunk of handle.createReadStream({ highWaterMark: 4 * 1024 * 1024, autoClose: false })) h.update(chunk as Buffer)
  } finally {
    await handle.close().catch(() => undefined)
  }
  return h.digest('hex')
}

/**
 * One open, one fstat (regular file, at most `maxBytes`), one buffer of that size, read to EOF.
 * @throws ReplayError `REPLAY_FILE_UNREADABLE`.
 */
export async function readWhole (path: string, maxBytes: number): Promise<Buffer> {
  let handle: fs.FileHandle
  try {
    handle = await fs.open(path, OPEN_FLAGS)
  } catch (cause) {
    throw new ReplayError('REPLAY_FILE_UNREADABLE', `cannot open ${path}: ${(cause as Error).message}`, { cause })
  }
  try {
    const st = await handle.stat()
    if (!st.isFile()) throw new ReplayError('REPLAY_FILE_UNREADABLE', `${path} is not a regular file`)
    if (st.size > maxBytes) throw new ReplayError('REPLAY_FILE_UNREADABLE', `${path} has ${st.size} bytes, more than the ${maxBytes} allowed`)
    const bytes = Buffer.allocUnsafeSlow(st.size)
    let filled = 0
    while (filled < st.size) {
      const { bytesRead } = await handle.read(bytes, filled, Math.min(st.size - filled, 256 * 1024 ** 2), filled)
      if (bytesRead === 0) throw new ReplayError('REPLAY_FILE_UNREADABLE', `${path} shrank while being read`)
      filled += bytesRead
    }
    return bytes
  } catch (cause) {
    if (cause instanceof ReplayError) throw cause
    throw new ReplayError('REPLAY_FILE_UNREADABLE', `cannot read ${path}: ${(cause as Error).message}`, { cause })
  } finally {
    await handle.close().catch(() => undefined)
  }
}
