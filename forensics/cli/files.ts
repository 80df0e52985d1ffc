/**
 * The file reads and writes of the `provenance` commands, with their errors: sizes checked before
 * a file is read (a huge input is refused before it is allocated), failures as IO_FAILED.
 */
import { readFile, stat, writeFile } from 'node:fs/promises'
import { ForensicsError } from '../errors.js'

/**
 * Reads a file after checking its size. `tooLarge` makes the error for a file over `maxBytes`
 * (default: ForensicsError LINEAGE_INPUT_TOO_LARGE).
 * @throws ForensicsError IO_FAILED, or what `tooLarge` returns
 */
export async function readBounded (path: string, maxBytes: number, tooLarge?: (message: string) => Error): Promise<Uint8Array> {
  let size: number
  try {
    const s = await stat(path)
    if (!s.isFile()) throw new ForensicsError('IO_FAILED', `${path} is not a file`)
    size = s.size
  } catch (e) {
    if (e instanceof ForensicsError) throw e
    throw new ForensicsError('IO_FAILED', `cannot read ${path}: ${(e as Error).message}`, { cause: e })
  }
  if (size > maxBytes) {
    const message = `${path} has ${size} bytes, at most ${maxBytes}`
    throw tooLarge?.(message) ?? new ForensicsError('LINEAGE_INPUT_TOO_LARGE', message)
  }
  try {
    return await readFile(path)
  } catch (e) {
    throw new ForensicsError('IO_FAILED', `cannot read ${path}: ${(e as Error).message}`, { cause: e })
  }
}

/** @throws ForensicsError IO_FAILED */
export async function writeOut (path: string, text: string): Promise<void> {
  try {
    await writeFile(path, text)
  } catch (e) {
    throw new ForensicsError('IO_FAILED', `cannot write ${path}: ${(e as Error).message}`, { cause: e })
  }
}
