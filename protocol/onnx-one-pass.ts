/**
 * One pass over a model's wire bytes that does, for the forms exporters write, what the manifest
 * otherwise does in three: the structural check of onnx-wire-check.ts, protobufjs's decode (of
 * the fields the manifest reads) and the graph hash's re-encoding (docs/PROTOCOL.md §11). It
 * returns undefined for any other form, and model-manifest.ts then takes the three steps, which
 * define the result: an accelerator that never gives another answer, only sometimes none.
 *
 * The graph-hash bytes are what onnx-proto's `ModelProto.encode` writes for the decoded model once
 * the listed tensors' data fields are cleared. What its decode and encode change, and what this
 * pass does about it:
 * - repeated numeric fields are written packed (onnx-proto was compiled from onnx.proto3), however
 *   they came: contiguous occurrences, packed or not, become one packed block here too; an empty
 *   block disappears;
 * - fields the schema does not know are dropped: dropped here too, and counted;
 * - fields come out in field-number order, a singular field once (the last), a repeated field's
 *   occurrences together: input in another order is left to protobufjs;
 * - scalars are re-encoded from their decoded value: int32 and enums keep their low 32 bits
 *   (negatives as 10 bytes), strings are decoded with replacement of invalid UTF-8, floats pass
 *   through JavaScript numbers (a NaN may change): only inputs that come back byte for byte
 *   (minimal varints, int32 in range, valid UTF-8, no NaN) are taken here;
 * - every length prefix is written anew (minimal).
 * Everything the wire check refuses is left to it: a wrong wire type, two members of a oneof, a
 * malformed packed block, an overrun, nesting beyond its limit; groups and tensors that keep their
 * data elsewhere (external_data, data_location) are left to the three steps as well.
 *
 * The decoded part is plain objects shaped as onnx-proto's (`onnx.IModelProto`), holding only what
 * the manifest reads: names, operator types, first outputs, attributes' tensors and graphs, tensor
 * types, dims and data (raw_data as views of the input), graph inputs and outputs, opsets.
 */

import { isUtf8 } from 'node:buffer'
import type { onnx } from 'onnx-proto'
import { MAX_MESSAGE_DEPTH, ONNX_WIRE_SCHEMA } from './onnx-wire-check.js'

/** How onnx-proto decodes a scalar field; the wire schema only says how it is laid out. */
const INT32 = 1
/** int64 and uint64: all 64 bits kept. */
const INT64 = 2
const F32 = 3
const F64 = 4
/** A `string`: decoded as UTF-8, encoded again. */
const STRING = 5
/** A `bytes`: copied. */
const BYTES = 6
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

// What the decoded part keeps of a field (onnx-proto's property name beside it in COLLECT).
/** Assigned: a string, a number (int64 as a number or { low, high }), a view for bytes, an object for a message. */
const SET = 1
/** Pushed onto an array. */
const PUSH = 2
/** A message whose presence is all that is read: an empty object. */
const MARK = 3
/** Not taken here: the three steps decide (tensors that keep their data in another file). */
const REFUSE = 4

/** Per message type, the fields the manifest reads: [field number, property, SET | PUSH | MARK | REFUSE]. */
const COLLECT: Readonly<Record<string, ReadonlyArray<readonly [number, string, number]>>> = {
  ModelProto: [[1, 'irVersion', SET], [2, 'producerName', SET], [3, 'producerVersion', SET], [7, 'graph', SET], [8, 'opsetImport', PUSH], [20, 'trainingInfo', PUSH], [25, 'functions', PUSH]],
  OperatorSetIdProto: [[1, 'domain', SET], [2, 'version', SET]],
  TrainingInfoProto: [[1, 'initialization', SET], [2, 'algorithm', SET]],
  FunctionProto: [[1, 'name', SET], [7, 'node', PUSH], [10, 'domain', SET]],
  GraphProto: [[1, 'node', PUSH], [5, 'initializer', PUSH], [11, 'input', PUSH], [12, 'output', PUSH]],
  NodeProto: [[2, 'output', PUSH], [3, 'name', SET], [4, 'opType', SET], [5, 'attribute', PUSH]],
  AttributeProto: [[1, 'name', SET], [5, 't', SET], [6, 'g', SET], [10, 'tensors', PUSH], [11, 'graphs', PUSH]],
  TensorProto: [[1, 'dims', PUSH], [2, 'dataType', SET], [4, 'floatData', PUSH], [5, 'int32Data', PUSH], [6, 'stringData', PUSH], [7, 'int64Data', PUSH], [8, 'name', SET], [9, 'rawData', SET], [10, 'doubleData', PUSH], [11, 'uint64Data', PUSH], [13, 'externalData', REFUSE], [14, 'dataLocation', REFUSE]],
  ValueInfoProto: [[1, 'name', SET], [2, 'type', SET]],
  TypeProto: [[1, 'tensorType', SET], [4, 'sequenceType', MARK], [5, 'mapType', MARK], [8, 'sparseTensorType', MARK], [9, 'optionalType', MARK]],
  'TypeProto.Tensor': [[1, 'elemType', SET], [2, 'shape', SET]],
  TensorShapeProto: [[1, 'dim', PUSH]],
  'TensorShapeProto.Dimension': [[1, 'dimValue', SET], [2, 'dimParam', SET]]
}

