/**
 * COSE receipts of inclusion (RFC 9942, draft-ietf-cose-merkle-tree-proofs): a COSE_Sign1 by the
 * gateway's Ed25519 log key over the root of a batch, carrying the RFC 9162 inclusion proof of one
 * record, so that SCITT tooling and any COSE library check a record's inclusion with no code of
 * ours. Pure: no I/O. The decoder accepts exactly the deterministic encoding written here.
 *
 *     18([                                            COSE_Sign1, tagged (RFC 9942 §4.3)
 *       << { 1: -8, 4: kid, 395: 1 } >>,              alg EdDSA, kid = SHA-256(public key), vds RFC9162_SHA256
 *       { 396: { -1: [ << [size, index, [path]] >> ] } },   vdp: one inclusion proof (RFC 9942 §5.2)
 *       null,                                         detached payload: the batch root (MTH)
 *       signature                                     Ed25519 over Sig_structure (RFC 9052 §4.4)
 *     ])
 *
 *     Sig_structure = ["Signature1", protected bytes, h'', root]
 */
import { encodeCanonicalDirect, decodeCanonical, type CborValue } from './cbor.js'
import { verifySignature, PUBLIC_KEY_BYTES, SIGNATURE_BYTES, type Signer, type VerifierBackend } from './ed25519.js'
import { ProtocolError } from './errors.js'
import { equalBytes, sha256, HASH_BYTES } from './hash.js'
import { inclusionProofLength, verifyInclusion } from './merkle.js'

/** CBOR tag of a COSE_Sign1 (RFC 9052 §4.2). */
export const COSE_SIGN1_TAG = 18
/** COSE header labels used by a receipt: alg, kid (RFC 9052 §3.1), vds and vdp (RFC 9942 §2). */
export const COSE_HEADER = Object.freeze({ alg: 1, kid: 4, vds: 395, vdp: 396 })
/** COSE algorithm EdDSA (RFC 9053 §2.2). */
export const COSE_ALG_EDDSA = -8
/** Verifiable data structure RFC9162_SHA256 (RFC 9942 §5.1). */
export const VDS_RFC9162_SHA256 = 1
/** Label of the inclusion proofs in the vdp map of RFC9162_SHA256 (RFC 9942 §5.2). */
export const VDP_INCLUSION_PROOFS = -1
/** Largest receipt accepted, in bytes: a 64-hash proof takes about 2.3 KiB. */
export const MAX_RECEIPT_BYTES = 4096

const SIGNATURE1_CONTEXT = 'Signature1'

/** A decoded receipt of inclusion. */
export interface InclusionReceipt {
  /** Leaves in the tree whose root the receipt signs. */
  readonly treeSize: number
  /** Zero-based index of the proven leaf. */
  readonly leafIndex: number
  /** RFC 9162 §2.1.3.1 inclusion proof, leaf sibling first. */
  readonly path: readonly Uint8Array[]
  /** SHA-256 of the signer's raw public key; absent if the receipt carries no kid. */
  readonly kid?: Uint8Array
  /** The Ed25519 signature over the Sig_structure. */
  readonly signature: Uint8Array
  /** The exact bytes of the protected header (they are signed). */
  readonly protectedHeader: Uint8Array
}

/** What a receipt is issued for: one leaf of one sealed batch. */
export interface ReceiptInput {
  /** RFC 9162 leaf hash of the record: SHA-256(0x00 ‖ envelope). */
  readonly leafHash: Uint8Array
  readonly leafIndex: number
  readonly treeSize: number
  /** Inclusion proof of the leaf, leaf sibling first. */
  readonly path: readonly Uint8Array[]
  /** Root of the batch (the anchored root). */
  readonly root: Uint8Array
}

/** What a verifier trusts: the anchored tree and the gateway's log key. */
export interface ReceiptAnchor {
  /** Root of the batch as anchored on chain. */
  readonly root: Uint8Array
  /** Size of the batch as anchored on chain: the signature does not bind the size, the anchor does. */
  readonly treeSize: number
  /** The gateway's raw 32-byte Ed25519 log key. */
  readonly publicKey: Uint8Array
}

/** The kid a receipt carries for an Ed25519 key: SHA-256 of the raw 32-byte public key. */
export function receiptKeyId (publicKey: Uint8Array): Uint8Array {
  if (!(publicKey instanceof Uint8Array) || publicKey.byteLength !== PUBLIC_KEY_BYTES) throw new RangeError(`public key must be ${PUBLIC_KEY_BYTES} bytes`)
  return sha256(publicKey)
}

