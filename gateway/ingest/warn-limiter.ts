/**
 * Rate limit for the warnings that hostile input can cause (quarantine, dropped records): a flood
 * of made-up ids must not become a flood of log lines, nor block the event loop on a full stdout
 * pipe. The metrics count every case; the log keeps a sample and says how many it left out.
 */
import type { Logger } from '../../common/logger.js'

/** Warnings logged per second before the rest are only counted. */
export const DEFAULT_WARNINGS_PER_SECOND = 20

export class WarnLimiter {
  private windowStartMs = -Infinity
  private inWindow = 0
  private suppressed = 0

  constructor (
    private readonly logger: Logger,
    private readonly now: () => number,
    private readonly perSecond = DEFAULT_WARNINGS_PER_SECOND
  ) {}

  warn (fields: Record<string, unknown>, message: string): void {
    const now = this.now()
    if (now - this.windowStartMs >= 1000) {
      if (this.suppressed > 0) this.logger.warn({ suppressed: this.suppressed }, 'warnings left out of the log (rate limited; the metrics count every case)')
      this.windowStartMs = now
      this.inWindow = 0
      this.suppressed = 0
    }
    if (this.inWindow++ < this.perSecond) this.logger.warn(fields, message)
    else this.suppressed++
  }
}
