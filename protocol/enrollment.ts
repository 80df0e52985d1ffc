/**
 * The enrollment request a device prints before its first start (`provenance-agent init`) and the
 * fleet CLI reads to register it (`provenance-fleet device register --enrollment`): a JSON
 * document naming the device, its current Ed25519 public key and the device time that key signs from.
 * It travels by hand or by file, so the reader treats it as hostile input.
 */
import { ProvenanceError } from './errors.js'
import { DEVICE_ID_PATTERN, LIMITS } from './record.js'
import { identityKeyId, isP256PublicKey } from './identity.js'
import { fromHex, toHex } from './hash.js'

/** Codes of enrollment requests. */
export type EnrollmentErrorCode =
  /** The enrollment request is not JSON or not of the documented shape (the message names each bad field). */
  | 'ENROLLMENT_INVALID'

export class EnrollmentError extends ProvenanceError<EnrollmentErrorCode> {}

/** Value of the `format` field. */
export const ENROLLMENT_FORMAT = 'edge-provenance/enrollment/v1'
const MAX_ENROLLMENT_BYTES = 16 * 1024

export interface EnrollmentRequest {
  format: typeof ENROLLMENT_FORMAT
  /** The device id records carry (DEVICE_ID_PATTERN); on chain it is sha256(utf8(deviceId)). */
  deviceId: string
  /** The device's current Ed25519 public key, 64 lower-case hex digits. */
  publicKey: string
  /** Device time (Unix ms) from which `publicKey` signs: 0 for the first key, the rotation time after a rotation. */
  validFromMs: number
  /** Firmware profile the agent runs (informational). */
  profile: string
  /** Version of the agent that wrote the request (informational). */
  agentVersion: string
  /** When the key was created, Unix ms (informational). */
  createdMs: number
  /**
   * A device whose identity key is in its TPM (docs/IDENTITY.md): the P-256 identity key and the
   * TPM's attestation of it. `publicKey` is then the identity key id (identityKeyId), which is
   * what the registry stores; the fleet checks the attestation before registering it.
   */
  identity?: EnrollmentIdentity
}

/** The identity part of an enrollment request; every byte string in lower-case hex. */
export interface EnrollmentIdentity {
  type: 'tpm-p256'
  /** SEC 1 uncompressed P-256 point, 130 hex digits. */
  publicKey: string
  /** TPM2_Certify of the identity key by an AK under the endorsement key (protocol/tpm-attest.ts); absent when the TPM has no EK. */
  attestation?: { identityPublic: string, akPublic: string, attest: string, signature: string }
}

/**
 * Asserts a well-formed enrollment request, collecting the path of every bad field. Unknown
 * fields are refused: a typo must not pass for an option.
 * @throws EnrollmentError `ENROLLMENT_INVALID`.
 */
export function assertEnrollmentRequest (value: unknown): asserts value is EnrollmentRequest {
  const r = value as Record<string, unknown> | null
  if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new EnrollmentError('ENROLLMENT_INVALID', 'enrollment request must be a JSON object')
  const problems: string[] = []
  const uint = (name: string): void => {
    const v = r[name]
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) problems.push(`${name}: not a safe integer ≥ 0`)
  }
  const text = (name: string, max: number): void => {
    const v = r[name]
    if (typeof v !== 'string' || v === '' || v.length > max) problems.push(`${name}: not a string of 1..${max} characters`)
  }
  if (r.format !== ENROLLMENT_FORMAT) problems.push(`format: not "${ENROLLMENT_FORMAT}"`)
  if (typeof r.deviceId !== 'string' || r.deviceId.length > LIMITS.deviceIdChars || !DEVICE_ID_PATTERN.test(r.deviceId)) {
    problems.push(`deviceId: must match ${DEVICE_ID_PATTERN.source}, at most ${LIMITS.deviceIdChars} characters`)
  }
  if (typeof r.publicKey !== 'string' || !/^[0-9a-f]{64}$/.test(r.publicKey)) problems.push('publicKey: not 64 lower-case hex digits')
  uint('validFromMs')
  uint('createdMs')
  text('profile', 256)
  text('agentVersion', 64)
  for (const k of Object.keys(r)) {
    if (!['format', 'deviceId', 'publicKey', 'validFromMs', 'profile', 'agentVersion', 'createdMs', 'identity'].includes(k)) problems.push(`${k}: not an enrollment field`)
  }
  if (r.identity !== undefined) identityProblems(r.identity, r.publicKey, problems)
  if (problems.length > 0) throw new EnrollmentError('ENROLLMENT_INVALID', `invalid enrollment request: ${problems.join('; ')}`)
}

const HEX = /^(?:[0-9a-f]{2})+$/
const MAX_TPM_STRUCTURE_HEX = 2048

function identityProblems (value: unknown, publicKey: unknown, problems: string[]): void {
  const id = value as Record<string, unknown> | null
  if (typeof id !== 'object' || id === null || Array.isArray(id)) { problems.push('identity: not an object'); return }
  if (id.type !== 'tpm-p256') problems.push('identity.type: not "tpm-p256"')
  if (typeof id.publicKey !== 'string' || !/^04[0-9a-f]{128}$/.test(id.publicKey) || !isP256PublicKey(fromHex(id.publicKey))) {
    problems.push('identity.publicKey: not an uncompressed P-256 point (130 lower-case hex digits)')
  } else if (typeof publicKey === 'string' && toHex(identityKeyId(fromHex(id.publicKey))) !== publicKey) {
    problems.push('publicKey: not the identity key id of identity.publicKey')
  }
  for (const k of Object.keys(id)) if (!['type', 'publicKey', 'attestation'].includes(k)) problems.push(`identity.${k}: not an identity field`)
  if (id.attestation === undefined) return
  const a = id.attestation as Record<string, unknown> | null
  if (typeof a !== 'object' || a === null || Array.isArray(a)) { problems.push('identity.attestation: not an object'); return }
  for (const k of ['identityPublic', 'akPublic', 'attest', 'signature']) {
    const v = a[k]
    if (typeof v !== 'string' || v.length > MAX_TPM_STRUCTURE_HEX || !HEX.test(v)) problems.push(`identity.attestation.${k}: not lower-case hex of at most ${MAX_TPM_STRUCTURE_HEX} digits`)
  }
  for (const k of Object.keys(a)) if (!['identityPublic', 'akPublic', 'attest', 'signature'].includes(k)) problems.push(`identity.attestation.${k}: not an attestation field`)
}

/**
 * Parses the text of an enrollment file.
 * @throws EnrollmentError `ENROLLMENT_INVALID`.
 */
export function parseEnrollmentRequest (text: string): EnrollmentRequest {
  if (text.length > MAX_ENROLLMENT_BYTES) throw new EnrollmentError('ENROLLMENT_INVALID', `enrollment request is over ${MAX_ENROLLMENT_BYTES} bytes`)
  let value: unknown
  try {
    value = JSON.parse(text.replace(/^\uFEFF/, ''))
  } catch (cause) {
    throw new EnrollmentError('ENROLLMENT_INVALID', 'enrollment request is not JSON', { cause })
  }
  assertEnrollmentRequest(value)
  return value
}
