/**
 * Export of an incident bundle from the gateway's HTTP API and the chain.
 */
export { exportBundle, DEFAULT_EXPORT_CONCURRENCY, type ExportOptions, type ExportProgress } from './export-bundle.js'
export { GatewayClient, DEFAULT_GATEWAY_TIMEOUT_MS, DEFAULT_PAGE_LIMIT, type GatewayClientOptions, type RecordPage } from './gateway-client.js'
