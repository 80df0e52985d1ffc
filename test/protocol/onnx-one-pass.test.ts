/**
 * The one-pass model reader (protocol/onnx-one-pass.ts) against the defining way - wire check,
 * protobufjs decode, graph re-encoded: the same manifest, or the same error, on real exporters'
 * models, on the test models, on generated models in every wire form the pass takes or leaves,
 * and on mutated ones; and its field types read from onnx-proto's own decoders.
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import fc from 'fast-check'
import { ModelError, buildModelManifest } from '../../agent/model/index.js'
import { paddleOcrModelPaths } from '../../agent/input/paddleocr.js'
import { BYTES_FIELDS, INT32_FIELDS, readModelOnePass } from '../../protocol/onnx-one-pass.js'
import { ONNX_WIRE_SCHEMA } from '../../protocol/onnx-wire-check.js'
import { makeBranchModel, makeClassifierModel, makeConstantModel, makeExternalDataModel, onnxProtoFunctions, type TestDtype } from '../helpers/onnx-models.js'

const SEED = 20261203

/** The manifest (as JSON) both ways, or the error code and message both ways give. */
function bothWays (bytes: Uint8Array): { wire: string, reencoded: string } {
  const outcome = (viaProtobufjs: boolean): string => {
    try {
      return JSON.stringify(buildModelManifest(bytes, { viaProtobufjs }))
    } catch (e) {
      if (e instanceof ModelError) return `${e.code}: ${e.message}`
      throw e
    }
  }
  return { wire: outcome(false), reencoded: outcome(true) }
}
const onePass = (bytes: Uint8Array): boolean => readModelOnePass(bytes) !== undefined
const MANIFEST = /^\{"fileHash"/

t.test('behavior: real exporters\' models take the one pass and hash as protobufjs re-encodes them', async (t) => {
  const paths = paddleOcrModelPaths()
  for (const path of [paths.detection, paths.recognition, paths.classification]) {
    const bytes = readFileSync(path)
    t.ok(onePass(bytes), `${path}: the one pass covers it`)
    const { wire, reencoded } = bothWays(bytes)
    t.match(wire, MANIFEST)
    t.equal(wire, reencoded, path)
  }
})

t.test('behavior: the test models, every dtype in raw and typed fields, hash the same both ways', async (t) => {
  const models: Array<[string, Uint8Array]> = [
    ['classifier raw', makeClassifierModel({ seed: 1 })],
    ['classifier float_data', makeClassifierModel({ seed: 2, weightsIn: 'float_data' })],
    ['branch', makeBranchModel(3)]
  ]
  const values: Record<TestDtype, readonly number[] | readonly bigint[] | readonly string[]> = {
    float32: [1.5, -0, 3], float64: [1e300, -2], uint8: [0, 255], int8: [-128, 127], uint16: [65535], int16: [-32768],
    int32: [-2147483648, 2147483647], int64: [-(2n ** 63n), 2n ** 63n - 1n], bool: [1, 0], float16: [0x3c00],
    uint32: [4294967295], uint64: [2n ** 64n - 1n], string: ['a', '', 'é✓']
  }
  for (const [dtype, v] of Object.entries(values) as Array<[TestDtype, readonly number[]]>) {
    models.push([`${dtype} raw`, makeConstantModel(dtype, v, 'raw')], [`${dtype} typed`, makeConstantModel(dtype, v, 'typed')])
  }
  for (const [label, bytes] of models) {
    t.ok(onePass(bytes), `${label}: the one pass covers it`)
    const { wire, reencoded } = bothWays(bytes)
    t.equal(wire, reencoded, label)
  }
  const external = bothWays(makeExternalDataModel())
  t.match(external.wire, /^MODEL_EXTERNAL_DATA: /)
  t.equal(external.wire, external.reencoded)
  t.notOk(onePass(makeExternalDataModel()), 'external data is left to the defining way')
})

t.test('behavior: the field types match onnx-proto\'s decoders', async (t) => {
  // Each decoder's `case N:` reads its field with reader.int32(), .int64(), .string(), … or a
  // message type's decode: the writer must treat the field the way that reader does.
  const decoders = onnxProtoFunctions('decode')
  t.equal(decoders.length, Object.keys(ONNX_WIRE_SCHEMA).length)
  let checked = 0
  for (const { message: name, body } of decoders) {
    for (const [, field, text] of body.matchAll(/case (\d+):([\s\S]*?)break;/g)) {
      // A repeated number reads its packed block's length with reader.uint32() first: the value
      // reader is the one whose result is pushed or assigned.
      const reader = /\.decode\(reader/.test(text as string) ? undefined : (/push\(reader\.(\w+)\(\)/.exec(text as string) ?? /= reader\.(\w+)\(\)/.exec(text as string))?.[1] ?? 'none'
      const n = Number(field)
      const kind = ONNX_WIRE_SCHEMA[name]?.[n]
      t.ok(kind !== undefined, `${name}.${n} is in the wire schema`)
      const wireKind = typeof kind === 'string' ? kind : 'message'
      const int32 = INT32_FIELDS[name]?.includes(n) === true
      const bytes = BYTES_FIELDS[name]?.includes(n) === true
      switch (reader) {
        case undefined: t.equal(typeof kind, 'object', `${name}.${n} is a message`); break
        case 'int32': t.ok(int32 && wireKind.startsWith('varint'), `${name}.${n} int32`); break
        case 'int64': case 'uint64': t.ok(!int32 && wireKind.startsWith('varint'), `${name}.${n} ${reader}`); break
        case 'string': t.ok(!bytes && wireKind.startsWith('bytes'), `${name}.${n} string`); break
        case 'bytes': t.ok(bytes && wireKind.startsWith('bytes'), `${name}.${n} bytes`); break
        case 'float': t.ok(wireKind.startsWith('f32'), `${name}.${n} float`); break
        case 'double': t.ok(wireKind.startsWith('f64'), `${name}.${n} double`); break
        default: t.fail(`${name}.${n}: reader.${reader}() is not handled by the writer`)
      }
      checked++
    }
  }
  t.ok(checked > 90, `${checked} fields checked`)
})

// ---------------------------------------------------------------------------------------------
// Generated models: a small protobuf writer that can lay fields out in any wire form.

const cat = (parts: readonly Uint8Array[]): Buffer => Buffer.concat(parts)

function varint (v: bigint, pad = 0): Buffer {
  const out: number[] = []
  let x = BigInt.asUintN(64, v)
  do {
    const b = Number(x & 0x7fn)
    x >>= 7n
    out.push(x > 0n || pad > 0 ? b | 0x80 : b)
  } while (x > 0n)
  // Non-minimal: continuation bytes of zero, then a final zero byte.
  for (let i = 0; i < pad; i++) out.push(i === pad - 1 ? 0 : 0x80)
  return Buffer.from(out)
}
const tag = (field: number, wire: number): Buffer => varint(BigInt(field * 8 + wire))
const lenField = (field: number, body: Uint8Array): Buffer => cat([tag(field, 2), varint(BigInt(body.length)), body])
const varintField = (field: number, v: bigint, pad = 0): Buffer => cat([tag(field, 0), varint(v, pad)])

/**
 * Random choices from one seed, so that every failing case can be replayed. mulberry32 as in
 * test/helpers/onnx-models.ts, without its float32 rounding, which can return 1 and put int(n) out
 * of range.
 */
class Gen {
  private readonly next: () => number
  constructor (seed: number) {
    let a = seed >>> 0
    this.next = () => {
      a = (a + 0x6d2b79f5) >>> 0
      let x = a
      x = Math.imul(x ^ (x >>> 15), x | 1)
      x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
      return ((x ^ (x >>> 14)) >>> 0) / 4294967296
    }
  }

  chance (p: number): boolean { return this.next() < p }
  int (n: number): number { return Math.floor(this.next() * n) }
  pick<T> (items: readonly T[]): T { return items[this.int(items.length)] as T }
}

/** Options of one generated model: how often the writer's rare forms appear. */
interface Forms {
  /** A field out of field-number order, or a singular field twice. */
  readonly disorder: number
  /** Non-minimal varints, out-of-range int32, invalid UTF-8, NaN. */
  readonly oddValues: number
  /** Fields unknown to the schema. */
  readonly unknown: number
}

const INT32_VALUES = [0n, 1n, 127n, 128n, 2n ** 31n - 1n, -1n, -(2n ** 31n)]
const INT64_VALUES = [0n, 1n, 300n, 2n ** 53n + 1n, 2n ** 62n + 3n, -1n, -(2n ** 63n)]

function scalarValue (g: Gen, kind: 'int32' | 'int64' | 'f32' | 'f64' | 'string' | 'bytes', forms: Forms): { wire: number, body: Buffer } {
  const odd = g.chance(forms.oddValues)
  switch (kind) {
    case 'int32': return { wire: 0, body: odd ? g.pick([varint(5n, 1), varint(2n ** 33n), varint(-5n & 0xffffffffn)]) : varint(g.pick(INT32_VALUES)) }
    case 'int64': return { wire: 0, body: odd ? varint(g.pick(INT64_VALUES), 1 + g.int(2)) : varint(g.pick(INT64_VALUES)) }
    case 'f32': {
      const b = Buffer.alloc(4)
      if (odd) b.writeUInt32LE(g.pick([0x7fc00000, 0x7f800001, 0xffc00001]))
      else b.writeFloatLE(g.pick([0, -0, 1.5, -3.25e-20, Infinity, 1e-45]))
      return { wire: 5, body: b }
    }
    case 'f64': {
      const b = Buffer.alloc(8)
      if (odd) b.writeBigUInt64LE(g.pick([0x7ff8000000000000n, 0x7ff0000000000001n]))
      else b.writeDoubleLE(g.pick([0, -0, 1e300, -2.5]))
      return { wire: 1, body: b }
    }
    case 'string': {
      const s = odd ? g.pick([Buffer.from([0xff]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xc3])]) : Buffer.from(g.pick(['', 'x', 'conv1.w', 'é✓', '\u{1f600}', 'a'.repeat(70)]), 'utf8')
      return { wire: 2, body: cat([varint(BigInt(s.length)), s]) }
    }
    case 'bytes': {
      const s = Buffer.from(Array.from({ length: g.int(6) }, () => g.int(256)))
      return { wire: 2, body: cat([varint(BigInt(s.length)), s]) }
    }
  }
}

function scalarKind (message: string, field: number, kind: string): 'int32' | 'int64' | 'f32' | 'f64' | 'string' | 'bytes' {
  const base = kind.replace('*', '')
  if (base === 'varint') return INT32_FIELDS[message]?.includes(field) === true ? 'int32' : 'int64'
  if (base === 'f32' || base === 'f64') return base
  return BYTES_FIELDS[message]?.includes(field) === true ? 'bytes' : 'string'
}

/** Message depth at which the generator stops nesting: deeper subgraphs only repeat the same types. */
const DEPTH_LIMIT = 4

function genMessage (g: Gen, name: string, forms: Forms, depth: number, listedTensor = false): Buffer {
  if (listedTensor) return genListedTensor(g, forms)
  const schema = ONNX_WIRE_SCHEMA[name] ?? {}
  const fields: Array<{ field: number, bytes: Buffer }> = []
  for (const [key, kind] of Object.entries(schema)) {
    const field = Number(key)
    if (typeof kind === 'object') {
      if (depth >= DEPTH_LIMIT || !g.chance(depth === 0 ? 0.9 : 0.4)) continue
      // Leave out external data and a second oneof member: refused before any graph hash.
      if (name === 'TensorProto' && field === 13) continue
      const count = kind.slot === undefined ? 1 + g.int(2) : 1
      const listed = kind.message === 'TensorProto' && (name === 'GraphProto' || name === 'AttributeProto')
      for (let i = 0; i < count; i++) fields.push({ field, bytes: lenField(field, genMessage(g, kind.message, forms, depth + 1, listed)) })
      if (kind.slot === 'value') break
      continue
    }
    if (!g.chance(0.5)) continue
    if (name === 'TensorProto' && field === 14) continue
    if (name === 'TensorShapeProto.Dimension' && fields.length > 0) continue
    const sk = scalarKind(name, field, kind)
    if (kind.endsWith('*') && sk !== 'string' && sk !== 'bytes') {
      for (const bytes of genRepeatedNumbers(g, field, sk, forms)) fields.push({ field, bytes })
      continue
    }
    const count = kind.endsWith('*') ? 1 + g.int(3) : 1
    for (let i = 0; i < count; i++) {
      const { wire, body } = scalarValue(g, sk, forms)
      fields.push({ field, bytes: cat([tag(field, wire), body]) })
    }
  }
  if (name === 'ModelProto') {
    // What a manifest needs before any graph hash: a plausible ir_version, a graph, an opset.
    const rest = fields.filter((f) => f.field !== 1 && f.field !== 8)
    fields.length = 0
    fields.push({ field: 1, bytes: varintField(1, 8n) }, ...rest, { field: 8, bytes: lenField(8, cat([lenField(1, Buffer.from('')), varintField(2, 13n)])) })
    if (!rest.some((f) => f.field === 7)) fields.push({ field: 7, bytes: lenField(7, Buffer.alloc(0)) })
  }
  return layOut(g, fields, forms)
}

/** A tensor the manifest lists and accepts: float32 [2, 3] in raw_data or float_data, laid out any way. */
function genListedTensor (g: Gen, forms: Forms): Buffer {
  const values = [1, -2, 3.5, 0, -0, 1e-40]
  const dims = g.chance(0.5)
    ? lenField(1, cat([varint(2n), varint(3n)]))
    : cat([varintField(1, 2n), varintField(1, 3n)])
  const raw = g.chance(0.5)
  const data = raw
    ? lenField(9, Buffer.from(new Float32Array(values).buffer))
    : g.chance(0.5)
      ? lenField(4, Buffer.from(new Float32Array(values).buffer))
      : cat(values.map((v) => { const b = Buffer.alloc(5); b[0] = 4 * 8 + 5; b.writeFloatLE(v, 1); return b }))
  const fields = [
    { field: 1, bytes: dims },
    { field: 2, bytes: varintField(2, 1n) },
    { field: raw ? 9 : 4, bytes: data },
    { field: 8, bytes: lenField(8, Buffer.from(`t${g.int(1000)}`)) }
  ]
  if (g.chance(0.3)) fields.push({ field: 12, bytes: lenField(12, Buffer.from('doc')) })
  return layOut(g, fields, forms)
}

/** Occurrences of a repeated number, each its own entry (an unknown field may fall between them). */
function genRepeatedNumbers (g: Gen, field: number, kind: 'int32' | 'int64' | 'f32' | 'f64', forms: Forms): Buffer[] {
  const n = g.int(4)
  const values = Array.from({ length: n }, () => scalarValue(g, kind, forms))
  const single = (v: { wire: number, body: Buffer }): Buffer => cat([tag(field, v.wire), v.body])
  switch (g.int(3)) {
    case 0: return [lenField(field, cat(values.map((v) => v.body)))]
    case 1: return values.map(single)
    default: {
      // Two packed blocks back to back, or a packed block then single values.
      const half = Math.floor(n / 2)
      return [lenField(field, cat(values.slice(0, half).map((v) => v.body))), ...values.slice(half).map(single)]
    }
  }
}

function layOut (g: Gen, fields: Array<{ field: number, bytes: Buffer }>, forms: Forms): Buffer {
  fields.sort((a, b) => a.field - b.field)
  if (fields.length > 1 && g.chance(forms.disorder)) {
    const i = g.int(fields.length)
    const j = g.int(fields.length)
    const a = fields[i] as { field: number, bytes: Buffer }
    fields[i] = fields[j] as { field: number, bytes: Buffer }
    fields[j] = a
  }
  if (g.chance(forms.unknown)) {
    const at = g.int(fields.length + 1)
    fields.splice(at, 0, { field: 99, bytes: g.chance(0.5) ? varintField(99, 7n) : lenField(99, Buffer.from('new')) })
  }
  return cat(fields.map((f) => f.bytes))
}

/** A model whose one node carries `attribute` (AttributeProto fields, already encoded). */
function modelWithAttribute (attribute: Buffer): Buffer {
  const node = cat([lenField(4, Buffer.from('Relu')), lenField(5, attribute)])
  return cat([varintField(1, 8n), lenField(7, lenField(1, node)), lenField(8, cat([lenField(1, Buffer.alloc(0)), varintField(2, 13n)]))])
}
const f32Field = (field: number, bits: number): Buffer => { const b = Buffer.alloc(5); b[0] = field * 8 + 5; b.writeUInt32LE(bits >>> 0, 1); return b }

t.test('behavior: each form the writer leaves to protobufjs, and each it rewrites, hashes the same both ways', async (t) => {
  const name = lenField(1, Buffer.from('alpha'))
  const cases: Array<[string, Buffer, boolean]> = [
    // [label, AttributeProto bytes, whether the one pass takes it]
    ['a float', cat([name, f32Field(2, 0x3fc00000)]), true],
    ['a signalling NaN (protobufjs quiets it)', cat([name, f32Field(2, 0x7f800001)]), false],
    ['a quiet NaN', cat([name, f32Field(2, 0x7fc00000)]), false],
    ['floats one by one, packed on output', cat([name, f32Field(7, 0x3f800000), f32Field(7, 0x40000000)]), true],
    ['ints one by one and in a block, merged', cat([name, varintField(8, 1n), lenField(8, cat([varint(2n), varint(-3n)]))]), true],
    ['an empty packed block (dropped)', cat([name, lenField(8, Buffer.alloc(0))]), true],
    ['ints split by an unknown field (protobufjs merges them)', cat([name, varintField(8, 1n), varintField(99, 7n), varintField(8, 2n)]), false],
    ['an int64 with bit 63 set', cat([name, varintField(3, -(2n ** 63n))]), true],
    ['a non-minimal int64', cat([name, varintField(3, 5n, 1)]), false],
    ['a negative enum in 10 bytes', cat([name, varintField(20, -1n)]), true],
    ['a negative enum in 5 bytes (protobufjs writes 10)', cat([name, tag(20, 0), Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f])]), false],
    ['an enum beyond 32 bits (protobufjs keeps the low 32)', cat([name, varintField(20, 2n ** 32n + 1n)]), false],
    ['a name in invalid UTF-8 (protobufjs replaces it)', cat([lenField(1, Buffer.from([0x61, 0xff])), varintField(3, 1n)]), false],
    ['a name twice (protobufjs keeps the last)', cat([name, lenField(1, Buffer.from('beta'))]), false],
    ['fields out of order', cat([varintField(3, 1n), name]), false],
    ['an unknown field (dropped)', cat([name, varintField(3, 1n), lenField(99, Buffer.from('new'))]), true]
  ]
  for (const [label, attribute, takes] of cases) {
    const bytes = modelWithAttribute(attribute)
    t.equal(onePass(bytes), takes, `${label}: ${takes ? 'written in one pass' : 'left to protobufjs'}`)
    const { wire, reencoded } = bothWays(bytes)
    t.match(wire, MANIFEST, label)
    t.equal(wire, reencoded, label)
  }
})

