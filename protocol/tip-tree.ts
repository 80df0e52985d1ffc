/**
 * The tip tree (PROTOCOL.md §7.10): a sparse Merkle tree over every device a gateway stored, keyed by
 * SHA-256 of the device id, whose leaf is the device's latest stored record (seq and record hash).
 * Its root rides in the batch checkpoint, so one anchored root proves a device's tip, or its absence.
 *
 * The tree is the compact form of a 256-level sparse Merkle tree: a subtree holding one device is
 * that device's leaf hash at whatever depth it stops, an empty subtree is 32 zero bytes. An update
 * costs about log2(devices) node hashes instead of 256, and the leaf binds the whole key, so a leaf
 * cannot be replayed at another place. A snapshot is O(1): nodes it can see are never changed again
 * (copy on write, by generation).
 */
import * as crypto from 'node:crypto'
import { ProtocolError } from './errors.js'
import { DEVICE_ID_PATTERN, LIMITS } from './record.js'

/** Bits of a key: SHA-256. */
export const TIP_KEY_BITS = 256
/** Domain separation from the batch tree's 0x00/0x01 (§7.1): a tip node never reads as a batch node. */
export const TIP_LEAF_PREFIX = 0x02
export const TIP_NODE_PREFIX = 0x03
/** Hash of an empty subtree at any depth, and the root of the empty tree. */
export const TIP_EMPTY_HASH: Uint8Array = new Uint8Array(32)
/** First line of a tip proof file. */
export const TIP_PROOF_HEADER = 'edge-provenance/tip-proof@v1'
/** Tag of the checkpoint extension line that carries the tip root (§7.10). */
export const TIP_CHECKPOINT_TAG = 'edge-provenance/tips/v1'
/** Largest tip proof file accepted, in bytes (256 siblings and a checkpoint). */
export const MAX_TIP_PROOF_BYTES = 80 * 1024

const oneShot = typeof crypto.hash === 'function' ? crypto.hash : undefined
function sha256 (data: Uint8Array): Uint8Array {
  const d = oneShot !== undefined ? oneShot('sha256', data, 'buffer') : crypto.createHash('sha256').update(data).digest()
  return new Uint8Array(d.buffer, d.byteOffset, d.byteLength)
}

const leafScratch = new Uint8Array(1 + 32 + 8 + 32)
leafScratch[0] = TIP_LEAF_PREFIX
const leafView = new DataView(leafScratch.buffer)
const utf8 = new TextEncoder()
const nodeScratch = new Uint8Array(1 + 64)
nodeScratch[0] = TIP_NODE_PREFIX

/** A device's tip: its latest stored record. */
export interface DeviceTipValue {
  seq: number
  /** Record hash (§3), 32 bytes. */
  hash: Uint8Array
}

/** The key of a device: SHA-256 of its id in UTF-8. */
export function tipKey (deviceId: string): Uint8Array {
  return sha256(utf8.encode(deviceId))
}

/** SHA-256(0x02 ‖ key ‖ u64be(seq) ‖ recordHash). */
export function hashTipLeaf (key: Uint8Array, seq: number, recordHash: Uint8Array): Uint8Array {
  if (key.byteLength !== 32 || recordHash.byteLength !== 32) throw new RangeError('tip key and record hash must be 32 bytes')
  if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError('tip seq must be a non-negative safe integer')
  leafScratch.set(key, 1)
  // u64be without BigInt: seq is a safe integer, so its high word is below 2^21.
  leafView.setUint32(33, Math.floor(seq / 0x1_0000_0000))
  leafView.setUint32(37, seq >>> 0)
  leafScratch.set(recordHash, 41)
  return sha256(leafScratch)
}

/** SHA-256(0x03 ‖ left ‖ right). */
export function hashTipNode (left: Uint8Array, right: Uint8Array): Uint8Array {
  nodeScratch.set(left, 1)
  nodeScratch.set(right, 33)
  return sha256(nodeScratch)
}

function bit (key: Uint8Array, depth: number): number {
  return ((key[depth >> 3] as number) >> (7 - (depth & 7))) & 1
}

interface Leaf { readonly key: Uint8Array, readonly seq: number, readonly hash: Uint8Array, h?: Uint8Array }
// `g`: the generation of the tree that created the node. A tree changes its own generation's nodes
// in place and copies older ones, and a snapshot moves both trees to new generations: so a node a
// snapshot can see is never changed, while a batch's updates copy each shared upper node once.
interface Inner { l: TNode, r: TNode, h: Uint8Array | undefined, readonly g: number }
type TNode = Leaf | Inner | null

function isLeaf (n: Leaf | Inner): n is Leaf {
  return 'key' in n
}

