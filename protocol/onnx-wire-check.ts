/**
 * A structural pass over the protobuf wire format of an ONNX ModelProto, run before protobufjs
 * decodes it, so that the manifest describes the same model onnxruntime's C++ protobuf parser sees.
 */

// Where protobufjs 6 and C++ protobuf read the same bytes differently, and what we do about it:
// - A singular message field (or oneof) that appears twice: C++ merges the two, protobufjs keeps
//   the last. A hidden first `graph` would run without being in the manifest: refused.
// - A known field with the wrong wire type: C++ keeps it as an unknown field, protobufjs's static
//   decoder reads it as if the type were right. Refused.
// - A packed block or a sub-message whose contents overrun their length: C++ fails, protobufjs
//   reads on into the next field. Refused.
// - A field the schema does not know (newer ONNX): both skip it. Counted, since the graph hash
//   cannot cover what protobufjs drops.

/** Message nesting limit; keeps this pass and protobufjs's recursive decoder off the stack limit. */
export const MAX_MESSAGE_DEPTH = 256

export class WireFormatError extends Error {}

/** How a known field is encoded. `*` marks repeated scalars, which may also come packed. */
type Kind = 'varint' | 'varint*' | 'f32' | 'f32*' | 'f64*' | 'bytes' | 'bytes*'
  | { readonly message: string, readonly slot?: string }

/**
 * ONNX 1.10.2 (the schema compiled into onnx-proto 8.0.1), field numbers per message. A `slot` marks
 * a singular message field; fields sharing a slot are one oneof. Dimension's oneof is scalar.
 */
