/**
 * TPM 2.0 key attestation (docs/IDENTITY.md §Enrollment): the TPM's TPM2_Certify of the identity key
 * by an attestation key (AK) made under the endorsement key, parsed and checked byte by byte from
 * the TPM structures (TPM 2.0 Part 2). Pure: the fleet CLI checks what the device handed over.
 */
import { ProvenanceError } from './errors.js'
import { equalBytes, sha256, toHex } from './hash.js'
import { normalizeP256Signature, verifyP256 } from './identity.js'
import { concat } from './record.js'

/** Codes of key attestations. */
export type AttestationErrorCode =
  /** A TPM structure is truncated, has trailing bytes, or a type, curve or scheme we do not take. */
  | 'ATTESTATION_MALFORMED'
  /** Well formed but does not attest what enrollment needs (attributes, certified name, AK signature). */
  | 'ATTESTATION_REJECTED'

export class AttestationError extends ProvenanceError<AttestationErrorCode> {}

// TPM 2.0 Part 2 constants.
const TPM_ALG_ECC = 0x0023
const TPM_ALG_SHA256 = 0x000b
const TPM_ALG_ECDSA = 0x0018
const TPM_ALG_NULL = 0x0010
const TPM_ECC_NIST_P256 = 0x0003
const TPM_GENERATED_VALUE = 0xff544347
const TPM_ST_ATTEST_CERTIFY = 0x8017
/** TPMA_OBJECT bits. */
export const TPMA = {
  fixedTPM: 0x2,
  stClear: 0x4,
  fixedParent: 0x10,
  sensitiveDataOrigin: 0x20,
  userWithAuth: 0x40,
  restricted: 0x10000,
  decrypt: 0x20000,
  sign: 0x40000
} as const

class Reader {
  private o = 0
  constructor (private readonly b: Uint8Array, private readonly what: string) {}
  u16 (): number { this.need(2); const v = (this.b[this.o]! << 8) | this.b[this.o + 1]!; this.o += 2; return v }
  u32 (): number { this.need(4); const v = ((this.b[this.o]! << 24) >>> 0) + (this.b[this.o + 1]! << 16) + (this.b[this.o + 2]! << 8) + this.b[this.o + 3]!; this.o += 4; return v }
  bytes (n: number): Uint8Array { this.need(n); const v = this.b.slice(this.o, this.o + n); this.o += n; return v }
  sized (): Uint8Array { return this.bytes(this.u16()) }
  end (): void { if (this.o !== this.b.byteLength) throw new AttestationError('ATTESTATION_MALFORMED', `${this.what}: ${this.b.byteLength - this.o} trailing bytes`) }
  private need (n: number): void { if (this.o + n > this.b.byteLength) throw new AttestationError('ATTESTATION_MALFORMED', `${this.what}: truncated`) }
}

/** An ECC P-256 signing key's public area (TPMT_PUBLIC). */
export interface TpmEccPublic {
  /** The TPMT_PUBLIC bytes (the TPM2B_PUBLIC without its size). */
  area: Uint8Array
  attributes: number
  /** SEC 1 uncompressed point. */
  publicKey: Uint8Array
  /** TPM name: nameAlg (SHA-256) ‖ SHA-256(area). */
  name: Uint8Array
}

/**
 * Parses a TPM2B_PUBLIC (as `tpm2_create -u` / `tpm2_createak -u` write it) of an ECC P-256 key
 * with SHA-256 name and an ECDSA/SHA-256 or null scheme.
 * @throws AttestationError `ATTESTATION_MALFORMED`.
 */
export function parseTpmEccPublic (tpm2bPublic: Uint8Array, what = 'public area'): TpmEccPublic {
  const outer = new Reader(tpm2bPublic, what)
  const area = outer.sized()
  outer.end()
  const r = new Reader(area, what)
  if (r.u16() !== TPM_ALG_ECC) throw new AttestationError('ATTESTATION_MALFORMED', `${what}: not an ECC key`)
  if (r.u16() !== TPM_ALG_SHA256) throw new AttestationError('ATTESTATION_MALFORMED', `${what}: name algorithm is not SHA-256`)
  const attributes = r.u32()
  r.sized() // authPolicy
  const symmetric = r.u16()
  if (symmetric !== TPM_ALG_NULL) r.bytes(4) // keyBits, mode (a restricted decryption key only)
  const scheme = r.u16()
  if (scheme !== TPM_ALG_NULL) {
    if (scheme !== TPM_ALG_ECDSA) throw new AttestationError('ATTESTATION_MALFORMED', `${what}: scheme 0x${scheme.toString(16)} is not ECDSA`)
    if (r.u16() !== TPM_ALG_SHA256) throw new AttestationError('ATTESTATION_MALFORMED', `${what}: ECDSA hash is not SHA-256`)
  }
  if (r.u16() !== TPM_ECC_NIST_P256) throw new AttestationError('ATTESTATION_MALFORMED', `${what}: curve is not NIST P-256`)
  if (r.u16() !== TPM_ALG_NULL) throw new AttestationError('ATTESTATION_MALFORMED', `${what}: KDF is not null`)
  const x = r.sized()
  const y = r.sized()
  r.end()
  if (x.byteLength > 32 || y.byteLength > 32) throw new AttestationError('ATTESTATION_MALFORMED', `${what}: coordinate longer than 32 bytes`)
  const point = new Uint8Array(65)
  point[0] = 4
  point.set(x, 33 - x.byteLength)
  point.set(y, 65 - y.byteLength)
  return { area, attributes, publicKey: point, name: concat(Uint8Array.of(0x00, 0x0b), sha256(area)) }
}

