/**
 * The gateway's log key: its own Ed25519 key, which signs the acks it sends to devices (and,
 * later, the checkpoints of its log). One file, created on first start, mode 0600, written
 * atomically, refused when others may read it, never logged. Registered on chain like a device.
 */
import { constants, promises as fs } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { createSigner, fromHex, generateSeed, toHex, type Signer } from '../../protocol/index.js'
import { GatewayError } from '../errors.js'
import { readOwnerOnlyFile } from '../../common/secret-file.js'

const LOG_KEY_CODES = { insecure: 'LOG_KEY_INSECURE', invalid: 'LOG_KEY_INVALID', unreadable: 'LOG_KEY_UNREADABLE' } as const

export interface GatewayLogKey {
  signer: Signer
  publicKey: Uint8Array
  /** When the key was made, Unix ms. */
  createdMs: number
}

const FILE_VERSION = 1
const MAX_FILE_BYTES = 4096

/**
 * Reads the log key at `path`, or creates it when missing and `create` is set (default true).
 * @throws GatewayError `LOG_KEY_UNREADABLE`, `LOG_KEY_INVALID`, `LOG_KEY_INSECURE`.
 */
export async function loadOrCreateLogKey (path: string, options: { create?: boolean, nowMs?: number } = {}): Promise<GatewayLogKey> {
  const existing = await readLogKey(path)
  if (existing !== undefined) return existing
  if (options.create === false) throw new GatewayError('LOG_KEY_UNREADABLE', `cannot read log key ${path}: it does not exist`)
  const seed = generateSeed()
  const createdMs = options.nowMs ?? Date.now()
  const text = JSON.stringify({ v: FILE_VERSION, kind: 'edge-provenance/gateway-log-key', seed: toHex(seed), createdMs }) + '\n'
  try {
    await writeNewFile(path, text)
  } catch (cause) {
    // Two gateways starting on one folder: the first one's key wins.
    if ((cause as NodeJS.ErrnoException).code === 'EEXIST') return await loadOrCreateLogKey(path, { create: false })
    throw new GatewayError('LOG_KEY_UNREADABLE', `cannot write log key ${path}: ${(cause as Error).message}`, { cause })
  }
  const signer = createSigner(seed)
  return { signer, publicKey: signer.publicKey, createdMs }
}

async function readLogKey (path: string): Promise<GatewayLogKey | undefined> {
  const text = await readOwnerOnlyFile(path, {
    maxBytes: MAX_FILE_BYTES,
    what: 'log key',
    error: (problem, message, cause) => new GatewayError(LOG_KEY_CODES[problem], message, { cause })
  })
  if (text === undefined) return undefined
  let doc: { v?: unknown, seed?: unknown, createdMs?: unknown }
  try {
    doc = JSON.parse(text) as typeof doc
  } catch (cause) {
    throw new GatewayError('LOG_KEY_INVALID', `log key ${path} is not JSON`, { cause })
  }
  if (typeof doc !== 'object' || doc === null || doc.v !== FILE_VERSION || typeof doc.seed !== 'string' || !/^[0-9a-f]{64}$/.test(doc.seed) ||
    typeof doc.createdMs !== 'number' || !Number.isSafeInteger(doc.createdMs) || doc.createdMs < 0) {
    throw new GatewayError('LOG_KEY_INVALID', `log key ${path} is not a version ${FILE_VERSION} gateway log key`)
  }
  const signer = createSigner(fromHex(doc.seed))
  return { signer, publicKey: signer.publicKey, createdMs: doc.createdMs }
}

// Temp file, fsync, link (fails if the target exists), fsync the folder: a crash leaves no key or
// a whole one, and a key that exists is never replaced (acks already signed with it stay valid).
async function writeNewFile (path: string, text: string): Promise<void> {
  const dir = dirname(path)
  await fs.mkdir(dir, { recursive: true, mode: 0o700 })
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`)
  const handle = await fs.open(tmp, 'wx', 0o600)
  try {
    try {
      await handle.writeFile(text)
      await handle.sync()
    } finally {
      await handle.close()
    }
    await fs.link(tmp, path)
  } finally {
    await fs.rm(tmp, { force: true })
  }
  const d = await fs.open(dir, constants.O_RDONLY)
  try { await d.sync() } finally { await d.close() }
}