/** A model of one graph whose fields (GraphProto, already encoded) are given. */
function modelWithGraph (graph: Buffer): Buffer {
  return cat([varintField(1, 8n), lenField(7, graph), lenField(8, cat([lenField(1, Buffer.alloc(0)), varintField(2, 13n)]))])
}

t.test('behavior: what the wire check refuses is refused with its own words, never read in one pass', async (t) => {
  const tensorType = lenField(1, varintField(1, 1n))
  const input = (type: Buffer): Buffer => lenField(11, cat([lenField(1, Buffer.from('x')), lenField(2, type)]))
  const dims = (dim: Buffer): Buffer => lenField(1, cat([varintField(1, 1n), lenField(2, lenField(1, dim))]))
  const tensor = (fields: Buffer): Buffer => lenField(5, cat([lenField(1, cat([varint(2n)])), varintField(2, 1n), lenField(8, Buffer.from('w')), fields]))
  let deep = lenField(1, Buffer.alloc(0))
  for (let i = 0; i < 300; i++) deep = lenField(4, lenField(1, deep))
  const cases: Array<[string, Buffer, RegExp]> = [
    ['two members of TypeProto\'s oneof', input(cat([tensorType, lenField(4, Buffer.alloc(0))])), /^MODEL_CORRUPT: malformed ModelProto: TypeProto.value appears twice/],
    ['dim_value and dim_param', input(dims(cat([varintField(1, 3n), lenField(2, Buffer.from('n'))]))), /^MODEL_CORRUPT: malformed ModelProto: TensorShapeProto.Dimension.value appears twice/],
    ['raw_data as a varint', tensor(varintField(9, 1n)), /^MODEL_CORRUPT: malformed ModelProto: TensorProto field 9 has wire type 0/],
    ['a float_data block of 5 bytes', tensor(lenField(4, Buffer.alloc(5))), /^MODEL_CORRUPT: malformed ModelProto: TensorProto field 4: packed block of 5 bytes/],
    ['a graph name overrunning the graph', Buffer.from([0x12, 0x05, 0x61]), /^MODEL_CORRUPT: malformed ModelProto: /],
    ['sequences nested 300 deep', input(deep), /^MODEL_CORRUPT: malformed ModelProto: messages nested deeper than 256/]
  ]
  for (const [label, graph, error] of cases) {
    const bytes = modelWithGraph(graph)
    t.notOk(onePass(bytes), `${label}: not read in one pass`)
    const { wire, reencoded } = bothWays(bytes)
    t.match(wire, error, label)
    t.equal(wire, reencoded, label)
  }
  // data_location DEFAULT (0) is no external data: accepted, by the defining way.
  const local = modelWithGraph(tensor(cat([lenField(9, Buffer.alloc(8)), varintField(14, 0n)])))
  t.notOk(onePass(local), 'data_location is left to the defining way')
  t.match(bothWays(local).wire, MANIFEST)
  t.equal(bothWays(local).wire, bothWays(local).reencoded)
})

