/**
 * RFC 9162 (RFC 6962 v2) Merkle hash trees over SHA-256: tree heads, inclusion and consistency
 * proofs, and their verification. Builders are iterative so that batches of millions of records
 * hash in O(n) without recursion; verifiers treat every argument as attacker-controlled.
 */
import * as crypto from 'node:crypto'
import { ProtocolError } from './errors.js'
import { sha256, sha256Into } from './hash.js'

/** Size of every hash in the tree (SHA-256), in bytes. */
export const HASH_BYTES = 32

// Domain separation between leaves and interior nodes (RFC 9162 §2.1.1) so that a leaf can never
// be passed off as a node (second-preimage attack on the tree).
const LEAF_PREFIX = 0x00
const NODE_PREFIX = 0x01

const LEAF_COPY_MAX_BYTES = 64 * 1024

const EMPTY_ROOT = sha256(new Uint8Array(0))

// Scratch for 0x01 || l || r. Safe to share: hashing is synchronous and single-threaded.
const nodeScratch = new Uint8Array(1 + 2 * HASH_BYTES)
nodeScratch[0] = NODE_PREFIX

// 0x00 || data for hashLeaf; at most LEAF_COPY_MAX_BYTES + 1 (larger leaves are hashed in two updates).
let leafScratch = new Uint8Array(1024)

/**
 * The leaf hash of `data`: SHA-256(0x00 || data) (RFC 9162 §2.1.1).
 * @throws TypeError when `data` is not a Uint8Array.
 */
export function hashLeaf (data: Uint8Array): Uint8Array {
  if (!(data instanceof Uint8Array)) throw new TypeError('hashLeaf expects a Uint8Array')
  if (data.byteLength > LEAF_COPY_MAX_BYTES) {
    const d = crypto.createHash('sha256').update(Uint8Array.of(LEAF_PREFIX)).update(data).digest()
    return new Uint8Array(d.buffer, d.byteOffset, d.byteLength)
  }
  // 0x00 || data in a scratch buffer kept between calls (hashing is synchronous): a fresh
  // ArrayBuffer per leaf cost as much as the hash for a record-sized leaf.
  if (leafScratch.byteLength < data.byteLength + 1) leafScratch = new Uint8Array(Math.min(LEAF_COPY_MAX_BYTES + 1, Math.max(data.byteLength + 1, 2 * leafScratch.byteLength)))
  leafScratch[0] = LEAF_PREFIX
  leafScratch.set(data, 1)
  return sha256(leafScratch.subarray(0, data.byteLength + 1))
}


/**
 * The interior node hash SHA-256(0x01 || left || right) (RFC 9162 §2.1.1).
 * @throws TypeError / RangeError when either child is not a 32-byte Uint8Array.
 */
export function hashChildren (left: Uint8Array, right: Uint8Array): Uint8Array {
  requireHash(left, 'left')
  requireHash(right, 'right')
  return nodeHash(left, right)
}

function nodeHash (left: Uint8Array, right: Uint8Array): Uint8Array {
  nodeScratch.set(left, 1)
  nodeScratch.set(right, 1 + HASH_BYTES)
  return sha256(nodeScratch)
}

/** The root of the empty tree, SHA-256 of the empty string (RFC 9162 §2.1.1). A fresh copy. */
export function emptyRoot (): Uint8Array {
  return EMPTY_ROOT.slice()
}

// ---------------------------------------------------------------------------------------------
// Building

// MTH(D[start:end]) for the functions below, which validate the whole array once. Assigned in
// MerkleBuilder's static block so that it can use the unchecked, non-copying append.
let rangeRoot: (leaves: readonly Uint8Array[], start: number, end: number) => Uint8Array

/**
 * Incremental tree head: append leaf hashes one at a time, ask for the root at any point.
 * Keeps one hash per set bit of the size (the perfect subtrees the tree decomposes into), so
 * memory is O(log n) and each leaf costs one amortised node hash. The gateway seals batches
 * with it.
 */
