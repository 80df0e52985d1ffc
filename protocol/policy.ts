/**
 * The fleet's model policy: an allowlist of model file hashes signed by the fleet admin and
 * published retained on `prov/v1/<device>/policy`. Policy bytes are canonical CBOR
 * [1, issuedAtMs, version, mode, [modelHash...], fleetId]; the signature covers
 * POLICY_SIGNING_PREFIX ‖ policy bytes; the envelope is [policyBytes, signature] (docs/PROTOCOL.md
 * §Policy). Decoding treats its input as hostile: it arrives from the broker.
 */
import { decodeCanonical, encodeCanonical, type CborValue } from './cbor.js'
import { ProvenanceError } from './errors.js'
import { HASH_BYTES } from './hash.js'
import { SIGNATURE_BYTES, verifySignature, type Signer, type VerifierBackend } from './ed25519.js'
import { concat } from './record.js'

/** Codes of policy decoding and verification. */
export type PolicyErrorCode =
  /** Not a canonical policy envelope: bad CBOR, wrong shape, bad field, unsorted hashes. */
  | 'POLICY_MALFORMED'
  /** Well-formed, but the signature does not verify under the admin key. */
  | 'POLICY_SIGNATURE_INVALID'

export class PolicyError extends ProvenanceError<PolicyErrorCode> {}

export const POLICY_FORMAT = 1
/** Prepended to the policy bytes before signing (domain separation from records). */
export const POLICY_SIGNING_PREFIX: Uint8Array = new TextEncoder().encode('edge-provenance/policy/v1\0')
/** Policy modes and their wire codes. */
export const POLICY_MODES = { enforce: 0, audit: 1 } as const
export type PolicyMode = keyof typeof POLICY_MODES
const MODE_BY_CODE = Object.keys(POLICY_MODES) as PolicyMode[]

export const POLICY_LIMITS = {
  /** Most model hashes in one policy. */
  models: 8192,
  fleetIdBytes: 256,
  /** 8192 hashes take 8192 × 34 bytes; the rest is headroom. */
  envelopeBytes: 300 * 1024
} as const

export interface ModelPolicy {
  /** When the admin issued it, Unix ms (informational; ordering is by `version`). */
  issuedAtMs: number
  /** Strictly increasing per fleet: a device never accepts a lower or equal version with other content. */
  version: number
  /** `enforce` refuses unlisted models; `audit` loads them and records them as unapproved. */
  mode: PolicyMode
  /** SHA-256 of each allowed model file (32 bytes each), ascending, no duplicates. */
  modelHashes: Uint8Array[]
  fleetId: string
}

export interface SignedPolicy {
  policy: ModelPolicy
  policyBytes: Uint8Array
  signature: Uint8Array
  /** The bytes published on the policy topic. */
  envelope: Uint8Array
}

const textEncoder = new TextEncoder()

/**
 * Asserts that `value` is a well-formed policy, collecting the path of every bad field.
 * Hashes must be ascending and unique, so that one policy has exactly one encoding.
 * @throws PolicyError `POLICY_MALFORMED`.
 */
export function assertPolicy (value: unknown): asserts value is ModelPolicy {
  const p = value as Partial<ModelPolicy> | null
  if (typeof p !== 'object' || p === null) throw new PolicyError('POLICY_MALFORMED', 'policy must be an object')
  const problems: string[] = []
  const uint = (v: unknown, path: string, min = 0): void => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) problems.push(`${path}: not a safe integer ≥ ${min}`)
  }
  uint(p.issuedAtMs, 'issuedAtMs')
  uint(p.version, 'version', 1)
  if (!(typeof p.mode === 'string' && p.mode in POLICY_MODES)) problems.push('mode: not "enforce" or "audit"')
  if (!Array.isArray(p.modelHashes) || p.modelHashes.length > POLICY_LIMITS.models) {
    problems.push(`modelHashes: not an array of at most ${POLICY_LIMITS.models}`)
  } else {
    p.modelHashes.forEach((h, i) => {
      if (!(h instanceof Uint8Array) || h.byteLength !== HASH_BYTES) { problems.push(`modelHashes[${i}]: not ${HASH_BYTES} bytes`); return }
      const before = p.modelHashes?.[i - 1]
      if (i > 0 && before instanceof Uint8Array && compareBytes(before, h) >= 0) problems.push(`modelHashes[${i}]: not above modelHashes[${i - 1}] (hashes must be ascending and unique)`)
    })
  }
  if (typeof p.fleetId !== 'string' || p.fleetId === '' || textEncoder.encode(p.fleetId).byteLength > POLICY_LIMITS.fleetIdBytes ||
    /[\uD800-\uDFFF]/u.test(p.fleetId)) {
    problems.push(`fleetId: not a non-empty string of at most ${POLICY_LIMITS.fleetIdBytes} bytes`)
  }
  if (problems.length > 0) throw new PolicyError('POLICY_MALFORMED', `invalid policy: ${problems.join('; ')}`)
}

