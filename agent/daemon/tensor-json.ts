/**
 * Tensors in the HTTP API's JSON: `{ type, dims, data }` where data is the base64 of the raw
 * little-endian element bytes (or, for `string` tensors, an array of strings). Request bodies
 * come from other processes: every field is checked and sizes are checked before allocating.
 */
import { Tensor } from 'onnxruntime-node'

export interface TensorJson {
  type: string
  dims: number[]
  /** base64 of the little-endian element bytes; an array of strings for `string` tensors. */
  data: string | string[]
}

/** The typed array of an element type, made over a buffer of its bytes. */
export type TypedCtor = new (buffer: ArrayBuffer) => ArrayBufferView
/** The typed array and element size of each non-string element type (run-body.ts shares it). */
export const TYPED: Readonly<Record<string, { ctor: TypedCtor, bytes: number }>> = {
  float32: { ctor: Float32Array, bytes: 4 },
  float64: { ctor: Float64Array, bytes: 8 },
  int8: { ctor: Int8Array, bytes: 1 },
  uint8: { ctor: Uint8Array, bytes: 1 },
  int16: { ctor: Int16Array, bytes: 2 },
  uint16: { ctor: Uint16Array, bytes: 2 },
  int32: { ctor: Int32Array, bytes: 4 },
  uint32: { ctor: Uint32Array, bytes: 4 },
  int64: { ctor: BigInt64Array, bytes: 8 },
  uint64: { ctor: BigUint64Array, bytes: 8 },
  bool: { ctor: Uint8Array, bytes: 1 },
  // onnxruntime-node takes float16 as its raw bits.
  float16: { ctor: Uint16Array, bytes: 2 }
}

/** Element types the API accepts. */
export const TENSOR_JSON_TYPES: readonly string[] = Object.freeze([...Object.keys(TYPED), 'string'])
/** Most dimensions of a tensor the API takes (run-body.ts shares it). */
export const MAX_RANK = 32
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/**
 * Builds an onnxruntime tensor from its JSON form, or pushes `path: problem` lines and returns undefined.
 */
export function decodeTensorJson (value: unknown, path: string, problems: string[]): Tensor | undefined {
  const v = value as Partial<TensorJson> | null
  if (typeof v !== 'object' || v === null || Array.isArray(v)) { problems.push(`${path}: must be an object { type, dims, data }`); return undefined }
  const before = problems.length
  if (typeof v.type !== 'string' || !TENSOR_JSON_TYPES.includes(v.type)) problems.push(`${path}.type: must be one of ${TENSOR_JSON_TYPES.join(', ')}`)
  let elements = 1
  if (!Array.isArray(v.dims) || v.dims.length > MAX_RANK) {
    problems.push(`${path}.dims: must be an array of at most ${MAX_RANK} dimensions`)
  } else {
    v.dims.forEach((d: unknown, i) => {
      if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0 || d > 0x7fff_ffff) problems.push(`${path}.dims[${i}]: must be an integer in 0..2147483647`)
      else elements *= d
    })
    if (!Number.isSafeInteger(elements)) problems.push(`${path}.dims: too many elements`)
  }
  if (problems.length > before) return undefined
  const type = v.type as string
  const dims = v.dims as number[]
  if (type === 'string') {
    if (!Array.isArray(v.data) || !v.data.every(s => typeof s === 'string')) { problems.push(`${path}.data: must be an array of strings for a string tensor`); return undefined }
    if (v.data.length !== elements) { problems.push(`${path}.data: ${v.data.length} strings for ${elements} elements`); return undefined }
    return new Tensor('string', v.data, dims)
  }
  const typed = TYPED[type] as { ctor: TypedCtor, bytes: number }
  if (typeof v.data !== 'string' || !BASE64.test(v.data)) { problems.push(`${path}.data: must be base64 of the little-endian element bytes`); return undefined }
  // Check the declared size before decoding: base64 of n bytes is 4·ceil(n/3) characters.
  const expected = elements * typed.bytes
  if (Math.ceil(expected / 3) * 4 !== v.data.length) {
    problems.push(`${path}.data: ${elements} elements of ${type} need ${expected} bytes`)
    return undefined
  }
  const decoded = Buffer.byteLength(v.data, 'base64')
  if (decoded !== expected) { problems.push(`${path}.data: decodes to ${decoded} bytes, ${expected} expected`); return undefined }
  // Decoded straight into a fresh ArrayBuffer (Buffer's pooled memory may not be aligned for the
  // element type): no intermediate copy of a large input per request (#11, daemon RSS under load).
  const buffer = new ArrayBuffer(expected)
  const written = Buffer.from(buffer).write(v.data, 'base64')
  if (written !== expected) { problems.push(`${path}.data: decodes to ${written} bytes, ${expected} expected`); return undefined }
  return new Tensor(type as 'float32', new typed.ctor(buffer) as Float32Array, dims)
}

/** The JSON form of an output tensor. */
export function encodeTensorJson (tensor: { type: string, dims: readonly number[], data: unknown }): TensorJson {
  const data = tensor.data
  if (Array.isArray(data)) return { type: tensor.type, dims: [...tensor.dims], data: data.map(String) }
  const view = data as ArrayBufferView
  return { type: tensor.type, dims: [...tensor.dims], data: Buffer.from(view.buffer, view.byteOffset, view.byteLength).toString('base64') }
}
