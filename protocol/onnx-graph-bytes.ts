/**
 * The bytes graphHash hashes (docs/PROTOCOL.md §11), written straight from a model's wire bytes in
 * one pass, without decoding it into objects and encoding it again: what onnx-proto's
 * `ModelProto.encode` writes for the decoded model once the listed tensors' data fields are
 * cleared (model-manifest.ts computeGraphHash, which defines the hash). It covers the forms
 * exporters write: fields in field-number order, minimal varints, valid UTF-8, no NaN in float
 * fields. For anything else it returns undefined and the caller re-encodes with protobufjs: an
 * accelerator that never gives another answer, only sometimes none.
 *
 * What protobufjs's decode and encode change, and what this pass does about it:
 * - repeated numeric fields are written packed (onnx-proto was compiled from onnx.proto3), however
 *   they came: contiguous occurrences, packed or not, become one packed block here too; an empty
 *   block disappears;
 * - fields the schema does not know are dropped: dropped here too;
 * - fields come out in field-number order, a singular field once (the last), a repeated field's
 *   occurrences together: input in another order is left to protobufjs;
 * - scalars are re-encoded from their decoded value: int32 and enums keep their low 32 bits
 *   (negatives as 10 bytes), strings are decoded with replacement of invalid UTF-8, floats pass
 *   through JavaScript numbers (a NaN may change): only inputs that come back byte for byte
 *   (minimal varints, int32 in range, valid UTF-8, no NaN) are taken here;
 * - every length prefix is written anew (minimal).
 */

import { isUtf8 } from 'node:buffer'
import { ONNX_WIRE_SCHEMA } from './onnx-wire-check.js'

/** How onnx-proto decodes a scalar field; the wire schema only says how it is laid out. */
export const INT32 = 1
/** int64 and uint64: all 64 bits kept. */
export const INT64 = 2
export const F32 = 3
export const F64 = 4
/** A `string`: decoded as UTF-8, encoded again. */
export const STRING = 5
/** A `bytes`: copied. */
export const BYTES = 6
const MESSAGE = 7

/**
 * The wire schema's varint and length-delimited scalars refined by their declared type (ONNX
 * 1.10.2, as onnx-proto 8.0.1 decodes them; a test reads onnx-proto's decoders to keep this true):
 * these varints are int32 or enums, these length-delimited fields are `bytes`. Every other varint
 * is an int64 or uint64, every other length-delimited scalar a `string`.
 */
export const INT32_FIELDS: Readonly<Record<string, readonly number[]>> = {
  AttributeProto: [20],
  TensorProto: [2, 5, 14],
  'TypeProto.Tensor': [1],
  'TypeProto.Map': [1],
  'TypeProto.SparseTensor': [1]
}
export const BYTES_FIELDS: Readonly<Record<string, readonly number[]>> = {
  AttributeProto: [4, 9],
  TensorProto: [6, 9]
}

/** TensorProto's data fields, cleared in the tensors the manifest lists: float, int32, string, int64, raw, double, uint64. */
const TENSOR_DATA_FIELDS = [4, 5, 6, 7, 9, 10, 11]

interface FieldSpec {
  readonly kind: number
  readonly repeated: boolean
  /** Index of the message type in MESSAGES, for MESSAGE fields. */
  readonly message: number
  /** Left out of the output (a listed tensor's data). */
  readonly drop: boolean
}

/** Per message type, its fields indexed by field number. */
type MessageSpec = ReadonlyArray<FieldSpec | undefined>

/**
 * The message types, with TensorProto twice: as the manifest lists it (graph initializers,
 * attribute tensors: its data fields dropped) and inside a sparse tensor (kept whole).
 */
const LISTED_TENSOR = 'TensorProto (listed)'
const MESSAGES: readonly MessageSpec[] = buildSchema()
const MODEL_PROTO = 0

