/**
 * The device's secrets: the Ed25519 signing seed and the salt secret for tensor commitments.
 * Generated on first start, written atomically with mode 0600, refused when readable by others,
 * and never logged.
 */
import { randomBytes } from 'node:crypto'
import { constants, promises as fs } from 'node:fs'
import { dirname, join } from 'node:path'
import { createSigner, toHex, type Signer } from '../../protocol/index.js'
import { AgentError } from '../errors.js'

export interface DeviceKey {
  signer: Signer
  publicKey: Uint8Array
  /** Secret from which every record's tensor-commitment salt is derived. */
  saltSecret: Uint8Array
  createdMs: number
}

const FILE_VERSION = 1
const MAX_KEY_FILE_BYTES = 4096

/**
 * Reads the device key at `path`, or creates it when the file does not exist and `create` is set.
 * @throws AgentError `KEY_UNREADABLE` (missing without create, or an fs error), `KEY_INVALID`
 *   (malformed content), `KEY_INSECURE` (group or other may read it).
 */
export async function loadOrCreateDeviceKey (path: string, options: { create?: boolean, nowMs?: number } = {}): Promise<DeviceKey> {
  let text: string
  try {
    const handle = await fs.open(path, constants.O_RDONLY)
    try {
      const stat = await handle.stat()
      if ((stat.mode & 0o077) !== 0) {
        throw new AgentError('KEY_INSECURE', `key file ${path} has mode ${(stat.mode & 0o777).toString(8)}: it must be readable by its owner only (chmod 600)`)
      }
      if (stat.size > MAX_KEY_FILE_BYTES) throw new AgentError('KEY_INVALID', `key file ${path} is ${stat.size} bytes, not a key file`)
      text = await handle.readFile('utf8')
    } finally {
      await handle.close()
    }
  } catch (e) {
    if (e instanceof AgentError) throw e
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && options.create === true) return await createDeviceKey(path, options.nowMs ?? Date.now())
    throw new AgentError('KEY_UNREADABLE', `cannot read key file ${path}: ${(e as Error).message}`, { cause: e })
  }
  return parseKeyFile(text, path)
}

function parseKeyFile (text: string, path: string): DeviceKey {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (cause) {
    throw new AgentError('KEY_INVALID', `key file ${path} is not JSON`, { cause })
  }
  const d = doc as { v?: unknown, seed?: unknown, saltSecret?: unknown, createdMs?: unknown }
  const hex64 = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v)
  const problems: string[] = []
  if (d?.v !== FILE_VERSION) problems.push('v')
  if (!hex64(d?.seed)) problems.push('seed')
  if (!hex64(d?.saltSecret)) problems.push('saltSecret')
  if (typeof d?.createdMs !== 'number') problems.push('createdMs')
  if (problems.length > 0) throw new AgentError('KEY_INVALID', `key file ${path}: bad field(s) ${problems.join(', ')}`)
  const signer = createSigner(new Uint8Array(Buffer.from(d.seed as string, 'hex')))
  return { signer, publicKey: signer.publicKey, saltSecret: new Uint8Array(Buffer.from(d.saltSecret as string, 'hex')), createdMs: d.createdMs as number }
}

async function createDeviceKey (path: string, nowMs: number): Promise<DeviceKey> {
  const seed = new Uint8Array(randomBytes(32))
  const saltSecret = new Uint8Array(randomBytes(32))
  const text = JSON.stringify({ v: FILE_VERSION, seed: toHex(seed), saltSecret: toHex(saltSecret), createdMs: nowMs }) + '\n'
  await fs.mkdir(dirname(path), { recursive: true, mode: 0o700 })
  // Write, fsync, then link into place: a crash leaves either no key or a whole one, and `wx`
  // on the final name keeps two starting agents from minting two identities.
  const tmp = join(dirname(path), `.device-key.${process.pid}.${Date.now()}.tmp`)
  const handle = await fs.open(tmp, 'wx', 0o600)
  try {
    await handle.writeFile(text)
    await handle.sync()
  } finally {
    await handle.close()
  }
  try {
    await fs.link(tmp, path)
  } catch (e) {
    await fs.rm(tmp, { force: true })
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return await loadOrCreateDeviceKey(path)
    throw new AgentError('KEY_UNREADABLE', `cannot create key file ${path}: ${(e as Error).message}`, { cause: e })
  }
  await fs.rm(tmp, { force: true })
  await syncDir(dirname(path))
  const signer = createSigner(seed)
  return { signer, publicKey: signer.publicKey, saltSecret, createdMs: nowMs }
}

async function syncDir (dir: string): Promise<void> {
  const handle = await fs.open(dir, constants.O_RDONLY)
  try { await handle.sync() } finally { await handle.close() }
}
