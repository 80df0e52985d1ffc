/**
 * Hardware-rooted device identity (docs/IDENTITY.md, docs/PROTOCOL.md §13): a non-exportable
 * ECDSA P-256 identity key in the device's TPM certifies, once per boot, the fresh Ed25519 key that
 * signs that boot's records. Here: the certification's bytes, its signature and its checks.
 */
import { createPublicKey, verify as nodeVerify, type KeyObject } from 'node:crypto'
import { p256 } from '@noble/curves/p256'
import { decodeCanonical, encodeCanonicalDirect, type CborValue } from './cbor.js'
import { ProtocolError } from './errors.js'
import { equalBytes, sha256 } from './hash.js'
import { PUBLIC_KEY_BYTES, type VerifierBackend } from './ed25519.js'
import { DEVICE_ID_PATTERN, LIMITS, concat } from './record.js'

export const KEY_CERTIFICATION_VERSION = 1
/** Prepended to the certification bytes before the identity key signs them (domain separation). */
export const KEY_CERTIFICATION_PREFIX: Uint8Array = new TextEncoder().encode('edge-provenance/key-certification/v1\0')
/** Prepended to a P-256 identity key before hashing it into the registry's 32-byte key slot. */
export const IDENTITY_KEY_ID_PREFIX: Uint8Array = new TextEncoder().encode('edge-provenance/identity-key/p256/v1\0')
/** A P-256 public key in SEC 1 uncompressed form: 0x04 ‖ x ‖ y. */
export const P256_PUBLIC_KEY_BYTES = 65
/** An ECDSA P-256 signature in IEEE P1363 form, r ‖ s, each 32 bytes big-endian, s ≤ n/2. */
export const P256_SIGNATURE_BYTES = 64
/** The largest certification a boot record may carry (the encoding is about 140 bytes). */
export const MAX_KEY_CERTIFICATION_BYTES = 512

// Order of the P-256 group, and half of it: only the low-S signature of a pair is accepted, so a
// certification has one signature and the boot record that carries it one byte form.
const P256_N = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551')
const P256_HALF_N = P256_N >> 1n
// SubjectPublicKeyInfo prefix of an uncompressed P-256 key (RFC 5480), for node:crypto.
const P256_SPKI_PREFIX = Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex')

/** What the identity key certifies: this device, this boot, this record key, this time. */
export interface KeyCertification {
  /** The device id records carry. */
  deviceId: string
  /** The boot counter of the boot whose records the key signs: a certification is good for one boot. */
  boot: number
  /** The boot's Ed25519 record key (raw, 32 bytes), made in memory at boot. */
  recordKey: Uint8Array
  /** Device time (Unix ms) from which, and until which (exclusive), the record key signs. */
  validFromMs: number
  validUntilMs: number
  /** The certifying identity key (SEC 1 uncompressed P-256), so a verifier needs only its registry id. */
  identityKey: Uint8Array
}

/** A certification with its canonical bytes and the identity key's signature over them. */
export interface SignedKeyCertification {
  certification: KeyCertification
  bytes: Uint8Array
  signature: Uint8Array
}

/**
 * The registry's 32-byte key slot for a P-256 identity: SHA-256 of the prefix and the key.
 * An Ed25519 key and an identity id share the slot; nobody knows an Ed25519 private key for a hash
 * output, so a slot holding an identity id never verifies a record directly.
 * @throws ProtocolError `IDENTITY_KEY_INVALID` when the key is not a P-256 point.
 */
export function identityKeyId (identityKey: Uint8Array): Uint8Array {
  if (!isP256PublicKey(identityKey)) throw new ProtocolError('IDENTITY_KEY_INVALID', 'identity key must be an uncompressed P-256 point (65 bytes)')
  return sha256(concat(IDENTITY_KEY_ID_PREFIX, identityKey))
}

/** True when `key` is an uncompressed P-256 point on the curve. */
export function isP256PublicKey (key: Uint8Array): boolean {
  if (!(key instanceof Uint8Array) || key.byteLength !== P256_PUBLIC_KEY_BYTES || key[0] !== 0x04) return false
  try {
    p256.ProjectivePoint.fromHex(key).assertValidity()
    return true
  } catch {
    return false
  }
}

