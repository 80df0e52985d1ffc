/**
 * The one error base of the project: a stable string `code` (API) and an optional `cause`.
 * Messages are for humans and may change; branch on `code` only. Every code is in docs/ERRORS.md.
 */

export class ProvenanceError<C extends string = string> extends Error {
  readonly code: C

  constructor (code: C, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/** Codes of the protocol part: decoding, signatures, chains, Merkle proofs. */
export type ProtocolErrorCode =
  | 'CBOR_MALFORMED'
  | 'CBOR_NON_CANONICAL'
  | 'CBOR_TOO_LARGE'
  | 'RECORD_INVALID'
  | 'SIGNATURE_INVALID'
  | 'KEY_INVALID'
  | 'CHAIN_BROKEN'
  | 'TENSOR_INVALID'
  | 'MERKLE_INVALID_PROOF'
  | 'MERKLE_ROOT_MISMATCH'

export class ProtocolError extends ProvenanceError<ProtocolErrorCode> {}

/** True when `e` is a ProvenanceError carrying `code` (works across class copies). */
export function isErrorCode (e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === code
}
