/**
 * Tensor commitments: SHA-256 over a canonical, salted encoding of one tensor (name, dtype,
 * dims, raw little-endian bytes), and the per-record salt a device derives from its own secret.
 * The salt keeps a record holder from confirming a guessed low-entropy input; an investigator
 * given the salt can recompute the commitment. Layout in docs/PROTOCOL.md §Tensor commitments.
 */
import { createHash, createHmac } from 'node:crypto'
import { endianness } from 'node:os'
import { ProtocolError } from './errors.js'
import { sha256 } from './hash.js'
import { isArray } from './guards.js'

/** Tensor element types, named as onnxruntime names them, coded as ONNX TensorProto.DataType. */
export const TENSOR_DTYPES = {
  float32: 1,
  uint8: 2,
  int8: 3,
  uint16: 4,
  int16: 5,
  int32: 6,
  int64: 7,
  string: 8,
  bool: 9,
  float16: 10,
  float64: 11,
  uint32: 12,
  uint64: 13
} as const

export type TensorDtype = keyof typeof TENSOR_DTYPES

/** The parts of a tensor a commitment covers; onnxruntime's `Tensor` fits this shape. */
export interface TensorLike {
  readonly type: string
  readonly dims: readonly number[]
  readonly data: ArrayBufferView | readonly string[]
}

export const SALT_BYTES = 32
export const MAX_TENSOR_RANK = 32
const TENSOR_DOMAIN = Buffer.from('edge-provenance/tensor/v1\0', 'utf8')
const SALT_DOMAIN = Buffer.from('edge-provenance/salt/v1\0', 'utf8')
const SUBJECT_SALT_DOMAIN = Buffer.from('edge-provenance/salt/v2\0', 'utf8')
const SUBJECT_REF_DOMAIN = Buffer.from('edge-provenance/subject/v1\0', 'utf8')
/** Length of a subject key (the disclosure material that crypto-shredding destroys). */
export const SUBJECT_KEY_BYTES = 32

// Raw bytes are hashed as they lie in memory: that is the canonical little-endian form only on a
// little-endian host (every Jetson, Pi and x86-64 is one). Refuse rather than commit wrong bytes.
const LITTLE_ENDIAN_HOST = endianness() === 'LE'

/**
 * The salt of record `seq`: HMAC-SHA256(secret, "edge-provenance/salt/v1\0" ‖ u64be(seq)).
 * @throws RangeError for a secret shorter than 32 bytes or a bad seq.
 */
export function deriveSalt (secret: Uint8Array, seq: number): Uint8Array {
  if (!(secret instanceof Uint8Array) || secret.byteLength < 32) throw new RangeError('salt secret must be at least 32 bytes')
  if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError(`bad seq ${seq}`)
  return hmacSeq(secret, SALT_DOMAIN, seq)
}

/**
 * The salt of record `seq` run for a data subject (docs/PROTOCOL.md §12.3):
 * HMAC-SHA256(subjectKey, "edge-provenance/salt/v2\0" ‖ u64be(seq)). The subject key is random and
 * kept apart from the device secret, so destroying it makes these salts, and with them the
 * record's commitments, impossible to recompute (crypto-shredding).
 * @throws RangeError for a key that is not 32 bytes or a bad seq.
 */
export function deriveSubjectSalt (subjectKey: Uint8Array, seq: number): Uint8Array {
  if (!(subjectKey instanceof Uint8Array) || subjectKey.byteLength !== SUBJECT_KEY_BYTES) throw new RangeError('subject key must be 32 bytes')
  if (!Number.isSafeInteger(seq) || seq < 0) throw new RangeError(`bad seq ${seq}`)
  return hmacSeq(subjectKey, SUBJECT_SALT_DOMAIN, seq)
}

const SHA256_BLOCK_BYTES = 64

/**
 * HMAC-SHA256(key, domain ‖ u64be(seq)) (RFC 2104) as two one-shot hashes over buffers built
 * here: the same bytes as createHmac, without the key object, the two stream objects and the
 * BigInt that createHmac and writeBigUInt64BE cost per record (issue 11: ~0.08 ms of main-thread
 * CPU per inference). The padded key lives in unpooled memory, zeroed once hashed.
 */
