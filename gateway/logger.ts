/**
 * The logger seam of the gateway: pino-compatible methods taking a fields object first. The CLI
 * passes a pino logger (JSON lines); library users pass theirs or get silence.
 */
export interface GatewayLogger {
  debug: (fields: object, message?: string) => void
  info: (fields: object, message?: string) => void
  warn: (fields: object, message?: string) => void
  error: (fields: object, message?: string) => void
}

export const SILENT_LOGGER: GatewayLogger = { debug () {}, info () {}, warn () {}, error () {} }
