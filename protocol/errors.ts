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
  /** CBOR input is truncated, has trailing bytes, bad UTF-8 or a type outside our subset. */
  | 'CBOR_MALFORMED'
  /** CBOR input is well formed but not in canonical form (non-shortest integer or length, indefinite length). */
  | 'CBOR_NON_CANONICAL'
  /** CBOR input exceeds the size, depth or integer limits. */
  | 'CBOR_TOO_LARGE'
  /** A record, envelope or payload is not of the documented shape (the message names each bad field). */
  | 'RECORD_INVALID'
  /** A signature does not verify. */
  | 'SIGNATURE_INVALID'
  /** An Ed25519 seed is not 32 bytes. */
  | 'SEED_INVALID'
  /** An identity key is not an uncompressed P-256 point (65 bytes). */
  | 'IDENTITY_KEY_INVALID'
  /** A hash chain is broken; the message names the seq and reason, `cause` is the ChainFailure. */
  | 'CHAIN_BROKEN'
  /** A tensor cannot be committed: unknown dtype, bad dims, data that does not fit them. */
  | 'TENSOR_INVALID'
  /** A Merkle proof, checkpoint or proof file is malformed (index, size, length, hash size, syntax). */
  | 'MERKLE_INVALID_PROOF'
  /** A well-formed Merkle proof leads to another root. */
  | 'MERKLE_ROOT_MISMATCH'
  /** A signed note is malformed: encoding, control characters, no empty line, bad signature line, too large. */
  | 'NOTE_MALFORMED'
  /** A note verifier key string is malformed, not Ed25519, or its key ID does not match its name and key. */
  | 'NOTE_KEY_INVALID'
  /** No known key signed the note (or, for a checkpoint, none named for its origin). */
  | 'NOTE_UNVERIFIED'
  /** A COSE receipt is not the documented COSE_Sign1 (CBOR, tag, headers, algorithm, proof shape, size). */
  | 'RECEIPT_MALFORMED'
  /** A valid COSE receipt proves inclusion in another tree than the anchored one (size or root differ). */
  | 'RECEIPT_ANCHOR_MISMATCH'

export class ProtocolError extends ProvenanceError<ProtocolErrorCode> {}

/** True when `e` is a ProvenanceError carrying `code` (works across class copies). */
export function isErrorCode (e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === code
}