export class MerkleBuilder {
  // Roots of the perfect subtrees, largest (leftmost) first; their sizes are the set bits of #size.
  readonly #stack: Uint8Array[] = []
  #size = 0

  /** Number of leaves appended so far. */
  get size (): number {
    return this.#size
  }

  /**
   * Appends one leaf hash (from {@link hashLeaf}).
   * @throws TypeError / RangeError when `leafHash` is not a 32-byte Uint8Array.
   */
  append (leafHash: Uint8Array): void {
    requireHash(leafHash, 'leafHash')
    this.#push(leafHash, true)
  }

  // Appends without validation. `keep`: the builder outlives the call, so a leaf stored as-is must
  // be copied, or later changes to the caller's array would alter the tree.
  #push (leafHash: Uint8Array, keep: boolean): void {
    if (this.#size >= Number.MAX_SAFE_INTEGER) throw new RangeError('tree size limit reached')
    let node = leafHash
    // Each trailing one bit of the old size is a perfect subtree of the new leaf's height: merge.
    for (let n = this.#size; n % 2 === 1; n = (n - 1) / 2) {
      node = nodeHash(this.#stack.pop() as Uint8Array, node)
    }
    this.#stack.push(keep && node === leafHash ? leafHash.slice() : node)
    this.#size++
  }

  /** The tree head MTH of the leaves appended so far (RFC 9162 §2.1.1). A fresh array. */
  root (): Uint8Array {
    const stack = this.#stack
    if (stack.length === 0) return EMPTY_ROOT.slice()
    // RFC 9162 §2.1.1: MTH(D[n]) = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n])) with k the largest
    // power of two below n, i.e. a right fold over the perfect subtrees, smallest first.
    let acc = stack[stack.length - 1] as Uint8Array
    for (let i = stack.length - 2; i >= 0; i--) acc = nodeHash(stack[i] as Uint8Array, acc)
    return stack.length === 1 ? acc.slice() : acc
  }

  static {
    rangeRoot = (leaves, start, end) => {
      const b = new MerkleBuilder()
      for (let i = start; i < end; i++) b.#push(leaves[i] as Uint8Array, false)
      return b.root()
    }
  }
}

/**
 * The tree head MTH(D[n]) of `leafHashes` (RFC 9162 §2.1.1); SHA-256("") for no leaves.
 * O(n) hashing, O(log n) extra memory.
 * @throws TypeError / RangeError when an element is not a 32-byte Uint8Array.
 */
export function computeRoot (leafHashes: readonly Uint8Array[]): Uint8Array {
  requireHashes(leafHashes)
  return rangeRoot(leafHashes, 0, leafHashes.length)
}

/**
 * All levels of one tree kept in memory (flat buffers, 2n hashes in all), for a batch that needs
 * the proof of every leaf: building costs n node hashes once, each proof is then a read of
 * log2(n) siblings. For 1 M leaves that is about 64 MB; ask for proofs one at a time rather than
 * materialising all of them.
 */
export class MerkleTree {
  /** Number of leaves. */
  readonly size: number
  // levels[0] holds the leaf hashes; levels[l + 1][i] = H(levels[l][2i], levels[l][2i + 1]). A lone
  // last node is carried up unchanged, which yields exactly the RFC 9162 §2.1.1 shape: the left
  // subtree of any node is always perfect.
  readonly #levels: Buffer[]
  readonly #root: Uint8Array