function buildSchema (): MessageSpec[] {
  const names = [...Object.keys(ONNX_WIRE_SCHEMA), LISTED_TENSOR]
  names.splice(names.indexOf('ModelProto'), 1)
  names.unshift('ModelProto')
  const index = new Map(names.map((n, i) => [n, i]))
  return names.map((name) => {
    const wire = ONNX_WIRE_SCHEMA[name === LISTED_TENSOR ? 'TensorProto' : name] ?? {}
    const spec: Array<FieldSpec | undefined> = []
    for (const [key, kind] of Object.entries(wire)) {
      const field = Number(key)
      const drop = name === LISTED_TENSOR && TENSOR_DATA_FIELDS.includes(field)
      if (typeof kind === 'object') {
        // A graph initializer (GraphProto 5) or an attribute's tensor (t = 5, tensors = 10) is listed.
        const listed = kind.message === 'TensorProto' && (name === 'GraphProto' || name === 'AttributeProto')
        const child = index.get(listed ? LISTED_TENSOR : kind.message)
        if (child === undefined) throw new Error(`no message type ${kind.message}`)
        spec[field] = { kind: MESSAGE, repeated: kind.slot === undefined, message: child, drop }
        continue
      }
      const refined = name === LISTED_TENSOR ? 'TensorProto' : name
      const repeated = kind.endsWith('*')
      const base = repeated ? kind.slice(0, -1) : kind
      const scalar = base === 'varint'
        ? (INT32_FIELDS[refined]?.includes(field) === true ? INT32 : INT64)
        : base === 'f32' ? F32 : base === 'f64' ? F64 : BYTES_FIELDS[refined]?.includes(field) === true ? BYTES : STRING
      spec[field] = { kind: scalar, repeated, message: -1, drop }
    }
    return spec
  })
}

/**
 * The graph-hash bytes of a model that passed checkModelWireFormat, or undefined when the bytes
 * hold a form this pass leaves to protobufjs (see the top of this file).
 */
export function wireGraphBytes (bytes: Uint8Array): Uint8Array | undefined {
  // Without the tensor data a model is a few percent of its file: the output starts small and grows.
  const out = new Output(Math.min(bytes.length + 64, INITIAL_OUTPUT_BYTES))
  const src = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  return writeMessage(src, 0, src.length, MESSAGES[MODEL_PROTO] as MessageSpec, out, 0) ? out.bytes() : undefined
}

const INITIAL_OUTPUT_BYTES = 256 * 1024

/** Deeper nesting than the wire check allows is not expected here; protobufjs then decides. */
const MAX_DEPTH = 256

// The last varint read by readVarint: low and high 32 bits, byte count, the position after it.
let vLo = 0
let vHi = 0
let vLen = 0
let vEnd = 0

/**
 * Reads a varint at `pos` ending before `end`; false unless it is minimal, at most 10 bytes and
 * within 64 bits (the only forms protobufjs writes back unchanged).
 */
function readVarint (src: Uint8Array, pos: number, end: number): boolean {
  let lo = 0
  let hi = 0
  let i = 0
  let b = 0
  do {
    if (pos >= end || i === 10) return false
    b = src[pos++] as number
    const v = b & 0x7f
    if (i < 4) lo |= v << (7 * i)
    else if (i === 4) { lo |= v << 28; hi = v >>> 4 } else hi |= v << (7 * i - 32)
    i++
  } while (b >= 0x80)
  if ((i > 1 && b === 0) || (i === 10 && b > 1)) return false
  vLo = lo >>> 0
  vHi = hi >>> 0
  vLen = i
  vEnd = pos
  return true
}

/** The last varint read as an int32 or enum comes back unchanged: in range, negatives as 10 bytes. */
function int32Unchanged (): boolean {
  return (vHi === 0 && vLo <= 0x7fffffff) || (vHi === 0xffffffff && vLo >= 0x80000000 && vLen === 10)
}

function isNaN32 (src: Uint8Array, at: number): boolean {
  const b3 = src[at + 3] as number
  const b2 = src[at + 2] as number
  return (b3 & 0x7f) === 0x7f && (b2 & 0x80) !== 0 && ((b2 & 0x7f) !== 0 || src[at + 1] !== 0 || src[at] !== 0)
}

function isNaN64 (src: Uint8Array, at: number): boolean {
  const b7 = src[at + 7] as number
  const b6 = src[at + 6] as number
  if ((b7 & 0x7f) !== 0x7f || (b6 & 0xf0) !== 0xf0) return false
  if ((b6 & 0x0f) !== 0) return true
  for (let i = 0; i < 6; i++) if (src[at + i] !== 0) return true
  return false
}

