export { Uplink, DEFAULT_UPLINK_BATCH_RECORDS, DEFAULT_MAX_IN_FLIGHT_BATCHES, type UplinkOptions, type UplinkStatus } from './uplink.js'
