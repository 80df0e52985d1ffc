/**
 * RFC 6962 / RFC 9162 Merkle trees: the published test tree and every proof up to 8 leaves
 * (test/vectors/merkle.json), then properties on random trees and hostile verifier inputs.
 */
import { readFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import t from 'tap'
import fc from 'fast-check'
import { ProtocolError } from '../../protocol/errors.js'
import {
  HASH_BYTES, MerkleBuilder, MerkleTree, computeRoot, consistencyProofLength, emptyRoot, hashChildren, hashLeaf,
  inclusionProofLength, isValidConsistency, isValidInclusion, proveAllInclusions, proveConsistency, proveInclusion,
  verifyConsistency, verifyInclusion, InclusionChecker
} from '../../protocol/merkle.js'

interface InclusionVector { index: number, size: number, proof: string[] }
interface ConsistencyVector { oldSize: number, newSize: number, proof: string[] }
interface Vectors {
  published: {
    leaves: string[]
    roots: string[]
    nodeHashes: string[][]
    inclusion: InclusionVector[]
    consistency: ConsistencyVector[]
  }
  generated: { inclusion: InclusionVector[], consistency: ConsistencyVector[] }
}

const vectors = JSON.parse(readFileSync(new URL('../vectors/merkle.json', import.meta.url), 'utf8')) as Vectors
const fromHex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'))
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
const hexes = (bs: readonly Uint8Array[]): string[] => bs.map(toHex)

const LEAVES = vectors.published.leaves.map((h) => hashLeaf(fromHex(h)))
const ROOTS = vectors.published.roots.map(fromHex)
const root = (n: number): Uint8Array => ROOTS[n] as Uint8Array
const leaf = (i: number): Uint8Array => LEAVES[i] as Uint8Array

// Distinct leaves: with repeated leaves a proof may legitimately verify at another index.
function makeLeaves (n: number, seed: number): Uint8Array[] {
  return Array.from({ length: n }, (_, i) => hashLeaf(Buffer.from(`${seed}:${i}`)))
}

function flipBit (h: Uint8Array, bit: number): Uint8Array {
  const c = h.slice()
  c[(bit >> 3) % c.length]! ^= 1 << (bit & 7)
  return c
}

// Runs `fn` and returns the ProtocolError code, 'ok', or rethrows anything else.
function outcome (fn: () => void): string {
  try {
    fn()
    return 'ok'
  } catch (e) {
    if (e instanceof ProtocolError) return e.code
    throw e
  }
}

// RFC 9162 §2.1.1 MTH written recursively, the independent reference for random trees.
function referenceRoot (d: readonly Uint8Array[]): string {
  const h = (...parts: Uint8Array[]): Buffer => parts.reduce((s, p) => s.update(p), createHash('sha256')).digest()
  const mth = (lo: number, hi: number): Buffer => {
    if (hi - lo === 0) return h()
    if (hi - lo === 1) return Buffer.from(d[lo] as Uint8Array)
    let k = 1
    while (k * 2 < hi - lo) k *= 2
    return h(Uint8Array.of(1), mth(lo, lo + k), mth(lo + k, hi))
  }
  return mth(0, d.length).toString('hex')
}

t.test('vectors: leaf hashes, node hashes and the root of every prefix [RFC 9162 §2.1.1]', async (t) => {
  t.equal(vectors.published.roots.length, 9)
  vectors.published.nodeHashes.forEach((level, l) => level.forEach((h, i) => {
    t.equal(toHex(computeRoot(LEAVES.slice(i * 2 ** l, (i + 1) * 2 ** l))), h, `node hash level ${l} index ${i}`)
  }))
  t.same(hexes(LEAVES), vectors.published.nodeHashes[0], 'hashLeaf of the published leaf inputs')
  t.equal(toHex(emptyRoot()), vectors.published.roots[0], 'empty tree root is SHA-256("")')
  const builder = new MerkleBuilder()
  for (let n = 0; n <= 8; n++) {
    if (n > 0) builder.append(leaf(n - 1))
    const want = vectors.published.roots[n]
    t.equal(toHex(computeRoot(LEAVES.slice(0, n))), want, `computeRoot size ${n}`)
    t.equal(toHex(builder.root()), want, `MerkleBuilder size ${n}`)
    t.equal(builder.size, n)
    t.equal(toHex(new MerkleTree(LEAVES.slice(0, n)).root()), want, `MerkleTree size ${n}`)
  }
  t.equal(toHex(hashChildren(leaf(0), leaf(1))), vectors.published.nodeHashes[1]?.[0], 'hashChildren')
  // Leaves above 64 KiB are streamed rather than copied: same hash.
  const big = new Uint8Array(200_000).map((_, i) => i * 7)
  t.equal(toHex(hashLeaf(big)), createHash('sha256').update(Uint8Array.of(0)).update(big).digest('hex'), 'large leaf')
  t.equal(toHex(hashLeaf(big.subarray(0, 1000))), createHash('sha256').update(Uint8Array.of(0)).update(big.subarray(0, 1000)).digest('hex'), 'small leaf')
})

t.test('vectors: published inclusion proofs [RFC 9162 §2.1.3]', async (t) => {
  t.equal(vectors.published.inclusion.length, 5)
  for (const v of vectors.published.inclusion) {
    t.same(hexes(proveInclusion(LEAVES.slice(0, v.size), v.index)), v.proof, `prove ${v.index}/${v.size}`)
    verifyInclusion(leaf(v.index), v.index, v.size, v.proof.map(fromHex), root(v.size))
  }
})

t.test('vectors: every inclusion proof up to 8 leaves [RFC 9162 §2.1.3.1, §2.1.3.2]', async (t) => {
  t.equal(vectors.generated.inclusion.length, 36)
  const all = new Map<number, Uint8Array[][]>()
  for (let n = 1; n <= 8; n++) all.set(n, proveAllInclusions(LEAVES.slice(0, n)))
  for (const v of vectors.generated.inclusion) {
    const name = `${v.index}/${v.size}`
    const leaves = LEAVES.slice(0, v.size)
    t.same(hexes(proveInclusion(leaves, v.index)), v.proof, `proveInclusion ${name}`)
    t.same(hexes(new MerkleTree(leaves).proveInclusion(v.index)), v.proof, `MerkleTree ${name}`)
    t.same(hexes(all.get(v.size)?.[v.index] ?? []), v.proof, `proveAllInclusions ${name}`)
    t.equal(inclusionProofLength(v.index, v.size), v.proof.length, `length ${name}`)
    t.doesNotThrow(() => verifyInclusion(leaf(v.index), v.index, v.size, v.proof.map(fromHex), root(v.size)), `verify ${name}`)
    t.ok(isValidInclusion(leaf(v.index), v.index, v.size, v.proof.map(fromHex), root(v.size)))
  }
})

t.test('vectors: published consistency proofs [RFC 9162 §2.1.4]', async (t) => {
  t.equal(vectors.published.consistency.length, 5)
  for (const v of vectors.published.consistency) {
    t.same(hexes(proveConsistency(LEAVES, v.oldSize, v.newSize)), v.proof, `prove ${v.oldSize}->${v.newSize}`)
    verifyConsistency(v.oldSize, v.newSize, v.proof.map(fromHex), root(v.oldSize), root(v.newSize))
  }
})

t.test('vectors: every consistency proof up to 8 leaves [RFC 9162 §2.1.4.1, §2.1.4.2]', async (t) => {
  t.equal(vectors.generated.consistency.length, 36)
  for (const v of vectors.generated.consistency) {
    const name = `${v.oldSize}->${v.newSize}`
    t.same(hexes(proveConsistency(LEAVES, v.oldSize, v.newSize)), v.proof, `prove ${name}`)
    t.same(hexes(proveConsistency(LEAVES.slice(0, v.newSize), v.oldSize, v.newSize)), v.proof, `prove on exact array ${name}`)
    t.equal(consistencyProofLength(v.oldSize, v.newSize), v.proof.length, `length ${name}`)
    t.doesNotThrow(() => verifyConsistency(v.oldSize, v.newSize, v.proof.map(fromHex), root(v.oldSize), root(v.newSize)), `verify ${name}`)
    t.ok(isValidConsistency(v.oldSize, v.newSize, v.proof.map(fromHex), root(v.oldSize), root(v.newSize)))
  }
})

// The corruptions of transparency-dev/merkle proof/verify_test.go, each with the code we expect.
t.test('error: corrupted vector inclusion proofs fail with the right code', async (t) => {
  const some = fromHex('abacaba000000000000000000000000000000000000000000060061e00123456')
  for (const v of vectors.generated.inclusion) {
    const proof = v.proof.map(fromHex)
    const r = root(v.size)
    const l = leaf(v.index)
    const name = `${v.index}/${v.size}`
    const code = (fn: () => void, want: string, what: string): void => {
      t.equal(outcome(fn), want, `${what} ${name}`)
    }
    // Wrong index within the tree: a different path, hence another root or another length.
    for (const index of [v.index - 1, v.index + 1, v.index ^ 2]) {
      if (index < 0 || index === v.index) continue
      const want = index >= v.size || inclusionProofLength(index, v.size) !== proof.length ? 'MERKLE_INVALID_PROOF' : 'MERKLE_ROOT_MISMATCH'
      code(() => verifyInclusion(l, index, v.size, proof, r), want, `index ${index}`)
    }
    code(() => verifyInclusion(fromHex('00'.repeat(32)), v.index, v.size, proof, r), 'MERKLE_ROOT_MISMATCH', 'wrong leaf')
    code(() => verifyInclusion(l, v.index, v.size, proof, emptyRoot()), 'MERKLE_ROOT_MISMATCH', 'empty root')
    code(() => verifyInclusion(l, v.index, v.size, proof, some), 'MERKLE_ROOT_MISMATCH', 'random root')
    code(() => verifyInclusion(l, v.index, v.size, [...proof, r], r), 'MERKLE_INVALID_PROOF', 'trailing root')
    code(() => verifyInclusion(l, v.index, v.size, [r, ...proof], r), 'MERKLE_INVALID_PROOF', 'preceding root')
    code(() => verifyInclusion(l, v.index, v.size, [...proof, new Uint8Array(0)], r), 'MERKLE_INVALID_PROOF', 'trailing garbage')
    // Doubling the size adds a level above the old root, so the proof is one hash short.
    code(() => verifyInclusion(l, v.index, v.size * 2, proof, r), 'MERKLE_INVALID_PROOF', 'size * 2')
    proof.forEach((_, i) => {
      const bad = proof.slice()
      bad[i] = flipBit(proof[i] as Uint8Array, 3)
      code(() => verifyInclusion(l, v.index, v.size, bad, r), 'MERKLE_ROOT_MISMATCH', `modified proof[${i}]`)
    })
    if (proof.length > 0) code(() => verifyInclusion(l, v.index, v.size, proof.slice(0, -1), r), 'MERKLE_INVALID_PROOF', 'removed component')
    if (proof.length > 1) code(() => verifyInclusion(l, v.index, v.size, [proof[0] as Uint8Array, some, ...proof.slice(1)], r), 'MERKLE_INVALID_PROOF', 'inserted component')
  }
})

t.test('error: corrupted vector consistency proofs fail with the right code', async (t) => {
  for (const v of vectors.generated.consistency) {
    if (v.proof.length === 0) continue
    const proof = v.proof.map(fromHex)
    const r1 = root(v.oldSize)
    const r2 = root(v.newSize)
    const name = `${v.oldSize}->${v.newSize}`
    const code = (fn: () => void, want: string, what: string): void => {
      t.equal(outcome(fn), want, `${what} ${name}`)
    }
    code(() => verifyConsistency(v.oldSize, v.newSize, proof, r2, r2), 'MERKLE_ROOT_MISMATCH', 'wrong old root')
    code(() => verifyConsistency(v.oldSize, v.newSize, proof, r1, r1), 'MERKLE_ROOT_MISMATCH', 'wrong new root')
    code(() => verifyConsistency(v.oldSize, v.newSize, proof, r2, r1), 'MERKLE_ROOT_MISMATCH', 'swapped roots')
    code(() => verifyConsistency(v.oldSize, v.newSize, [], r1, r2), 'MERKLE_INVALID_PROOF', 'empty proof')
    code(() => verifyConsistency(v.oldSize, v.newSize, [...proof, r1], r1, r2), 'MERKLE_INVALID_PROOF', 'trailing root1')
    code(() => verifyConsistency(v.oldSize, v.newSize, [r2, ...proof], r1, r2), 'MERKLE_INVALID_PROOF', 'preceding root2')
    code(() => verifyConsistency(v.oldSize, v.newSize, proof.slice(0, -1), r1, r2), 'MERKLE_INVALID_PROOF', 'truncated proof')
    code(() => verifyConsistency(v.newSize, v.oldSize, proof, r2, r1), 'MERKLE_INVALID_PROOF', 'time travel')
    proof.forEach((_, i) => {
      const bad = proof.slice()
      bad[i] = flipBit(proof[i] as Uint8Array, 4)
      code(() => verifyConsistency(v.oldSize, v.newSize, bad, r1, r2), 'MERKLE_ROOT_MISMATCH', `modified proof[${i}]`)
    })
    for (const oldSize of [v.oldSize - 1, v.oldSize + 1, v.oldSize ^ 2]) {
      if (oldSize < 0 || oldSize === v.oldSize) continue
      t.not(outcome(() => verifyConsistency(oldSize, v.newSize, proof, r1, r2)), 'ok', `old size ${oldSize} ${name}`)
    }
  }
})

t.test('error: malformed inclusion inputs are MERKLE_INVALID_PROOF', async (t) => {
  const p = [leaf(1)]
  const r2 = root(2)
  const invalid = { name: 'ProtocolError', code: 'MERKLE_INVALID_PROOF' }
  t.throws(() => verifyInclusion(leaf(0), 2, 2, p, r2), invalid, 'index == size')
  t.throws(() => verifyInclusion(leaf(0), 0, 0, [], emptyRoot()), invalid, 'empty tree has no leaves')
  t.throws(() => verifyInclusion(leaf(0), -1, 2, p, r2), invalid, 'negative index')
  t.throws(() => verifyInclusion(leaf(0), 0.5, 2, p, r2), invalid, 'fractional index')
  t.throws(() => verifyInclusion(leaf(0), 0, 2 ** 53, p, r2), invalid, 'size above 2^53 - 1')
  t.throws(() => verifyInclusion(leaf(0), 0, Number.NaN, p, r2), invalid, 'NaN size')
  t.throws(() => verifyInclusion(leaf(0), 0, 2, [], r2), invalid, 'proof too short')
  t.throws(() => verifyInclusion(leaf(0), 0, 2, [leaf(1), leaf(1)], r2), invalid, 'proof too long')
  t.throws(() => verifyInclusion(leaf(0), 0, 2, [leaf(1).subarray(1)], r2), invalid, '31-byte proof hash')
  t.throws(() => verifyInclusion(leaf(0).subarray(1), 0, 2, p, r2), invalid, '31-byte leaf hash')
  t.throws(() => verifyInclusion(leaf(0), 0, 2, p, new Uint8Array(33)), invalid, '33-byte root')
  t.throws(() => verifyInclusion(leaf(0), 0, 2, Array.from({ length: 1e6 }, () => leaf(1)), r2), invalid, 'huge proof rejected by length')
})

t.test('error: root mismatch', async (t) => {
  t.throws(() => verifyInclusion(leaf(1), 0, 2, [leaf(1)], root(2)), { name: 'ProtocolError', code: 'MERKLE_ROOT_MISMATCH' })
  t.throws(() => verifyInclusion(leaf(0), 0, 1, [], leaf(1)), { code: 'MERKLE_ROOT_MISMATCH' }, 'single leaf tree')
  t.notOk(isValidInclusion(leaf(1), 0, 2, [leaf(1)], root(2)))
  t.notOk(isValidInclusion(leaf(0), 5, 2, [leaf(1)], root(2)))
})

t.test('behavior: consistency edge sizes', async (t) => {
  const invalid = { name: 'ProtocolError', code: 'MERKLE_INVALID_PROOF' }
  const mismatch = { name: 'ProtocolError', code: 'MERKLE_ROOT_MISMATCH' }
  t.doesNotThrow(() => verifyConsistency(0, 0, [], emptyRoot(), emptyRoot()), '0 -> 0')
  t.doesNotThrow(() => verifyConsistency(0, 8, [], emptyRoot(), root(8)), '0 -> 8 with the empty root')
  t.throws(() => verifyConsistency(0, 8, [], root(1), root(8)), mismatch, '0 -> 8 needs the empty root as old root')
  t.throws(() => verifyConsistency(0, 8, [root(1)], emptyRoot(), root(8)), invalid, '0 -> 8 with a non-empty proof')
  t.doesNotThrow(() => verifyConsistency(5, 5, [], root(5), root(5)), 'equal sizes, equal roots')
  t.throws(() => verifyConsistency(5, 5, [], root(5), root(6)), mismatch, 'equal sizes, different roots')
  t.throws(() => verifyConsistency(5, 5, [root(5)], root(5), root(5)), invalid, 'equal sizes, non-empty proof')
  t.throws(() => verifyConsistency(1, 2, [], root(1), root(2)), invalid, 'empty proof for 1 -> 2 [RFC 9162 §2.1.4.2 step 1]')
  t.throws(() => verifyConsistency(2, 1, [], root(2), root(1)), invalid, 'old size above new size')
  t.throws(() => verifyConsistency(-1, 1, [], root(0), root(1)), invalid, 'negative size')
  t.throws(() => verifyConsistency(1, 2 ** 53, [leaf(1)], root(1), root(2)), invalid, 'size above 2^53 - 1')
  t.throws(() => verifyConsistency(1, 2, [leaf(1)], root(1).subarray(2), root(2)), invalid, 'short old root')
  t.throws(() => verifyConsistency(1, 2, [new Uint8Array(64)], root(1), root(2)), invalid, '64-byte proof hash')
  t.same(proveConsistency(LEAVES, 0, 8), [], 'proof from the empty tree is empty')
  t.same(proveConsistency(LEAVES, 8, 8), [], 'proof between equal sizes is empty')
  t.notOk(isValidConsistency(1, 2, [], root(1), root(2)))
})

t.test('error: bad argument types from our own code are TypeError or RangeError', async (t) => {
  const l = leaf(0)
  t.throws(() => hashLeaf('abc' as unknown as Uint8Array), TypeError)
  t.throws(() => hashChildren(l, l.subarray(1)), RangeError)
  t.throws(() => hashChildren([] as unknown as Uint8Array, l), TypeError)
  t.throws(() => new MerkleBuilder().append(new Uint8Array(31)), RangeError)
  t.throws(() => computeRoot([l, new Uint8Array(64)]), RangeError)
  t.throws(() => computeRoot('x' as unknown as Uint8Array[]), TypeError)
  t.throws(() => new MerkleTree([l, 'x' as unknown as Uint8Array]), TypeError)
  t.throws(() => new MerkleTree(new Uint8Array(33)), RangeError, 'concatenated leaves not a multiple of 32 bytes')
  t.throws(() => proveInclusion(LEAVES, 8), RangeError, 'index == size')
  t.throws(() => proveInclusion([], 0), RangeError, 'empty tree')
  t.throws(() => proveInclusion(LEAVES, 1.5), RangeError)
  t.throws(() => new MerkleTree(LEAVES).proveInclusion(-1), RangeError)
  t.throws(() => new MerkleTree([]).proveInclusion(0), RangeError)
  t.throws(() => proveConsistency(LEAVES, 3, 9), RangeError, 'new size above the leaves')
  t.throws(() => proveConsistency(LEAVES, 4, 3), RangeError, 'old size above new size')
  t.throws(() => inclusionProofLength(3, 3), RangeError)
  t.throws(() => consistencyProofLength(4, 3), RangeError)
  t.throws(() => verifyInclusion(l, 0, 1, 'proof' as unknown as Uint8Array[], l), TypeError)
  t.throws(() => verifyInclusion(l, '0' as unknown as number, 1, [], l), TypeError)
  t.throws(() => verifyInclusion(l, 0, 1, [], 'root' as unknown as Uint8Array), TypeError)
  t.throws(() => isValidInclusion(l, 0, 2, [null as unknown as Uint8Array], l), TypeError, 'boolean form rethrows bugs')
  t.throws(() => verifyConsistency(1, 2, [l], l, 'x' as unknown as Uint8Array), TypeError)
})

t.test('behavior: returned hashes are fresh copies and inputs are not retained', async (t) => {
  const leaves = makeLeaves(5, 1)
  const want = toHex(computeRoot(leaves))
  const builder = new MerkleBuilder()
  const first = leaves[0]!.slice()
  builder.append(first)
  first.fill(0) // the caller reuses its buffer
  for (const l of leaves.slice(1)) builder.append(l)
  t.equal(toHex(builder.root()), want, 'builder copied the leaf it kept')

  const single = new MerkleBuilder()
  single.append(leaves[0]!)
  single.root().fill(0)
  t.equal(toHex(single.root()), toHex(leaves[0]!), 'root of a one-leaf builder is a copy')

  const flat = Buffer.concat(leaves)
  const fromFlat = new MerkleTree(flat)
  flat.fill(0)
  t.equal(toHex(fromFlat.root()), want, 'a tree of concatenated leaf hashes keeps its own copy')
  t.same(fromFlat.proveInclusion(3).map(toHex), new MerkleTree(leaves).proveInclusion(3).map(toHex), 'and proves as the tree of the array does')
  t.equal(new MerkleTree(new Uint8Array(0)).size, 0)
  const tree = new MerkleTree(leaves)
  leaves[4]!.fill(0)
  tree.root().fill(0)
  tree.proveInclusion(0)[0]!.fill(0)
  t.equal(toHex(tree.root()), want, 'tree keeps its own copies')
  emptyRoot().fill(0)
  t.equal(toHex(computeRoot([])), vectors.published.roots[0])
})

t.test('behavior: roots agree with the recursive reference on random trees', async (t) => {
  fc.assert(fc.property(fc.integer({ min: 0, max: 300 }), fc.integer(), (n, seed) => {
    const leaves = makeLeaves(n, seed)
    const want = referenceRoot(leaves)
    const b = new MerkleBuilder()
    leaves.forEach((l) => b.append(l))
    return toHex(computeRoot(leaves)) === want && toHex(b.root()) === want && toHex(new MerkleTree(leaves).root()) === want
  }))
  // A larger uneven tree (2^16 + 3 leaves) through all three builders.
  const big = makeLeaves(65539, 7)
  const want = toHex(computeRoot(big))
  t.equal(toHex(new MerkleTree(big).root()), want)
  t.equal(referenceRoot(big), want)
})

t.test('behavior: batch proofs equal single proofs and all verify', async (t) => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 200 }), fc.integer(), (n, seed) => {
    const leaves = makeLeaves(n, seed)
    const r = computeRoot(leaves)
    const all = proveAllInclusions(leaves)
    return all.length === n && all.every((proof, i) => {
      const single = proveInclusion(leaves, i)
      verifyInclusion(leaves[i]!, i, n, proof, r)
      return JSON.stringify(hexes(single)) === JSON.stringify(hexes(proof)) && proof.length === inclusionProofLength(i, n)
    })
  }), { numRuns: 40 })
  t.pass('40 random trees')
})

