/**
 * The agent CLI's logger: common's factory (JSON lines on stderr, the format of every service), with
 * the pino instance beside the seam for the few callers that need pino itself.
 */
import { pino, type Logger as PinoLogger } from 'pino'
import { createLogger as createServiceLogger } from '../../common/log-factory.js'
import type { Logger, LogLevel } from '../../common/logger.js'

/** A pino logger on file descriptor `fd` (default 2, stderr). */
export function createLogger (level: LogLevel, fd = 2): Logger & { pino: PinoLogger } {
  const logger = createServiceLogger({ service: 'provenance-agent', level, destination: pino.destination({ dest: fd, sync: true }) })
  return {
    pino: logger,
    info: (o, m) => { logger.info(o, m) },
    warn: (o, m) => { logger.warn(o, m) },
    error: (o, m) => { logger.error(o, m) }
  }
}