function certificationProblems (c: Partial<KeyCertification>): string[] {
  const problems: string[] = []
  const uint = (v: unknown, path: string): void => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) problems.push(`${path}: not a non-negative safe integer`)
  }
  if (typeof c.deviceId !== 'string' || c.deviceId.length > LIMITS.deviceIdChars || !DEVICE_ID_PATTERN.test(c.deviceId)) {
    problems.push(`deviceId: must match ${DEVICE_ID_PATTERN.source}, at most ${LIMITS.deviceIdChars} characters`)
  }
  uint(c.boot, 'boot')
  if (!(c.recordKey instanceof Uint8Array) || c.recordKey.byteLength !== PUBLIC_KEY_BYTES) problems.push(`recordKey: not ${PUBLIC_KEY_BYTES} bytes`)
  uint(c.validFromMs, 'validFromMs')
  uint(c.validUntilMs, 'validUntilMs')
  if (typeof c.validFromMs === 'number' && typeof c.validUntilMs === 'number' && c.validUntilMs <= c.validFromMs) {
    problems.push('validUntilMs: must be after validFromMs')
  }
  if (!(c.identityKey instanceof Uint8Array) || !isP256PublicKey(c.identityKey)) problems.push('identityKey: not an uncompressed P-256 point')
  return problems
}

/**
 * Canonical CBOR of a certification: [version, deviceId, boot, recordKey, validFromMs, validUntilMs, identityKey].
 * @throws ProtocolError `RECORD_INVALID` naming every bad field.
 */
export function encodeKeyCertification (c: KeyCertification): Uint8Array {
  const problems = certificationProblems(c)
  if (problems.length > 0) throw new ProtocolError('RECORD_INVALID', `invalid key certification: ${problems.join('; ')}`)
  return encodeCanonicalDirect([KEY_CERTIFICATION_VERSION, c.deviceId, c.boot, c.recordKey, c.validFromMs, c.validUntilMs, c.identityKey])
}

/**
 * Parses certification bytes (hostile input: from a boot record off the wire).
 * @throws ProtocolError `CBOR_*` or `RECORD_INVALID`.
 */
export function decodeKeyCertification (bytes: Uint8Array): KeyCertification {
  const v = decodeCanonical(bytes, { maxBytes: MAX_KEY_CERTIFICATION_BYTES, maxDepth: 1 })
  if (!Array.isArray(v) || v.length !== 7) throw new ProtocolError('RECORD_INVALID', 'key certification must be an array of 7 fields')
  const [version, deviceId, boot, recordKey, validFromMs, validUntilMs, identityKey] = v as CborValue[]
  if (version !== KEY_CERTIFICATION_VERSION) throw new ProtocolError('RECORD_INVALID', `unsupported key certification version ${String(version)}`)
  const c = { deviceId, boot, recordKey, validFromMs, validUntilMs, identityKey } as KeyCertification
  const problems = certificationProblems(c)
  if (problems.length > 0) throw new ProtocolError('RECORD_INVALID', `invalid key certification: ${problems.join('; ')}`)
  return c
}

/** What the identity key signs: KEY_CERTIFICATION_PREFIX ‖ certification bytes. */
export function keyCertificationMessage (bytes: Uint8Array): Uint8Array {
  return concat(KEY_CERTIFICATION_PREFIX, bytes)
}

/**
 * An ECDSA P-256 signature (DER, as OpenSSL and `tpm2_sign -f plain` give it, or r ‖ s) in the
 * one form the protocol carries: r ‖ s with the low s (s ≤ n/2; the high one is replaced by n − s).
 * @throws ProtocolError `SIGNATURE_INVALID` when it is neither form.
 */
export function normalizeP256Signature (signature: Uint8Array): Uint8Array {
  let r: bigint
  let s: bigint
  try {
    const sig = signature.byteLength === P256_SIGNATURE_BYTES
      ? p256.Signature.fromCompact(signature)
      : p256.Signature.fromDER(signature)
    r = sig.r
    s = sig.s
  } catch (e) {
    throw new ProtocolError('SIGNATURE_INVALID', 'not an ECDSA P-256 signature (DER or r ‖ s)', { cause: e })
  }
  if (r <= 0n || r >= P256_N || s <= 0n || s >= P256_N) throw new ProtocolError('SIGNATURE_INVALID', 'ECDSA r or s out of range')
  if (s > P256_HALF_N) s = P256_N - s
  const out = new Uint8Array(P256_SIGNATURE_BYTES)
  out.set(bigintBytes(r), 0)
  out.set(bigintBytes(s), 32)
  return out
}

function bigintBytes (n: bigint): Uint8Array {
  return Uint8Array.from(Buffer.from(n.toString(16).padStart(64, '0'), 'hex'))
}

const nodeKeys = new Map<string, KeyObject>()