const tree = fc.integer({ min: 1, max: 300 }).chain((n) => fc.record({
  n: fc.constant(n),
  index: fc.integer({ min: 0, max: n - 1 }),
  seed: fc.integer()
}))

t.test('behavior: mutated inclusion proofs fail with the right code, never another exception', async (t) => {
  fc.assert(fc.property(tree, fc.nat(), fc.integer({ min: 0, max: 300 }), (c, bit, otherIndex) => {
    const leaves = makeLeaves(c.n, c.seed)
    const r = computeRoot(leaves)
    const l = leaves[c.index]!
    const proof = new MerkleTree(leaves).proveInclusion(c.index)
    verifyInclusion(l, c.index, c.n, proof, r)

    const mismatch = 'MERKLE_ROOT_MISMATCH'
    const invalid = 'MERKLE_INVALID_PROOF'
    if (outcome(() => verifyInclusion(flipBit(l, bit), c.index, c.n, proof, r)) !== mismatch) return false
    if (outcome(() => verifyInclusion(l, c.index, c.n, proof, flipBit(r, bit))) !== mismatch) return false
    if (proof.length > 0) {
      const bad = proof.slice()
      const at = bit % proof.length
      bad[at] = flipBit(proof[at]!, bit)
      if (outcome(() => verifyInclusion(l, c.index, c.n, bad, r)) !== mismatch) return false
      if (outcome(() => verifyInclusion(l, c.index, c.n, proof.slice(1), r)) !== invalid) return false
    }
    if (outcome(() => verifyInclusion(l, c.index, c.n, [...proof, r], r)) !== invalid) return false
    // Another index: outside the tree or a proof of another length is malformed, else another path.
    if (otherIndex !== c.index) {
      const want = otherIndex >= c.n || inclusionProofLength(otherIndex, c.n) !== proof.length ? invalid : mismatch
      if (outcome(() => verifyInclusion(l, otherIndex, c.n, proof, r)) !== want) return false
    }
    // Another size: the proof alone does not commit to the size (index 0 of 3 and of 4 hash alike),
    // which is why the checkpoint binds size and root. It may pass; otherwise the code must fit.
    const size = otherIndex + 1
    const got = outcome(() => verifyInclusion(l, c.index, size, proof, r))
    if (c.index >= size || inclusionProofLength(c.index, size) !== proof.length) return got === invalid
    return got === mismatch || got === 'ok'
  }))
  t.pass('100 random inclusion proofs')
})