/** The protected header bytes of a receipt signed by `publicKey`: {1: -8, 4: kid, 395: 1}. */
export function encodeReceiptProtectedHeader (publicKey: Uint8Array): Uint8Array {
  const kid = receiptKeyId(publicKey)
  // RFC 8949 §4.2.1 orders map keys by their encoded bytes: 01, 04, 19 01 8b.
  return concatBytes(head(5, 3), int(COSE_HEADER.alg), int(COSE_ALG_EDDSA), int(COSE_HEADER.kid), bstr(kid), int(COSE_HEADER.vds), int(VDS_RFC9162_SHA256))
}

/** The bytes an Ed25519 receipt signature covers (RFC 9052 §4.4), payload = the root. */
export function receiptToBeSigned (protectedHeader: Uint8Array, root: Uint8Array): Uint8Array {
  return encodeCanonicalDirect([SIGNATURE1_CONTEXT, protectedHeader, new Uint8Array(0), root])
}

/** The bstr-wrapped inclusion proof of RFC 9942 §5.2: [tree-size, leaf-index, [path]]. */
export function encodeInclusionProof (treeSize: number, leafIndex: number, path: readonly Uint8Array[]): Uint8Array {
  // The direct writer: same bytes as cbor-x (a property test in cbor.test.ts holds them equal), a
  // third of the time, and a gateway writes one per record.
  return encodeCanonicalDirect([treeSize, leafIndex, path])
}

/** The signed part of every receipt of one batch: the signature covers the root only. */
export interface ReceiptRootSignature {
  readonly root: Uint8Array
  readonly protectedHeader: Uint8Array
  readonly signature: Uint8Array
}

/**
 * Signs a batch root for its receipts. The Sig_structure holds the protected header and the root
 * only, so one signature serves every record of the batch: sign once per batch, then
 * {@link assembleReceipt} per record.
 * @throws RangeError for a root that is not 32 bytes, or a signer whose key or signature has the wrong length.
 */
export function signReceiptRoot (root: Uint8Array, signer: Signer): ReceiptRootSignature {
  if (!(root instanceof Uint8Array) || root.byteLength !== HASH_BYTES) throw new RangeError(`root must be ${HASH_BYTES} bytes`)
  const protectedHeader = encodeReceiptProtectedHeader(signer.publicKey)
  const signature = signer.sign(receiptToBeSigned(protectedHeader, root))
  if (signature.byteLength !== SIGNATURE_BYTES) throw new RangeError(`signer returned ${signature.byteLength} bytes, not an Ed25519 signature`)
  return { root: Uint8Array.from(root), protectedHeader, signature }
}

/**
 * Issues the receipt of one leaf, signing its root (one signature per call: for a whole batch,
 * {@link signReceiptRoot} once and {@link assembleReceipt} per record give the same bytes).
 * @throws ProtocolError `MERKLE_INVALID_PROOF` / `MERKLE_ROOT_MISMATCH` when the proof does not
 *   lead to the root; RangeError for a signer whose key or signature has the wrong length.
 */
export function buildReceipt (input: ReceiptInput, signer: Signer): Uint8Array {
  return assembleReceipt(input, signReceiptRoot(input.root, signer))
}

/**
 * The receipt of one leaf under a root signed by {@link signReceiptRoot}. Checks first that the
 * proof leads from the leaf to the root, so a receipt never carries a proof that does not.
 * @throws ProtocolError `MERKLE_INVALID_PROOF` / `MERKLE_ROOT_MISMATCH` when the proof does not
 *   lead to the root; RangeError when `signed` is for another root.
 */
export function assembleReceipt (input: ReceiptInput, signed: ReceiptRootSignature): Uint8Array {
  const { leafHash, leafIndex, treeSize, path, root } = input
  if (!equalBytes(root, signed.root)) throw new RangeError('the root signature is for another root')
  verifyInclusion(leafHash, leafIndex, treeSize, path, root)
  const { protectedHeader, signature } = signed
  const proof = encodeInclusionProof(treeSize, leafIndex, path)
  return concatBytes(
    head(6, COSE_SIGN1_TAG), head(4, 4),
    bstr(protectedHeader),
    head(5, 1), int(COSE_HEADER.vdp), head(5, 1), int(VDP_INCLUSION_PROOFS), head(4, 1), bstr(proof),
    Uint8Array.of(0xf6),
    bstr(signature)
  )
}

/**
 * Decodes a receipt, strictly: the deterministic encoding of the layout above and nothing else
 * (tag 18, alg EdDSA, vds 1, optional 32-byte kid, exactly one inclusion proof, detached payload,
 * 64-byte signature, no other header). Checks shape only; {@link verifyReceipt} checks meaning.
 * @throws ProtocolError `RECEIPT_MALFORMED`.
 * @throws TypeError when `bytes` is not a Uint8Array.
 */