  /**
   * `leafHashes`: the leaf hashes, or all of them back to back in one array (32 bytes each; no
   * object per leaf for a holder of many, such as the gateway's open batch). Copied either way.
   * @throws TypeError / RangeError when an element is not a 32-byte Uint8Array, or the concatenation not a multiple of 32 bytes.
   */
  constructor (leafHashes: readonly Uint8Array[] | Uint8Array) {
    let leaves: Buffer
    if (leafHashes instanceof Uint8Array) {
      if (leafHashes.byteLength % HASH_BYTES !== 0) throw new RangeError(`concatenated leaf hashes must be a multiple of ${HASH_BYTES} bytes, got ${leafHashes.byteLength}`)
      this.size = leafHashes.byteLength / HASH_BYTES
      leaves = Buffer.allocUnsafe(leafHashes.byteLength)
      leaves.set(leafHashes)
    } else {
      requireHashes(leafHashes)
      this.size = leafHashes.length
      leaves = Buffer.allocUnsafe(this.size * HASH_BYTES)
      leafHashes.forEach((h, i) => leaves.set(h, i * HASH_BYTES))
    }
    this.#levels = [leaves]
    let level = leaves
    let count = this.size
    while (count > 1) {
      const nextCount = Math.ceil(count / 2)
      const next = Buffer.allocUnsafe(nextCount * HASH_BYTES)
      for (let i = 0; i + 1 < count; i += 2) {
        level.copy(nodeScratch, 1, i * HASH_BYTES, (i + 2) * HASH_BYTES)
        sha256Into(nodeScratch, next, (i / 2) * HASH_BYTES)
      }
      if (count % 2 === 1) level.copy(next, (nextCount - 1) * HASH_BYTES, (count - 1) * HASH_BYTES)
      this.#levels.push(next)
      level = next
      count = nextCount
    }
    this.#root = this.size === 0 ? EMPTY_ROOT : new Uint8Array(level.subarray(0, HASH_BYTES))
  }

  /** The tree head (RFC 9162 §2.1.1). A fresh array. */
  root (): Uint8Array {
    return this.#root.slice()
  }