t.test('behavior: random consistency proofs verify; mutations fail with the right code', async (t) => {
  const pair = fc.integer({ min: 1, max: 300 }).chain((n) => fc.record({
    newSize: fc.constant(n),
    oldSize: fc.integer({ min: 0, max: n }),
    seed: fc.integer()
  }))
  fc.assert(fc.property(pair, fc.nat(), fc.integer({ min: 0, max: 301 }), (c, bit, otherSize) => {
    const leaves = makeLeaves(c.newSize, c.seed)
    const r1 = computeRoot(leaves.slice(0, c.oldSize))
    const r2 = computeRoot(leaves)
    const proof = proveConsistency(leaves, c.oldSize, c.newSize)
    if (proof.length !== consistencyProofLength(c.oldSize, c.newSize)) return false
    verifyConsistency(c.oldSize, c.newSize, proof, r1, r2)

    const mismatch = 'MERKLE_ROOT_MISMATCH'
    const invalid = 'MERKLE_INVALID_PROOF'
    if (outcome(() => verifyConsistency(c.oldSize, c.newSize, proof, flipBit(r1, bit), r2)) !== mismatch) return false
    if (c.oldSize !== c.newSize || c.oldSize === 0) {
      if (outcome(() => verifyConsistency(c.oldSize, c.newSize, proof, r1, flipBit(r2, bit))) !== (c.oldSize === 0 ? 'ok' : mismatch)) return false
    }
    if (proof.length > 0) {
      const bad = proof.slice()
      const at = bit % proof.length
      bad[at] = flipBit(proof[at]!, bit)
      if (outcome(() => verifyConsistency(c.oldSize, c.newSize, bad, r1, r2)) !== mismatch) return false
      if (outcome(() => verifyConsistency(c.oldSize, c.newSize, proof.slice(0, -1), r1, r2)) !== invalid) return false
    }
    if (outcome(() => verifyConsistency(c.oldSize, c.newSize, [...proof, r2], r1, r2)) !== invalid) return false
    // Other sizes: malformed when the length cannot fit; otherwise a mismatch, or for the new size
    // (not committed to by the proof, as for inclusion) possibly a pass.
    for (const [o, n] of [[otherSize, c.newSize], [c.oldSize, otherSize]] as const) {
      if (o === c.oldSize && n === c.newSize) continue
      const got = outcome(() => verifyConsistency(o, n, proof, r1, r2))
      if (o > n || consistencyProofLength(o, n) !== proof.length) {
        if (got !== invalid) return false
      } else if (got !== mismatch && !(got === 'ok' && o === c.oldSize)) {
        return false
      }
    }
    return true
  }))
  t.pass('100 random consistency proofs')
})

