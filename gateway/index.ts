/**
 * Public API of the fleet gateway: the Gateway and its options, the seams it is built from (key
 * directory, store, pipeline, batching, proofs, HTTP API), quarantine reasons and errors.
 */
export { Gateway, type GatewayHealth } from './gateway.js'
export {
  resolveGatewayOptions, GATEWAY_NAME_PATTERN,
  DEFAULT_MQTT_PROTOCOL_VERSION, DEFAULT_SESSION_EXPIRY_SECONDS, DEFAULT_RECONNECT_PERIOD_MS, DEFAULT_MAX_PAYLOAD_BYTES,
  DEFAULT_QUARANTINE_MAX_RAW_BYTES, DEFAULT_QUARANTINE_MAX_ENTRIES, DEFAULT_MAX_PENDING_PER_DEVICE, DEFAULT_GAP_REPORT_AFTER_MS, DEFAULT_MAX_BACKLOG_RECORDS,
  DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT, DEFAULT_ANCHOR_CONFIRMATIONS, DEFAULT_ANCHOR_POLL_INTERVAL_MS,
  DEFAULT_BATCH_MAX_AGE_MS, DEFAULT_BATCH_MAX_RECORDS, DEFAULT_KEY_CACHE_TTL_MS, DEFAULT_UNKNOWN_KEY_CACHE_TTL_MS,
  type GatewayOptions, type ResolvedGatewayOptions
} from './options.js'
export { defaultGatewayId } from './options.js'
export {
  DEFAULT_HTTP_AUTH, HTTP_TOKEN_FILE, MIN_HTTP_TOKEN_CHARS, DEFAULT_HTTP_MAX_PAGE_BYTES, DEFAULT_HTTP_MAX_HEADER_BYTES,
  DEFAULT_HTTP_REQUEST_TIMEOUT_MS, DEFAULT_HTTP_MAX_CONNECTIONS, DEFAULT_HTTP_MAX_CONCURRENT_PAGES, type HttpAuth
} from './options.js'
export {
  DEFAULT_MAX_PENDING_BYTES_PER_DEVICE, DEFAULT_MAX_PENDING_BYTES_TOTAL, DEFAULT_MAX_BACKLOG_BYTES, DEFAULT_DRAIN_CHUNK_BYTES,
  DEFAULT_KEY_CACHE_MAX_BYTES, DEFAULT_UNKNOWN_KEY_CACHE_MAX_ENTRIES, DEFAULT_KEY_LOOKUPS_PER_SECOND, DEFAULT_KEY_LOOKUP_BURST
} from './options.js'
export { GatewayError, type GatewayErrorCode } from './errors.js'
export { SILENT_LOGGER, type GatewayLogger } from './logger.js'
export type { Logger } from '../common/logger.js'
export {
  RegistryKeyDirectory, DEFAULT_KEY_CACHE_MAX_DEVICES, DEFAULT_KEY_REFRESH_MIN_INTERVAL_MS,
  type KeyAnswer, type KeyDirectory, type RegistryKeyDirectoryOptions
} from './keys/index.js'
export { loadOrCreateLogKey, type GatewayLogKey } from './keys/index.js'
export { createPeerAckReader, type PeerAckReader, type PeerAckReaderOptions } from './ingest/index.js'
export { cachedBytesOf, type KeyDirectoryStats } from './keys/index.js'
export {
  IngestPipeline, linkRecords, QUARANTINE_REASONS, MqttIngest, setNoDelay, startEmbeddedBroker,
  type IngestPipelineOptions, type IngestCounters, type DeviceStatus, type OpenGap, type LinkResult, type LinkFailure,
  type LinkFailureReason, type QuarantineReason, type MqttIngestOptions, type EmbeddedBroker
} from './ingest/index.js'
export { WAITING_RECORD_OVERHEAD_BYTES, type IngestMemory, type ParkRefusal } from './ingest/index.js'
export {
  Batcher, AnchoredTracker, ProofService, formatRecordProof, recordProofJson, anchorExtra,
  type BatcherOptions, type LeafPlace, type RecordProof, type ProofLookup, type AnchorReader
} from './batch/index.js'
export {
  LevelGatewayStore, type GatewayStore, type GatewayStoreOptions, type DeviceTip, type StoredDeviceState, type LeafEntry, type StoredBatch,
  type StoredRecord, type QuarantineEntry
} from './store/index.js'
export {
  startApiServer, loadOrCreateApiToken, GatewayMetrics, MAX_PAGE_ITEMS, MAX_TARGET_CHARS,
  type ApiBackend, type ApiServer, type ApiServerOptions, type Page
} from './http/index.js'
export { runCli, type CliIo } from './cli.js'
