/**
 * Secrets for CLIs: from a file readable by its owner only, or from an environment variable that
 * only the CLI reads (STYLE.md §7). Values are never echoed, even when malformed.
 */
import { constants, promises as fs } from 'node:fs'
import { CommonError } from './errors.js'

/** Largest secret file read: keys are a few dozen bytes. */
export const MAX_SECRET_FILE_BYTES = 64 * 1024

export interface ReadSecretOptions {
  /** Path given on the command line (wins over the environment). */
  file?: string
  /** Environment variable read when no file is given. */
  envName?: string
  env?: Readonly<Record<string, string | undefined>>
  /** What the secret is, for messages ("deployer key"). */
  what: string
  /** Option that names the file, for messages ("--key-file"). */
  fileOption?: string
}

/**
 * The secret, trimmed, from `file` (refused unless mode 0600 or stricter) or `env[envName]`.
 * @throws CommonError `SECRET_MISSING`, `SECRET_UNREADABLE`, `SECRET_INSECURE`.
 */
export async function readSecret (options: ReadSecretOptions): Promise<string> {
  const { file, envName, env = {}, what } = options
  if (file !== undefined) {
    let handle: fs.FileHandle
    try {
      handle = await fs.open(file, constants.O_RDONLY)
    } catch (e) {
      throw new CommonError('SECRET_UNREADABLE', `cannot read ${what} file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e })
    }
    try {
      const stat = await handle.stat()
      // A key that others can read is already leaked: refuse it so the operator fixes the mode.
      if ((stat.mode & 0o077) !== 0) {
        throw new CommonError('SECRET_INSECURE', `${what} file ${file} has mode ${(stat.mode & 0o777).toString(8)}: it must be readable by its owner only (chmod 600)`)
      }
      if (!stat.isFile() || stat.size > MAX_SECRET_FILE_BYTES) throw new CommonError('SECRET_UNREADABLE', `${what} file ${file} is not a small regular file`)
      return (await handle.readFile('utf8')).trim()
    } finally {
      await handle.close()
    }
  }
  const value = envName !== undefined ? env[envName]?.trim() : undefined
  if (value === undefined || value === '') {
    const ways = [options.fileOption !== undefined ? `pass ${options.fileOption}` : undefined, envName !== undefined ? `set ${envName}` : undefined].filter(w => w !== undefined)
    throw new CommonError('SECRET_MISSING', `no ${what}: ${ways.join(' or ')}`)
  }
  return value
}

/** Why {@link readOwnerOnlyFile} refused a file: callers map it to their own error codes. */
export type OwnerOnlyFileProblem = 'insecure' | 'invalid' | 'unreadable'

export interface ReadOwnerOnlyFileOptions {
  /** Largest size read; a larger file is `invalid` before any byte is read. */
  maxBytes: number
  /** What the file is, for messages ("key file", "log key"). */
  what: string
  /** Makes the caller's error for a problem (its class and code). */
  error: (problem: OwnerOnlyFileProblem, message: string, cause?: unknown) => Error
}

/**
 * The UTF-8 text of a small key file readable by its owner only; undefined when it does not
 * exist. Mode and size are checked on the open handle, so the file read is the file checked.
 * @throws whatever `options.error` makes: `insecure` (group or others may read it), `invalid`
 *   (larger than `maxBytes`), `unreadable` (not a regular file, or any other I/O failure).
 */
export async function readOwnerOnlyFile (path: string, options: ReadOwnerOnlyFileOptions): Promise<string | undefined> {
  const { maxBytes, what, error } = options
  let handle: fs.FileHandle
  try {
    handle = await fs.open(path, constants.O_RDONLY)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error('unreadable', `cannot read ${what} ${path}: ${(e as Error).message}`, e)
  }
  try {
    const stat = await handle.stat()
    // A key that others can read is already leaked: refuse it so the operator fixes the mode.
    if ((stat.mode & 0o077) !== 0) {
      throw error('insecure', `${what} ${path} has mode ${(stat.mode & 0o777).toString(8)}: it must be readable by its owner only (chmod 600)`)
    }
    if (!stat.isFile()) throw error('unreadable', `cannot read ${what} ${path}: not a regular file`)
    if (stat.size > maxBytes) throw error('invalid', `${what} ${path} is ${stat.size} bytes, not a key file`)
    try {
      return await handle.readFile('utf8')
    } catch (e) {
      throw error('unreadable', `cannot read ${what} ${path}: ${(e as Error).message}`, e)
    }
  } finally {
    await handle.close()
  }
}

/**
 * A 32-byte secret written as 64 hex digits (optionally 0x-prefixed), as lower-case hex without prefix.
 * @throws CommonError `SECRET_INVALID`.
 */
export function parseHexSecret32 (value: string, what: string): string {
  const hex = value.trim().replace(/^0x/i, '')
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new CommonError('SECRET_INVALID', `${what} must be 32 bytes written as 64 hex digits`)
  return hex.toLowerCase()
}