/**
 * True when `signature` (r ‖ s, low s) is a valid ECDSA P-256/SHA-256 signature of `message` under
 * `publicKey` (uncompressed). `node` is OpenSSL, `noble` is @noble/curves: both see the same bytes
 * and the same low-s rule. Never throws.
 */
export function verifyP256 (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array, backend: VerifierBackend = 'node'): boolean {
  if (!(signature instanceof Uint8Array) || signature.byteLength !== P256_SIGNATURE_BYTES) return false
  if (!isP256PublicKey(publicKey)) return false
  try {
    const s = BigInt('0x' + Buffer.from(signature.subarray(32)).toString('hex'))
    const r = BigInt('0x' + Buffer.from(signature.subarray(0, 32)).toString('hex'))
    if (r === 0n || r >= P256_N || s === 0n || s > P256_HALF_N) return false
    if (backend === 'noble') return p256.verify(signature, sha256(message), publicKey, { lowS: true })
    const id = Buffer.from(publicKey).toString('hex')
    let key = nodeKeys.get(id)
    if (key === undefined) {
      if (nodeKeys.size >= 1024) nodeKeys.clear()
      key = createPublicKey({ key: Buffer.concat([P256_SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' })
      nodeKeys.set(id, key)
    }
    return nodeVerify('sha256', message, { key, dsaEncoding: 'ieee-p1363' }, signature)
  } catch {
    return false
  }
}

/** Why a certification does not certify a record key (chain reasons of docs/PROTOCOL.md §13). */
export type CertificationProblem = 'bad-certification' | 'certification-replayed' | 'certification-expired'

/**
 * Checks a boot record's certification against the registry's key slot: the identity key hashes to
 * `registryKey`, its signature verifies, it names this device and this boot, and `timeMs` lies in
 * its validity. Returns the decoded certification, or the problem with a message.
 */
export function checkKeyCertification (
  bytes: Uint8Array, signature: Uint8Array,
  expect: { registryKey: Uint8Array, deviceId: string, boot: number, timeMs: number },
  backend: VerifierBackend = 'node'
): { certification: KeyCertification } | { problem: CertificationProblem, message: string } {
  let c: KeyCertification
  try {
    c = decodeKeyCertification(bytes)
  } catch (e) {
    return { problem: 'bad-certification', message: `certification does not decode: ${(e as Error).message}` }
  }
  if (!equalBytes(identityKeyId(c.identityKey), expect.registryKey)) {
    return { problem: 'bad-certification', message: 'certified by an identity key the registry does not hold for the device' }
  }
  if (!verifyP256(signature, keyCertificationMessage(bytes), c.identityKey, backend)) {
    return { problem: 'bad-certification', message: 'the identity key\'s signature over the certification does not verify' }
  }
  if (c.deviceId !== expect.deviceId || c.boot !== expect.boot) {
    return { problem: 'certification-replayed', message: `certification of ${c.deviceId} boot ${c.boot} carried by ${expect.deviceId} boot ${expect.boot}` }
  }
  if (expect.timeMs < c.validFromMs || expect.timeMs >= c.validUntilMs) {
    return { problem: 'certification-expired', message: `device time ${expect.timeMs} outside the certification's [${c.validFromMs}, ${c.validUntilMs})` }
  }
  return { certification: c }
}

/** Signs with the device identity key (the TPM's, or a software key in tests): ECDSA P-256/SHA-256. */
export interface IdentitySigner {
  /** SEC 1 uncompressed public key. */
  readonly publicKey: Uint8Array
  /** A signature of SHA-256(message), DER or r ‖ s (normalized by the caller). */
  sign: (message: Uint8Array) => Promise<Uint8Array>
}

/**
 * Has the identity key certify a boot's record key: the certification bytes and the low-s r ‖ s
 * signature a boot record carries (BootBody.certification). The signature is checked before it is
 * returned, so a faulty signer never yields a boot record no verifier accepts.
 * @throws ProtocolError `RECORD_INVALID` (bad fields), `SIGNATURE_INVALID` (signer output does not verify).
 */
export async function certifyRecordKey (c: Omit<KeyCertification, 'identityKey'>, signer: IdentitySigner): Promise<SignedKeyCertification> {
  const certification: KeyCertification = { ...c, identityKey: signer.publicKey }
  const bytes = encodeKeyCertification(certification)
  const message = keyCertificationMessage(bytes)
  const signature = normalizeP256Signature(await signer.sign(message))
  if (!verifyP256(signature, message, signer.publicKey)) throw new ProtocolError('SIGNATURE_INVALID', 'the identity signer\'s signature does not verify under its public key')
  return { certification, bytes, signature }
}
