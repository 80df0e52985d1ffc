/**
 * The logger seam of every service. Library code takes a `Logger` (pino's shape: a fields object
 * first, a message second) and logs nothing by default; the bins build one with log-factory.ts, so
 * every service writes the same JSON lines to stderr. No pino here: --help and libraries stay light.
 */

/** One log call: structured fields first (never keys, tokens or tensor data), a message second. */
export type LogFn = (fields: object, message?: string) => void

/** What library code logs through; a pino logger is one. */
export interface Logger {
  info: LogFn
  warn: LogFn
  error: LogFn
  /** Optional: most seams log nothing at debug level. */
  debug?: LogFn
}

/** A logger that drops everything (the default of every library class). */
export const SILENT_LOGGER: Logger = { info () {}, warn () {}, error () {}, debug () {} }

/** The levels a service's `logLevel` may name, most severe first; `silent` logs nothing. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type LogLevel = typeof LOG_LEVELS[number]
