/**
 * COSE receipts of inclusion (protocol/cose-receipt.ts, docs/PROTOCOL.md §7.9, RFC 9942): the byte
 * layout, round trips over every leaf of small trees on both Ed25519 backends, and the attacks an
 * outsider would try on a COSE_Sign1 whose unprotected header is not signed.
 */
import t from 'tap'
import fc from 'fast-check'
import {
  assembleReceipt, buildReceipt, computeRoot, signReceiptRoot, createSigner, decodeReceipt, encodeInclusionProof, encodeReceiptProtectedHeader, hashLeaf,
  proveInclusion, receiptKeyId, receiptToBeSigned, sha256, toHex, verifyInclusion, verifyReceipt, ProtocolError, MAX_RECEIPT_BYTES
} from '../../protocol/index.js'

const log = createSigner(new Uint8Array(32).map((_, i) => 0x61 + i))
const other = createSigner(new Uint8Array(32).fill(9))
const leavesOf = (n: number): Uint8Array[] => Array.from({ length: n }, (_, i) => hashLeaf(Uint8Array.of(i)))

function receiptFor (n: number, index: number, signer = log): { receipt: Uint8Array, leaves: Uint8Array[], root: Uint8Array } {
  const leaves = leavesOf(n)
  const root = computeRoot(leaves)
  const receipt = buildReceipt({ leafHash: leaves[index] as Uint8Array, leafIndex: index, treeSize: n, path: proveInclusion(leaves, index), root }, signer)
  return { receipt, leaves, root }
}

function code (fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (e) {
    if (e instanceof ProtocolError) return e.code
    throw e
  }
  return undefined
}

// A COSE_Sign1 assembled by hand, to build what our encoder never writes.
const head = (major: number, n: number): number[] => n < 24 ? [major << 5 | n] : n < 256 ? [major << 5 | 24, n] : [major << 5 | 25, n >> 8, n & 0xff]
const bstr = (b: Uint8Array): Buffer => Buffer.concat([Buffer.from(head(2, b.byteLength)), b])
interface Parts { tag?: number[], protectedHeader: Uint8Array, unprotected?: Buffer, proofs?: Uint8Array[], payload?: Buffer, signature: Uint8Array }
function assemble (p: Parts): Uint8Array {
  const proofs = p.proofs ?? []
  const unprotected = p.unprotected ?? Buffer.concat([Buffer.from([0xa1, 0x19, 0x01, 0x8c, 0xa1, 0x20]), Buffer.from(head(4, proofs.length)), ...proofs.map(bstr)])
  return new Uint8Array(Buffer.concat([Buffer.from(p.tag ?? [0xd2]), Buffer.from([0x84]), bstr(p.protectedHeader), unprotected, p.payload ?? Buffer.from([0xf6]), bstr(p.signature)]))
}

t.test('behavior: every leaf of trees of 1 to 9 leaves gets a receipt that verifies against the root, on both backends', async t => {
  for (let n = 1; n <= 9; n++) {
    for (let i = 0; i < n; i++) {
      const { receipt, leaves, root } = receiptFor(n, i)
      for (const backend of ['node', 'noble'] as const) {
        const r = verifyReceipt(receipt, leaves[i] as Uint8Array, { root, treeSize: n, publicKey: log.publicKey }, backend)
        if (r.leafIndex !== i || r.treeSize !== n) t.fail(`leaf ${i} of ${n}`)
      }
    }
  }
  t.equal(decodeReceipt(receiptFor(1, 0).receipt).path.length, 0, 'the one leaf of a one-leaf tree has the empty path (RFC 9162 §2.1.3.1)')
})

t.test('behavior: one root signature per batch gives every record the same receipt as signing each', async t => {
  const leaves = leavesOf(7)
  const root = computeRoot(leaves)
  const signed = signReceiptRoot(root, log)
  for (let i = 0; i < 7; i++) {
    const input = { leafHash: leaves[i] as Uint8Array, leafIndex: i, treeSize: 7, path: proveInclusion(leaves, i), root }
    t.equal(toHex(assembleReceipt(input, signed)), toHex(buildReceipt(input, log)), `leaf ${i}`)
  }
  const input = { leafHash: leaves[0] as Uint8Array, leafIndex: 0, treeSize: 7, path: proveInclusion(leaves, 0), root }
  t.throws(() => assembleReceipt(input, signReceiptRoot(sha256(root), log)), RangeError, 'a signature for another root')
  t.throws(() => signReceiptRoot(root.subarray(1), log), RangeError)
})