interface FieldSpec {
  readonly kind: number
  readonly repeated: boolean
  /** Index of the message type in MESSAGES, for MESSAGE fields. */
  readonly message: number
  /** Left out of the graph-hash bytes (a listed tensor's data). */
  readonly drop: boolean
  /** Members of one oneof share a bit; 0 for fields in none. */
  readonly slot: number
  /** What the decoded part keeps: 0 (nothing), SET, PUSH, MARK or REFUSE; and under which name. */
  readonly collect: number
  readonly prop: string
}

/** A message type: its fields indexed by field number, and whether the decoded part keeps it. */
interface MessageSpec {
  readonly fields: ReadonlyArray<FieldSpec | undefined>
  readonly collected: boolean
}

/**
 * The message types, with TensorProto twice: as the manifest lists it (graph initializers,
 * attribute tensors: its data fields dropped from the graph hash) and inside a sparse tensor (kept
 * whole in the graph hash, not decoded: the manifest does not read sparse tensors).
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
    const schemaName = name === LISTED_TENSOR ? 'TensorProto' : name
    const wire = ONNX_WIRE_SCHEMA[schemaName] ?? {}
    // Sparse tensors' values and indices are not decoded, but their external data is refused.
    const collect = name === 'TensorProto' ? (COLLECT.TensorProto ?? []).filter(([, , how]) => how === REFUSE) : COLLECT[schemaName] ?? []
    const slots = new Map<string, number>()
    const fields: Array<FieldSpec | undefined> = []
    for (const [key, kind] of Object.entries(wire)) {
      const field = Number(key)
      const drop = name === LISTED_TENSOR && TENSOR_DATA_FIELDS.includes(field)
      const [, prop, how] = collect.find(([f]) => f === field) ?? [field, '', 0]
      const slotName = typeof kind === 'object' ? kind.slot : name === 'TensorShapeProto.Dimension' ? 'value' : undefined
      if (slotName !== undefined && !slots.has(slotName)) slots.set(slotName, 1 << slots.size)
      const slot = slotName === undefined ? 0 : slots.get(slotName) as number
      if (typeof kind === 'object') {
        // A graph initializer (GraphProto 5) or an attribute's tensor (t = 5, tensors = 10) is listed.
        const listed = kind.message === 'TensorProto' && (name === 'GraphProto' || name === 'AttributeProto')
        const child = index.get(listed ? LISTED_TENSOR : kind.message)
        if (child === undefined) throw new Error(`no message type ${kind.message}`)
        fields[field] = { kind: MESSAGE, repeated: kind.slot === undefined, message: child, drop, slot, collect: how, prop }
        continue
      }
      const repeated = kind.endsWith('*')
      const base = repeated ? kind.slice(0, -1) : kind
      const scalar = base === 'varint'
        ? (INT32_FIELDS[schemaName]?.includes(field) === true ? INT32 : INT64)
        : base === 'f32' ? F32 : base === 'f64' ? F64 : BYTES_FIELDS[schemaName]?.includes(field) === true ? BYTES : STRING
      fields[field] = { kind: scalar, repeated, message: -1, drop, slot, collect: how, prop }
    }
    return { fields, collected: name !== 'TensorProto' && COLLECT[schemaName] !== undefined }
  })
}

/** What the one pass gives: everything the manifest needs but the tensor hashes. */
export interface OnePassModel {
  /** The fields the manifest reads, decoded as onnx-proto decodes them; raw_data are views of the input. */
  readonly model: onnx.IModelProto
  /** The bytes graphHash is the SHA-256 of. */
  readonly graphBytes: Uint8Array
  /** Fields unknown to the schema, as checkModelWireFormat counts them. */
  readonly unknownFields: number
}

