/**
 * The enrollment request a device prints before its first start (`provenance-agent init`) and the
 * fleet CLI reads to register it (`provenance-fleet device register --enrollment`): a JSON
 * document naming the device, its current Ed25519 public key and the device time that key signs from.
 * It travels by hand or by file, so the reader treats it as hostile input.
 */
import { ProvenanceError } from './errors.js'
import { DEVICE_ID_PATTERN, LIMITS } from './record.js'

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
    if (!['format', 'deviceId', 'publicKey', 'validFromMs', 'profile', 'agentVersion', 'createdMs'].includes(k)) problems.push(`${k}: not an enrollment field`)
  }
  if (problems.length > 0) throw new EnrollmentError('ENROLLMENT_INVALID', `invalid enrollment request: ${problems.join('; ')}`)
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
