/**
 * The gateway's logger seam is common's Logger (pino's shape); these names stay for library users'
 * code written against the gateway's own interface before there was one for every service.
 */
import type { Logger } from '../common/logger.js'

export { SILENT_LOGGER } from '../common/logger.js'

/** @deprecated Use `Logger` (common/logger.ts): the one logger seam of every service. */
export type GatewayLogger = Logger