export const ONNX_WIRE_SCHEMA: Readonly<Record<string, Readonly<Record<number, Kind>>>> = {
  ModelProto: {
    1: 'varint', 2: 'bytes', 3: 'bytes', 4: 'bytes', 5: 'varint', 6: 'bytes',
    7: { message: 'GraphProto', slot: 'graph' },
    8: { message: 'OperatorSetIdProto' },
    14: { message: 'StringStringEntryProto' },
    20: { message: 'TrainingInfoProto' },
    25: { message: 'FunctionProto' }
  },
  OperatorSetIdProto: { 1: 'bytes', 2: 'varint' },
  StringStringEntryProto: { 1: 'bytes', 2: 'bytes' },
  TrainingInfoProto: {
    1: { message: 'GraphProto', slot: 'initialization' },
    2: { message: 'GraphProto', slot: 'algorithm' },
    3: { message: 'StringStringEntryProto' },
    4: { message: 'StringStringEntryProto' }
  },
  FunctionProto: {
    1: 'bytes', 4: 'bytes*', 5: 'bytes*', 6: 'bytes*', 7: { message: 'NodeProto' }, 8: 'bytes',
    9: { message: 'OperatorSetIdProto' }, 10: 'bytes'
  },
  GraphProto: {
    1: { message: 'NodeProto' }, 2: 'bytes', 5: { message: 'TensorProto' }, 10: 'bytes',
    11: { message: 'ValueInfoProto' }, 12: { message: 'ValueInfoProto' }, 13: { message: 'ValueInfoProto' },
    14: { message: 'TensorAnnotation' }, 15: { message: 'SparseTensorProto' }
  },
  TensorAnnotation: { 1: 'bytes', 2: { message: 'StringStringEntryProto' } },
  NodeProto: { 1: 'bytes*', 2: 'bytes*', 3: 'bytes', 4: 'bytes', 5: { message: 'AttributeProto' }, 6: 'bytes', 7: 'bytes' },
  AttributeProto: {
    1: 'bytes', 2: 'f32', 3: 'varint', 4: 'bytes',
    5: { message: 'TensorProto', slot: 't' },
    6: { message: 'GraphProto', slot: 'g' },
    7: 'f32*', 8: 'varint*', 9: 'bytes*',
    10: { message: 'TensorProto' }, 11: { message: 'GraphProto' }, 13: 'bytes',
    14: { message: 'TypeProto', slot: 'tp' },
    15: { message: 'TypeProto' }, 20: 'varint', 21: 'bytes',
    22: { message: 'SparseTensorProto', slot: 'sparse_tensor' },
    23: { message: 'SparseTensorProto' }
  },
  ValueInfoProto: { 1: 'bytes', 2: { message: 'TypeProto', slot: 'type' }, 3: 'bytes' },
  TensorProto: {
    1: 'varint*', 2: 'varint', 3: { message: 'Segment', slot: 'segment' }, 4: 'f32*', 5: 'varint*',
    6: 'bytes*', 7: 'varint*', 8: 'bytes', 9: 'bytes', 10: 'f64*', 11: 'varint*', 12: 'bytes',
    13: { message: 'StringStringEntryProto' }, 14: 'varint'
  },
  Segment: { 1: 'varint', 2: 'varint' },
  SparseTensorProto: {
    1: { message: 'TensorProto', slot: 'values' },
    2: { message: 'TensorProto', slot: 'indices' },
    3: 'varint*'
  },
  TypeProto: {
    1: { message: 'TypeProto.Tensor', slot: 'value' },
    4: { message: 'TypeProto.Sequence', slot: 'value' },
    5: { message: 'TypeProto.Map', slot: 'value' },
    6: 'bytes',
    8: { message: 'TypeProto.SparseTensor', slot: 'value' },
    9: { message: 'TypeProto.Optional', slot: 'value' }
  },
  'TypeProto.Tensor': { 1: 'varint', 2: { message: 'TensorShapeProto', slot: 'shape' } },
  'TypeProto.Sequence': { 1: { message: 'TypeProto', slot: 'elem_type' } },
  'TypeProto.Map': { 1: 'varint', 2: { message: 'TypeProto', slot: 'value_type' } },
  'TypeProto.Optional': { 1: { message: 'TypeProto', slot: 'elem_type' } },
  'TypeProto.SparseTensor': { 1: 'varint', 2: { message: 'TensorShapeProto', slot: 'shape' } },
  TensorShapeProto: { 1: { message: 'TensorShapeProto.Dimension' } },
  'TensorShapeProto.Dimension': { 1: 'varint', 2: 'bytes', 3: 'bytes' }
}

// The one scalar oneof in the schema: Dimension { dim_value = 1 | dim_param = 2 }.
const SCALAR_ONEOF: Readonly<Record<string, Readonly<Record<number, string>>>> = {
  'TensorShapeProto.Dimension': { 1: 'value', 2: 'value' }
}

/**
 * Walks every message of a ModelProto without decoding values: checks lengths, wire types,
 * packed blocks, duplicate singular messages and depth; counts fields unknown to the schema.
 * Linear in the size of the input.
 * @throws {WireFormatError} when the bytes are not a well-formed, unambiguous ModelProto
 */
export function checkModelWireFormat (bytes: Uint8Array): { unknownFields: number } {
  const state = { unknownFields: 0 }
  checkMessage(bytes, 0, bytes.length, 'ModelProto', 0, state)
  return state
}

