/**
 * The CLI's logger: pino writing one JSON object per line to stderr, synchronously (a daemon that
 * exits right after logging loses nothing), which journald stores as it is.
 */
import { pino, type Logger as PinoLogger } from 'pino'
import type { Logger } from '../session/index.js'
import type { LogLevel } from './config.js'

/** A pino logger on file descriptor `fd` (default 2, stderr). */
export function createLogger (level: LogLevel, fd = 2): Logger & { pino: PinoLogger } {
  const logger = pino({
    level,
    base: { service: 'provenance-agent', pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) }
  }, pino.destination({ dest: fd, sync: true }))
  return {
    pino: logger,
    info: (o, m) => { logger.info(o, m) },
    warn: (o, m) => { logger.warn(o, m) },
    error: (o, m) => { logger.error(o, m) }
  }
}
