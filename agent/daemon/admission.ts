/**
 * The API's budget of request body bytes in flight (#11): a request with a body is admitted only
 * while its bytes fit, so concurrent requests cannot multiply memory. Waiting requests are not
 * read (TCP backpressure holds their clients back), in arrival order, each for a bounded time.
 */

/** A place in the budget; `release` gives the bytes back (once; later calls do nothing). */
export interface Admission { release: () => void }

interface Waiter { bytes: number, admit: () => void }

export class BodyBudget {
  private used = 0
  private readonly queue: Waiter[] = []

  /** @param maxBytes bytes of request bodies admitted at once; a request of more is admitted alone. */
  constructor (readonly maxBytes: number) {}

  /** Bytes admitted now. */
  get inFlightBytes (): number { return this.used }
  /** Requests waiting. */
  get waiting (): number { return this.queue.length }

  /**
   * Waits until `bytes` fit (first come, first served: a large request is not overtaken forever by
   * small ones). Resolves undefined when `signal` aborts first (timeout, client gone).
   */
  async admit (bytes: number, signal: AbortSignal): Promise<Admission | undefined> {
    if (signal.aborted) return undefined
    if (this.queue.length === 0 && this.fits(bytes)) return this.take(bytes)
    return await new Promise<Admission | undefined>(resolve => {
      const waiter: Waiter = {
        bytes,
        admit: () => {
          signal.removeEventListener('abort', onAbort)
          resolve(this.take(bytes))
        }
      }
      const onAbort = (): void => {
        const at = this.queue.indexOf(waiter)
        if (at !== -1) this.queue.splice(at, 1)
        // The head leaving may let the next ones in.
        this.drain()
        resolve(undefined)
      }
      signal.addEventListener('abort', onAbort, { once: true })
      this.queue.push(waiter)
    })
  }

  /** Whether `bytes` fit now; one request larger than the budget is admitted when nothing else is in. */
  private fits (bytes: number): boolean {
    return this.used === 0 || this.used + bytes <= this.maxBytes
  }

  private take (bytes: number): Admission {
    this.used += bytes
    let held = true
    return {
      release: () => {
        if (!held) return
        held = false
        this.used -= bytes
        this.drain()
      }
    }
  }

  private drain (): void {
    while (this.queue.length > 0 && this.fits((this.queue[0] as Waiter).bytes)) (this.queue.shift() as Waiter).admit()
  }
}

/**
 * Spare tensor buffers of finished API runs, reused by the next request of the same size: a fresh
 * ArrayBuffer per request outlives a young-generation collection (it is held across the run) and
 * then lingers as external memory until a full GC, one input's worth per request. Bounded by
 * bytes and per size; dropped after `idleMs` without a request, so an idle daemon holds none.
 */
export class TensorBufferPool {
  private readonly spare = new Map<number, ArrayBuffer[]>()
  private spareBytes = 0
  private timer: NodeJS.Timeout | undefined

  constructor (private readonly maxSpareBytes: number, private readonly perSize = 4, private readonly idleMs = 5_000) {}

  /** A buffer of `bytes` (zero-filled when new; a spare one holds a previous request's bytes, all of which the decoder overwrites). */
  take (bytes: number): ArrayBuffer {
    const list = this.spare.get(bytes)
    const found = list?.pop()
    if (found !== undefined) { this.spareBytes -= bytes; return found }
    return new ArrayBuffer(bytes)
  }

  /** Gives buffers back once nothing reads them any more (the run settled). */
  give (buffers: Iterable<ArrayBuffer>): void {
    for (const b of buffers) {
      const bytes = b.byteLength
      if (bytes === 0 || this.spareBytes + bytes > this.maxSpareBytes) continue
      let list = this.spare.get(bytes)
      if (list === undefined) { list = []; this.spare.set(bytes, list) }
      if (list.length >= this.perSize) continue
      list.push(b)
      this.spareBytes += bytes
    }
    if (this.spareBytes > 0) {
      this.timer?.refresh()
      if (this.timer === undefined) {
        this.timer = setTimeout(() => { this.timer = undefined; this.clear() }, this.idleMs)
        this.timer.unref()
      }
    }
  }

  /** Bytes held spare. */
  get bytes (): number { return this.spareBytes }

  clear (): void {
    this.spare.clear()
    this.spareBytes = 0
  }
}
