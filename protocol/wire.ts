/**
 * The MQTT layout, version 1 (docs/PROTOCOL.md §MQTT): topic names and the payloads of the
 * records and ack topics, in canonical CBOR. Payloads arrive from the network: decoding checks
 * sizes and counts before it trusts anything.
 */
import { decodeCanonical, encodeCanonical, type CborValue } from './cbor.js'
import { ProtocolError } from './errors.js'
import { DEVICE_ID_PATTERN, LIMITS } from './record.js'
import { HASH_BYTES } from './hash.js'

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
 * bad record does not sink its neighbours).
 * @throws ProtocolError `CBOR_*`, or `RECORD_INVALID` when the payload is not an array of byte strings.
 */
export function decodeRecordBatch (payload: Uint8Array): Uint8Array[] {
  const value = decodeCanonical(payload, { maxBytes: MAX_BATCH_BYTES, maxDepth: 1 })
  if (!Array.isArray(value) || value.length > MAX_BATCH_RECORDS || !value.every((v: CborValue) => v instanceof Uint8Array && v.byteLength <= LIMITS.envelopeBytes)) {
    throw new ProtocolError('RECORD_INVALID', `records payload must be an array of at most ${MAX_BATCH_RECORDS} envelopes`)
  }
  return value as Uint8Array[]
}

/** What the gateway acknowledges to a device: highest contiguous seq stored durably and anchored. */
export interface Ack {
  /** Every record up to this seq is durably stored at the gateway; -1 for none. */
  storedSeq: number
  /**
   * Hash of record `storedSeq` (zeros for none). Acks are retained, so this is the device's
   * verified chain tip that any gateway of a shared subscription group can continue from.
   */
  storedHash: Uint8Array
  /** Every record up to this seq is in a batch whose anchor is confirmed; -1 for none. */
  anchoredSeq: number
}

const ACK_VERSION = 1

/** Payload of an ack message: CBOR [1, storedSeq + 1, storedHash, anchoredSeq + 1] (so "none" is 0). */
export function encodeAck (ack: Ack): Uint8Array {
  if (ack.storedHash.byteLength !== HASH_BYTES) throw new RangeError('storedHash must be 32 bytes')
  return encodeCanonical([ACK_VERSION, ack.storedSeq + 1, ack.storedHash, ack.anchoredSeq + 1])
}

/**
 * @throws ProtocolError `CBOR_*` or `RECORD_INVALID` for a malformed ack.
 */
export function decodeAck (payload: Uint8Array): Ack {
  const v = decodeCanonical(payload, { maxBytes: 128, maxDepth: 1 })
  if (!Array.isArray(v) || v.length !== 4 || v[0] !== ACK_VERSION || typeof v[1] !== 'number' ||
    !(v[2] instanceof Uint8Array) || v[2].byteLength !== HASH_BYTES || typeof v[3] !== 'number') {
    throw new ProtocolError('RECORD_INVALID', 'ack must be [1, storedSeq + 1, storedHash, anchoredSeq + 1]')
  }
  return { storedSeq: v[1] - 1, storedHash: v[2], anchoredSeq: v[3] - 1 }
}