function nodeHashOf (n: TNode): Uint8Array {
  if (n === null) return TIP_EMPTY_HASH
  if (n.h === undefined) n.h = isLeaf(n) ? hashTipLeaf(n.key, n.seq, n.hash) : hashTipNode(nodeHashOf(n.l), nodeHashOf(n.r))
  return n.h
}

function sameKey (a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 32; i++) if (a[i] !== b[i]) return false
  return true
}

// Set by insert when the key was not in the tree (one walk for both, instead of a lookup first).
let inserted = false
let generations = 0

// Returns the new subtree: nodes of generation `g` are updated in place, older ones copied.
function insert (n: TNode, depth: number, leaf: Leaf, g: number): TNode {
  if (n === null) { inserted = true; return leaf }
  if (isLeaf(n)) {
    if (sameKey(n.key, leaf.key)) return leaf
    inserted = true
    // Two keys now share this subtree: push both down until their bits differ.
    const a = bit(n.key, depth)
    const b = bit(leaf.key, depth)
    if (a === b) {
      const child = insert(n, depth + 1, leaf, g)
      return a === 0 ? { l: child, r: null, h: undefined, g } : { l: null, r: child, h: undefined, g }
    }
    return a === 0 ? { l: n, r: leaf, h: undefined, g } : { l: leaf, r: n, h: undefined, g }
  }
  const own = n.g === g ? n : { l: n.l, r: n.r, h: undefined, g }
  own.h = undefined
  if (bit(leaf.key, depth) === 0) own.l = insert(own.l, depth + 1, leaf, g)
  else own.r = insert(own.r, depth + 1, leaf, g)
  return own
}

/** The end of a proof's path: the device's own leaf, nothing, or the one other device there. */
export type TipTerminal =
  | { kind: 'present', tip: DeviceTipValue }
  | { kind: 'absent' }
  | { kind: 'absent-other', key: Uint8Array, tip: DeviceTipValue }

/** A proof of a device's tip, or of its absence, against a tip root. */
export interface TipProof {
  deviceId: string
  terminal: TipTerminal
  /** Sibling hashes from the terminal's level up to the root's children (deepest first). */
  siblings: Uint8Array[]
}

/**
 * The tip tree. `set` is O(log n) allocations, hashing is lazy (at `root()`), `snapshot()` is O(1)
 * and later sets do not change it.
 */
export class TipTree {
  private top: TNode
  private count: number
  private gen = ++generations
  // Keys by device id: a device's key is hashed once, not at every record (shared with snapshots:
  // a key never changes).
  private readonly keys: Map<string, Uint8Array>

  constructor (top: TNode = null, count = 0, keys = new Map<string, Uint8Array>()) {
    this.top = top
    this.count = count
    this.keys = keys
  }

  private keyOf (deviceId: string): Uint8Array {
    let k = this.keys.get(deviceId)
    if (k === undefined) { k = tipKey(deviceId); this.keys.set(deviceId, k) }
    return k
  }

  /** Devices in the tree. */
  get size (): number {
    return this.count
  }

  /** Sets a device's tip (replacing any). */
  set (deviceId: string, seq: number, recordHash: Uint8Array): void {
    if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError('tip seq must be a non-negative safe integer')
    if (!(recordHash instanceof Uint8Array) || recordHash.byteLength !== 32) throw new RangeError('tip record hash must be 32 bytes')
    inserted = false
    this.top = insert(this.top, 0, { key: this.keyOf(deviceId), seq, hash: recordHash.slice() }, this.gen)
    if (inserted) this.count++
  }

  /** A device's tip, or undefined. */
  get (deviceId: string): DeviceTipValue | undefined {
    const l = this.lookup(tipKey(deviceId))
    return l === undefined ? undefined : { seq: l.seq, hash: l.hash.slice() }
  }

  private lookup (key: Uint8Array): Leaf | undefined {
    let n = this.top
    for (let depth = 0; n !== null; depth++) {
      if (isLeaf(n)) return sameKey(n.key, key) ? n : undefined
      n = bit(key, depth) === 0 ? n.l : n.r
    }
    return undefined
  }

  /** The root (32 bytes; zeros for no device). */
  root (): Uint8Array {
    return nodeHashOf(this.top).slice()
  }

  /** An immutable copy of the tree as it stands. */
  snapshot (): TipTree {
    this.gen = ++generations
    return new TipTree(this.top, this.count, this.keys)
  }

  /** The proof of a device's tip, or of its absence. */
  prove (deviceId: string): TipProof {
    const key = tipKey(deviceId)
    const top: Uint8Array[] = []
    let n = this.top
    let depth = 0
    for (;;) {
      if (n === null) return { deviceId, terminal: { kind: 'absent' }, siblings: top.reverse() }
      if (isLeaf(n)) {
        const tip = { seq: n.seq, hash: n.hash.slice() }
        const terminal: TipTerminal = sameKey(n.key, key) ? { kind: 'present', tip } : { kind: 'absent-other', key: n.key.slice(), tip }
        return { deviceId, terminal, siblings: top.reverse() }
      }
      const b = bit(key, depth)
      top.push(nodeHashOf(b === 0 ? n.r : n.l).slice())
      n = b === 0 ? n.l : n.r
      depth++
    }
  }
}

