/** Ingest: the record pipeline, the chain rules it applies, quarantine reasons, MQTT and the embedded broker. */
export {
  IngestPipeline, type IngestPipelineOptions, type IngestCounters, type IngestMemory, type DeviceStatus, type OpenGap, type ParkRefusal
} from './pipeline.js'
export { WAITING_RECORD_OVERHEAD_BYTES } from './device-state.js'
export { linkRecords, type LinkResult, type LinkFailure, type LinkFailureReason } from './chain-link.js'
export { QUARANTINE_REASONS, type QuarantineReason } from './quarantine.js'
export { MqttIngest, setNoDelay, type MqttIngestOptions } from './mqtt-ingest.js'
export { VerifyPool, DEFAULT_VERIFY_WORKERS, DEFAULT_VERIFY_MAX_QUEUED, DEFAULT_VERIFY_BATCH_MAX, type VerifyPoolOptions, type VerifyPoolStats } from './verify-pool.js'
export { startEmbeddedBroker, type EmbeddedBroker } from './embedded-broker.js'
export { createPeerAckReader, type PeerAckReader, type PeerAckReaderOptions } from './ack-verify.js'