  /**
   * The inclusion proof of leaf `index` (RFC 9162 §2.1.3.1), leaf sibling first; the same result
   * as {@link proveInclusion} in O(log n).
   * @throws RangeError when `index` is not an integer in [0, size).
   */
  proveInclusion (index: number): Uint8Array[] {
    requireIndex(index, this.size, 'index')
    const proof: Uint8Array[] = []
    let i = index
    for (let l = 0; l < this.#levels.length - 1; l++) {
      const level = this.#levels[l] as Buffer
      const sibling = i % 2 === 0 ? i + 1 : i - 1
      // No sibling: this is the lone last node, carried up without a hash at this level.
      if (sibling * HASH_BYTES < level.length) {
        proof.push(new Uint8Array(level.subarray(sibling * HASH_BYTES, (sibling + 1) * HASH_BYTES)))
      }
      i = Math.floor(i / 2)
    }
    return proof
  }
}

/**
 * Inclusion proofs of every leaf, in leaf order: O(n log n) in all (one {@link MerkleTree}).
 * Meant for batches up to some 100 k leaves; beyond, keep the MerkleTree and prove on demand.
 * @throws TypeError / RangeError when an element is not a 32-byte Uint8Array.
 */
export function proveAllInclusions (leafHashes: readonly Uint8Array[]): Uint8Array[][] {
  const tree = new MerkleTree(leafHashes)
  const proofs = new Array<Uint8Array[]>(tree.size)
  for (let i = 0; i < tree.size; i++) proofs[i] = tree.proveInclusion(i)
  return proofs
}

// ---------------------------------------------------------------------------------------------
// Proving

/**
 * The inclusion proof (audit path) of leaf `index` in the tree of `leafHashes`, leaf sibling
 * first (RFC 9162 §2.1.3.1). O(n) hashing, O(log n) memory.
 * @throws TypeError / RangeError on bad hashes or an index outside [0, n).
 */
export function proveInclusion (leafHashes: readonly Uint8Array[], index: number): Uint8Array[] {
  requireHashes(leafHashes)
  requireIndex(index, leafHashes.length, 'index')
  // RFC 9162 §2.1.3.1: PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) when m < k, and
  // PATH(m - k, D[k:n]) : MTH(D[0:k]) otherwise. Walked top-down, so the outermost sibling comes
  // first; the result is reversed at the end. The subtrees hashed add up to about n leaves.
  const outerFirst: Uint8Array[] = []
  let start = 0
  let end = leafHashes.length
  let m = index
  while (end - start > 1) {
    const k = splitPoint(end - start)
    if (m < k) {
      outerFirst.push(rangeRoot(leafHashes, start + k, end))
      end = start + k
    } else {
      outerFirst.push(rangeRoot(leafHashes, start, start + k))
      start += k
      m -= k
    }
  }
  return outerFirst.reverse()
}

/**
 * The consistency proof between the trees of the first `oldSize` and the first `newSize` leaves of
 * `leafHashes` (RFC 9162 §2.1.4.1); empty when oldSize is 0 or equals newSize.
 * @throws TypeError / RangeError on bad hashes or unless 0 <= oldSize <= newSize <= leafHashes.length.
 */
export function proveConsistency (leafHashes: readonly Uint8Array[], oldSize: number, newSize: number): Uint8Array[] {
  requireHashes(leafHashes)
  requireIndex(newSize, leafHashes.length + 1, 'newSize')
  requireIndex(oldSize, newSize + 1, 'oldSize')
  if (oldSize === 0 || oldSize === newSize) return []
  // RFC 9162 §2.1.4.1: PROOF(m, D[n]) = SUBPROOF(m, D[n], true), where
  //   SUBPROOF(m, D[m], true) = {}, SUBPROOF(m, D[m], false) = {MTH(D[m])},
  //   SUBPROOF(m, D[n], b) = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])         when m <= k,
  //                        = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k]) when m > k.
  const outerFirst: Uint8Array[] = []
  let start = 0
  let end = newSize
  let m = oldSize
  let whole = true // b: the old tree is a whole subtree of the path so far, its root is known
  while (m !== end - start) {
    const k = splitPoint(end - start)
    if (m <= k) {
      outerFirst.push(rangeRoot(leafHashes, start + k, end))
      end = start + k
    } else {
      outerFirst.push(rangeRoot(leafHashes, start, start + k))
      start += k
      m -= k
      whole = false
    }
  }
  const head = whole ? [] : [rangeRoot(leafHashes, start, end)]
  return [...head, ...outerFirst.reverse()]
}

// ---------------------------------------------------------------------------------------------
// Verifying. Every argument may come from the network or a proof file: index, sizes, the proof
// array and its elements, and both hashes are checked before any hashing.

/**
 * Checks that `leafHash` is leaf `index` of the tree of `treeSize` leaves with head `root`
 * (RFC 9162 §2.1.3.2). Returns nothing; a proof that does not verify always throws.
 * @throws ProtocolError `MERKLE_INVALID_PROOF` for a malformed input (index >= treeSize, sizes not
 *   safe non-negative integers, wrong proof length, a hash that is not 32 bytes),
 *   `MERKLE_ROOT_MISMATCH` when the well-formed proof leads to another root.
 * @throws TypeError when an argument has the wrong type (a bug in the caller).
 */
export function verifyInclusion (
  leafHash: Uint8Array, index: number, treeSize: number, proof: readonly Uint8Array[], root: Uint8Array
): void {
  walkInclusion(leafHash, index, treeSize, proof, root, checkProofHash, plainStep)
}

function checkProofHash (h: Uint8Array, i: number): void {
  checkHash(h, `proof[${i}]`)
}

function plainStep (_level: number, _index: number, r: Uint8Array, p: Uint8Array, pLeft: boolean): Uint8Array {
  return pLeft ? nodeHash(p, r) : nodeHash(r, p)
}

/** An interior node met on a path: its children as they were hashed, and its hash. */
interface MemoNode { readonly left: Uint8Array, readonly right: Uint8Array, readonly hash: Uint8Array }
interface EncodedMemoNode { readonly at: number, readonly child: Uint8Array, readonly sibling: string, readonly siblingLeft: boolean, readonly hash: Uint8Array }

/**
 * {@link verifyInclusion} for many leaves of one tree (a batch's records): the interior nodes the
 * paths share are hashed once, not once per leaf. Every node hashed is remembered by position
 * with the two children it was hashed from; a later path reuses it only when its own children at
 * that position are byte for byte the same, so a reused node is always the SHA-256 of exactly what
 * this path would have hashed, and each call accepts and rejects exactly what verifyInclusion
 * does (same errors). For consecutive leaves the cost falls from ~log2(size) hashes per leaf to ~1.
 * Memory: at most one node per interior position met (< treeSize) for {@link verify};
 * {@link verifyEncoded} keeps one node per level (see there).
 */
export class InclusionChecker {
  readonly treeSize: number
  private readonly root: Uint8Array
  /** Per level above the leaves: node index at that level → node. */
  private readonly levels: Array<Map<number, MemoNode>> = []
  /** For verifyEncoded, per level: the last node hashed there, with the child on its path and the sibling line beside it. */
  private readonly encoded: Array<EncodedMemoNode | undefined> = []