/**
 * The root a proof leads to (§7.10 verification, steps 1-3).
 * @throws ProtocolError `MERKLE_INVALID_PROOF` for a proof of impossible shape.
 */
export function tipProofRoot (proof: TipProof): Uint8Array {
  const key = tipKey(proof.deviceId)
  const d = proof.siblings.length
  if (d > TIP_KEY_BITS) throw new ProtocolError('MERKLE_INVALID_PROOF', `tip proof has ${d} siblings, at most ${TIP_KEY_BITS}`)
  for (const s of proof.siblings) if (!(s instanceof Uint8Array) || s.byteLength !== 32) throw new ProtocolError('MERKLE_INVALID_PROOF', 'tip proof sibling is not 32 bytes')
  const t = proof.terminal
  let cur: Uint8Array
  if (t.kind === 'absent') {
    cur = TIP_EMPTY_HASH
  } else if (t.kind === 'present') {
    cur = hashTipLeaf(key, t.tip.seq, t.tip.hash)
  } else {
    if (t.key.byteLength !== 32 || sameKey(t.key, key)) throw new ProtocolError('MERKLE_INVALID_PROOF', 'the other leaf of an absence proof has the device\'s own key')
    for (let i = 0; i < d; i++) {
      if (bit(t.key, i) !== bit(key, i)) throw new ProtocolError('MERKLE_INVALID_PROOF', 'the other leaf of an absence proof is not on the device\'s path')
    }
    cur = hashTipLeaf(t.key, t.tip.seq, t.tip.hash)
  }
  for (let i = 0; i < d; i++) {
    const depth = d - 1 - i
    const sib = proof.siblings[i] as Uint8Array
    cur = bit(key, depth) === 0 ? hashTipNode(cur, sib) : hashTipNode(sib, cur)
  }
  return cur.slice()
}

/**
 * Checks a tip proof against a tip root and returns the device's tip (undefined: proven absent).
 * @throws ProtocolError `MERKLE_INVALID_PROOF` (shape), `MERKLE_ROOT_MISMATCH` (another root).
 */
export function verifyTipProof (proof: TipProof, root: Uint8Array): DeviceTipValue | undefined {
  const got = tipProofRoot(proof)
  if (!(root instanceof Uint8Array) || root.byteLength !== 32 || !sameKey(got, root)) {
    throw new ProtocolError('MERKLE_ROOT_MISMATCH', `tip proof of ${JSON.stringify(proof.deviceId)} leads to another root`)
  }
  return proof.terminal.kind === 'present' ? { seq: proof.terminal.tip.seq, hash: proof.terminal.tip.hash.slice() } : undefined
}

// ---------------------------------------------------------------------------------------------
// Checkpoint binding and the proof file

/** The checkpoint extension line that commits a batch to a tip root: `edge-provenance/tips/v1 <base64 root>`. */
export function formatTipExtension (root: Uint8Array): string {
  if (!(root instanceof Uint8Array) || root.byteLength !== 32) throw new RangeError('tip root must be 32 bytes')
  return `${TIP_CHECKPOINT_TAG} ${Buffer.from(root).toString('base64')}`
}

const BASE64_HASH = /^[A-Za-z0-9+/]{43}=$/
const HEX_HASH = /^[0-9a-f]{64}$/
const DECIMAL = /^(0|[1-9][0-9]{0,15})$/

function b64Hash (s: string, what: string): Uint8Array {
  if (!BASE64_HASH.test(s)) throw new ProtocolError('MERKLE_INVALID_PROOF', `${what} is not base64 of 32 bytes`)
  const b = new Uint8Array(Buffer.from(s, 'base64'))
  if (Buffer.from(b).toString('base64') !== s) throw new ProtocolError('MERKLE_INVALID_PROOF', `${what} is not canonical base64`)
  return b
}

function hexHash (s: string | undefined, what: string): Uint8Array {
  if (s === undefined || !HEX_HASH.test(s)) throw new ProtocolError('MERKLE_INVALID_PROOF', `${what} is not 64 lower-case hex digits`)
  return new Uint8Array(Buffer.from(s, 'hex'))
}

function decimal (s: string | undefined, what: string): number {
  if (s === undefined || !DECIMAL.test(s) || !Number.isSafeInteger(Number(s))) throw new ProtocolError('MERKLE_INVALID_PROOF', `${what} is not a decimal without leading zeroes`)
  return Number(s)
}

