/**
 * Signed acks (docs/PROTOCOL.md §Acks): what a gateway publishes, retained, on
 * `prov/v1/<device>/ack` once records are durably stored. A device deletes records on an ack, so
 * an ack is signed by the gateway's log key and names the device, the gateway and its key; a
 * verifier trusts only keys it was given. Decoding treats its input as hostile.
 */
import { decodeCanonical, encodeCanonical, type CborValue } from './cbor.js'
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES, verifySignature, type Signer, type VerifierBackend } from './ed25519.js'
import { ProvenanceError } from './errors.js'
import { HASH_BYTES, equalBytes } from './hash.js'
import { DEVICE_ID_PATTERN, LIMITS, concat } from './record.js'

/** Codes of ack decoding and verification. */
export type AckErrorCode =
  /** Not a canonical ack envelope: bad CBOR, wrong shape, a bad field. */
  | 'ACK_MALFORMED'
  /** A version 1 ack (no signature): never trusted since acks are signed. */
  | 'ACK_UNSIGNED'
  /** Signed by a key the verifier was not given (not one of its trusted gateways). */
  | 'ACK_UNKNOWN_KEY'
  /** The signature does not verify under the key the ack names. */
  | 'ACK_SIGNATURE_INVALID'
  /** A valid ack for another device (replayed from another device's topic). */
  | 'ACK_FOREIGN_DEVICE'

export class AckError extends ProvenanceError<AckErrorCode> {}

export const ACK_FORMAT = 2
/** Prepended to the ack bytes before signing (domain separation from records and policies). */
export const ACK_SIGNING_PREFIX: Uint8Array = new TextEncoder().encode('edge-provenance/ack/v2\0')
/** Largest ack envelope: two ids of at most 128 characters (UTF-8 of the id alphabet is ASCII), keys and hashes. */
export const MAX_ACK_ENVELOPE_BYTES = 512

/** What a gateway acknowledges to a device. */
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

/** The signed content of an ack. */
export interface AckStatement extends Ack {
  /** The device the ack is for (the topic's device). */
  deviceId: string
  /** The id under which the gateway's log key is registered on chain (`registerDevice`). */
  gatewayId: string
  /** The gateway's log key (raw Ed25519 public key) that signs this ack. */
  gatewayKey: Uint8Array
  /** Gateway time when signed, Unix ms: orders acks of one gateway (a replayed older one is stale). */
  issuedAtMs: number
}

export interface SignedAck {
  statement: AckStatement
  /** Canonical CBOR of the statement, as signed (after ACK_SIGNING_PREFIX). */
  ackBytes: Uint8Array
  signature: Uint8Array
  /** The bytes published on the ack topic: CBOR [ackBytes, signature]. */
  envelope: Uint8Array
}

/**
 * Asserts a well-formed statement, collecting the path of every bad field.
 * @throws AckError `ACK_MALFORMED`.
 */
export function assertAckStatement (value: unknown): asserts value is AckStatement {
  const s = value as Partial<AckStatement> | null
  if (typeof s !== 'object' || s === null) throw new AckError('ACK_MALFORMED', 'ack must be an object')
  const problems: string[] = []
  const id = (v: unknown, path: string): void => {
    if (typeof v !== 'string' || v.length > LIMITS.deviceIdChars || !DEVICE_ID_PATTERN.test(v)) problems.push(`${path}: must match ${DEVICE_ID_PATTERN.source}, at most ${LIMITS.deviceIdChars} characters`)
  }
  const seq = (v: unknown, path: string): void => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < -1 || v >= Number.MAX_SAFE_INTEGER) problems.push(`${path}: not a safe integer ≥ -1`)
  }
  const bytes = (v: unknown, n: number, path: string): void => {
    if (!(v instanceof Uint8Array) || v.byteLength !== n) problems.push(`${path}: not ${n} bytes`)
  }
  id(s.deviceId, 'deviceId')
  id(s.gatewayId, 'gatewayId')
  bytes(s.gatewayKey, PUBLIC_KEY_BYTES, 'gatewayKey')
  if (typeof s.issuedAtMs !== 'number' || !Number.isSafeInteger(s.issuedAtMs) || s.issuedAtMs < 0) problems.push('issuedAtMs: not a safe integer ≥ 0')
  seq(s.storedSeq, 'storedSeq')
  bytes(s.storedHash, HASH_BYTES, 'storedHash')
  seq(s.anchoredSeq, 'anchoredSeq')
  if (problems.length > 0) throw new AckError('ACK_MALFORMED', `invalid ack: ${problems.join('; ')}`)
}

/**
 * Canonical CBOR of a statement: [2, deviceId, gatewayId, gatewayKey, issuedAtMs, storedSeq + 1,
 * storedHash, anchoredSeq + 1] (seqs shifted by one so that "none" is 0, an unsigned integer).
 * @throws AckError `ACK_MALFORMED`.
 */
export function encodeAckStatement (statement: AckStatement): Uint8Array {
  assertAckStatement(statement)
  const s = statement
  return encodeCanonical([ACK_FORMAT, s.deviceId, s.gatewayId, s.gatewayKey, s.issuedAtMs, s.storedSeq + 1, s.storedHash, s.anchoredSeq + 1])
}