t.test('behavior: generated models in every wire form hash the same both ways', async (t) => {
  let covered = 0
  let total = 0
  const outcomes = new Map<string, number>()
  fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.constantFrom(0, 0.05, 0.3), (seed, rare) => {
    const g = new Gen(seed)
    const bytes = genMessage(g, 'ModelProto', { disorder: rare, oddValues: rare, unknown: rare }, 0)
    const { wire, reencoded } = bothWays(bytes)
    total++
    if (onePass(bytes)) covered++
    const key = MANIFEST.test(wire) ? 'hashed' : wire.replace(/:.*/, '')
    outcomes.set(key, (outcomes.get(key) ?? 0) + 1)
    return wire === reencoded
  }), { seed: SEED, numRuns: 1500 })
  t.ok((outcomes.get('hashed') ?? 0) > total / 2, `most generated models get a manifest: ${JSON.stringify([...outcomes])}`)
  t.ok(covered > total / 4 && covered < total, `the one pass takes some (${covered} of ${total}) and leaves others to protobufjs`)
})

t.test('behavior: mutated models hash the same both ways, or are refused the same way', async (t) => {
  const paths = paddleOcrModelPaths()
  // The classification model is the smallest of the three (~0.6 MB): mutate its graph part.
  const real = readFileSync(paths.classification)
  const base = [makeClassifierModel({ seed: 1 }), makeBranchModel(3), makeConstantModel('int64', [1n, -2n, 3n], 'typed')]
  let hashed = 0
  fc.assert(fc.property(
    fc.integer({ min: 0, max: base.length }),
    fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 3 }),
    (which, edits) => {
      const bytes = Buffer.from(which === base.length ? real : base[which] as Uint8Array)
      // In the real model, edits land in its first 64 KiB: graph structure rather than weights.
      const span = which === base.length ? Math.min(bytes.length, 65536) : bytes.length
      for (const { at, value } of edits) bytes[at % span] = value
      const { wire, reencoded } = bothWays(bytes)
      if (MANIFEST.test(wire)) hashed++
      return wire === reencoded
    }), { seed: SEED, numRuns: 600 })
  t.ok(hashed > 100, `${hashed} of 600 mutated models still hashed`)
})

t.test('error: an exception from the engine inside the pass falls back to the defining way', async (t) => {
  // The pass throws on no bytes; what it can meet is the engine's own limits (memory for a huge
  // output, the stack). Stand one in by a UTF-8 check that throws, on a model with a non-ASCII name.
  const { readModelOnePass: failing } = await t.mockImport<typeof import('../../protocol/onnx-one-pass.js')>('../../protocol/onnx-one-pass.js', {
    'node:buffer': { isUtf8: () => { throw new RangeError('Array buffer allocation failed') } }
  })
  const { buildModelManifest: build } = await t.mockImport<typeof import('../../protocol/model-manifest.js')>('../../protocol/model-manifest.js', {
    '../../protocol/onnx-one-pass.js': { readModelOnePass: failing }
  })
  const bytes = modelWithAttribute(cat([lenField(1, Buffer.from('α')), varintField(3, 1n)]))
  t.ok(onePass(bytes), 'the real pass takes it')
  t.equal(failing(bytes), undefined, 'the pass that meets an exception gives no answer')
  t.same(build(bytes), buildModelManifest(bytes, { viaProtobufjs: true }), 'and the manifest comes the defining way')
})
