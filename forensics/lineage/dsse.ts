/**
 * DSSE v1 envelopes signed with Ed25519: the wrapper of a training-run statement
 * (https://github.com/secure-systems-lab/dsse, protocol.md and envelope.md). The signature covers
 * PAE(payloadType, payload), never the JSON around it.
 */
import { createHash } from 'node:crypto'
import { verifySignature, type Signer } from '../../protocol/index.js'
import { ForensicsError } from '../errors.js'

export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json'
/** Envelopes larger than this are refused before they are read. */
export const DEFAULT_ENVELOPE_MAX_BYTES = 16 * 1024 * 1024

export interface DsseSignature { keyid: string, sig: string }
export interface DsseEnvelope { payloadType: string, payload: string, signatures: DsseSignature[] }

/**
 * DSSE protocol.md: PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, LEN in
 * ASCII decimal of the byte length.
 */
export function pae (payloadType: string, payload: Uint8Array): Uint8Array {
  const type = Buffer.from(payloadType, 'utf8')
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.byteLength} `), payload])
}

/** The key id this project writes: lower-case hex of the raw 32-byte Ed25519 public key. */
export function keyIdOf (publicKey: Uint8Array): string {
  return Buffer.from(publicKey).toString('hex')
}

/** Signs `payload` into an envelope with one signature. */
export function signEnvelope (payload: Uint8Array, signer: Signer, payloadType = IN_TOTO_PAYLOAD_TYPE): DsseEnvelope {
  const sig = signer.sign(pae(payloadType, payload))
  return { payloadType, payload: Buffer.from(payload).toString('base64'), signatures: [{ keyid: keyIdOf(signer.publicKey), sig: Buffer.from(sig).toString('base64') }] }
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/** Strict standard base64 (DSSE envelope.md allows URL-safe too; we write and read standard only). */
export function decodeBase64 (text: string, what: string): Uint8Array {
  if (!BASE64.test(text)) throw new ForensicsError('STATEMENT_INVALID', `${what}: not standard base64`)
  return new Uint8Array(Buffer.from(text, 'base64'))
}

/**
 * Parses envelope bytes: JSON, the three fields, base64 payload and signatures.
 * @throws ForensicsError STATEMENT_INVALID, LINEAGE_INPUT_TOO_LARGE
 */
export function parseEnvelope (bytes: Uint8Array, maxBytes = DEFAULT_ENVELOPE_MAX_BYTES): { envelope: DsseEnvelope, payload: Uint8Array } {
  if (bytes.byteLength > maxBytes) throw new ForensicsError('LINEAGE_INPUT_TOO_LARGE', `envelope has ${bytes.byteLength} bytes, at most ${maxBytes}`)
  let v: unknown
  try {
    v = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'))
  } catch (e) {
    throw new ForensicsError('STATEMENT_INVALID', 'envelope is not valid JSON', { cause: e })
  }
  const o = v as Record<string, unknown>
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ForensicsError('STATEMENT_INVALID', 'envelope: expected a JSON object')
  if (typeof o.payloadType !== 'string') throw new ForensicsError('STATEMENT_INVALID', 'envelope.payloadType: a string')
  if (typeof o.payload !== 'string') throw new ForensicsError('STATEMENT_INVALID', 'envelope.payload: a base64 string')
  if (!Array.isArray(o.signatures) || o.signatures.length === 0 || o.signatures.length > 16) throw new ForensicsError('STATEMENT_INVALID', 'envelope.signatures: 1 to 16 signatures')
  for (const [i, s] of o.signatures.entries()) {
    const sig = s as Record<string, unknown>
    if (typeof s !== 'object' || s === null || typeof sig.sig !== 'string' || (sig.keyid !== undefined && typeof sig.keyid !== 'string')) {
      throw new ForensicsError('STATEMENT_INVALID', `envelope.signatures[${i}]: { keyid?: string, sig: base64 }`)
    }
    decodeBase64(sig.sig, `envelope.signatures[${i}].sig`)
  }
  const payload = decodeBase64(o.payload, 'envelope.payload')
  return { envelope: o as unknown as DsseEnvelope, payload }
}

/**
 * The public keys (of `trusted`) whose signature over the envelope verifies. A signature by a key
 * outside `trusted` counts for nothing, whatever its keyid says.
 */
export function verifyEnvelope (envelope: DsseEnvelope, payload: Uint8Array, trusted: readonly Uint8Array[]): Uint8Array[] {
  const message = pae(envelope.payloadType, payload)
  const out: Uint8Array[] = []
  for (const s of envelope.signatures) {
    const sig = Buffer.from(s.sig, 'base64')
    if (sig.byteLength !== 64) continue
    for (const key of trusted) {
      if (out.includes(key)) continue
      if (verifySignature(new Uint8Array(sig), message, key)) out.push(key)
    }
  }
  return out
}

/** SHA-256 (hex) of the payload bytes: the statement hash the lineage registry stores. */
export function statementHashOf (payload: Uint8Array): string {
  return createHash('sha256').update(payload).digest('hex')
}
