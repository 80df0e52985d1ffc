/** Retention at the gateway: pruning anchored records past the retention period, with signed statements. */
export {
  Pruner, checkRetentionDays, MIN_RETENTION_DAYS, DEFAULT_RETENTION_DAYS, DAY_MS, MAX_PRUNINGS_PER_SEAL,
  type PrunerOptions, type PruneRequest, type PruneResult
} from './pruner.js'
