/**
 * Keys: the device keys for verification (the KeyDirectory seam and its registry-backed, cached
 * implementation) and the gateway's own log key that signs acks.
 */
export {
  RegistryKeyDirectory, DEFAULT_KEY_CACHE_TTL_MS, DEFAULT_UNKNOWN_KEY_CACHE_TTL_MS, DEFAULT_KEY_CACHE_MAX_DEVICES,
  DEFAULT_KEY_REFRESH_MIN_INTERVAL_MS, type KeyAnswer, type KeyDirectory, type RegistryKeyDirectoryOptions
} from './key-directory.js'
export { loadOrCreateLogKey, type GatewayLogKey } from './log-key.js'
