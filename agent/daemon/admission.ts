/**
 * The API's budget of request body bytes in flight (#11): a request with a body is admitted only
 * while its bytes fit, so concurrent requests cannot multiply memory. Waiting requests are not
 * read (TCP backpressure holds their clients back), in arrival order, each for a bounded time.
 */

/**
 * Admission waits allowed, ms: 0 (refuse at once when full) up to 10 minutes; a client waiting
 * longer is better told to retry.
 */
export const ADMISSION_TIMEOUT_RANGE_MS = Object.freeze({ min: 0, max: 600_000 })
/**
 * Body timeouts allowed, ms: at least 100 ms (a setting near it refuses ordinary bodies on a
 * loaded device), at most 10 minutes (a stalled client holds its admitted bytes that long).
 */
export const BODY_TIMEOUT_RANGE_MS = Object.freeze({ min: 100, max: 600_000 })

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