  /**
   * @throws ProtocolError `MERKLE_INVALID_PROOF` when the size is not a safe non-negative integer or the root not 32 bytes.
   */
  constructor (treeSize: number, root: Uint8Array) {
    checkSize(treeSize, 'tree size')
    checkHash(root, 'root')
    this.treeSize = treeSize
    this.root = root.slice()
  }

  /** As {@link verifyInclusion} with this checker's size and root. */
  verify (leafHash: Uint8Array, index: number, proof: readonly Uint8Array[]): void {
    walkInclusion(leafHash, index, this.treeSize, proof, this.root, checkProofHash, (level, at, r, p, pLeft) => pLeft ? this.node(level, at, p, r) : this.node(level, at, r, p))
  }

  /**
   * {@link verify} with the proof hashes still encoded (a proof file's base64 lines, as
   * ProofParser returns them): `decode` turns a line into its 32 bytes or throws, and is called
   * only for lines not met before at that position, so that a leaf whose path the tree has seen
   * costs string comparisons instead of decoding and hashing. Lines must be canonical (ProofParser
   * checks that), so that equal lines are equal bytes; then this accepts and rejects exactly what
   * {@link verify} does with the decoded hashes.
   *
   * Only the last node hashed at each level is kept: leaves checked in order (a bundle's records,
   * a batch's proofs) share with the previous leaf exactly the nodes above where their paths part,
   * so they reuse as much as a node per position would, and out of order only costs hashes, never
   * a different answer. A node per position kept every proof's text alive (its sibling line is a
   * slice of that text): ~1.5 KiB per leaf that each young-generation GC of a verify worker copied.
   */
  verifyEncoded (leafHash: Uint8Array, index: number, proof: readonly string[], decode: (line: string) => Uint8Array): void {
    walkInclusion(leafHash, index, this.treeSize, proof, this.root, checkProofLine, (level, at, r, line, pLeft) => {
      const known = this.encoded[level]
      if (known !== undefined && known.at === at && known.sibling === line && known.siblingLeft === pLeft && (known.child === r || sameBytes(known.child, r))) return known.hash
      const p = decode(line)
      checkHash(p, 'decoded proof hash')
      const hash = pLeft ? nodeHash(p, r) : nodeHash(r, p)
      // r is a leaf hash the caller owns (copied) or a node hash made here (kept as it is, so that
      // the next path up from it compares by identity).
      this.encoded[level] = { at, child: r === leafHash ? r.slice() : r, sibling: line, siblingLeft: pLeft, hash }
      return hash
    })
  }