function isAscii (src: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if ((src[i] as number) >= 0x80) return false
  return true
}

function varintSize (n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5
}

/** A growing output buffer. */
class Output {
  buf: Buffer
  pos = 0

  constructor (capacity: number) {
    this.buf = Buffer.allocUnsafe(capacity)
  }

  ensure (n: number): void {
    if (this.pos + n <= this.buf.length) return
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n))
    this.buf.copy(next, 0, 0, this.pos)
    this.buf = next
  }

  copy (src: Buffer, start: number, end: number): void {
    const n = end - start
    if (n <= 0) return
    this.ensure(n)
    if (n < 64) {
      const buf = this.buf
      let at = this.pos
      for (let i = start; i < end; i++) buf[at++] = src[i] as number
    } else {
      src.copy(this.buf, this.pos, start, end)
    }
    this.pos += n
  }

  /** A varint of at most 32 bits at `at` (the space is there). */
  putVarint (n: number, at: number): number {
    while (n >= 0x80) {
      this.buf[at++] = (n & 0x7f) | 0x80
      n >>>= 7
    }
    this.buf[at++] = n
    return at
  }

  varint (n: number): void {
    this.ensure(5)
    this.pos = this.putVarint(n, this.pos)
  }

  bytes (): Uint8Array {
    return this.buf.subarray(0, this.pos)
  }
}

/** Position after a field of wire type `wire` at `pos`, or -1 when it overruns or is a group. */
function skipValue (src: Uint8Array, pos: number, end: number, wire: number): number {
  switch (wire) {
    case 0: return readVarint(src, pos, end) ? vEnd : -1
    case 1: return pos + 8 <= end ? pos + 8 : -1
    case 5: return pos + 4 <= end ? pos + 4 : -1
    case 2: {
      if (!readVarint(src, pos, end) || vHi !== 0) return -1
      const next = vEnd + vLo
      return next <= end ? next : -1
    }
    default: return -1
  }
}

/**
 * Writes the message in src[start, end) as protobufjs would encode its decoded form; false when
 * the input is not one of the forms covered. Fields that come back byte for byte are copied in runs.
 */
function writeMessage (src: Buffer, start: number, end: number, spec: MessageSpec, out: Output, depth: number): boolean {
  if (depth > MAX_DEPTH) return false
  let pos = start
  // Input from `run` to `pos` comes back unchanged and is not copied yet.
  let run = start
  let last = 0
  while (pos < end) {
    const fieldStart = pos
    if (!readVarint(src, pos, end) || vHi !== 0) return false
    const tag = vLo
    pos = vEnd
    const field = tag >>> 3
    const wire = tag & 7
    const f = field === 0 ? undefined : spec[field]
    if (f === undefined || f.drop) {
      // Unknown to the schema (protobufjs drops it) or a listed tensor's data: left out.
      if (field === 0) return false
      const next = skipValue(src, pos, end, wire)
      if (next < 0) return false
      out.copy(src, run, fieldStart)
      pos = run = next
      continue
    }
    if (field < last || (field === last && !f.repeated)) return false
    if (f.kind === MESSAGE) {
      last = field
      if (wire !== 2 || !readVarint(src, pos, end) || vHi !== 0) return false
      const bodyStart = vEnd
      const bodyEnd = bodyStart + vLo
      if (bodyEnd > end) return false
      const lengthBytes = bodyStart - pos
      out.copy(src, run, pos)
      const lengthAt = out.pos
      out.ensure(lengthBytes)
      out.pos += lengthBytes
      if (!writeMessage(src, bodyStart, bodyEnd, MESSAGES[f.message] as MessageSpec, out, depth + 1)) return false
      const length = out.pos - lengthAt - lengthBytes
      const need = varintSize(length)
      if (need !== lengthBytes) {
        out.ensure(need - lengthBytes)
        out.buf.copyWithin(lengthAt + need, lengthAt + lengthBytes, out.pos)
        out.pos += need - lengthBytes
      }
      out.putVarint(length, lengthAt)
      pos = run = bodyEnd
      continue
    }
    if (f.repeated && f.kind !== STRING && f.kind !== BYTES) {
      // A repeated number: this and the following occurrences of the field become one packed block.
      if (field === last) return false
      last = field
      const groupEnd = scanNumbers(src, fieldStart, end, field, f.kind)
      if (groupEnd < 0) return false
      if (groupValues > 0 && groupOccurrences === 1 && wire === 2) {
        pos = groupEnd
        continue
      }
      out.copy(src, run, fieldStart)
      if (groupValues > 0) writePacked(src, fieldStart, groupEnd, field, out)
      pos = run = groupEnd
      continue
    }
    last = field
    switch (f.kind) {
      case STRING:
      case BYTES: {
        if (wire !== 2 || !readVarint(src, pos, end) || vHi !== 0) return false
        const next = vEnd + vLo
        if (next > end) return false
        if (f.kind === STRING && !isAscii(src, vEnd, next) && !isUtf8(src.subarray(vEnd, next))) return false
        pos = next
        break
      }
      case INT32:
      case INT64:
        if (wire !== 0 || !readVarint(src, pos, end)) return false
        if (f.kind === INT32 && !int32Unchanged()) return false
        pos = vEnd
        break
      case F32:
        if (wire !== 5 || pos + 4 > end || isNaN32(src, pos)) return false
        pos += 4
        break
      case F64:
        if (wire !== 1 || pos + 8 > end || isNaN64(src, pos)) return false
        pos += 8
        break
      default:
        return false
    }
  }
  out.copy(src, run, end)
  return true
}

