/**
 * Spare buffers kept for reuse, by byte length, bounded twice: a few per length, and a total in
 * bytes across lengths. Reusing a buffer of a finished run for the next one spares V8 the garbage
 * (issue 11), but a pool bounded only per length grows with every new length it meets: a model
 * with dynamic input dimensions, fed tensors of ever other sizes through the daemon's API, made
 * it keep one of each for good. Over the byte bound, the lengths used least recently go first.
 */
export class SpareBuffers<T extends { readonly byteLength: number }> {
  /** Lists by byte length, the length used least recently first (Map order). */
  private readonly lists = new Map<number, T[]>()
  private held = 0

  /**
   * @param perLength most spares of one byte length
   * @param maxBytes most bytes of spares in all; a buffer larger than this is never kept
   * @throws RangeError when either is not a non-negative safe integer.
   */
  constructor (private readonly perLength: number, private readonly maxBytes: number) {
    if (!Number.isSafeInteger(perLength) || perLength < 0) throw new RangeError('perLength must be a non-negative integer')
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new RangeError('maxBytes must be a non-negative integer')
  }

  /** Bytes of the spares held now. */
  get heldBytes (): number {
    return this.held
  }

  /** A spare of exactly `byteLength` bytes, taken out of the pool, or undefined. */
  take (byteLength: number): T | undefined {
    const list = this.lists.get(byteLength)
    const spare = list?.pop()
    if (list === undefined || spare === undefined) return undefined
    this.held -= byteLength
    this.lists.delete(byteLength)
    // Still wanted: its length moves to the most recent end.
    if (list.length > 0) this.lists.set(byteLength, list)
    return spare
  }

  /**
   * Keeps `buffer` for a later take, unless its length has its share already or it alone is over
   * the byte bound; spares of the lengths used least recently are dropped to make room. The
   * caller must not use `buffer` again once given. Returns whether it was kept.
   */
  give (buffer: T): boolean {
    const n = buffer.byteLength
    if (n > this.maxBytes) return false
    const list = this.lists.get(n) ?? []
    if (list.length >= this.perLength) return false
    this.lists.delete(n)
    for (const [length, others] of this.lists) {
      if (this.held + n <= this.maxBytes) break
      this.held -= length * others.length
      this.lists.delete(length)
    }
    // Only spares of this very length are left and still too many bytes: drop some of them.
    while (this.held + n > this.maxBytes && list.length > 0) {
      list.pop()
      this.held -= n
    }
    list.push(buffer)
    this.held += n
    this.lists.set(n, list)
    return true
  }

  /** Whether a spare of exactly `byteLength` bytes is held (nothing is taken). */
  has (byteLength: number): boolean {
    return this.lists.has(byteLength)
  }

  /** Drops every spare. */
  clear (): void {
    this.lists.clear()
    this.held = 0
  }
}