t.test('behavior: the bytes are the documented deterministic COSE_Sign1 (RFC 9942 §5.2, RFC 9052 §4.4)', async t => {
  const { receipt, leaves, root } = receiptFor(6, 2)
  const kid = toHex(sha256(log.publicKey))
  const protectedHex = 'a3' + '0127' + '045820' + kid + '19018b01'
  t.equal(toHex(encodeReceiptProtectedHeader(log.publicKey)), protectedHex, '{1: -8, 4: kid, 395: 1}')
  t.equal(toHex(receiptKeyId(log.publicKey)), kid)
  const proof = encodeInclusionProof(6, 2, proveInclusion(leaves, 2))
  t.equal(toHex(proof).slice(0, 6), '830602', '[tree-size 6, leaf-index 2, ...]')
  const hex = toHex(receipt)
  t.equal(hex.slice(0, 8), 'd284582a', 'tag 18, array of 4, 42-byte protected header')
  t.equal(hex.slice(8, 8 + protectedHex.length), protectedHex)
  const rest = hex.slice(8 + protectedHex.length)
  t.equal(rest.slice(0, 18), 'a119018ca12081586a', '{396: {-1: [bstr of 106 bytes]}}')
  t.equal(rest.slice(18, 18 + proof.byteLength * 2), toHex(proof))
  t.equal(rest.slice(18 + proof.byteLength * 2, 18 + proof.byteLength * 2 + 6), 'f65840', 'null payload, 64-byte signature')
  const tbs = receiptToBeSigned(encodeReceiptProtectedHeader(log.publicKey), root)
  t.equal(toHex(tbs), '846a5369676e61747572653158' + '2a' + protectedHex + '40' + '5820' + toHex(root), '["Signature1", protected, h\'\', root]')
  t.equal(toHex(decodeReceipt(receipt).signature), toHex(log.sign(tbs)), 'the signature is Ed25519 over exactly that')
})

t.test('error: a receipt for another leaf, root or key does not verify', async t => {
  const { receipt, leaves, root } = receiptFor(8, 5)
  const anchor = { root, treeSize: 8, publicKey: log.publicKey }
  t.equal(code(() => verifyReceipt(receipt, leaves[4] as Uint8Array, anchor)), 'MERKLE_ROOT_MISMATCH', 'another leaf')
  t.equal(code(() => verifyReceipt(receipt, leaves[5] as Uint8Array, { ...anchor, root: sha256(root) })), 'MERKLE_ROOT_MISMATCH', 'another anchored root')
  t.equal(code(() => verifyReceipt(receipt, leaves[5] as Uint8Array, { ...anchor, publicKey: other.publicKey })), 'SIGNATURE_INVALID', 'another key (kid differs)')
  const forged = receiptFor(8, 5, other).receipt
  t.equal(code(() => verifyReceipt(forged, leaves[5] as Uint8Array, anchor)), 'SIGNATURE_INVALID', 'signed by another key')
  const flipped = Uint8Array.from(receipt)
  flipped[flipped.length - 1] = (flipped[flipped.length - 1] as number) ^ 1
  t.equal(code(() => verifyReceipt(flipped, leaves[5] as Uint8Array, anchor)), 'SIGNATURE_INVALID', 'a flipped signature bit')
})

t.test('error: editing the unsigned tree size or leaf index is caught by the anchor and the proof', async t => {
  // RFC 9942 signs the root only: the unprotected proof can be edited without breaking the signature,
  // and a proof for leaf 5 of 8 also walks to the same root under size 7.
  const { receipt, leaves, root } = receiptFor(8, 5)
  const d = decodeReceipt(receipt)
  t.doesNotThrow(() => verifyInclusion(leaves[5] as Uint8Array, 5, 7, d.path, root), 'the same path walks to the same root under size 7')
  const resized = assemble({ protectedHeader: d.protectedHeader, proofs: [encodeInclusionProof(7, 5, d.path)], signature: d.signature })
  t.equal(code(() => verifyReceipt(resized, leaves[5] as Uint8Array, { root, treeSize: 8, publicKey: log.publicKey })), 'RECEIPT_ANCHOR_MISMATCH')
  const moved = assemble({ protectedHeader: d.protectedHeader, proofs: [encodeInclusionProof(8, 4, d.path)], signature: d.signature })
  t.equal(code(() => verifyReceipt(moved, leaves[5] as Uint8Array, { root, treeSize: 8, publicKey: log.publicKey })), 'MERKLE_ROOT_MISMATCH')
  t.equal(code(() => verifyReceipt(moved, leaves[4] as Uint8Array, { root, treeSize: 8, publicKey: log.publicKey })), 'MERKLE_ROOT_MISMATCH', 'nor for the leaf it now names')
})

