/**
 * Ed25519: the RFC 8032 §7.1 vectors on both backends (node:crypto and @noble/ed25519), and a
 * cross-check that the two accept exactly the same signatures, on random keys and messages and
 * on the edge cases where Ed25519 implementations are known to differ (non-canonical S, small-order
 * and non-canonical points, R with a small-order component); keyVerifier held to the node backend.
 */
import { createPublicKey, verify as cryptoVerify } from 'node:crypto'
import { readFileSync } from 'node:fs'
import t from 'tap'
import fc from 'fast-check'
import * as noble from '@noble/ed25519'
import { sha512 } from '@noble/hashes/sha2.js'
import {
  createSigner, fromHex, generateSeed, keyVerifier, publicKeyFromSeedNoble, sha256, signNoble, toHex, verifySignature,
  ProtocolError, type VerifierBackend
} from '../../protocol/index.js'

const BACKENDS: VerifierBackend[] = ['node', 'noble']
const rfc = JSON.parse(readFileSync(new URL('../vectors/ed25519-rfc8032.json', import.meta.url), 'utf8')) as {
  source: string
  vectors: Array<{ name: string, secretKey: string, publicKey: string, message: string, signature: string }>
}

/** L, the order of the prime-order subgroup (RFC 8032 §5.1). */
const L = 2n ** 252n + 27742317777372353535851937790883648493n

function leToBigint (b: Uint8Array): bigint {
  let n = 0n
  for (let i = b.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(b[i]!)
  return n
}
function bigintToLe (n: bigint, length = 32): Uint8Array {
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) { out[i] = Number(n & 0xffn); n >>= 8n }
  return out
}
function withS (signature: Uint8Array, s: bigint): Uint8Array {
  const out = signature.slice()
  out.set(bigintToLe(s), 32)
  return out
}
/**
 * Both backends' answers. Every case here also holds keyVerifier (the gateway workers' per-key
 * form of the node backend) to the node backend's answer: a difference throws, failing the test.
 */
function both (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): [boolean, boolean] {
  const node = verifySignature(signature, message, publicKey, 'node')
  if (keyVerifier(publicKey)(signature, message) !== node) throw new Error(`keyVerifier differs from verifySignature (node: ${String(node)})`)
  return [node, verifySignature(signature, message, publicKey, 'noble')]
}

t.test('behavior: RFC 8032 §7.1 vectors — both backends derive the keys, reproduce the signatures, and verify them', async t => {
  t.equal(rfc.source, 'RFC 8032 §7.1')
  t.equal(rfc.vectors.length, 5)
  for (const v of rfc.vectors) {
    const seed = fromHex(v.secretKey)
    const message = fromHex(v.message)
    const signer = createSigner(seed)
    t.equal(toHex(signer.publicKey), v.publicKey, `${v.name}: node public key`)
    t.equal(toHex(publicKeyFromSeedNoble(seed)), v.publicKey, `${v.name}: noble public key`)
    t.equal(toHex(signer.sign(message)), v.signature, `${v.name}: node signature`)
    t.equal(toHex(signNoble(message, seed)), v.signature, `${v.name}: noble signature`)
    for (const backend of BACKENDS) {
      t.ok(verifySignature(fromHex(v.signature), message, fromHex(v.publicKey), backend), `${v.name}: ${backend} verifies`)
      const other = message.length === 0 ? Uint8Array.of(0) : message.map((b, i) => i === 0 ? b ^ 1 : b)
      t.notOk(verifySignature(fromHex(v.signature), other, fromHex(v.publicKey), backend), `${v.name}: ${backend} rejects another message`)
    }
  }
})

t.test('behavior: node and noble agree on random keys and messages, and on mutated signatures', async t => {
  let cases = 0
  fc.assert(fc.property(
    fc.uint8Array({ minLength: 32, maxLength: 32 }),
    fc.uint8Array({ maxLength: 300 }),
    fc.nat(511),
    (seed, message, flip) => {
      const signer = createSigner(seed)
      if (toHex(signer.publicKey) !== toHex(publicKeyFromSeedNoble(seed))) return false
      const signature = signer.sign(message)
      if (toHex(signature) !== toHex(signNoble(message, seed))) return false
      const [n, b] = both(signature, message, signer.publicKey)
      if (!n || !b) return false
      // One flipped bit anywhere in the signature: both must reject it.
      const mutated = signature.slice()
      mutated[flip >> 3]! ^= 1 << (flip & 7)
      const [nm, bm] = both(mutated, message, signer.publicKey)
      // And a flipped bit in the message or the key.
      const otherMessage = Uint8Array.from([...message, 0])
      const [no, bo] = both(signature, otherMessage, signer.publicKey)
      const otherKey = signer.publicKey.slice()
      otherKey[flip % 32]! ^= 1 << (flip & 7)
      const [nk, bk] = both(signature, message, otherKey)
      cases++
      return !nm && !bm && !no && !bo && !nk && !bk
    }
  ), { seed: 8032, numRuns: 150 })
  t.equal(cases, 150)
})

