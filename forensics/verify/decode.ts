/**
 * Lenient decoding of a bundle's parts for the verifier: a record or proof that does not decode is
 * a finding about it, never an exception that would stop the verification.
 */
import { decodeBundleRecord, decodeBundleRecordInto, decodeEnvelope, parseProof, type SignedRecord, type TlogProof } from '../../protocol/index.js'

/** The signed record a bundle's base64 entry holds, or undefined when it is not a well-formed envelope. */
export function tryDecode (b64: string): SignedRecord | undefined {
  return tryDecodeEnvelope(tryBase64(b64))
}

/** The bytes a bundle's record entry holds, or undefined when it is not canonical base64 of at most one envelope. */
export function tryBase64 (b64: string): Uint8Array | undefined {
  try {
    return decodeBundleRecord(b64)
  } catch {
    return undefined
  }
}

/**
 * tryBase64 writing the bytes into `out` at `offset` (room for `b64.length / 4 * 3` bytes): a view
 * of what it wrote, or undefined (nothing written) when the entry is not canonical base64 of at most one envelope.
 */
export function tryBase64Into (b64: string, out: Buffer, offset: number): Uint8Array | undefined {
  try {
    const n = decodeBundleRecordInto(b64, out, offset)
    return new Uint8Array(out.buffer, out.byteOffset + offset, n)
  } catch {
    return undefined
  }
}

/** tryDecode's second half: the signed record of an envelope's bytes, undefined for none or a malformed one. */
export function tryDecodeEnvelope (envelope: Uint8Array | undefined): SignedRecord | undefined {
  if (envelope === undefined) return undefined
  try {
    return decodeEnvelope(envelope)
  } catch {
    return undefined
  }
}

/** The parsed proof, or undefined when the text is malformed. */
export function tryParseProof (text: string): TlogProof | undefined {
  try {
    return parseProof(text)
  } catch {
    return undefined
  }
}
