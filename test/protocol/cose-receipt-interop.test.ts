/**
 * Our COSE receipts (docs/PROTOCOL.md §7.9) checked by implementations not written here: cose-kit
 * (a COSE library by another author) verifies the EdDSA COSE_Sign1 with the anchored root as its
 * detached payload, cbor-x reads the RFC 9942 headers and the inclusion proof, and the proof is run
 * through RFC 9162 to the anchored root.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { createPublicKey, type KeyObject } from 'node:crypto'
import { createRequire } from 'node:module'
import t from 'tap'
import type * as CoseKit from 'cose-kit'
import { decode } from 'cbor-x'
import { computeRoot, createSigner, buildReceipt, fromHex, hashLeaf, proveInclusion, sha256, verifyInclusion } from '../../protocol/index.js'
import { BATCH_VECTORS_PATH, type BatchVectors } from '../../scripts/gen-batch-vectors.js'
import { CONFORMANCE_DIR } from '../../scripts/gen-conformance.js'

// cose-kit's ESM build imports @peculiar/webcrypto's ESM file, which has a .js extension in a
// package without "type": "module": plain Node detects its syntax, tap's TypeScript loader does
// not. Its CommonJS build is the same code and loads under both.
const { Sign1, coseVerify } = createRequire(import.meta.url)('cose-kit') as typeof CoseKit

const file = JSON.parse(readFileSync(BATCH_VECTORS_PATH, 'utf8')) as BatchVectors
const anchoredRoot = fromHex(file.root)

/** The raw Ed25519 key as node:crypto imports a JWK (RFC 8037), not through our DER prefix. */
function keyObject (publicKey: Uint8Array): KeyObject {
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' })
}
const logKey = keyObject(fromHex(file.logKey.publicKey))

/** cose-kit's verification of a detached-payload Sign1: rebuild it with the payload the verifier trusts. */
async function verifyDetached (receipt: Uint8Array, payload: Uint8Array, key: KeyObject): Promise<boolean> {
  const { decoded } = await coseVerify(receipt, key)
  // The protected header bytes exactly as received (cose-kit keeps them, its typings mark them protected).
  const protectedBytes = (decoded as unknown as { encodedProtectedHeaders: Uint8Array }).encodedProtectedHeaders
  return await new Sign1(protectedBytes, decoded.unprotectedHeaders, payload, decoded.signature).verify(key)
}

t.test('interop: cose-kit verifies the receipt vector over the anchored root, and nothing else', async t => {
  const receipt = fromHex(file.receipt.bytes)
  const { isValid, decoded } = await coseVerify(receipt, logKey)
  t.equal(isValid, false, 'the payload is detached: without the root there is nothing to verify')
  t.equal(decoded.payload, null)
  t.equal(decoded.alg, -8, 'EdDSA')
  t.equal(decoded.protectedHeaders.get(395), 1, 'vds RFC9162_SHA256')
  t.same(Buffer.from(decoded.kid as Uint8Array), Buffer.from(sha256(fromHex(file.logKey.publicKey))), 'kid')

  t.equal(await verifyDetached(receipt, anchoredRoot, logKey), true, 'valid over the anchored root')
  t.equal(await verifyDetached(receipt, sha256(anchoredRoot), logKey), false, 'invalid over another root')
  t.equal(await verifyDetached(receipt, anchoredRoot, keyObject(createSigner(new Uint8Array(32).fill(9)).publicKey)), false, 'invalid under another key')
})

t.test('interop: the inclusion proof read by cbor-x leads from the record to the anchored root (RFC 9162 §2.1.3.2)', async t => {
  const { decoded } = await coseVerify(fromHex(file.receipt.bytes), logKey)
  const vdp = decoded.unprotectedHeaders.get(396) as Map<number, Uint8Array[]>
  const proofs = vdp.get(-1) as Uint8Array[]
  t.equal(proofs.length, 1)
  const [treeSize, leafIndex, path] = decode(proofs[0] as Uint8Array) as [number, number, Uint8Array[]]
  t.equal(treeSize, file.leaves.length)
  t.equal(leafIndex, file.receipt.index)
  const leaf = hashLeaf(fromHex((file.leaves[leafIndex] as { envelope: string }).envelope))
  verifyInclusion(leaf, leafIndex, treeSize, path.map(h => new Uint8Array(h)), anchoredRoot)
  t.pass('the proof reaches the anchored root')
})

t.test('interop: cose-kit verifies fresh receipts of every leaf of a 5-leaf batch and of a one-leaf batch', async t => {
  const log = createSigner(fromHex(file.logKey.seed))
  for (const n of [1, 5]) {
    const leaves = Array.from({ length: n }, (_, i) => hashLeaf(Uint8Array.of(i)))
    const root = computeRoot(leaves)
    for (let i = 0; i < n; i++) {
      const receipt = buildReceipt({ leafHash: leaves[i] as Uint8Array, leafIndex: i, treeSize: n, path: proveInclusion(leaves, i), root }, log)
      t.equal(await verifyDetached(receipt, root, logKey), true, `leaf ${i} of ${n}`)
    }
  }
})

t.test('interop: cose-kit agrees with the signature verdict of the conformance suite receipts', async t => {
  const manifest = JSON.parse(readFileSync(join(CONFORMANCE_DIR, 'cases.json'), 'utf8')) as { cases: Array<{ name: string, kind: string, file: string, inputs: Record<string, string>, expect: { verdict: string, error?: string } }> }
  const receipts = manifest.cases.filter(c => c.kind === 'receipt' && (c.expect.error === undefined || c.expect.error === 'SIGNATURE_INVALID'))
  t.ok(receipts.length >= 2)
  for (const c of receipts) {
    const ok = await verifyDetached(readFileSync(join(CONFORMANCE_DIR, c.file)), fromHex(c.inputs.anchoredRoot as string), keyObject(fromHex(c.inputs.publicKey as string)))
    t.equal(ok ? 'valid' : 'invalid', c.expect.verdict, c.name)
  }
})