t.test('error: non-canonical S (S + L, S + 2L, S = L) is rejected by both backends', async t => {
  const seed = sha256(new TextEncoder().encode('malleability'))
  const signer = createSigner(seed)
  for (let i = 0; i < 8; i++) {
    const message = Uint8Array.of(i, 1, 2, 3)
    const signature = signer.sign(message)
    const s = leToBigint(signature.subarray(32))
    t.ok(s < L, 'an honest S is reduced')
    t.same(both(signature, message, signer.publicKey), [true, true], `honest signature ${i}`)
    t.same(both(withS(signature, s + L), message, signer.publicKey), [false, false], `S + L, message ${i}`)
    if (s + 2n * L < 2n ** 256n) t.same(both(withS(signature, s + 2n * L), message, signer.publicKey), [false, false], `S + 2L, message ${i}`)
  }
  const signature = signer.sign(Uint8Array.of(0))
  t.same(both(withS(signature, L), Uint8Array.of(0), signer.publicKey), [false, false], 'S = L')
  t.same(both(withS(signature, 2n ** 256n - 1n), Uint8Array.of(0), signer.publicKey), [false, false], 'S = 2^256 - 1')
})

// The eight points of order dividing 8 (canonical encodings), and non-canonical encodings of
// some of them (y ≥ p, or x = 0 with the sign bit set). Checked against noble below.
const SMALL_ORDER_CANONICAL = [
  '0100000000000000000000000000000000000000000000000000000000000000', // identity (order 1)
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // order 2
  '0000000000000000000000000000000000000000000000000000000000000000', // order 4
  '0000000000000000000000000000000000000000000000000000000000000080', // order 4
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a', // order 8
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa', // order 8
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05', // order 8
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85' // order 8
]
const SMALL_ORDER_NON_CANONICAL = [
  '0100000000000000000000000000000000000000000000000000000000000080', // identity, x = 0 with sign bit
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff', // order 2, x = 0 with sign bit
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // y = p + 1: identity
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f', // y = p: order 4
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff', // y = p with sign bit
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff' // y = p + 1 with sign bit
]

t.test('error: small-order and non-canonical public keys verify nothing, on either backend', async t => {
  for (const hex of SMALL_ORDER_CANONICAL) {
    t.ok(noble.Point.fromHex(hex, false).isSmallOrder(), `${hex.slice(0, 8)}… is a canonical small-order point`)
  }
  for (const hex of SMALL_ORDER_NON_CANONICAL) {
    t.throws(() => noble.Point.fromHex(hex, false), `${hex.slice(0, 8)}… is not a canonical encoding`)
  }
  const messages = [new Uint8Array(), Uint8Array.of(0x72), new TextEncoder().encode('edge-provenance')]
  for (const keyHex of [...SMALL_ORDER_CANONICAL, ...SMALL_ORDER_NON_CANONICAL]) {
    const key = fromHex(keyHex)
    // With a small-order A, [k]A is small order for every message: R = identity, S = 0 (or R = ±A)
    // satisfies the cofactorless equation for many messages. OpenSSL alone accepts such pairs.
    const rs = [SMALL_ORDER_CANONICAL[0]!, keyHex, ...SMALL_ORDER_CANONICAL]
    for (const message of messages) {
      for (const r of rs) {
        const signature = new Uint8Array(64)
        signature.set(fromHex(r), 0)
        t.same(both(signature, message, key), [false, false], `A=${keyHex.slice(0, 8)}… R=${r.slice(0, 8)}… S=0 |m|=${message.length}`)
      }
    }
  }
  // A real signature under a real key does not make a small-order key acceptable either.
  const signer = createSigner(sha256(Uint8Array.of(1)))
  const signature = signer.sign(Uint8Array.of(1))
  for (const keyHex of SMALL_ORDER_CANONICAL) t.same(both(signature, Uint8Array.of(1), fromHex(keyHex)), [false, false])
})