t.test('behavior: hostile verifier inputs only ever raise ProtocolError', async (t) => {
  const hash = fc.oneof(
    { weight: 4, arbitrary: fc.uint8Array({ minLength: 32, maxLength: 32 }) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 40 }) }
  )
  const size = fc.oneof(
    fc.integer({ min: 0, max: 1000 }),
    fc.integer({ min: -5, max: Number.MAX_SAFE_INTEGER }),
    fc.constantFrom(Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER - 1, 2 ** 53, 2 ** 64, -1, 0.5, Number.NaN, Infinity)
  )
  fc.assert(fc.property(hash, size, size, fc.array(hash, { maxLength: 70 }), hash, (leafHash, index, treeSize, proof, r) => {
    const a = outcome(() => verifyInclusion(leafHash, index, treeSize, proof, r))
    const b = outcome(() => verifyConsistency(index, treeSize, proof, leafHash, r))
    return a !== 'ok' && ['MERKLE_INVALID_PROOF', 'MERKLE_ROOT_MISMATCH', 'ok'].includes(b)
  }), { numRuns: 2000 })
  t.pass('2000 hostile inputs')
})

t.test('behavior: length formulas and verifiers agree up to 2^53 - 1', async (t) => {
  // With a proof of the announced length the RFC algorithm must consume it exactly: a disagreement
  // would show up as MERKLE_INVALID_PROOF instead of a root mismatch on random hashes.
  const bigSize = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER })
  const h = new Uint8Array(HASH_BYTES).fill(7)
  const r = new Uint8Array(HASH_BYTES).fill(8)
  fc.assert(fc.property(bigSize, fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }), (n, f) => {
    const index = Math.floor(f * n)
    const len = inclusionProofLength(index, n)
    const got = outcome(() => verifyInclusion(h, index, n, Array.from({ length: len }, () => h), r))
    const m = Math.max(1, Math.floor(f * n))
    const clen = consistencyProofLength(m, n)
    const cgot = m === n ? 'MERKLE_ROOT_MISMATCH' : outcome(() => verifyConsistency(m, n, Array.from({ length: clen }, () => h), h, r))
    return len <= 53 && got === 'MERKLE_ROOT_MISMATCH' && cgot === 'MERKLE_ROOT_MISMATCH'
  }), { numRuns: 1000 })
  t.equal(inclusionProofLength(0, Number.MAX_SAFE_INTEGER), 53, 'deepest leaf of the largest tree')
  t.equal(inclusionProofLength(Number.MAX_SAFE_INTEGER - 1, Number.MAX_SAFE_INTEGER), 52, 'one sibling per other perfect subtree')
  t.equal(inclusionProofLength(0, 2 ** 52), 52)
})

