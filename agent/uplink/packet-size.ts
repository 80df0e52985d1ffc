/**
 * Sizes records messages to what the broker takes: the Maximum Packet Size of its MQTT 5 CONNACK
 * (MQTT 5 §3.2.2.3.6) bounds the whole PUBLISH packet, headers included, and a broker drops or
 * disconnects on anything larger (§3.1.2.11.4), so the uplink never sends one.
 */
import { MAX_BATCH_BYTES } from '../../protocol/index.js'

/** MQTT's own ceiling on a packet: a 4-byte Remaining Length plus the fixed header (MQTT 5 §1.5.5). */
export const MQTT_MAX_PACKET_BYTES = 268_435_455 + 5

function varintBytes (n: number): number {
  return n < 128 ? 1 : n < 16_384 ? 2 : n < 2_097_152 ? 3 : 4
}

// Head of a CBOR major type with argument n (RFC 8949 §3).
function cborHeadBytes (n: number): number {
  return n < 24 ? 1 : n < 256 ? 2 : n < 65_536 ? 3 : n < 2 ** 32 ? 5 : 9
}

/**
 * Bytes of a QoS 1 PUBLISH packet without properties: fixed header, topic, packet id, (MQTT 5)
 * an empty property length, payload (MQTT 5 §3.3; 3.1.1 §3.3).
 */
export function publishPacketBytes (topic: string, payloadBytes: number, protocolVersion: 4 | 5): number {
  const remaining = 2 + Buffer.byteLength(topic) + 2 + (protocolVersion === 5 ? 1 : 0) + payloadBytes
  return 1 + varintBytes(remaining) + remaining
}

/** Largest records payload that fits a packet of `maxPacketBytes` on `topic` (and the protocol's MAX_BATCH_BYTES). */
export function maxPayloadBytes (topic: string, maxPacketBytes: number, protocolVersion: 4 | 5): number {
  let payload = Math.min(MAX_BATCH_BYTES, maxPacketBytes)
  while (payload > 0 && publishPacketBytes(topic, payload, protocolVersion) > maxPacketBytes) {
    payload -= publishPacketBytes(topic, payload, protocolVersion) - maxPacketBytes
  }
  return Math.max(0, payload)
}

/**
 * How many of `envelopes`, from the first, fit one records payload of at most `limitBytes` (the
 * canonical CBOR array of byte strings of wire.ts). 0 when even the first does not fit.
 */
export function envelopesThatFit (envelopes: readonly Uint8Array[], limitBytes: number): number {
  let body = 0
  for (let n = 0; n < envelopes.length; n++) {
    const len = (envelopes[n] as Uint8Array).byteLength
    body += cborHeadBytes(len) + len
    if (cborHeadBytes(n + 1) + body > limitBytes) return n
  }
  return envelopes.length
}