t.test('error: a public key with a small-order component (mixed order) verifies nothing, on either backend', async t => {
  const torsion = noble.Point.fromHex(SMALL_ORDER_CANONICAL[6]!, false) // order 8
  const { scalar } = noble.utils.getExtendedPublicKey(sha256(Uint8Array.of(2)))
  const mixed = noble.Point.BASE.multiply(scalar).add(torsion)
  const key = mixed.toBytes()
  t.notOk(mixed.isTorsionFree(), 'the key has a torsion component')
  // The key's owner can satisfy the cofactorless equation: S = r + k·a and R = [r]B + [j]T with
  // j + k ≡ 0 (mod 8), so that [S]B - [k]A = R exactly. node:crypto alone accepts these.
  const message = Uint8Array.of(9, 9, 9)
  let found = 0
  for (let r = 1000n; found < 4 && r < 1200n; r++) {
    const j = r % 8n
    const rBytes = noble.Point.BASE.multiply(r).add(torsion.multiply(j === 0n ? 8n : j, false)).toBytes()
    const k = leToBigint(sha512(new Uint8Array([...rBytes, ...key, ...message]))) % L
    if ((j + k) % 8n !== 0n) continue
    found++
    const signature = new Uint8Array([...rBytes, ...bigintToLe((r + k * scalar) % L)])
    const spki = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), key]), format: 'der', type: 'spki' })
    t.ok(cryptoVerify(null, message, spki, signature), `raw node:crypto accepts the crafted signature ${found}`)
    t.same(both(signature, message, key), [false, false], `crafted signature ${found}: both reject`)
  }
  t.equal(found, 4, 'found four crafted signatures')
})

t.test('error: R with a small-order component is rejected by both (noble alone checks [8]-cofactored and would accept)', async t => {
  const seed = sha256(Uint8Array.of(3))
  const signer = createSigner(seed)
  const { scalar, pointBytes } = noble.utils.getExtendedPublicKey(seed)
  t.equal(toHex(pointBytes), toHex(signer.publicKey))
  const message = new TextEncoder().encode('record bytes')
  for (const torsionHex of SMALL_ORDER_CANONICAL.slice(1)) {
    const torsion = noble.Point.fromHex(torsionHex, false)
    const r = 123456789n
    const rPoint = noble.Point.BASE.multiply(r).add(torsion)
    const rBytes = rPoint.toBytes()
    const k = leToBigint(sha512(new Uint8Array([...rBytes, ...signer.publicKey, ...message]))) % L
    const s = (r + k * scalar) % L
    const signature = new Uint8Array([...rBytes, ...bigintToLe(s)])
    // The case is one where the two equations differ: raw noble (cofactored) accepts it.
    t.ok(noble.verify(signature, message, signer.publicKey, { zip215: false }), `raw noble accepts R + T (${torsionHex.slice(0, 8)}…)`)
    t.same(both(signature, message, signer.publicKey), [false, false], `R + T (${torsionHex.slice(0, 8)}…): both reject`)
  }
})