function hmacSeq (key: Uint8Array, domain: Uint8Array, seq: number): Uint8Array {
  const k = key.byteLength > SHA256_BLOCK_BYTES ? sha256(key) : key
  const inner = new Uint8Array(SHA256_BLOCK_BYTES + domain.byteLength + 8)
  const outer = new Uint8Array(SHA256_BLOCK_BYTES + 32)
  for (let i = 0; i < SHA256_BLOCK_BYTES; i++) {
    const b = k[i] ?? 0
    inner[i] = b ^ 0x36
    outer[i] = b ^ 0x5c
  }
  inner.set(domain, SHA256_BLOCK_BYTES)
  writeU64(inner, SHA256_BLOCK_BYTES + domain.byteLength, seq)
  outer.set(sha256(inner), SHA256_BLOCK_BYTES)
  const mac = sha256(outer)
  inner.fill(0, 0, SHA256_BLOCK_BYTES)
  outer.fill(0)
  if (k !== key) k.fill(0)
  return mac
}

/** Writes a non-negative safe integer as u64be at `offset`. */
function writeU64 (out: Uint8Array, offset: number, n: number): void {
  const hi = Math.floor(n / 0x1_0000_0000)
  const lo = n >>> 0
  out[offset] = hi >>> 24
  out[offset + 1] = (hi >>> 16) & 0xff
  out[offset + 2] = (hi >>> 8) & 0xff
  out[offset + 3] = hi & 0xff
  out[offset + 4] = lo >>> 24
  out[offset + 5] = (lo >>> 16) & 0xff
  out[offset + 6] = (lo >>> 8) & 0xff
  out[offset + 7] = lo & 0xff
}

/**
 * The pseudonym of a data subject in a shredding statement (§12.3):
 * HMAC-SHA256(secret, "edge-provenance/subject/v1\0" ‖ UTF-8(subject)), under the device secret.
 * The device can show which subject a statement is about; a reader of the statement cannot.
 * @throws RangeError for a short secret or an empty subject.
 */
export function deriveSubjectRef (secret: Uint8Array, subject: string): Uint8Array {
  if (!(secret instanceof Uint8Array) || secret.byteLength < 32) throw new RangeError('salt secret must be at least 32 bytes')
  if (typeof subject !== 'string' || subject.length === 0) throw new RangeError('subject must be a non-empty string')
  return new Uint8Array(createHmac('sha256', secret).update(SUBJECT_REF_DOMAIN).update(subject, 'utf8').digest())
}

/** What a commitment needs of a tensor, with its data already hashed (no salt involved yet). */
export interface TensorDigest {
  dtypeCode: number
  dims: readonly number[]
  /** Length of the canonical data bytes. */
  byteLength: number
  /** SHA-256 of the canonical data bytes. */
  dataHash: Uint8Array
}

/**
 * Hashes a tensor's canonical data bytes. This is the expensive half of a commitment and needs
 * no salt, so the agent runs it while the model computes; {@link commitDigest} adds the salt.
 * @throws ProtocolError `TENSOR_INVALID` for an unknown dtype, bad dims, or data that does not fit.
 */
export function digestTensor (name: string, tensor: TensorLike): TensorDigest {
  const canonical = canonicalTensor(name, tensor)
  const h = createHash('sha256')
  for (const part of canonical.parts()) h.update(part)
  return { dtypeCode: canonical.dtypeCode, dims: canonical.dims, byteLength: canonical.byteLength, dataHash: new Uint8Array(h.digest()) }
}

/** A checked tensor whose canonical data bytes are still to be hashed (see canonicalTensor). */
export interface CanonicalTensor {
  readonly dtypeCode: number
  readonly dims: readonly number[]
  /** Length of the canonical data bytes. */
  readonly byteLength: number
  /**
   * The canonical data bytes in order, as views where possible: one view of the typed array, or
   * per string its u32be length and UTF-8 bytes. SHA-256 over their concatenation is `dataHash`.
   */
  parts: () => Iterable<Uint8Array>
}

/**
 * Checks a tensor as {@link digestTensor} does, without hashing, so that a caller can hash the
 * bytes in slices (the agent does, to keep its event loop free on large inputs).
 * @throws ProtocolError `TENSOR_INVALID`.
 */