export function decodeReceipt (bytes: Uint8Array): InclusionReceipt {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('receipt must be a Uint8Array')
  if (bytes.byteLength > MAX_RECEIPT_BYTES) malformed(`receipt is larger than ${MAX_RECEIPT_BYTES} bytes`)
  const r = new Reader(bytes)
  r.expect(6, COSE_SIGN1_TAG, 'a COSE_Sign1 tag (18)')
  r.expect(4, 4, 'an array of 4 items')

  const protectedHeader = r.bytes('protected header')
  const kid = parseProtected(protectedHeader)

  r.expect(5, 1, 'an unprotected header with only vdp (396)')
  r.expectInt(COSE_HEADER.vdp, 'vdp label 396')
  r.expect(5, 1, 'a vdp map with only inclusion proofs (-1)')
  r.expectInt(VDP_INCLUSION_PROOFS, 'inclusion proofs label -1')
  r.expect(4, 1, 'exactly one inclusion proof')
  const { treeSize, leafIndex, path } = parseInclusionProof(r.bytes('inclusion proof'))

  if (r.byte() !== 0xf6) malformed('payload must be null (detached)')
  const signature = r.bytes('signature')
  if (signature.byteLength !== SIGNATURE_BYTES) malformed(`signature must be ${SIGNATURE_BYTES} bytes`)
  if (r.pos !== bytes.byteLength) malformed(`${bytes.byteLength - r.pos} trailing bytes after the receipt`)

  const common = { treeSize, leafIndex, path, signature, protectedHeader }
  return kid !== undefined ? { ...common, kid } : common
}

/**
 * Verifies a receipt for a leaf against the anchored tree, in the order of RFC 9942 §5.2.1: the
 * tree size against the anchor, the inclusion proof from the leaf to the anchored root, then the
 * signature over that root. The payload is detached, so the root is always the verifier's own.
 * @throws ProtocolError `RECEIPT_MALFORMED`; `RECEIPT_ANCHOR_MISMATCH` (tree size differs from
 *   the anchor's); `MERKLE_INVALID_PROOF` / `MERKLE_ROOT_MISMATCH` (the proof does not lead to the
 *   anchored root); `SIGNATURE_INVALID` (another key, or a signature that does not verify).
 */
export function verifyReceipt (bytes: Uint8Array, leafHash: Uint8Array, anchor: ReceiptAnchor, backend: VerifierBackend = 'node'): InclusionReceipt {
  const receipt = decodeReceipt(bytes)
  if (receipt.treeSize !== anchor.treeSize) {
    throw new ProtocolError('RECEIPT_ANCHOR_MISMATCH', `receipt proves a tree of ${receipt.treeSize} leaves, the anchor has ${anchor.treeSize}`)
  }
  verifyInclusion(leafHash, receipt.leafIndex, receipt.treeSize, receipt.path, anchor.root)
  if (receipt.kid !== undefined && !equalBytes(receipt.kid, receiptKeyId(anchor.publicKey))) {
    throw new ProtocolError('SIGNATURE_INVALID', 'receipt kid names another key than the log key')
  }
  if (!verifySignature(receipt.signature, receiptToBeSigned(receipt.protectedHeader, anchor.root), anchor.publicKey, backend)) {
    throw new ProtocolError('SIGNATURE_INVALID', 'receipt signature does not verify over the anchored root')
  }
  return receipt
}

// ---------------------------------------------------------------------------------------------

function parseProtected (bytes: Uint8Array): Uint8Array | undefined {
  const r = new Reader(bytes)
  const entries = r.head(5, 'protected header map')
  let kid: Uint8Array | undefined
  let alg = false
  let vds = false
  let last = -Infinity
  for (let i = 0; i < entries; i++) {
    // Deterministic order for these non-negative labels is numeric order.
    const label = r.int('protected header label')
    if (label <= last) malformed('protected header labels are repeated or not in deterministic order')
    last = label
    if (label === COSE_HEADER.alg) {
      if (r.int('alg') !== COSE_ALG_EDDSA) malformed('alg must be EdDSA (-8)')
      alg = true
    } else if (label === COSE_HEADER.kid) {
      kid = r.bytes('kid')
      if (kid.byteLength !== HASH_BYTES) malformed(`kid must be ${HASH_BYTES} bytes`)
    } else if (label === COSE_HEADER.vds) {
      if (r.int('vds') !== VDS_RFC9162_SHA256) malformed('vds must be RFC9162_SHA256 (1)')
      vds = true
    } else {
      malformed(`protected header label ${label} is not alg, kid or vds`)
    }
  }
  if (!alg || !vds) malformed('protected header needs alg (1) and vds (395)')
  if (r.pos !== bytes.byteLength) malformed('trailing bytes after the protected header')
  return kid
}