/**
 * Reads a model in one pass, or returns undefined when its bytes hold a form left to the wire
 * check, protobufjs and the re-encoding (see the top of this file). Never throws for any bytes.
 */
export function readModelOnePass (bytes: Uint8Array): OnePassModel | undefined {
  // Without the tensor data a model is a few percent of its file: the output starts small and grows.
  const out = new Output(Math.min(bytes.length + 64, INITIAL_OUTPUT_BYTES))
  const src = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const model = {}
  unknownFields = 0
  try {
    if (!writeMessage(src, 0, src.length, MESSAGES[MODEL_PROTO] as MessageSpec, out, 0, model)) return undefined
  } catch {
    // Nothing here throws on any bytes but the engine's own limits (memory, stack): the defining
    // way then meets the same input and answers for it.
    return undefined
  }
  return { model, graphBytes: out.bytes(), unknownFields }
}

const INITIAL_OUTPUT_BYTES = 256 * 1024

// The last varint read by readVarint: low and high 32 bits, byte count, the position after it.
let vLo = 0
let vHi = 0
let vLen = 0
let vEnd = 0
let unknownFields = 0

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

/** The last varint read, as onnx-proto hands out a 64-bit value: a number, or a Long's { low, high }. */
function int64Value (): number | { low: number, high: number } {
  return vHi === 0 ? vLo : { low: vLo | 0, high: vHi | 0 }
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

type Decoded = Record<string, unknown>

function push (obj: Decoded, prop: string, value: unknown): void {
  const list = obj[prop] as unknown[] | undefined
  if (list === undefined) obj[prop] = [value]
  else list.push(value)
}

/**
 * Writes the message in src[start, end) as protobufjs would encode its decoded form, and decodes
 * into `obj` (when given) the fields the manifest reads; false when the input is not one of the
 * forms covered. Fields that come back byte for byte are copied in runs.
 */
function writeMessage (src: Buffer, start: number, end: number, spec: MessageSpec, out: Output, depth: number, obj: Decoded | undefined): boolean {
  if (depth > MAX_MESSAGE_DEPTH) return false
  const fields = spec.fields
  let pos = start
  // Input from `run` to `pos` comes back unchanged and is not copied yet.
  let run = start
  let last = 0
  let slots = 0
  while (pos < end) {
    const fieldStart = pos
    if (!readVarint(src, pos, end) || vHi !== 0) return false
    const tag = vLo
    pos = vEnd
    const field = tag >>> 3
    const wire = tag & 7
    if (field === 0) return false
    const f = fields[field]
    if (f === undefined) {
      // Unknown to the schema: protobufjs skips it, the graph hash leaves it out.
      const next = skipValue(src, pos, end, wire)
      if (next < 0) return false
      unknownFields++
      out.copy(src, run, fieldStart)
      pos = run = next
      continue
    }
    if (f.collect === REFUSE) return false
    if (f.slot !== 0) {
      if ((slots & f.slot) !== 0) return false
      slots |= f.slot
    }
    const collect = obj === undefined ? 0 : f.collect
    if (f.kind === MESSAGE) {
      if (field < last || (field === last && !f.repeated) || wire !== 2) return false
      last = field
      if (!readVarint(src, pos, end) || vHi !== 0) return false
      const bodyStart = vEnd
      const bodyEnd = bodyStart + vLo
      if (bodyEnd > end) return false
      const lengthBytes = bodyStart - pos
      out.copy(src, run, pos)
      const lengthAt = out.pos
      out.ensure(lengthBytes)
      out.pos += lengthBytes
      const childSpec = MESSAGES[f.message] as MessageSpec
      let child: Decoded | undefined
      if (collect === SET || collect === PUSH || collect === MARK) {
        const value = {}
        if (collect === PUSH) push(obj as Decoded, f.prop, value)
        else (obj as Decoded)[f.prop] = value
        if (collect !== MARK && childSpec.collected) child = value
      }
      if (!writeMessage(src, bodyStart, bodyEnd, childSpec, out, depth + 1, child)) return false
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
      if (field <= last) return false
      last = field
      const values = collect === PUSH ? [] as unknown[] : undefined
      const groupEnd = scanNumbers(src, fieldStart, end, field, f.kind, values)
      if (groupEnd < 0) return false
      if (values !== undefined && values.length > 0) (obj as Decoded)[f.prop] = values
      if (f.drop) {
        out.copy(src, run, fieldStart)
        pos = run = groupEnd
        continue
      }
      if (groupValues > 0 && groupOccurrences === 1 && wire === 2) {
        pos = groupEnd
        continue
      }
      out.copy(src, run, fieldStart)
      if (groupValues > 0) writePacked(src, fieldStart, groupEnd, field, out)
      pos = run = groupEnd
      continue
    }
    if (field < last || (field === last && !f.repeated)) return false
    last = field
    switch (f.kind) {
      case STRING:
      case BYTES: {
        if (wire !== 2 || !readVarint(src, pos, end) || vHi !== 0) return false
        const from = vEnd
        const next = from + vLo
        if (next > end) return false
        let value: string | Buffer | undefined
        if (f.kind === STRING) {
          const ascii = isAscii(src, from, next)
          if (!ascii && !isUtf8(src.subarray(from, next))) return false
          if (collect !== 0) value = src.toString(ascii ? 'latin1' : 'utf8', from, next)
        } else if (collect !== 0) {
          value = src.subarray(from, next)
        }
        if (collect === SET) (obj as Decoded)[f.prop] = value
        else if (collect === PUSH) push(obj as Decoded, f.prop, value)
        pos = next
        break
      }
      case INT32:
      case INT64:
        if (wire !== 0 || !readVarint(src, pos, end)) return false
        if (f.kind === INT32 && !int32Unchanged()) return false
        if (collect === SET) (obj as Decoded)[f.prop] = f.kind === INT32 ? vLo | 0 : int64Value()
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
    if (f.drop) {
      // A listed tensor's raw_data or string_data: decoded above, left out of the graph hash.
      out.copy(src, run, fieldStart)
      run = pos
    }
  }
  out.copy(src, run, end)
  return true
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

// What the last scanNumbers found: values, occurrences and the bytes of the values alone.
let groupValues = 0
let groupOccurrences = 0
let groupValueBytes = 0

/**
 * Checks the occurrences of repeated numeric `field` from `start` on (packed blocks or single
 * values) while they follow one another, pushing their decoded values onto `values` when given;
 * returns the position after the last, or -1 when a value would not come back unchanged or the
 * bytes are malformed.
 */
function scanNumbers (src: Buffer, start: number, end: number, field: number, kind: number, values: unknown[] | undefined): number {
  let pos = start
  groupValues = 0
  groupOccurrences = 0
  groupValueBytes = 0
  const width = kind === F32 ? 4 : kind === F64 ? 8 : 0
  const scalarWire = kind === F32 ? 5 : kind === F64 ? 1 : 0
  while (pos < end) {
    if (!readVarint(src, pos, end) || vHi !== 0 || vLo >>> 3 !== field) break
    const wire = vLo & 7
    pos = vEnd
    groupOccurrences++
    let blockEnd: number
    if (wire === 2) {
      if (!readVarint(src, pos, end) || vHi !== 0) return -1
      blockEnd = vEnd + vLo
      if (blockEnd > end) return -1
      pos = vEnd
      if (width > 0 && (blockEnd - pos) % width !== 0) return -1
    } else if (wire === scalarWire) {
      // One value: read as a block of one.
      blockEnd = -1
    } else {
      return -1
    }
    const from = pos
    const stop = blockEnd < 0 ? end : blockEnd
    // A block of values, or the one value of an unpacked occurrence.
    for (let single = blockEnd < 0; single || pos < blockEnd; single = false) {
      if (width > 0) {
        if (pos + width > stop || (width === 4 ? isNaN32(src, pos) : isNaN64(src, pos))) return -1
        if (values !== undefined) values.push(width === 4 ? src.readFloatLE(pos) : src.readDoubleLE(pos))
        pos += width
      } else {
        if (!readVarint(src, pos, stop)) return -1
        if (kind === INT32) {
          if (!int32Unchanged()) return -1
          if (values !== undefined) values.push(vLo | 0)
        } else if (values !== undefined) {
          values.push(int64Value())
        }
        pos = vEnd
      }
      groupValues++
    }
    groupValueBytes += pos - from
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
