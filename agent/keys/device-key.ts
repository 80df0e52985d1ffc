/**
 * The device's secrets: the Ed25519 signing seed and the salt secret for tensor commitments, plus
 * the history of the device's public keys with the time each became valid (for verifiers after a
 * rotation). Generated on first start, written atomically with mode 0600, refused when readable
 * by others, and never logged.
 */
import { randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import { dirname, join } from 'node:path'
import { createSigner, equalBytes, fromHex, toHex, type Signer } from '../../protocol/index.js'
import { AgentError } from '../errors.js'
import { syncDir, writeFileAtomic } from '../../common/atomic-file.js'
import { readOwnerOnlyFile } from '../../common/secret-file.js'
import { KeyError } from './errors.js'

/** One public key of the device and the device time from which it signs. */
export interface KeyPeriod {
  publicKey: Uint8Array
  /** Unix ms; the first key's is 0 (valid from the start of the log). */
  validFromMs: number
}

export interface DeviceKey {
  signer: Signer
  publicKey: Uint8Array
  /** Secret from which every record's tensor-commitment salt is derived (kept across rotations). */
  saltSecret: Uint8Array
  createdMs: number
  /** Every public key the device has used, oldest first; the last one is `publicKey`. */
  history: KeyPeriod[]
}

/** A rotation whose record may not be in the log yet (see KeyRing.recover). */
export interface PendingRotation {
  /** Seed of the key that signs the rotation record; discarded once the record is durable. */
  previousSeed: Uint8Array
  /** Seq the rotation record was to get. */
  rotationSeq: number
}

/** The content of a key file, secrets included. Internal to agent/keys. */
export interface KeyFileContent {
  seed: Uint8Array
  saltSecret: Uint8Array
  createdMs: number
  history: KeyPeriod[]
  pending?: PendingRotation
}

const FILE_VERSION = 2
const MAX_KEY_FILE_BYTES = 64 * 1024
/** Most keys one file keeps: far beyond any sane rotation schedule, small enough to bound the file. */
export const MAX_KEY_HISTORY = 256

/**
 * Reads the device key at `path`, or creates it when the file does not exist and `create` is set.
 * @throws AgentError `KEY_UNREADABLE` (missing without create, or an fs error), `KEY_INVALID`
 *   (malformed content), `KEY_INSECURE` (group or other may read it); KeyError
 *   `KEY_ROTATION_PENDING` (an interrupted rotation: open the file with KeyRing, which finishes it).
 */
export async function loadOrCreateDeviceKey (path: string, options: { create?: boolean, nowMs?: number } = {}): Promise<DeviceKey> {
  const content = await readKeyFile(path) ?? (options.create === true ? await createKeyFile(path, options.nowMs ?? Date.now()) : undefined)
  if (content === undefined) throw new AgentError('KEY_UNREADABLE', `cannot read key file ${path}: it does not exist`)
  if (content.pending !== undefined) {
    throw new KeyError('KEY_ROTATION_PENDING', `key file ${path} holds an interrupted key rotation; start the agent (\`provenance-agent start\` settles it) before using the key`)
  }
  return deviceKeyOf(content)
}

/** The DeviceKey view of a key file's content. */
export function deviceKeyOf (content: KeyFileContent): DeviceKey {
  const signer = createSigner(content.seed)
  return { signer, publicKey: signer.publicKey, saltSecret: content.saltSecret, createdMs: content.createdMs, history: content.history.map(copyPeriod) }
}

/**
 * Reads and validates a key file; undefined when it does not exist.
 * @throws AgentError `KEY_UNREADABLE`, `KEY_INVALID`, `KEY_INSECURE`.
 */
export async function readKeyFile (path: string): Promise<KeyFileContent | undefined> {
  const text = await readOwnerOnlyFile(path, {
    maxBytes: MAX_KEY_FILE_BYTES,
    what: 'key file',
    error: (problem, message, cause) => new AgentError(KEY_FILE_CODES[problem], message, { cause })
  })
  return text === undefined ? undefined : parseKeyFile(text, path)
}

const KEY_FILE_CODES = { insecure: 'KEY_INSECURE', invalid: 'KEY_INVALID', unreadable: 'KEY_UNREADABLE' } as const

/**
 * Replaces the key file atomically (mode 0600).
 * @throws AgentError `KEY_UNREADABLE` when the file cannot be written.
 */
export async function writeKeyFile (path: string, content: KeyFileContent): Promise<void> {
  try {
    await writeFileAtomic(path, serializeKeyFile(content), { mode: 0o600 })
  } catch (cause) {
    throw new AgentError('KEY_UNREADABLE', `cannot write key file ${path}: ${(cause as Error).message}`, { cause })
  }
}

function serializeKeyFile (c: KeyFileContent): string {
  return JSON.stringify({
    v: FILE_VERSION,
    seed: toHex(c.seed),
    saltSecret: toHex(c.saltSecret),
    createdMs: c.createdMs,
    history: c.history.map(h => ({ publicKey: toHex(h.publicKey), validFromMs: h.validFromMs })),
    ...(c.pending !== undefined ? { pending: { previousSeed: toHex(c.pending.previousSeed), rotationSeq: c.pending.rotationSeq } } : {})
  }) + '\n'
}

function parseKeyFile (text: string, path: string): KeyFileContent {
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (cause) {
    throw new AgentError('KEY_INVALID', `key file ${path} is not JSON`, { cause })
  }
  const d = doc as { v?: unknown, seed?: unknown, saltSecret?: unknown, createdMs?: unknown, history?: unknown, pending?: { previousSeed?: unknown, rotationSeq?: unknown } | null } | null
  const hex64 = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v)
  const uint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
  const problems: string[] = []
  if (d?.v !== 1 && d?.v !== FILE_VERSION) problems.push('v')
  if (!hex64(d?.seed)) problems.push('seed')
  if (!hex64(d?.saltSecret)) problems.push('saltSecret')
  if (typeof d?.createdMs !== 'number') problems.push('createdMs')
  if (problems.length > 0 || d === null) throw new AgentError('KEY_INVALID', `key file ${path}: bad field(s) ${problems.join(', ')}`)
  const seed = fromHex(d.seed as string)
  const publicKey = createSigner(seed).publicKey
  // Version 1 files predate rotation: their one key has always been valid.
  if (d.v === 1) return { seed, saltSecret: fromHex(d.saltSecret as string), createdMs: d.createdMs as number, history: [{ publicKey, validFromMs: 0 }] }

  const history: KeyPeriod[] = []
  if (!Array.isArray(d.history) || d.history.length === 0 || d.history.length > MAX_KEY_HISTORY) {
    problems.push(`history: not an array of 1..${MAX_KEY_HISTORY} keys`)
  } else {
    d.history.forEach((h: { publicKey?: unknown, validFromMs?: unknown } | null, i) => {
      if (!hex64(h?.publicKey)) problems.push(`history[${i}].publicKey`)
      if (!uint(h?.validFromMs)) problems.push(`history[${i}].validFromMs`)
      else if (i === 0 && h?.validFromMs !== 0) problems.push('history[0].validFromMs: the first key is valid from 0')
      else if (i > 0 && (history[i - 1]?.validFromMs ?? Infinity) >= h?.validFromMs) problems.push(`history[${i}].validFromMs: not after history[${i - 1}]`)
      history.push({ publicKey: hex64(h?.publicKey) ? fromHex(h?.publicKey) : new Uint8Array(32), validFromMs: uint(h?.validFromMs) ? h?.validFromMs : 0 })
    })
    const last = history[history.length - 1]
    if (last !== undefined && !equalBytes(last.publicKey, publicKey)) problems.push('history: the last key is not the key of seed')
  }
  let pending: PendingRotation | undefined
  if (d.pending !== undefined) {
    const p = d.pending
    if (!hex64(p?.previousSeed) || !uint(p?.rotationSeq)) {
      problems.push('pending')
    } else {
      pending = { previousSeed: fromHex(p.previousSeed), rotationSeq: p.rotationSeq }
      const before = history[history.length - 2]
      if (before === undefined || !equalBytes(before.publicKey, createSigner(pending.previousSeed).publicKey)) {
        problems.push('pending.previousSeed: not the key before the last one in history')
      }
    }
  }
  if (problems.length > 0) throw new AgentError('KEY_INVALID', `key file ${path}: bad field(s) ${problems.join(', ')}`)
  return {
    seed,
    saltSecret: fromHex(d.saltSecret as string),
    createdMs: d.createdMs as number,
    history,
    ...(pending !== undefined ? { pending } : {})
  }
}