/** The parts of a TPMS_ATTEST of type certify that enrollment looks at. */
export interface TpmCertifyInfo {
  qualifiedSigner: Uint8Array
  extraData: Uint8Array
  resetCount: number
  restartCount: number
  /** Name of the certified object. */
  name: Uint8Array
  qualifiedName: Uint8Array
}

/**
 * Parses a TPMS_ATTEST (as `tpm2_certify -o` writes it) of type TPM_ST_ATTEST_CERTIFY.
 * @throws AttestationError `ATTESTATION_MALFORMED`.
 */
export function parseTpmCertify (attest: Uint8Array): TpmCertifyInfo {
  const r = new Reader(attest, 'attestation')
  if (r.u32() !== TPM_GENERATED_VALUE) throw new AttestationError('ATTESTATION_MALFORMED', 'attestation: not generated by a TPM (magic)')
  if (r.u16() !== TPM_ST_ATTEST_CERTIFY) throw new AttestationError('ATTESTATION_MALFORMED', 'attestation: not a certify attestation')
  const qualifiedSigner = r.sized()
  const extraData = r.sized()
  r.bytes(8) // clock
  const resetCount = r.u32()
  const restartCount = r.u32()
  r.bytes(1) // safe
  r.bytes(8) // firmwareVersion
  const name = r.sized()
  const qualifiedName = r.sized()
  r.end()
  return { qualifiedSigner, extraData, resetCount, restartCount, name, qualifiedName }
}

/** What the device hands over at enrollment (hex in the enrollment request). */
export interface KeyAttestation {
  /** TPM2B_PUBLIC of the identity key. */
  identityPublic: Uint8Array
  /** TPM2B_PUBLIC of the attestation key (restricted signing key under the endorsement hierarchy). */
  akPublic: Uint8Array
  /** TPMS_ATTEST from TPM2_Certify of the identity key by the AK. */
  attest: Uint8Array
  /** The AK's ECDSA signature over `attest` (DER or r ‖ s). */
  signature: Uint8Array
}

const IDENTITY_REQUIRED = TPMA.fixedTPM | TPMA.fixedParent | TPMA.sensitiveDataOrigin | TPMA.sign
const AK_REQUIRED = TPMA.fixedTPM | TPMA.fixedParent | TPMA.sensitiveDataOrigin | TPMA.restricted | TPMA.sign

/**
 * Checks a key attestation: the identity key is a P-256 signing key born in the TPM that can never
 * leave it (fixedTPM, fixedParent, sensitiveDataOrigin; not a decryption key); the AK is a
 * restricted signing key of the same kind (so it signs only what the TPM itself attests); the
 * attestation is TPM-generated, certifies exactly the identity key's name, and the AK's signature
 * over it verifies. Returns the identity public key (SEC 1) and the AK's name.
 * Binding the AK to a genuine TPM (EK certificate chain, credential activation) is the fleet's
 * trust decision on the AK: see docs/IDENTITY.md.
 * @throws AttestationError `ATTESTATION_MALFORMED` or `ATTESTATION_REJECTED`.
 */
export function checkKeyAttestation (a: KeyAttestation): { identityKey: Uint8Array, akName: string } {
  const identity = parseTpmEccPublic(a.identityPublic, 'identity public')
  const ak = parseTpmEccPublic(a.akPublic, 'AK public')
  if ((identity.attributes & IDENTITY_REQUIRED) !== IDENTITY_REQUIRED || (identity.attributes & TPMA.decrypt) !== 0) {
    throw new AttestationError('ATTESTATION_REJECTED', `identity key attributes 0x${identity.attributes.toString(16)}: need fixedTPM, fixedParent, sensitiveDataOrigin, sign and no decrypt`)
  }
  if ((ak.attributes & AK_REQUIRED) !== AK_REQUIRED) {
    throw new AttestationError('ATTESTATION_REJECTED', `AK attributes 0x${ak.attributes.toString(16)}: need a restricted signing key fixed to the TPM`)
  }
  const info = parseTpmCertify(a.attest)
  if (!equalBytes(info.name, identity.name)) throw new AttestationError('ATTESTATION_REJECTED', 'the attestation certifies another key than the identity key')
  let signature: Uint8Array
  try {
    signature = normalizeP256Signature(a.signature)
  } catch (e) {
    throw new AttestationError('ATTESTATION_MALFORMED', 'AK signature is not an ECDSA P-256 signature', { cause: e })
  }
  if (!verifyP256(signature, a.attest, ak.publicKey)) throw new AttestationError('ATTESTATION_REJECTED', 'the AK signature over the attestation does not verify')
  return { identityKey: identity.publicKey, akName: toHex(ak.name) }
}