t.test('behavior: InclusionChecker, which hashes shared nodes once, accepts and rejects exactly what verifyInclusion does', async (t) => {
  // Sizes around powers of two (promoted right edges), every leaf, and per leaf a mutated proof
  // checked after the good ones, so that it meets remembered nodes and must not reuse them.
  for (const n of [1, 2, 3, 5, 8, 13, 33, 100]) {
    const leaves = makeLeaves(n, n)
    const tree = new MerkleTree(leaves)
    const checker = new InclusionChecker(n, tree.root())
    const mutated = new InclusionChecker(n, tree.root())
    for (let i = 0; i < n; i++) {
      const proof = tree.proveInclusion(i)
      t.equal(outcome(() => checker.verify(leaves[i] as Uint8Array, i, proof)), 'ok', `n=${n} i=${i}`)
      mutated.verify(leaves[i] as Uint8Array, i, proof)
    }
    for (let i = 0; i < n; i++) {
      const proof = tree.proveInclusion(i)
      const cases: Array<[Uint8Array, number, Uint8Array[]]> = [
        [flipBit(leaves[i] as Uint8Array, i), i, proof],
        [leaves[i] as Uint8Array, (i + 1) % n, proof],
        ...proof.map((_, k) => [leaves[i] as Uint8Array, i, proof.map((h, m) => m === k ? flipBit(h, i + k) : h)] as [Uint8Array, number, Uint8Array[]]),
        [leaves[i] as Uint8Array, i, proof.slice(1)]
      ]
      for (const [leafHash, index, p] of cases) {
        const want = outcome(() => verifyInclusion(leafHash, index, n, p, tree.root()))
        if (n > 1) t.not(want, 'ok')
        t.equal(outcome(() => mutated.verify(leafHash, index, p)), want, `n=${n} i=${i} index=${index}`)
      }
      // Good proofs still verify after the bad ones met the same nodes.
      t.equal(outcome(() => mutated.verify(leaves[i] as Uint8Array, i, proof)), 'ok')
    }
  }
  t.throws(() => new InclusionChecker(-1, emptyRoot()), { name: 'ProtocolError', code: 'MERKLE_INVALID_PROOF' }, 'negative size')
  t.throws(() => new InclusionChecker(2, new Uint8Array(31)), { name: 'ProtocolError', code: 'MERKLE_INVALID_PROOF' }, 'short root')
})