function parseInclusionProof (bytes: Uint8Array): { treeSize: number, leafIndex: number, path: Uint8Array[] } {
  let value: CborValue
  try {
    value = decodeCanonical(bytes, { maxBytes: MAX_RECEIPT_BYTES, maxDepth: 2 })
  } catch (cause) {
    throw new ProtocolError('RECEIPT_MALFORMED', 'inclusion proof is not canonical CBOR', { cause })
  }
  if (!Array.isArray(value) || value.length !== 3) malformed('inclusion proof must be [tree-size, leaf-index, path]')
  const [treeSize, leafIndex, path] = value as [CborValue, CborValue, CborValue]
  if (typeof treeSize !== 'number' || typeof leafIndex !== 'number') malformed('tree-size and leaf-index must be unsigned integers')
  if (leafIndex >= treeSize) malformed(`leaf-index ${leafIndex} is not below tree-size ${treeSize}`)
  if (!Array.isArray(path) || !path.every(h => h instanceof Uint8Array && h.byteLength === HASH_BYTES)) {
    malformed(`inclusion path must be an array of ${HASH_BYTES}-byte hashes`)
  }
  // RFC 9162 fixes the length; RFC 9942's CDDL says [+ bstr], but the one leaf of a one-leaf tree
  // has the empty path (RFC 9162 §2.1.3.1), so [] is accepted exactly when the tree has one leaf.
  const expected = inclusionProofLength(leafIndex, treeSize)
  if ((path as Uint8Array[]).length !== expected) malformed(`inclusion path has ${(path as Uint8Array[]).length} hashes, index and size need ${expected}`)
  return { treeSize, leafIndex, path: path as Uint8Array[] }
}

/** A reader of the few CBOR items a receipt holds; every head must be in shortest form. */
class Reader {
  pos = 0
  constructor (private readonly buf: Uint8Array) {}

  byte (): number {
    if (this.pos >= this.buf.byteLength) malformed('receipt is truncated')
    return this.buf[this.pos++] as number
  }

  /** Reads a head of `major` and returns its argument (a length or an unsigned value). */
  head (major: number, what: string): number {
    const start = this.pos
    const initial = this.byte()
    if (initial >> 5 !== major) malformed(`expected ${what} at byte ${start}`)
    return this.argument(initial & 0x1f, start)
  }

  expect (major: number, value: number, what: string): void {
    const start = this.pos
    if (this.head(major, what) !== value) malformed(`expected ${what} at byte ${start}`)
  }

  /** An integer, major type 0 or 1. */
  int (what: string): number {
    const start = this.pos
    const initial = this.byte()
    const major = initial >> 5
    if (major !== 0 && major !== 1) malformed(`expected an integer for ${what} at byte ${start}`)
    const n = this.argument(initial & 0x1f, start)
    return major === 0 ? n : -1 - n
  }

  expectInt (value: number, what: string): void {
    if (this.int(what) !== value) malformed(`expected ${what}`)
  }

  bytes (what: string): Uint8Array {
    const n = this.head(2, `a byte string (${what})`)
    if (n > this.buf.byteLength - this.pos) malformed(`${what} runs past the end of the receipt`)
    const out = this.buf.slice(this.pos, this.pos + n)
    this.pos += n
    return out
  }

  private argument (info: number, start: number): number {
    if (info < 24) return info
    // Receipts never need more than 2-byte arguments except for lengths, bounded by MAX_RECEIPT_BYTES.
    let value: number
    let min: number
    if (info === 24) { value = this.byte(); min = 24 } else if (info === 25) { value = this.byte() * 256 + this.byte(); min = 0x100 } else if (info === 26) {
      value = 0
      for (let i = 0; i < 4; i++) value = value * 256 + this.byte()
      min = 0x1_0000
    } else {
      malformed(`unsupported or indefinite length (additional information ${info}) at byte ${start}`)
    }
    if (value < min) malformed(`integer or length not in shortest form at byte ${start}`)
    return value
  }
}

function head (major: number, n: number): Uint8Array {
  const m = major << 5
  if (n < 24) return Uint8Array.of(m | n)
  if (n < 0x100) return Uint8Array.of(m | 24, n)
  if (n < 0x1_0000) return Uint8Array.of(m | 25, n >> 8, n & 0xff)
  return Uint8Array.of(m | 26, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)
}

function int (n: number): Uint8Array {
  return n >= 0 ? head(0, n) : head(1, -1 - n)
}

function bstr (bytes: Uint8Array): Uint8Array {
  return concatBytes(head(2, bytes.byteLength), bytes)
}

function concatBytes (...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts))
}

function malformed (message: string): never {
  throw new ProtocolError('RECEIPT_MALFORMED', message)
}