/** The policy with its hashes sorted and deduplicated (the form that encodes). */
export function normalizePolicy (policy: ModelPolicy): ModelPolicy {
  const seen = new Map<string, Uint8Array>()
  for (const h of policy.modelHashes) seen.set(Buffer.from(h).toString('hex'), h)
  return { ...policy, modelHashes: [...seen.values()].sort(compareBytes) }
}

/**
 * Canonical CBOR bytes of a policy (after {@link normalizePolicy}).
 * @throws PolicyError `POLICY_MALFORMED`.
 */
export function encodePolicy (policy: ModelPolicy): Uint8Array {
  const p = normalizePolicy(policy)
  assertPolicy(p)
  return encodeCanonical([POLICY_FORMAT, p.issuedAtMs, p.version, POLICY_MODES[p.mode], p.modelHashes, p.fleetId])
}

/**
 * Parses canonical policy bytes.
 * @throws PolicyError `POLICY_MALFORMED`.
 */
export function decodePolicy (bytes: Uint8Array): ModelPolicy {
  const value = decodeOrThrow(bytes, 2)
  if (!Array.isArray(value) || value.length !== 6) throw new PolicyError('POLICY_MALFORMED', 'policy must be an array of 6 fields')
  const [format, issuedAtMs, version, modeCode, hashes, fleetId] = value as CborValue[]
  if (format !== POLICY_FORMAT) throw new PolicyError('POLICY_MALFORMED', `unsupported policy format ${String(format)}`)
  const mode = typeof modeCode === 'number' ? MODE_BY_CODE[modeCode] : undefined
  if (mode === undefined) throw new PolicyError('POLICY_MALFORMED', `unknown policy mode ${String(modeCode)}`)
  const policy = { issuedAtMs, version, mode, modelHashes: hashes, fleetId }
  assertPolicy(policy)
  return policy
}

/**
 * Signs a policy with the fleet admin's key.
 * @throws PolicyError `POLICY_MALFORMED`.
 */
export function signPolicy (policy: ModelPolicy, signer: Signer): SignedPolicy {
  const policyBytes = encodePolicy(policy)
  const signature = signer.sign(concat(POLICY_SIGNING_PREFIX, policyBytes))
  return { policy: decodePolicy(policyBytes), policyBytes, signature, envelope: encodeCanonical([policyBytes, signature]) }
}

/**
 * Parses a policy envelope without checking its signature (use {@link verifyPolicy}).
 * @throws PolicyError `POLICY_MALFORMED`.
 */
export function decodePolicyEnvelope (envelope: Uint8Array): SignedPolicy {
  if (!(envelope instanceof Uint8Array)) throw new PolicyError('POLICY_MALFORMED', 'policy envelope must be bytes')
  const outer = decodeOrThrow(envelope, 1)
  if (!Array.isArray(outer) || outer.length !== 2 || !(outer[0] instanceof Uint8Array) || !(outer[1] instanceof Uint8Array)) {
    throw new PolicyError('POLICY_MALFORMED', 'policy envelope must be [policy bytes, signature]')
  }
  const [policyBytes, signature] = outer as [Uint8Array, Uint8Array]
  if (signature.byteLength !== SIGNATURE_BYTES) throw new PolicyError('POLICY_MALFORMED', `signature must be ${SIGNATURE_BYTES} bytes`)
  return { policy: decodePolicy(policyBytes), policyBytes, signature, envelope: envelope.slice() }
}

/**
 * Parses a policy envelope and checks its signature under the fleet admin's public key.
 * @throws PolicyError `POLICY_MALFORMED`, `POLICY_SIGNATURE_INVALID`.
 */
export function verifyPolicy (envelope: Uint8Array, adminPublicKey: Uint8Array, backend: VerifierBackend = 'node'): SignedPolicy {
  const signed = decodePolicyEnvelope(envelope)
  if (!verifySignature(signed.signature, concat(POLICY_SIGNING_PREFIX, signed.policyBytes), adminPublicKey, backend)) {
    throw new PolicyError('POLICY_SIGNATURE_INVALID', 'policy signature does not verify under the fleet admin key')
  }
  return signed
}

function decodeOrThrow (bytes: Uint8Array, maxDepth: number): CborValue {
  try {
    return decodeCanonical(bytes, { maxBytes: POLICY_LIMITS.envelopeBytes, maxDepth })
  } catch (cause) {
    throw new PolicyError('POLICY_MALFORMED', `policy is not canonical CBOR: ${(cause as Error).message}`, { cause })
  }
}

function compareBytes (a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b)
}
