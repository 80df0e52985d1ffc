/** The gateway's durable state on LevelDB: records, tips, waiting records, batches, quarantine. */
export {
  GatewayStore, LevelGatewayStore, GroupCommitStore, keys as storeKeys, storeOps, encodeDeviceState, decodeDeviceState, encodeStoredRecord, decodeStoredRecord,
  encodeLeaf, decodeLeaf, encodeBatch, decodeBatch, encodeQuarantine, decodeQuarantine, encodeTreeTip, decodeTreeTip, encodePruning, decodePruning,
  type GatewayStoreOptions, type StoreWriterOptions, type DeviceTip, type StoredDeviceState, type LeafEntry, type StoredBatch, type StoredRecord,
  type QuarantineEntry, type StoredTreeTip, type StoredPruning, type StoreOp, type WriteHook, type RecordLeafInfo
} from './gateway-store.js'
export {
  PostgresGatewayStore, isTransientPgError, checkFence, DEFAULT_PG_POOL_SIZE, type PostgresStoreOptions, type Fence, type RecordConflict, type TipRow, type SealInput, type SealOutput
} from './postgres/postgres-store.js'
export { migrate, MIGRATIONS, type Migration } from './postgres/migrations.js'
export { Lease, DEFAULT_LEASE_TTL_MS, SEQUENCER_LEASE, type LeaseOptions } from './postgres/lease.js'
export { PgAnchorStateStore } from './postgres/anchor-state.js'
