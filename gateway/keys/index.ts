/**
 * Keys: the device keys for verification (the KeyDirectory seam and its registry-backed, cached
 * implementation) and the gateway's own log key that signs acks.
 */
export {
  RegistryKeyDirectory, DEFAULT_KEY_CACHE_TTL_MS, DEFAULT_UNKNOWN_KEY_CACHE_TTL_MS, DEFAULT_KEY_CACHE_MAX_DEVICES,
  DEFAULT_KEY_CACHE_MAX_BYTES, DEFAULT_UNKNOWN_KEY_CACHE_MAX_ENTRIES, DEFAULT_KEY_LOOKUPS_PER_SECOND, DEFAULT_KEY_LOOKUP_BURST,
  DEFAULT_KEY_REFRESH_MIN_INTERVAL_MS, cachedBytesOf,
  type KeyAnswer, type KeyDirectory, type KeyDirectoryStats, type RegistryKeyDirectoryOptions
} from './key-directory.js'
export { loadOrCreateLogKey, type GatewayLogKey } from './log-key.js'
