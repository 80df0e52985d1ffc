/**
 * The folder of frozen incident captures, `<stateDir>/captures/`: written atomically (0600), listed
 * oldest first, read and deleted by name for upload. Names are `<frozenAtMs, 15 digits>-<first 16
 * hex of the file's SHA-256>.capture`, so a name can never be a path and equal content is one file.
 */
import { constants, promises as fs } from 'node:fs'
import { join } from 'node:path'
import { DEFAULT_CAPTURE_MAX_BYTES, sha256, toHex } from '../../protocol/index.js'
import { writeFileAtomic } from '../keys/index.js'
import { CaptureStoreError } from './errors.js'

export const CAPTURES_FOLDER = 'captures'
export const CAPTURE_FILE_PATTERN = /^(\d{15})-([0-9a-f]{16})\.capture$/

/** A frozen capture file as listed. */
export interface FrozenCaptureInfo {
  name: string
  path: string
  sizeBytes: number
  /** Device time of the freeze, Unix ms (from the name). */
  frozenAtMs: number
}

/** `<stateDir>/captures`. */
export function capturesDir (stateDir: string): string {
  return join(stateDir, CAPTURES_FOLDER)
}

/**
 * The name a capture's bytes are stored under.
 * @throws RangeError for a bad time.
 */
export function nameFrozenCapture (bytes: Uint8Array, frozenAtMs: number): string {
  if (!Number.isSafeInteger(frozenAtMs) || frozenAtMs < 0 || frozenAtMs >= 1e15) throw new RangeError(`bad frozenAtMs ${frozenAtMs}`)
  return `${String(frozenAtMs).padStart(15, '0')}-${toHex(sha256(bytes)).slice(0, 16)}.capture`
}

/**
 * Writes capture bytes atomically (temp file, fsync, rename, fsync folder), mode 0600, folder 0700.
 * @throws CaptureStoreError `CAPTURE_WRITE_FAILED`.
 */
export async function writeFrozenCapture (stateDir: string, bytes: Uint8Array, frozenAtMs: number): Promise<FrozenCaptureInfo> {
  const name = nameFrozenCapture(bytes, frozenAtMs)
  const path = join(capturesDir(stateDir), name)
  try {
    await writeFileAtomic(path, bytes, { mode: 0o600, dirMode: 0o700 })
  } catch (cause) {
    throw new CaptureStoreError('CAPTURE_WRITE_FAILED', `cannot write capture ${name}: ${(cause as Error).message}`, { cause })
  }
  return { name, path, sizeBytes: bytes.byteLength, frozenAtMs }
}

/**
 * The frozen captures waiting in `<stateDir>/captures/`, oldest first (temp files and foreign
 * names are ignored). A missing folder is an empty list.
 * @throws CaptureStoreError `CAPTURE_READ_FAILED`.
 */
export async function listFrozenCaptures (stateDir: string): Promise<FrozenCaptureInfo[]> {
  const dir = capturesDir(stateDir)
  let names: string[]
  try {
    names = await fs.readdir(dir)
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw new CaptureStoreError('CAPTURE_READ_FAILED', `cannot list ${dir}: ${(cause as Error).message}`, { cause })
  }
  const out: FrozenCaptureInfo[] = []
  for (const name of names.sort()) {
    const m = CAPTURE_FILE_PATTERN.exec(name)
    if (m === null) continue
    const path = join(dir, name)
    try {
      const st = await fs.lstat(path)
      if (!st.isFile()) continue
      out.push({ name, path, sizeBytes: st.size, frozenAtMs: Number(m[1]) })
    } catch (cause) {
      // Deleted between readdir and lstat (an upload finished): not an error.
      if ((cause as NodeJS.ErrnoException).code === 'ENOENT') continue
      throw new CaptureStoreError('CAPTURE_READ_FAILED', `cannot stat ${path}: ${(cause as Error).message}`, { cause })
    }
  }
  return out
}

/**
 * The bytes of one frozen capture, for upload. The size is checked with fstat before reading.
 * @throws CaptureStoreError `CAPTURE_NAME_INVALID`, `CAPTURE_NOT_FOUND`, `CAPTURE_READ_FAILED`.
 */
export async function readFrozenCapture (stateDir: string, name: string, options: { maxBytes?: number } = {}): Promise<Uint8Array> {
  const path = pathOf(stateDir, name)
  const maxBytes = options.maxBytes ?? DEFAULT_CAPTURE_MAX_BYTES
  let handle: fs.FileHandle
  try {
    // O_NOFOLLOW: the folder is ours; a symlink planted in it must not make us upload another file.
    handle = await fs.open(path, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0))
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code === 'ENOENT' ? 'CAPTURE_NOT_FOUND' : 'CAPTURE_READ_FAILED'
    throw new CaptureStoreError(code, `cannot open capture ${name}: ${(cause as Error).message}`, { cause })
  }
  try {
    const st = await handle.stat()
    if (!st.isFile()) throw new CaptureStoreError('CAPTURE_READ_FAILED', `capture ${name} is not a regular file`)
    if (st.size > maxBytes) throw new CaptureStoreError('CAPTURE_READ_FAILED', `capture ${name} has ${st.size} bytes, more than ${maxBytes}`)
    const bytes = new Uint8Array(st.size)
    let filled = 0
    while (filled < st.size) {
      const { bytesRead } = await handle.read(bytes, filled, st.size - filled, filled)
      if (bytesRead === 0) throw new CaptureStoreError('CAPTURE_READ_FAILED', `capture ${name} shrank while being read`)
      filled += bytesRead
    }
    return bytes
  } catch (cause) {
    if (cause instanceof CaptureStoreError) throw cause
    throw new CaptureStoreError('CAPTURE_READ_FAILED', `cannot read capture ${name}: ${(cause as Error).message}`, { cause })
  } finally {
    await handle.close().catch(() => undefined)
  }
}

/**
 * Deletes one frozen capture (after a confirmed upload). Deleting one that is gone is not an error.
 * @throws CaptureStoreError `CAPTURE_NAME_INVALID`, `CAPTURE_WRITE_FAILED`.
 */
export async function deleteFrozenCapture (stateDir: string, name: string): Promise<void> {
  const path = pathOf(stateDir, name)
  try {
    await fs.rm(path, { force: true })
  } catch (cause) {
    throw new CaptureStoreError('CAPTURE_WRITE_FAILED', `cannot delete capture ${name}: ${(cause as Error).message}`, { cause })
  }
}

function pathOf (stateDir: string, name: string): string {
  if (typeof name !== 'string' || !CAPTURE_FILE_PATTERN.test(name)) {
    throw new CaptureStoreError('CAPTURE_NAME_INVALID', 'not a capture name (<15 digits>-<16 hex>.capture)')
  }
  return join(capturesDir(stateDir), name)
}
