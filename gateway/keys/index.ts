/** Device keys for verification: the KeyDirectory seam and its registry-backed, cached implementation. */
export {
  RegistryKeyDirectory, DEFAULT_KEY_CACHE_TTL_MS, DEFAULT_UNKNOWN_KEY_CACHE_TTL_MS, DEFAULT_KEY_CACHE_MAX_DEVICES,
  DEFAULT_KEY_REFRESH_MIN_INTERVAL_MS, type KeyAnswer, type KeyDirectory, type RegistryKeyDirectoryOptions
} from './key-directory.js'