  /** SHA-256(0x01 || left || right) of the node at (level, index), reused when its children are the same. */
  node (level: number, index: number, left: Uint8Array, right: Uint8Array): Uint8Array {
    let nodes = this.levels[level]
    if (nodes === undefined) {
      nodes = new Map()
      this.levels[level] = nodes
    }
    const known = nodes.get(index)
    if (known !== undefined && sameBytes(known.left, left) && sameBytes(known.right, right)) return known.hash
    const hash = nodeHash(left, right)
    // Copies: the caller owns its proof arrays and may reuse them.
    nodes.set(index, { left: left.slice(), right: right.slice(), hash })
    return hash
  }
}

/**
 * RFC 9162 §2.1.3.2 over any proof element type: `checkElement` checks each element before any
 * hashing, `step` hashes the path's node at (level, index) from r and the element (left of r or not).
 */
function walkInclusion<T> (
  leafHash: Uint8Array, index: number, treeSize: number, proof: readonly T[], root: Uint8Array,
  checkElement: (p: T, i: number) => void, step: (level: number, index: number, r: Uint8Array, p: T, pLeft: boolean) => Uint8Array
): void {
  checkHash(leafHash, 'leaf hash')
  checkHash(root, 'root')
  checkSize(index, 'leaf index')
  checkSize(treeSize, 'tree size')
  checkProofArray(proof)
  // RFC 9162 §2.1.3.2 step 1.
  if (index >= treeSize) invalid(`leaf index ${index} is not below tree size ${treeSize}`)
  // The algorithm below would also reject a wrong length, but only after hashing; an explicit
  // check bounds the work and names the fault.
  const expected = inclusionProofLength(index, treeSize)
  if (proof.length !== expected) invalid(`inclusion proof has ${proof.length} hashes, expected ${expected}`)
  proof.forEach(checkElement)

  // RFC 9162 §2.1.3.2 steps 2-5. `level` counts the right shifts, so that (level, fn) names the
  // node r becomes: the subtree of leaves [fn·2^level, (fn+1)·2^level) cut at the tree size.
  let fn = index
  let sn = treeSize - 1
  let level = 0
  let r = leafHash
  for (const p of proof) {
    if (sn === 0) invalid('inclusion proof longer than the path')
    let pLeft = false
    if (fn % 2 === 1 || fn === sn) {
      pLeft = true
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = fn / 2
          sn = Math.floor(sn / 2)
          level++
        }
      }
    }
    fn = Math.floor(fn / 2)
    sn = Math.floor(sn / 2)
    level++
    r = step(level, fn, r, p, pLeft)
  }
  if (sn !== 0) invalid('inclusion proof shorter than the path')
  if (!equalHashes(r, root)) throw new ProtocolError('MERKLE_ROOT_MISMATCH', 'inclusion proof does not lead to the root')
}

/**
 * {@link verifyInclusion} as a boolean, for filters. Prefer the throwing form where a failure
 * must stop the caller.
 * @throws TypeError when an argument has the wrong type (a bug in the caller).
 */
export function isValidInclusion (
  leafHash: Uint8Array, index: number, treeSize: number, proof: readonly Uint8Array[], root: Uint8Array
): boolean {
  try {
    verifyInclusion(leafHash, index, treeSize, proof, root)
    return true
  } catch (e) {
    if (e instanceof ProtocolError) return false
    throw e
  }
}

/**
 * Checks that the tree of `newSize` leaves with head `newRoot` extends the tree of `oldSize` leaves
 * with head `oldRoot` (RFC 9162 §2.1.4.2). Equal sizes need equal roots and an empty proof; an
 * old size of 0 needs an empty proof and the empty-tree root as `oldRoot`.
 * @throws ProtocolError `MERKLE_INVALID_PROOF` for a malformed input (oldSize > newSize, sizes not
 *   safe non-negative integers, wrong proof length, a hash that is not 32 bytes),
 *   `MERKLE_ROOT_MISMATCH` when the well-formed proof does not lead to both roots.
 * @throws TypeError when an argument has the wrong type (a bug in the caller).
 */
