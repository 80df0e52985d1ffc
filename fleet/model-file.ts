/**
 * A model file's two identities, computed exactly as the agent computes them when it loads the
 * file (protocol/model-manifest.ts): sha256 of the bytes names the file, the manifest hash names
 * its weights. The registry stores both; forensics compares the second with each model-load record.
 */
import { createHash } from 'node:crypto'
import { promises as fs } from 'node:fs'
import { buildModelManifest } from '../protocol/model-manifest.js'
import { FleetError } from './errors.js'

/** The agent's default model size limit (agent/model DEFAULT_MAX_BYTES): the fleet refuses what a device would. */
export const MAX_MODEL_BYTES = 2 * 1024 ** 3

export interface ModelIdentity {
  path: string
  sizeBytes: number
  /** sha256 of the file bytes, 64 hex digits. */
  fileHash: string
  /** sha256 of the tensor manifest, 64 hex digits. */
  manifestHash: string
  graphHash: string
  initializerCount: number
}

/**
 * Reads the file once and hashes those bytes.
 * @throws FleetError `FLEET_FILE_UNREADABLE`; ModelError `MODEL_NOT_ONNX`, `MODEL_CORRUPT`, `MODEL_EXTERNAL_DATA`.
 */
export async function identifyModelFile (path: string): Promise<ModelIdentity> {
  let bytes: Buffer
  try {
    const stat = await fs.stat(path)
    if (!stat.isFile()) throw new Error('not a regular file')
    if (stat.size > MAX_MODEL_BYTES) throw new Error(`${stat.size} bytes is over the ${MAX_MODEL_BYTES}-byte limit of the agent`)
    bytes = await fs.readFile(path)
  } catch (e) {
    throw new FleetError('FLEET_FILE_UNREADABLE', `cannot read model ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e })
  }
  const fileHash = new Uint8Array(createHash('sha256').update(bytes).digest())
  const manifest = buildModelManifest(bytes, { fileHash })
  return {
    path,
    sizeBytes: bytes.byteLength,
    fileHash: manifest.fileHash,
    manifestHash: manifest.manifestHash,
    graphHash: manifest.graphHash,
    initializerCount: manifest.initializers.length
  }
}