/**
 * Creates a fresh key file exclusively: write, fsync, then link into place, so a crash leaves
 * either no key or a whole one, and two starting agents cannot mint two identities.
 */
async function createKeyFile (path: string, nowMs: number): Promise<KeyFileContent> {
  const seed = new Uint8Array(randomBytes(32))
  const content: KeyFileContent = {
    seed,
    saltSecret: new Uint8Array(randomBytes(32)),
    createdMs: nowMs,
    history: [{ publicKey: createSigner(seed).publicKey, validFromMs: 0 }]
  }
  try {
    await fs.mkdir(dirname(path), { recursive: true, mode: 0o700 })
  } catch (cause) {
    throw new AgentError('KEY_UNREADABLE', `cannot create the folder of key file ${path}: ${(cause as Error).message}`, { cause })
  }
  const tmp = join(dirname(path), `.device-key.${process.pid}.${Date.now()}.tmp`)
  let handle: fs.FileHandle
  try {
    handle = await fs.open(tmp, 'wx', 0o600)
  } catch (cause) {
    throw new AgentError('KEY_UNREADABLE', `cannot create key file ${path}: ${(cause as Error).message}`, { cause })
  }
  try {
    await handle.writeFile(serializeKeyFile(content))
    await handle.sync()
  } finally {
    await handle.close()
  }
  try {
    await fs.link(tmp, path)
  } catch (e) {
    await fs.rm(tmp, { force: true })
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      const other = await readKeyFile(path)
      if (other !== undefined) return other
    }
    throw new AgentError('KEY_UNREADABLE', `cannot create key file ${path}: ${(e as Error).message}`, { cause: e })
  }
  await fs.rm(tmp, { force: true })
  await syncDir(dirname(path))
  return content
}

/**
 * Reads or creates the key file content (secrets included; for KeyRing).
 * @throws as {@link loadOrCreateDeviceKey}, but never `KEY_ROTATION_PENDING`.
 */
export async function loadOrCreateKeyFile (path: string, options: { create?: boolean, nowMs?: number } = {}): Promise<KeyFileContent> {
  const content = await readKeyFile(path) ?? (options.create === true ? await createKeyFile(path, options.nowMs ?? Date.now()) : undefined)
  if (content === undefined) throw new AgentError('KEY_UNREADABLE', `cannot read key file ${path}: it does not exist`)
  return content
}

function copyPeriod (p: KeyPeriod): KeyPeriod {
  return { publicKey: p.publicKey.slice(), validFromMs: p.validFromMs }
}
