/** The MQTT uplink: store and forward, signed-ack checking, and message sizing to the broker's limit. */
export {
  Uplink, DEFAULT_UPLINK_BATCH_RECORDS, DEFAULT_MAX_IN_FLIGHT_BATCHES, REASON_SESSION_TAKEN_OVER, REASON_PACKET_TOO_LARGE,
  type UplinkOptions, type UplinkStatus, type UplinkBlocked
} from './uplink.js'
export { AckHandler, type AckHandlerOptions, type UplinkAckStatus } from './ack-handler.js'
export { AckChecker, type AckRejection, type AckDecision, type AckCheckerOptions } from './ack-check.js'
export { MQTT_MAX_PACKET_BYTES, publishPacketBytes, maxPayloadBytes, envelopesThatFit } from './packet-size.js'
