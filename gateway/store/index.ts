/** The gateway's durable state on LevelDB: records, tips, waiting records, batches, quarantine. */
export {
  GatewayStore, keys as storeKeys, storeOps, encodeDeviceState, decodeDeviceState, encodeStoredRecord, decodeStoredRecord,
  encodeLeaf, decodeLeaf, encodeBatch, decodeBatch, encodeQuarantine, decodeQuarantine, encodeTreeTip, decodeTreeTip, encodePruning, decodePruning,
  type GatewayStoreOptions, type DeviceTip, type StoredDeviceState, type LeafEntry, type StoredBatch, type StoredRecord,
  type QuarantineEntry, type StoredTreeTip, type StoredPruning, type StoreOp, type WriteHook
} from './gateway-store.js'
