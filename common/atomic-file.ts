/**
 * Crash-safe file replacement for small state files (the agent's key file, accepted policy and
 * runtime info; the fleet CLI's broker files): write a temp file in the same folder, fsync it,
 * rename it over the target, fsync the folder. A crash leaves the old file or the new one, never a torn one.
 */
import { constants, promises as fs } from 'node:fs'
import { basename, dirname, join } from 'node:path'

export interface WriteFileAtomicOptions {
  /** Mode of the new file. Default 0o600: state files are for their owner only. */
  mode?: number
  /** Mode of the folder when it has to be created. Default 0o700. */
  dirMode?: number
}

/**
 * Replaces `path` with `data` atomically.
 * @throws the fs error (ENOENT, EACCES, ENOSPC …) after removing the temp file.
 */
export async function writeFileAtomic (path: string, data: Uint8Array | string, options: WriteFileAtomicOptions = {}): Promise<void> {
  const dir = dirname(path)
  await fs.mkdir(dir, { recursive: true, mode: options.dirMode ?? 0o700 })
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2, 8)}.tmp`)
  const handle = await fs.open(tmp, 'wx', options.mode ?? 0o600)
  try {
    try {
      await handle.writeFile(data)
      await handle.sync()
    } finally {
      await handle.close()
    }
    await fs.rename(tmp, path)
  } catch (e) {
    await fs.rm(tmp, { force: true })
    throw e
  }
  await syncDir(dir)
}

/** fsyncs a folder so a rename or link inside it survives power loss. */
export async function syncDir (dir: string): Promise<void> {
  const handle = await fs.open(dir, constants.O_RDONLY)
  try { await handle.sync() } finally { await handle.close() }
}
