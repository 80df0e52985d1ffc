/**
 * The one pino factory: every service's log format (docs/OPERATIONS.md §Logs). Kept apart from the
 * seam (logger.ts) so that code which only takes a Logger does not load pino.
 */
import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino'
import type { LogLevel } from './logger.js'

export interface CreateLoggerOptions {
  /** The `service` field of every line, e.g. `provenance-gateway`. */
  service: string
  /** Lowest level written. Default `info`. */
  level?: LogLevel
  /** More fields on every line (the gateway's name …). */
  base?: Record<string, unknown>
  /** Field paths pino replaces with `[Redacted]`: belt and braces for secrets. */
  redact?: string[]
  /** Where lines go. Default file descriptor 2 (stderr), written synchronously: a daemon that exits right after logging loses nothing. */
  destination?: DestinationStream
}

/**
 * The services' log format: one JSON object per line, `"level":"info"` (the label, not pino's
 * number), `"time"` in ISO 8601, `service` and `pid` on every line; journald stores it as it is.
 */
export function createLogger (options: CreateLoggerOptions): PinoLogger {
  return pino({
    level: options.level ?? 'info',
    base: { service: options.service, pid: process.pid, ...options.base },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    ...(options.redact !== undefined ? { redact: options.redact } : {})
  }, options.destination ?? pino.destination({ dest: 2, sync: true }))
}