t.test('error: the issuer refuses to sign a root its proof does not reach', async t => {
  const leaves = leavesOf(4)
  const path = proveInclusion(leaves, 1)
  t.equal(code(() => buildReceipt({ leafHash: leaves[1] as Uint8Array, leafIndex: 1, treeSize: 4, path, root: sha256(Uint8Array.of(1)) }, log)), 'MERKLE_ROOT_MISMATCH')
  t.equal(code(() => buildReceipt({ leafHash: leaves[1] as Uint8Array, leafIndex: 1, treeSize: 4, path: path.slice(1), root: computeRoot(leaves) }, log)), 'MERKLE_INVALID_PROOF')
})

t.test('error: every departure from the documented layout is RECEIPT_MALFORMED', async t => {
  const { receipt } = receiptFor(6, 2)
  const d = decodeReceipt(receipt)
  const proof = encodeInclusionProof(d.treeSize, d.leafIndex, d.path)
  const ph = (hex: string): Uint8Array => Buffer.from(hex, 'hex')
  const kid = toHex(sha256(log.publicKey))
  const base = { protectedHeader: d.protectedHeader, proofs: [proof], signature: d.signature }
  const cases: Array<[string, Uint8Array]> = [
    ['untagged', assemble({ ...base, tag: [] })],
    ['tag 98 (COSE_Sign)', assemble({ ...base, tag: [0xd8, 0x62] })],
    ['alg ES256', assemble({ ...base, protectedHeader: ph('a3012604' + '5820' + kid + '19018b01') })],
    ['vds 2', assemble({ ...base, protectedHeader: ph('a3012704' + '5820' + kid + '19018b02') })],
    ['no vds', assemble({ ...base, protectedHeader: ph('a20127045820' + kid) })],
    ['labels out of order', assemble({ ...base, protectedHeader: ph('a3045820' + kid + '012719018b01') })],
    ['an extra protected header (content type)', assemble({ ...base, protectedHeader: ph('a401270300045820' + kid + '19018b01') })],
    ['a 4-byte kid', assemble({ ...base, protectedHeader: ph('a3012704440102030419018b01') })],
    ['non-shortest alg', assemble({ ...base, protectedHeader: ph('a301380704' + '5820' + kid + '19018b01') })],
    ['two inclusion proofs', assemble({ ...base, proofs: [proof, proof] })],
    ['no inclusion proof', assemble({ ...base, proofs: [] })],
    ['consistency proofs (-2)', assemble({ ...base, unprotected: Buffer.concat([Buffer.from('a119018ca12181', 'hex'), bstr(proof)]) })],
    ['an extra unprotected header', assemble({ ...base, unprotected: Buffer.concat([Buffer.from('a20440' + '19018ca12081', 'hex'), bstr(proof)]) })],
    ['attached payload', assemble({ ...base, payload: bstr(new Uint8Array(32)) })],
    ['63-byte signature', assemble({ ...base, signature: d.signature.subarray(1) })],
    ['path one hash short', assemble({ ...base, proofs: [encodeInclusionProof(6, 2, d.path.slice(1))] })],
    ['leaf index = tree size', assemble({ ...base, proofs: [encodeInclusionProof(6, 6, d.path)] })],
    ['31-byte hash in path', assemble({ ...base, proofs: [encodeInclusionProof(6, 2, [d.path[0]!.subarray(1), ...d.path.slice(1)])] })],
    ['proof not canonical', assemble({ ...base, proofs: [Buffer.concat([Buffer.from([0x83, 0x18, 0x06]), proof.subarray(2)])] })],
    ['trailing byte', Buffer.concat([receipt, Buffer.from([0])])],
    ['truncated', receipt.subarray(0, receipt.byteLength - 1)],
    ['too large', new Uint8Array(MAX_RECEIPT_BYTES + 1)]
  ]
  for (const [what, bytes] of cases) t.equal(code(() => decodeReceipt(bytes)), 'RECEIPT_MALFORMED', what)
  t.throws(() => decodeReceipt('d284' as unknown as Uint8Array), TypeError)
})

t.test('behavior: random mutations of a receipt only ever fail with documented codes', async t => {
  const { receipt, leaves, root } = receiptFor(6, 2)
  const anchor = { root, treeSize: 6, publicKey: log.publicKey }
  const allowed = /^(RECEIPT_MALFORMED|RECEIPT_ANCHOR_MISMATCH|MERKLE_INVALID_PROOF|MERKLE_ROOT_MISMATCH|SIGNATURE_INVALID)$/
  fc.assert(fc.property(fc.nat(receipt.byteLength - 1), fc.integer({ min: 0, max: 255 }), (at, value) => {
    const mutated = Uint8Array.from(receipt)
    mutated[at] = value
    const c = code(() => verifyReceipt(mutated, leaves[2] as Uint8Array, anchor))
    return value === receipt[at] ? c === undefined : (c !== undefined && allowed.test(c))
  }), { seed: 9942, numRuns: 2000 })
  t.pass('2000 mutations')
})