export function verifyConsistency (
  oldSize: number, newSize: number, proof: readonly Uint8Array[], oldRoot: Uint8Array, newRoot: Uint8Array
): void {
  checkHash(oldRoot, 'old root')
  checkHash(newRoot, 'new root')
  checkSize(oldSize, 'old size')
  checkSize(newSize, 'new size')
  checkProofArray(proof)
  if (oldSize > newSize) invalid(`old size ${oldSize} is above new size ${newSize}`)
  if (oldSize === newSize || oldSize === 0) {
    if (proof.length !== 0) invalid('consistency proof must be empty for an empty or equal old tree')
    const expectedOld = oldSize === 0 ? EMPTY_ROOT : newRoot
    if (!equalHashes(oldRoot, expectedOld)) throw new ProtocolError('MERKLE_ROOT_MISMATCH', 'old root does not match')
    return
  }
  const expected = consistencyProofLength(oldSize, newSize)
  if (proof.length !== expected) invalid(`consistency proof has ${proof.length} hashes, expected ${expected}`)
  proof.forEach((h, i) => checkHash(h, `proof[${i}]`))

  // RFC 9162 §2.1.4.2 steps 2-7 (step 1, the empty proof, is covered by the length check).
  const path = isPowerOfTwo(oldSize) ? [oldRoot, ...proof] : proof
  let fn = oldSize - 1
  let sn = newSize - 1
  while (fn % 2 === 1) {
    fn = (fn - 1) / 2
    sn = Math.floor(sn / 2)
  }
  let fr = path[0] as Uint8Array
  let sr = fr
  for (let i = 1; i < path.length; i++) {
    const c = path[i] as Uint8Array
    if (sn === 0) invalid('consistency proof longer than the path')
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr)
      sr = nodeHash(c, sr)
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = fn / 2
          sn = Math.floor(sn / 2)
        }
      }
    } else {
      sr = nodeHash(sr, c)
    }
    fn = Math.floor(fn / 2)
    sn = Math.floor(sn / 2)
  }
  if (sn !== 0) invalid('consistency proof shorter than the path')
  // Both comparisons run, so timing does not tell which root failed.
  const oldOk = equalHashes(fr, oldRoot)
  const newOk = equalHashes(sr, newRoot)
  if (!oldOk || !newOk) throw new ProtocolError('MERKLE_ROOT_MISMATCH', 'consistency proof does not lead to both roots')
}

/**
 * {@link verifyConsistency} as a boolean, for filters.
 * @throws TypeError when an argument has the wrong type (a bug in the caller).
 */
export function isValidConsistency (
  oldSize: number, newSize: number, proof: readonly Uint8Array[], oldRoot: Uint8Array, newRoot: Uint8Array
): boolean {
  try {
    verifyConsistency(oldSize, newSize, proof, oldRoot, newRoot)
    return true
  } catch (e) {
    if (e instanceof ProtocolError) return false
    throw e
  }
}

/**
 * Number of hashes in the inclusion proof of leaf `index` in a tree of `treeSize` leaves: the
 * levels below the point where the paths to `index` and to the last leaf split, plus one per left
 * sibling above it (as in transparency-dev/merkle). Parsers use it to reject a proof early.
 * @throws RangeError unless 0 <= index < treeSize <= 2^53 - 1.
 */
export function inclusionProofLength (index: number, treeSize: number): number {
  requireIndex(treeSize, Number.MAX_SAFE_INTEGER + 1, 'treeSize')
  requireIndex(index, treeSize, 'index')
  const i = BigInt(index)
  const inner = bitLength(i ^ BigInt(treeSize - 1))
  return inner + popCount(i >> BigInt(inner))
}

/**
 * Number of hashes in the consistency proof from `oldSize` to `newSize` leaves (RFC 9162 §2.1.4.1).
 * @throws RangeError unless 0 <= oldSize <= newSize <= 2^53 - 1.
 */