// What the last scanNumbers found: values, occurrences and the bytes of the values alone.
let groupValues = 0
let groupOccurrences = 0
let groupValueBytes = 0

/**
 * Checks the occurrences of repeated numeric `field` from `start` on (packed blocks or single
 * values) while they follow one another; returns the position after the last, or -1 when a value
 * would not come back unchanged or the bytes are malformed.
 */
function scanNumbers (src: Uint8Array, start: number, end: number, field: number, kind: number): number {
  let pos = start
  groupValues = 0
  groupOccurrences = 0
  groupValueBytes = 0
  while (pos < end) {
    if (!readVarint(src, pos, end) || vHi !== 0 || vLo >>> 3 !== field) break
    const wire = vLo & 7
    pos = vEnd
    groupOccurrences++
    if (wire === 2) {
      if (!readVarint(src, pos, end) || vHi !== 0) return -1
      const blockEnd = vEnd + vLo
      if (blockEnd > end) return -1
      pos = vEnd
      groupValueBytes += blockEnd - pos
      if (kind === F32 || kind === F64) {
        const width = kind === F32 ? 4 : 8
        if ((blockEnd - pos) % width !== 0) return -1
        for (; pos < blockEnd; pos += width) {
          if (kind === F32 ? isNaN32(src, pos) : isNaN64(src, pos)) return -1
          groupValues++
        }
      } else {
        while (pos < blockEnd) {
          if (!readVarint(src, pos, blockEnd) || (kind === INT32 && !int32Unchanged())) return -1
          pos = vEnd
          groupValues++
        }
      }
      continue
    }
    const width = kind === F32 ? 4 : kind === F64 ? 8 : 0
    if (wire !== (kind === F32 ? 5 : kind === F64 ? 1 : 0)) return -1
    if (width > 0) {
      if (pos + width > end || (kind === F32 ? isNaN32(src, pos) : isNaN64(src, pos))) return -1
      pos += width
      groupValueBytes += width
    } else {
      if (!readVarint(src, pos, end) || (kind === INT32 && !int32Unchanged())) return -1
      groupValueBytes += vEnd - pos
      pos = vEnd
    }
    groupValues++
  }
  return pos
}

/** Writes the occurrences scanNumbers just checked in src[start, end) as one packed block. */
function writePacked (src: Buffer, start: number, end: number, field: number, out: Output): void {
  out.varint((field << 3) | 2)
  out.varint(groupValueBytes)
  let pos = start
  while (pos < end) {
    readVarint(src, pos, end)
    const wire = vLo & 7
    pos = vEnd
    if (wire === 2) {
      readVarint(src, pos, end)
      out.copy(src, vEnd, vEnd + vLo)
      pos = vEnd + vLo
    } else {
      const next = wire === 5 ? pos + 4 : wire === 1 ? pos + 8 : (readVarint(src, pos, end), vEnd)
      out.copy(src, pos, next)
      pos = next
    }
  }
}