/**
 * The tip root a checkpoint's extension lines commit to; undefined for a checkpoint without one
 * (a batch sealed before tip trees). Two tip lines are refused: which one would count?
 * @throws ProtocolError `MERKLE_INVALID_PROOF`.
 */
export function tipRootOfCheckpoint (extensions: readonly string[] | undefined): Uint8Array | undefined {
  const lines = (extensions ?? []).filter(l => l.startsWith(TIP_CHECKPOINT_TAG + ' '))
  if (lines.length > 1) throw new ProtocolError('MERKLE_INVALID_PROOF', 'checkpoint has two tip lines')
  const line = lines[0]
  if (line === undefined) return undefined
  return b64Hash(line.slice(TIP_CHECKPOINT_TAG.length + 1), 'checkpoint tip root')
}

/** A tip proof with the checkpoint (signed or not) that carries its root. */
export interface TipProofFile {
  proof: TipProof
  /** The checkpoint text, byte for byte as the gateway wrote it (signature lines included). */
  checkpoint: string
}

/**
 * The tip proof file:
 *
 *     edge-provenance/tip-proof@v1
 *     device <device id>
 *     tip <seq> <record hash hex>        | absent | absent <other key hex> <seq> <record hash hex>
 *     <base64 sibling>                   deepest first, as many as the path is deep
 *     (empty line)
 *     <checkpoint, verbatim>
 */
export function formatTipProof (file: TipProofFile): string {
  const { proof, checkpoint } = file
  const t = proof.terminal
  const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex')
  const terminal = t.kind === 'present'
    ? `tip ${t.tip.seq} ${hex(t.tip.hash)}`
    : t.kind === 'absent' ? 'absent' : `absent ${hex(t.key)} ${t.tip.seq} ${hex(t.tip.hash)}`
  return [TIP_PROOF_HEADER, `device ${proof.deviceId}`, terminal, ...proof.siblings.map(s => Buffer.from(s).toString('base64')), '', checkpoint].join('\n')
}

/**
 * Parses a tip proof file strictly. The checkpoint is returned as text: the caller opens it (its
 * signature) and parses it (its root and tip line).
 * @throws ProtocolError `MERKLE_INVALID_PROOF`.
 */
export function parseTipProof (input: string): TipProofFile {
  if (typeof input !== 'string' || input.length > MAX_TIP_PROOF_BYTES) throw new ProtocolError('MERKLE_INVALID_PROOF', `tip proof is not a text of at most ${MAX_TIP_PROOF_BYTES} bytes`)
  const cut = input.indexOf('\n\n')
  if (cut < 0) throw new ProtocolError('MERKLE_INVALID_PROOF', 'tip proof has no empty line before its checkpoint')
  const lines = input.slice(0, cut).split('\n')
  const checkpoint = input.slice(cut + 2)
  if (lines[0] !== TIP_PROOF_HEADER) throw new ProtocolError('MERKLE_INVALID_PROOF', `tip proof does not start with ${TIP_PROOF_HEADER}`)
  const deviceLine = lines[1] ?? ''
  const deviceId = deviceLine.slice('device '.length)
  if (!deviceLine.startsWith('device ') || deviceId.length > LIMITS.deviceIdChars || !DEVICE_ID_PATTERN.test(deviceId)) {
    throw new ProtocolError('MERKLE_INVALID_PROOF', 'tip proof has no valid device line')
  }
  const words = (lines[2] ?? '').split(' ')
  let terminal: TipTerminal
  if (words[0] === 'tip' && words.length === 3) {
    terminal = { kind: 'present', tip: { seq: decimal(words[1], 'tip seq'), hash: hexHash(words[2], 'tip record hash') } }
  } else if (words[0] === 'absent' && words.length === 1) {
    terminal = { kind: 'absent' }
  } else if (words[0] === 'absent' && words.length === 4) {
    terminal = { kind: 'absent-other', key: hexHash(words[1], 'other key'), tip: { seq: decimal(words[2], 'other seq'), hash: hexHash(words[3], 'other record hash') } }
  } else {
    throw new ProtocolError('MERKLE_INVALID_PROOF', 'tip proof has no valid tip or absent line')
  }
  const sibLines = lines.slice(3)
  if (sibLines.length > TIP_KEY_BITS) throw new ProtocolError('MERKLE_INVALID_PROOF', `tip proof has more than ${TIP_KEY_BITS} siblings`)
  const siblings = sibLines.map((l, i) => b64Hash(l, `sibling ${i}`))
  if (checkpoint.length === 0) throw new ProtocolError('MERKLE_INVALID_PROOF', 'tip proof has no checkpoint')
  return { proof: { deviceId, terminal, siblings }, checkpoint }
}