export function consistencyProofLength (oldSize: number, newSize: number): number {
  requireIndex(newSize, Number.MAX_SAFE_INTEGER + 1, 'newSize')
  requireIndex(oldSize, newSize + 1, 'oldSize')
  if (oldSize === 0 || oldSize === newSize) return 0
  // The old tree's last leaf has an inclusion path in the new tree; the lowest levels of it, up to
  // the largest perfect subtree ending at oldSize, collapse into one hash (or into oldRoot itself
  // when the old tree is perfect).
  const shift = trailingZeros(BigInt(oldSize))
  const last = BigInt(oldSize - 1)
  const inner = bitLength(last ^ BigInt(newSize - 1))
  const border = popCount(last >> BigInt(inner))
  return (isPowerOfTwo(oldSize) ? 0 : 1) + inner - shift + border
}

// ---------------------------------------------------------------------------------------------
// Helpers

function invalid (message: string): never {
  throw new ProtocolError('MERKLE_INVALID_PROOF', message)
}

// For values from our own code: wrong type or length is a bug.
function requireHash (value: unknown, what: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array`)
  if (value.byteLength !== HASH_BYTES) throw new RangeError(`${what} must be ${HASH_BYTES} bytes, got ${value.byteLength}`)
}

function requireHashes (values: readonly Uint8Array[]): void {
  if (!Array.isArray(values)) throw new TypeError('leaf hashes must be an array')
  for (let i = 0; i < values.length; i++) requireHash(values[i], `leafHashes[${i}]`)
}

// An integer in [0, limit).
function requireIndex (value: number, limit: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0 || value >= limit) {
    throw new RangeError(`${what} must be an integer in [0, ${limit}), got ${String(value)}`)
  }
}

// For values that may come from an attacker: wrong length is a malformed proof, wrong type a bug.
function checkHash (value: unknown, what: string): asserts value is Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array`)
  if (value.byteLength !== HASH_BYTES) invalid(`${what} must be ${HASH_BYTES} bytes, got ${value.byteLength}`)
}

function checkSize (value: unknown, what: string): asserts value is number {
  if (typeof value !== 'number') throw new TypeError(`${what} must be a number`)
  if (!Number.isSafeInteger(value) || value < 0) invalid(`${what} must be a safe non-negative integer, got ${value}`)
}

function checkProofLine (line: string, i: number): void {
  if (typeof line !== 'string') throw new TypeError(`proof[${i}] must be a string`)
}

function checkProofArray (proof: unknown): void {
  if (!Array.isArray(proof)) throw new TypeError('proof must be an array')
}

// Not constant-time: for reusing a node, whose children are public proof data. A plain byte loop:
// comparing as eight 32-bit words (ba0459d) cost two Int32Array views, two allocations, per call,
// and measured slower since: ~200 against ~80 ns for an equal pair, and ProofJudge.judge over
// 20 000 proofs 14.6-22.6 µs with the words against 10.7-16.1 with the loop, alternated.
function sameBytes (a: Uint8Array, b: Uint8Array): boolean {
  const n = a.byteLength
  if (n !== b.byteLength) return false
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false
  return true
}

function equalHashes (a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && crypto.timingSafeEqual(a, b)
}

// RFC 9162 §2.1.1: the largest power of two smaller than n, for n > 1.
function splitPoint (n: number): number {
  let k = 1
  while (k * 2 < n) k *= 2
  return k
}

function isPowerOfTwo (n: number): boolean {
  let v = n
  while (v > 1 && v % 2 === 0) v /= 2
  return v === 1
}

// Bit twiddling on sizes up to 2^53 - 1, beyond the 32 bits of JavaScript's number operators.
function bitLength (v: bigint): number {
  return v === 0n ? 0 : v.toString(2).length
}

function popCount (v: bigint): number {
  let n = 0
  for (const c of v.toString(2)) if (c === '1') n++
  return n
}

function trailingZeros (v: bigint): number {
  let n = 0
  for (let x = v; x > 0n && (x & 1n) === 0n; x >>= 1n) n++
  return n
}