/**
 * Parses canonical statement bytes.
 * @throws AckError `ACK_MALFORMED`.
 */
export function decodeAckStatement (bytes: Uint8Array): AckStatement {
  const v = decodeOrThrow(bytes, 1)
  if (!Array.isArray(v) || v.length !== 8 || v[0] !== ACK_FORMAT) throw new AckError('ACK_MALFORMED', `ack bytes must be an array of 8 fields starting with ${ACK_FORMAT}`)
  const [, deviceId, gatewayId, gatewayKey, issuedAtMs, stored, storedHash, anchored] = v as CborValue[]
  if (typeof stored !== 'number' || typeof anchored !== 'number') throw new AckError('ACK_MALFORMED', 'ack seqs must be unsigned integers')
  const statement = { deviceId, gatewayId, gatewayKey, issuedAtMs, storedSeq: stored - 1, storedHash, anchoredSeq: anchored - 1 }
  assertAckStatement(statement)
  return statement
}

/**
 * Signs an ack with the gateway's log key; the statement names that key.
 * @throws AckError `ACK_MALFORMED`.
 */
export function signAck (statement: Omit<AckStatement, 'gatewayKey'>, signer: Signer): SignedAck {
  const ackBytes = encodeAckStatement({ ...statement, gatewayKey: signer.publicKey })
  const signature = signer.sign(concat(ACK_SIGNING_PREFIX, ackBytes))
  return { statement: decodeAckStatement(ackBytes), ackBytes, signature, envelope: encodeCanonical([ackBytes, signature]) }
}

/**
 * Parses an ack envelope WITHOUT checking its signature: for tools and test receivers that only
 * follow acks. Anything that deletes or trusts on an ack uses {@link verifyAck}.
 * @throws AckError `ACK_MALFORMED`, `ACK_UNSIGNED` (a version 1 ack).
 */
export function decodeAckEnvelope (envelope: Uint8Array): SignedAck {
  if (!(envelope instanceof Uint8Array)) throw new AckError('ACK_MALFORMED', 'ack envelope must be bytes')
  const outer = decodeOrThrow(envelope, 1)
  // Version 1 was the bare array [1, storedSeq + 1, storedHash, anchoredSeq + 1].
  if (Array.isArray(outer) && outer[0] === 1) throw new AckError('ACK_UNSIGNED', 'a version 1 ack carries no signature')
  if (!Array.isArray(outer) || outer.length !== 2 || !(outer[0] instanceof Uint8Array) || !(outer[1] instanceof Uint8Array)) {
    throw new AckError('ACK_MALFORMED', 'ack envelope must be [ack bytes, signature]')
  }
  const [ackBytes, signature] = outer as [Uint8Array, Uint8Array]
  if (signature.byteLength !== SIGNATURE_BYTES) throw new AckError('ACK_MALFORMED', `signature must be ${SIGNATURE_BYTES} bytes`)
  return { statement: decodeAckStatement(ackBytes), ackBytes, signature, envelope: envelope.slice() }
}

export interface VerifyAckOptions {
  /** The device whose topic the ack came on: an ack for another device is refused. */
  deviceId: string
  /** Raw public keys of the trusted gateways' log keys. */
  trustedKeys: readonly Uint8Array[]
  backend?: VerifierBackend
}

/**
 * Parses an ack envelope and checks, in this order, that it is signed (version 2), names a
 * trusted key, carries a valid signature under it, and is for `deviceId`.
 * @throws AckError `ACK_MALFORMED`, `ACK_UNSIGNED`, `ACK_UNKNOWN_KEY`, `ACK_SIGNATURE_INVALID`, `ACK_FOREIGN_DEVICE`.
 */
export function verifyAck (envelope: Uint8Array, options: VerifyAckOptions): SignedAck {
  const signed = decodeAckEnvelope(envelope)
  const key = signed.statement.gatewayKey
  if (!options.trustedKeys.some(k => equalBytes(k, key))) throw new AckError('ACK_UNKNOWN_KEY', `ack signed by gateway "${signed.statement.gatewayId}" with a key that is not trusted`)
  if (!verifySignature(signed.signature, concat(ACK_SIGNING_PREFIX, signed.ackBytes), key, options.backend ?? 'node')) {
    throw new AckError('ACK_SIGNATURE_INVALID', `ack signature does not verify under the key of gateway "${signed.statement.gatewayId}"`)
  }
  // After the signature: a foreign-device ack is a genuine ack replayed, worth telling apart from a forgery.
  if (signed.statement.deviceId !== options.deviceId) throw new AckError('ACK_FOREIGN_DEVICE', `ack is for device "${signed.statement.deviceId}", not "${options.deviceId}"`)
  return signed
}

function decodeOrThrow (bytes: Uint8Array, maxDepth: number): CborValue {
  try {
    return decodeCanonical(bytes, { maxBytes: MAX_ACK_ENVELOPE_BYTES, maxDepth })
  } catch (cause) {
    throw new AckError('ACK_MALFORMED', `ack is not canonical CBOR: ${(cause as Error).message}`, { cause })
  }
}
