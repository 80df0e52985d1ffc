/**
 * Ed25519 on raw 32-byte keys, two independent implementations: node:crypto (OpenSSL) for the
 * hot paths of agent and gateway, @noble/ed25519 for forensics. Both verify strictly per
 * RFC 8032 §5.1.7 (noble's ZIP 215 leniency is off), and both apply the same extra checks on the
 * points (see verifySignature) so that they accept exactly the same signatures.
 */
import { createPrivateKey, createPublicKey, randomBytes, sign as nodeSign, verify as nodeVerify, type KeyObject } from 'node:crypto'
import * as noble from '@noble/ed25519'
import { sha512 } from '@noble/hashes/sha2.js'
import { ProtocolError } from './errors.js'

// noble's sync API needs a SHA-512; @noble/hashes keeps the verifier independent of OpenSSL.
noble.hashes.sha512 = sha512

export const PUBLIC_KEY_BYTES = 32
export const SEED_BYTES = 32
export const SIGNATURE_BYTES = 64

// DER prefixes that wrap a raw key in PKCS#8 / SPKI for node:crypto (RFC 8410 §7 and §4).
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

/** Signs messages with one device key. The seam the agent signs through. */
export interface Signer {
  readonly publicKey: Uint8Array
  sign (message: Uint8Array): Uint8Array
}

/** Which implementation verifies: `node` (OpenSSL) or `noble` (@noble/ed25519). */
export type VerifierBackend = 'node' | 'noble'

/** A fresh random 32-byte private seed. */
export function generateSeed (): Uint8Array {
  return new Uint8Array(randomBytes(SEED_BYTES))
}

function checkLength (value: Uint8Array, length: number, what: string): void {
  if (!(value instanceof Uint8Array) || value.byteLength !== length) {
    throw new ProtocolError('SEED_INVALID', `${what} must be ${length} bytes`)
  }
}

/**
 * A node:crypto signer for a raw 32-byte seed (RFC 8032 private key).
 * @throws ProtocolError `SEED_INVALID` when the seed is not 32 bytes.
 */
export function createSigner (seed: Uint8Array): Signer {
  checkLength(seed, SEED_BYTES, 'Ed25519 seed')
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' })
  const spki = createPublicKey(key).export({ format: 'der', type: 'spki' })
  const publicKey = new Uint8Array(spki.subarray(SPKI_PREFIX.length))
  return {
    publicKey,
    sign: (message) => new Uint8Array(nodeSign(null, message, key))
  }
}

/** The raw public key of a seed, computed by noble (used to cross-check node:crypto). */
export function publicKeyFromSeedNoble (seed: Uint8Array): Uint8Array {
  checkLength(seed, SEED_BYTES, 'Ed25519 seed')
  return noble.getPublicKey(seed)
}

/** Signs with noble; for tests and vectors only (the agent signs through node:crypto). */
export function signNoble (message: Uint8Array, seed: Uint8Array): Uint8Array {
  checkLength(seed, SEED_BYTES, 'Ed25519 seed')
  return noble.sign(message, seed)
}

// Importing and checking a key costs more than a verification's hashing: keep recent ones.
const KEY_CACHE_MAX = 4096
const strictKeys = new Map<string, boolean>()
const nodeKeys = new Map<string, KeyObject>()

function remember<V> (cache: Map<string, V>, id: string, value: V): V {
  if (cache.size >= KEY_CACHE_MAX) cache.clear()
  cache.set(id, value)
  return value
}

/**
 * True when `publicKey` is a canonical encoding of a point of the prime-order subgroup other than
 * the identity. OpenSSL accepts small-order keys (with the identity as key, R = identity and S = 0
 * verify every message) while noble's strict mode rejects them, so both backends check this first.
 */
function isStrictPublicKey (publicKey: Uint8Array, id: string): boolean {
  const known = strictKeys.get(id)
  if (known !== undefined) return known
  let ok: boolean
  try {
    const point = noble.Point.fromBytes(publicKey, false)
    ok = !point.isSmallOrder() && point.isTorsionFree()
  } catch {
    ok = false
  }
  return remember(strictKeys, id, ok)
}

function nodePublicKey (publicKey: Uint8Array, id: string): KeyObject {
  return nodeKeys.get(id) ??
    remember(nodeKeys, id, createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKey]), format: 'der', type: 'spki' }))
}

/**
 * {@link verifySignature} (node backend) of one key, with the per-key work — the strict key check,
 * its import — done once here instead of once per signature (a hex id and two cache look-ups each):
 * for a verifier holding many signatures of a key, as the gateway's verify workers do per batch.
 * The returned function answers exactly as verifySignature(signature, message, publicKey) does.
 */
export function keyVerifier (publicKey: Uint8Array): (signature: Uint8Array, message: Uint8Array) => boolean {
  let key: KeyObject | undefined
  if (publicKey.byteLength === PUBLIC_KEY_BYTES) {
    try {
      const id = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('hex')
      if (isStrictPublicKey(publicKey, id)) key = nodePublicKey(publicKey, id)
    } catch {
      key = undefined
    }
  }
  if (key === undefined) return () => false
  const k = key
  return (signature, message) => {
    if (signature.byteLength !== SIGNATURE_BYTES) return false
    try {
      return nodeVerify(null, message, k, signature)
    } catch {
      return false
    }
  }
}

/**
 * True when `signature` is a valid Ed25519 signature of `message` under `publicKey`.
 * Both backends accept exactly: a canonical public key of the prime-order subgroup (not the
 * identity), a canonical R, S < L, and the cofactorless equation [S]B = R + [k]A (RFC 8032 §5.1.7).
 * Never throws for wrong-length or invalid keys and signatures: those simply do not verify.
 */
export function verifySignature (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array, backend: VerifierBackend = 'node'): boolean {
  if (signature.byteLength !== SIGNATURE_BYTES || publicKey.byteLength !== PUBLIC_KEY_BYTES) return false
  try {
    const id = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('hex')
    if (!isStrictPublicKey(publicKey, id)) return false
    if (backend === 'noble') {
      // noble checks the cofactored equation [8][S]B = [8]R + [8][k]A; with A in the prime-order
      // subgroup that equals OpenSSL's cofactorless check exactly when R has no small-order component.
      return noble.verify(signature, message, publicKey, { zip215: false }) &&
        noble.Point.fromBytes(signature.subarray(0, PUBLIC_KEY_BYTES), false).isTorsionFree()
    }
    return nodeVerify(null, message, nodePublicKey(publicKey, id), signature)
  } catch {
    // An encoding that is not a curve point: invalid, not exceptional.
    return false
  }
}
