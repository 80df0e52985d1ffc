/**
 * SHA-256 helpers and constant-time comparison shared by every part.
 */
import * as crypto from 'node:crypto'
import { createHash, timingSafeEqual } from 'node:crypto'

export const HASH_BYTES = 32
export const ZERO_HASH: Uint8Array = new Uint8Array(HASH_BYTES)

// crypto.hash (one-shot, Node >= 20.12) skips the Hash object: faster for the short inputs that
// every record hashes (about 1.6x createHash for the Merkle tree's 65-byte nodes).
const oneShot = typeof crypto.hash === 'function' ? crypto.hash : undefined

/** SHA-256 of the concatenation of `parts`. */
export function sha256 (...parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1 && oneShot !== undefined) return digestBytes(oneShot('sha256', parts[0] as Uint8Array, 'binary'), new Uint8Array(HASH_BYTES), 0)
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return new Uint8Array(h.digest())
}

/**
 * Writes a digest that crypto.hash returned as a latin1 ('binary') string (one char per byte) into `out` at
 * `offset`; returns `out`. A digest asked for as a Buffer is an ArrayBuffer of its own outside the
 * V8 heap (a malloc, a backing store and an extension the GC must sweep): ~3 µs of CPU per 32-byte
 * hash on this machine against ~1.2 for the string and a 32-byte Uint8Array, which V8 keeps on
 * its heap. The gateway hashes every record two or three times.
 */
function digestBytes (latin1: string, out: Uint8Array, offset: number): Uint8Array {
  for (let i = 0; i < latin1.length; i++) out[offset + i] = latin1.charCodeAt(i)
  return out
}

/** SHA-256 of `data` written into `out` at `offset`, with no Uint8Array of its own (a Merkle level is one buffer). */
export function sha256Into (data: Uint8Array, out: Uint8Array, offset: number): void {
  if (oneShot !== undefined) digestBytes(oneShot('sha256', data, 'binary'), out, offset)
  else out.set(createHash('sha256').update(data).digest(), offset)
}

/** Lower-case hex of the SHA-256 of `data` (one-shot where Node has it: a model's hundreds of tensors). */
export function sha256Hex (data: Uint8Array): string {
  return oneShot !== undefined ? oneShot('sha256', data, 'hex') : createHash('sha256').update(data).digest('hex')
}

/** Lower-case hex of `bytes`. */
export function toHex (bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')
}

/**
 * Bytes of an even-length hex string.
 * @throws TypeError on anything but hex.
 */
export function fromHex (hex: string): Uint8Array {
  if (typeof hex !== 'string' || hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new TypeError('expected an even-length hex string')
  }
  return new Uint8Array(Buffer.from(hex, 'hex'))
}

/** Constant-time equality of two byte strings (false when lengths differ). */
export function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && timingSafeEqual(a, b)
}
