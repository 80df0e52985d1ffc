export { RecordLog, recordKey, DEFAULT_MAX_BATCH_RECORDS, type RecordLogOptions, type LogHead } from './record-log.js'