function checkMessage (buf: Uint8Array, start: number, end: number, type: string, depth: number, state: { unknownFields: number }): void {
  if (depth > MAX_MESSAGE_DEPTH) throw new WireFormatError(`messages nested deeper than ${MAX_MESSAGE_DEPTH}`)
  const schema = ONNX_WIRE_SCHEMA[type] ?? {}
  const scalarSlots = SCALAR_ONEOF[type]
  let slots: Set<string> | undefined
  let pos = start
  while (pos < end) {
    const tag = readVarint(buf, pos, end)
    pos = tag.next
    const field = Math.floor(tag.value / 8)
    const wire = tag.value % 8
    if (field === 0) throw new WireFormatError(`field number 0 in ${type} at ${tag.next}`)
    const kind = schema[field]
    if (kind === undefined) {
      state.unknownFields++
      pos = skipField(buf, pos, end, wire, field)
      continue
    }
    if (!wireMatches(kind, wire)) throw new WireFormatError(`${type} field ${field} has wire type ${wire}`)
    const slot = typeof kind === 'object' ? kind.slot : scalarSlots?.[field]
    if (slot !== undefined) {
      slots ??= new Set()
      if (slots.has(slot)) throw new WireFormatError(`${type}.${slot} appears twice`)
      slots.add(slot)
    }
    if (wire !== 2) {
      pos = skipField(buf, pos, end, wire, field)
      continue
    }
    const length = readVarint(buf, pos, end)
    const bodyStart = length.next
    const bodyEnd = bodyStart + length.value
    if (bodyEnd > end) throw new WireFormatError(`${type} field ${field} overruns its message`)
    if (typeof kind === 'object') {
      checkMessage(buf, bodyStart, bodyEnd, kind.message, depth + 1, state)
    } else {
      checkPacked(buf, bodyStart, bodyEnd, kind, type, field)
    }
    pos = bodyEnd
  }
}

function wireMatches (kind: Kind, wire: number): boolean {
  if (typeof kind === 'object') return wire === 2
  switch (kind) {
    case 'varint': return wire === 0
    case 'varint*': return wire === 0 || wire === 2
    case 'f32': return wire === 5
    case 'f32*': return wire === 5 || wire === 2
    case 'f64*': return wire === 1 || wire === 2
    case 'bytes': case 'bytes*': return wire === 2
  }
}

// No closure for the error here: this runs for every length-delimited scalar field of the model.
function checkPacked (buf: Uint8Array, start: number, end: number, kind: Kind, type: string, field: number): void {
  if ((kind === 'f32*' && (end - start) % 4 !== 0) || (kind === 'f64*' && (end - start) % 8 !== 0) ||
      // Each varint ends on a byte below 0x80, so a block that ends mid-varint has its last byte above.
      (kind === 'varint*' && end > start && (buf[end - 1] as number) >= 0x80)) {
    throw new WireFormatError(`${type} field ${field}: packed block of ${end - start} bytes is malformed`)
  }
}

function skipField (buf: Uint8Array, pos: number, end: number, wire: number, field: number): number {
  switch (wire) {
    case 0: return readVarint(buf, pos, end).next
    case 1: return within(pos + 8, end)
    case 5: return within(pos + 4, end)
    case 2: {
      const length = readVarint(buf, pos, end)
      return within(length.next + length.value, end)
    }
    case 3: {
      // A group (proto2, never written by ONNX exporters): skip to its matching end tag.
      let at = pos
      for (;;) {
        const tag = readVarint(buf, at, end)
        const innerWire = tag.value % 8
        if (innerWire === 4) {
          if (Math.floor(tag.value / 8) !== field) throw new WireFormatError('mismatched end-group tag')
          return tag.next
        }
        at = skipField(buf, tag.next, end, innerWire, Math.floor(tag.value / 8))
      }
    }
    default:
      throw new WireFormatError(`invalid wire type ${wire}`)
  }
}

function within (pos: number, end: number): number {
  if (pos > end) throw new WireFormatError('field overruns its message')
  return pos
}

/** Reads a varint of at most 10 bytes; values above 2^53 lose precision, which only lengths care about and they are bounds-checked. */
function readVarint (buf: Uint8Array, pos: number, end: number): { value: number, next: number } {
  let value = 0
  let scale = 1
  for (let i = 0; i < 10; i++) {
    if (pos + i >= end) throw new WireFormatError('truncated varint')
    const b = buf[pos + i] as number
    value += (b & 0x7f) * scale
    scale *= 128
    if (b < 0x80) return { value, next: pos + i + 1 }
  }
  throw new WireFormatError('varint longer than 10 bytes')
}
