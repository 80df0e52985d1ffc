/** The HTTP side of the gateway: proof, status, health and metrics endpoints, and the metrics themselves. */
export { startApiServer, type ApiBackend, type ApiServer } from './api-server.js'
export { GatewayMetrics } from './metrics.js'
