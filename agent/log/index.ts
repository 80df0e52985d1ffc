export { RecordLog, recordKey, DEFAULT_MAX_BATCH_RECORDS, DEFAULT_DROP_FRACTION, type RecordLogOptions, type LogHead, type LogStats, type BudgetMode } from './record-log.js'
