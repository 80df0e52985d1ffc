/** The HTTP side of the gateway: proof, status, health and metrics endpoints, and the metrics themselves. */
export { startApiServer, MAX_PAGE_ITEMS, MAX_TARGET_CHARS, type ApiBackend, type ApiServer, type ApiServerOptions, type Page } from './api-server.js'
export { loadOrCreateApiToken } from './api-token.js'
export { GatewayMetrics } from './metrics.js'