t.test('behavior: InclusionChecker.verifyEncoded, which compares hash lines as text, accepts and rejects exactly what verifyInclusion does', async (t) => {
  const b64 = (h: Uint8Array): string => Buffer.from(h).toString('base64')
  const decode = (line: string): Uint8Array => new Uint8Array(Buffer.from(line, 'base64'))
  for (const n of [1, 2, 3, 5, 8, 13, 33, 100]) {
    const leaves = makeLeaves(n, n)
    const tree = new MerkleTree(leaves)
    const checker = new InclusionChecker(n, tree.root())
    for (let i = 0; i < n; i++) {
      t.equal(outcome(() => checker.verifyEncoded(leaves[i] as Uint8Array, i, tree.proveInclusion(i).map(b64), decode)), 'ok', `n=${n} i=${i}`)
    }
    // Bad proofs after the good ones, meeting remembered nodes, then the good ones again.
    for (let i = 0; i < n; i++) {
      const proof = tree.proveInclusion(i)
      const cases: Array<[Uint8Array, number, Uint8Array[]]> = [
        [flipBit(leaves[i] as Uint8Array, i), i, proof],
        [leaves[i] as Uint8Array, (i + 1) % n, proof],
        ...proof.map((_, k) => [leaves[i] as Uint8Array, i, proof.map((h, m) => m === k ? flipBit(h, i + k) : h)] as [Uint8Array, number, Uint8Array[]]),
        // Siblings swapped: the same lines at other positions must not be taken for each other.
        [leaves[i] as Uint8Array, i, [...proof].reverse()],
        [leaves[i] as Uint8Array, i, proof.slice(1)]
      ]
      for (const [leafHash, index, p] of cases) {
        const want = outcome(() => verifyInclusion(leafHash, index, n, p, tree.root()))
        t.equal(outcome(() => checker.verifyEncoded(leafHash, index, p.map(b64), decode)), want, `n=${n} i=${i} index=${index}`)
      }
      t.equal(outcome(() => checker.verifyEncoded(leaves[i] as Uint8Array, i, proof.map(b64), decode)), 'ok')
    }
  }
  // Out of order (the checker keeps one node per level): shuffled leaves, each good proof then a
  // mutated one, give the same answers as verifyInclusion.
  const n = 100
  const leaves = makeLeaves(n, 7)
  const tree = new MerkleTree(leaves)
  const shuffled = new InclusionChecker(n, tree.root())
  for (let k = 0; k < n; k++) {
    const i = (k * 37 + 11) % n
    const proof = tree.proveInclusion(i)
    t.equal(outcome(() => shuffled.verifyEncoded(leaves[i] as Uint8Array, i, proof.map(b64), decode)), 'ok', `shuffled i=${i}`)
    const bad = proof.map((h, m) => m === k % proof.length ? flipBit(h, k) : h)
    t.equal(outcome(() => shuffled.verifyEncoded(leaves[i] as Uint8Array, i, bad.map(b64), decode)), outcome(() => verifyInclusion(leaves[i] as Uint8Array, i, n, bad, tree.root())), `shuffled bad i=${i}`)
  }
  // In order, the shared nodes are still hashed once: each interior node's sibling line decoded
  // once from each side (2 (n - 1) in all), not ~log2(n) lines per leaf.
  let decoded = 0
  const inOrder = new InclusionChecker(n, tree.root())
  for (let i = 0; i < n; i++) inOrder.verifyEncoded(leaves[i] as Uint8Array, i, tree.proveInclusion(i).map(b64), (line) => { decoded++; return decode(line) })
  t.ok(decoded <= 2 * (n - 1), `${decoded} lines decoded for ${n} leaves in order`)
  // A decoder that gives other than 32 bytes is refused like a short hash.
  const four = makeLeaves(4, 4)
  t.equal(outcome(() => new InclusionChecker(4, new MerkleTree(four).root()).verifyEncoded(four[0] as Uint8Array, 0, ['x', 'y'], () => new Uint8Array(31))), 'MERKLE_INVALID_PROOF')
})