// "Taming the many EdDSAs" (Chalkias, Garillot, Nikolaenko, SSR 2020), the ten vectors of
// github.com/novifinancial/ed25519-speccheck cases.json: small-order A and R, mixed-order points,
// cofactored-only equations, S ≥ L, non-canonical R. Our rule rejects every one of them.
const SPECCHECK = [
  ['8c93255d71dcab10e8f379c26200f3c7bd5f09d9bc3068d3ef4edeb4853022b6', 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa', 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a0000000000000000000000000000000000000000000000000000000000000000'],
  ['9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79', 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa', 'f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04'],
  ['aebf3f2601a0c8c5d39cc7d8911642f740b78168218da8471772b35f9d35b9ab', 'f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43', 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa8c4bd45aecaca5b24fb97bc10ac27ac8751a7dfe1baff8b953ec9f5833ca260e'],
  ['9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79', 'cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d', '9046a64750444938de19f227bb80485e92b83fdb4b6506c160484c016cc1852f87909e14428a7a1d62e9f22f3d3ad7802db02eb2e688b6c52fcd6648a98bd009'],
  ['e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c', 'cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d', '160a1cb0dc9c0258cd0a7d23e94d8fa878bcb1925f2c64246b2dee1796bed5125ec6bc982a269b723e0668e540911a9a6a58921d6925e434ab10aa7940551a09'],
  ['e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c', 'cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d', '21122a84e0b5fca4052f5b1235c80a537878b38f3142356b2c2384ebad4668b7e40bc836dac0f71076f9abe3a53f9c03c1ceeeddb658d0030494ace586687405'],
  ['85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40', '442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623', 'e96f66be976d82e60150baecff9906684aebb1ef181f67a7189ac78ea23b6c0e547f7690a0e2ddcd04d87dbc3490dc19b3b3052f7ff0538cb68afb369ba3a514'],
  ['85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40', '442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623', '8ce5b96c8f26d0ab6c47958c9e68b937104cd36e13c33566acd2fe8d38aa19427e71f98a473474f2f13f06f97c20d58cc3f54b8bd0d272f42b695dd7e89a8c22'],
  ['fdaebc429f4a735932a160da1301080c13280eea8bc280d1b392c6b9e6ba3a5a', 'f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43', 'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f454d370c8d9fc323a41450f8d513eafeb5b0697390c1e505a0d4ddc71f566607'],
  ['84b698d39be126ff55fe45079e6c8bf64a0d7db6994560b4e96b7021eb39c1a1', 'f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43', 'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f084d5b99c2a9463d9c8bd5026916996984eeec87ddf1d3be329006ace1b37b09']
] as const

t.test('error: the ed25519-speccheck edge cases are rejected by both backends alike', async t => {
  SPECCHECK.forEach(([message, key, signature], i) => {
    t.same(both(fromHex(signature), fromHex(message), fromHex(key)), [false, false], `speccheck case ${i}`)
  })
})

t.test('behavior: verification never throws on wrong lengths or junk; signing checks the seed', async t => {
  const signer = createSigner(generateSeed())
  const message = Uint8Array.of(1)
  const signature = signer.sign(message)
  for (const backend of BACKENDS) {
    t.notOk(verifySignature(signature.subarray(0, 63), message, signer.publicKey, backend), `${backend}: 63-byte signature`)
    t.notOk(verifySignature(new Uint8Array(65), message, signer.publicKey, backend), `${backend}: 65-byte signature`)
    t.notOk(verifySignature(signature, message, signer.publicKey.subarray(0, 31), backend), `${backend}: 31-byte key`)
    t.notOk(verifySignature(signature, message, new Uint8Array(32).fill(0xff), backend), `${backend}: key not on the curve`)
    t.notOk(verifySignature(new Uint8Array(64).fill(0xff), message, signer.publicKey, backend), `${backend}: all-ones signature`)
    t.ok(verifySignature(signature, message, signer.publicKey, backend), `${backend}: still verifies after the junk`)
  }
  const prepared = keyVerifier(signer.publicKey)
  t.notOk(prepared(signature.subarray(0, 63), message), 'keyVerifier: 63-byte signature')
  t.notOk(prepared(new Uint8Array(65), message), 'keyVerifier: 65-byte signature')
  t.notOk(keyVerifier(signer.publicKey.subarray(0, 31))(signature, message), 'keyVerifier: 31-byte key')
  t.notOk(keyVerifier(new Uint8Array(32).fill(0xff))(signature, message), 'keyVerifier: key not on the curve')
  t.ok(prepared(signature, message), 'keyVerifier: still verifies after the junk')
  // An offset view of the key (as decoded records hand out) verifies like a fresh copy.
  const padded = new Uint8Array(40)
  padded.set(signer.publicKey, 5)
  t.ok(verifySignature(signature, message, padded.subarray(5, 37)), 'offset view of the key')
  for (const bad of [new Uint8Array(31), new Uint8Array(33), new Uint8Array(64)]) {
    t.throws(() => createSigner(bad), { constructor: ProtocolError, code: 'SEED_INVALID' }, `node seed of ${bad.length} bytes`)
    t.throws(() => publicKeyFromSeedNoble(bad), { constructor: ProtocolError, code: 'SEED_INVALID' }, `noble seed of ${bad.length} bytes`)
    t.throws(() => signNoble(message, bad), { constructor: ProtocolError, code: 'SEED_INVALID' }, `noble signing seed of ${bad.length} bytes`)
  }
  t.equal(generateSeed().length, 32)
  t.not(toHex(generateSeed()), toHex(generateSeed()), 'seeds are random')
})