export function canonicalTensor (name: string, tensor: TensorLike): CanonicalTensor {
  const dtypeCode = (TENSOR_DTYPES as Record<string, number>)[tensor.type]
  if (dtypeCode === undefined) throw new ProtocolError('TENSOR_INVALID', `tensor "${name}": unsupported dtype ${String(tensor.type)}`)
  const dims = tensor.dims
  if (!isArray(dims) || dims.length > MAX_TENSOR_RANK) {
    throw new ProtocolError('TENSOR_INVALID', `tensor "${name}": rank must be at most ${MAX_TENSOR_RANK}`)
  }
  let elements = 1
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw new ProtocolError('TENSOR_INVALID', `tensor "${name}": bad dimension ${d}`)
    elements *= d
  }
  if (tensor.type === 'string') {
    const data = tensor.data
    if (!Array.isArray(data) || data.length !== elements) {
      throw new ProtocolError('TENSOR_INVALID', `tensor "${name}": string tensor needs ${elements} strings`)
    }
    const encoded: Buffer[] = []
    let byteLength = 0
    for (const s of data as unknown[]) {
      if (typeof s !== 'string') throw new ProtocolError('TENSOR_INVALID', `tensor "${name}": non-string element`)
      const b = Buffer.from(s, 'utf8')
      encoded.push(b)
      byteLength += 4 + b.length
    }
    return {
      dtypeCode,
      dims: [...dims],
      byteLength,
      * parts () {
        for (const b of encoded) {
          const len = Buffer.alloc(4)
          len.writeUInt32BE(b.length)
          yield len
          yield b
        }
      }
    }
  }
  const data = tensor.data
  if (!ArrayBuffer.isView(data)) throw new ProtocolError('TENSOR_INVALID', `tensor "${name}": data is not a typed array`)
  if (!LITTLE_ENDIAN_HOST && ((data as { BYTES_PER_ELEMENT?: number }).BYTES_PER_ELEMENT ?? 1) > 1) {
    throw new ProtocolError('TENSOR_INVALID', 'tensor commitments on big-endian hosts are not supported')
  }
  const width = elementBytes(tensor.type as TensorDtype)
  if (data.byteLength !== elements * width) {
    throw new ProtocolError('TENSOR_INVALID', `tensor "${name}": ${data.byteLength} data bytes for ${elements} elements of ${tensor.type}`)
  }
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  return { dtypeCode, dims: [...dims], byteLength: data.byteLength, parts: () => [bytes] }
}

/**
 * The salted commitment to a named tensor from its digest:
 * SHA-256(domain ‖ salt ‖ u32be(len name) ‖ name ‖ u8 dtype ‖ u8 rank ‖ u64be dims… ‖ u64be(byteLength) ‖ dataHash).
 */
export function commitDigest (salt: Uint8Array, name: string, digest: TensorDigest): Uint8Array {
  if (salt.byteLength !== SALT_BYTES) throw new RangeError('salt must be 32 bytes')
  const { dims, dtypeCode, byteLength, dataHash } = digest
  if (!Number.isInteger(dtypeCode) || dtypeCode < 0 || dtypeCode > 0xff) throw new RangeError(`bad dtype code ${dtypeCode}`)
  if (dims.length > 0xff) throw new RangeError(`rank ${dims.length} does not fit a byte`)
  for (const v of dims) if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`bad dimension or length ${v}`)
  if (!Number.isSafeInteger(byteLength) || byteLength < 0) throw new RangeError(`bad dimension or length ${byteLength}`)
  // One buffer and one one-shot hash: this runs for every tensor of every record (issue 11).
  const nameBytes = Buffer.from(name, 'utf8')
  const out = new Uint8Array(TENSOR_DOMAIN.length + SALT_BYTES + 4 + nameBytes.length + 2 + 8 * dims.length + 8 + dataHash.byteLength)
  out.set(TENSOR_DOMAIN, 0)
  out.set(salt, TENSOR_DOMAIN.length)
  let o = TENSOR_DOMAIN.length + SALT_BYTES
  const n = nameBytes.length
  out[o++] = n >>> 24
  out[o++] = (n >>> 16) & 0xff
  out[o++] = (n >>> 8) & 0xff
  out[o++] = n & 0xff
  out.set(nameBytes, o)
  o += n
  out[o++] = dtypeCode
  out[o++] = dims.length
  for (const d of dims) { writeU64(out, o, d); o += 8 }
  writeU64(out, o, byteLength)
  out.set(dataHash, o + 8)
  return sha256(out)
}

/**
 * The commitment to one named tensor under `salt` (32 bytes).
 * @throws ProtocolError `TENSOR_INVALID`.
 */
export function commitTensor (salt: Uint8Array, name: string, tensor: TensorLike): Uint8Array {
  return commitDigest(salt, name, digestTensor(name, tensor))
}

function elementBytes (type: TensorDtype): number {
  switch (type) {
    case 'uint8': case 'int8': case 'bool': return 1
    case 'uint16': case 'int16': case 'float16': return 2
    case 'float32': case 'int32': case 'uint32': return 4
    default: return 8
  }
}
