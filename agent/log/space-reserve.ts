/**
 * A preallocated file that holds disk space back for the record log: released when the disk is
 * full so that LevelDB can reopen (recovery writes a new table, log and manifest) and the log can
 * write what it must (a signed gap record), and taken again once the disk has room.
 */
import { open, rm, stat, statfs } from 'node:fs/promises'
import { join } from 'node:path'

/** File name of the reserve inside the log folder (LevelDB ignores names it does not own). */
export const RESERVE_FILE = 'space.reserve'

const CHUNK_BYTES = 64 * 1024

export class SpaceReserve {
  readonly path: string
  readonly bytes: number

  constructor (dir: string, bytes: number) {
    this.path = join(dir, RESERVE_FILE)
    this.bytes = bytes
  }

  /** Bytes free to an unprivileged writer on the log's file system (Infinity if unknown). */
  async freeBytes (): Promise<number> {
    try {
      const s = await statfs(this.path.slice(0, -RESERVE_FILE.length - 1))
      return s.bavail * s.bsize
    } catch {
      return Infinity
    }
  }

  /** Gives the space back to the file system. */
  async release (): Promise<void> {
    await rm(this.path, { force: true })
  }

  /**
   * Takes the reserve again when the disk has room for it and as much again, so that taking it
   * does not itself leave the log on a full disk. Returns whether the reserve is held.
   */
  async take (): Promise<boolean> {
    if (this.bytes === 0) return true
    if (await sizeOf(this.path) >= this.bytes) return true
    if (await this.freeBytes() < 2 * this.bytes) return false
    try {
      await writeZeros(this.path, this.bytes)
      return true
    } catch {
      await this.release().catch(() => {})
      return false
    }
  }
}

async function sizeOf (path: string): Promise<number> {
  try {
    return (await stat(path)).size
  } catch {
    return -1
  }
}

// Written zeros, not a sparse file: a hole holds no space back (tmpfs and ext4 alike).
async function writeZeros (path: string, bytes: number): Promise<void> {
  const fh = await open(path, 'w', 0o600)
  try {
    const zeros = Buffer.alloc(Math.min(CHUNK_BYTES, bytes))
    for (let at = 0; at < bytes; at += zeros.byteLength) {
      await fh.write(zeros, 0, Math.min(zeros.byteLength, bytes - at), at)
    }
    await fh.sync()
  } finally {
    await fh.close()
  }
}
