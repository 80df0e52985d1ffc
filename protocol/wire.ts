/**
 * The MQTT layout, version 1 (docs/PROTOCOL.md §10): topic names and the payload of the
 * records topic, in canonical CBOR (acks are signed: ack.ts). Payloads arrive from the network:
 * decoding checks sizes and counts before it trusts anything.
 */
import { decodeCanonical, encodeCanonical, type CborValue } from './cbor.js'
import { ProtocolError } from './errors.js'
import { DEVICE_ID_PATTERN, LIMITS } from './record.js'

export const TOPIC_ROOT = 'prov/v1'
export type TopicKind = 'records' | 'ack' | 'policy' | 'status'
const TOPIC_KINDS: readonly TopicKind[] = ['records', 'ack', 'policy', 'status']

/** Most envelopes one records message may carry. */
export const MAX_BATCH_RECORDS = 1024
/** Largest records message, in bytes. */
export const MAX_BATCH_BYTES = 4 * 1024 * 1024

/** `prov/v1/<device>/<kind>`. */
export function deviceTopic (deviceId: string, kind: TopicKind): string {
  if (!DEVICE_ID_PATTERN.test(deviceId) || deviceId.length > LIMITS.deviceIdChars) throw new RangeError(`bad device id "${deviceId}"`)
  return `${TOPIC_ROOT}/${deviceId}/${kind}`
}

/** The subscription filter for one kind of topic across all devices. */
export function topicFilter (kind: TopicKind): string {
  return `${TOPIC_ROOT}/+/${kind}`
}

/** Device id and kind of a topic, or undefined when the topic is not one of ours. */
export function parseTopic (topic: string): { deviceId: string, kind: TopicKind } | undefined {
  const parts = topic.split('/')
  if (parts.length !== 4 || `${parts[0]}/${parts[1]}` !== TOPIC_ROOT) return undefined
  const deviceId = parts[2] as string
  const kind = parts[3] as TopicKind
  if (!TOPIC_KINDS.includes(kind) || !DEVICE_ID_PATTERN.test(deviceId) || deviceId.length > LIMITS.deviceIdChars) return undefined
  return { deviceId, kind }
}

/** Payload of a records message: a CBOR array of envelopes (byte strings), oldest first. */
export function encodeRecordBatch (envelopes: readonly Uint8Array[]): Uint8Array {
  if (envelopes.length > MAX_BATCH_RECORDS) throw new RangeError(`at most ${MAX_BATCH_RECORDS} records per message`)
  return encodeCanonical(envelopes)
}

/**
 * The envelopes of a records message (each still to be decoded and verified on its own, so one
 * bad record does not sink its neighbours): copies, or with `viewsOfPayload` views of `payload`
 * (for a caller that owns it: one buffer for the message instead of one per record).
 * @throws ProtocolError `CBOR_*`, or `RECORD_INVALID` when the payload is not an array of byte strings.
 */
export function decodeRecordBatch (payload: Uint8Array, options: { viewsOfPayload?: boolean } = {}): Uint8Array[] {
  const value = decodeCanonical(payload, { maxBytes: MAX_BATCH_BYTES, maxDepth: 1, viewsOfInput: options.viewsOfPayload === true })
  if (!Array.isArray(value) || value.length > MAX_BATCH_RECORDS || !value.every((v: CborValue) => v instanceof Uint8Array && v.byteLength <= LIMITS.envelopeBytes)) {
    throw new ProtocolError('RECORD_INVALID', `records payload must be an array of at most ${MAX_BATCH_RECORDS} envelopes`)
  }
  return value as Uint8Array[]
}

// The payload of the ack topic is a signed ack: see ack.ts (docs/PROTOCOL.md §Acks).
