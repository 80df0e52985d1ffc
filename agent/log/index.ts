export { RecordLog, recordKey, DEFAULT_MAX_BATCH_RECORDS, DEFAULT_DROP_FRACTION, DEFAULT_RESERVE_BYTES, DEFAULT_WRITE_BUFFER_BYTES, defaultReserveBytes, type RecordLogOptions, type LogHead, type LogStats, type LogState, type BudgetMode } from './record-log.js'
export { SpaceReserve, RESERVE_FILE } from './space-reserve.js'
