/**
 * The model manifest: canonical tensor hashes whichever field holds the data, diffs that name
 * exactly the changed tensor, the documented text encoding, subgraphs, and refusal of inputs
 * protobufjs and onnxruntime would read differently.
 */
import { createHash } from 'node:crypto'
import t from 'tap'
import fc from 'fast-check'
import { InferenceSession } from 'onnxruntime-node'
import onnxProto from 'onnx-proto'
import {
  ModelError, buildModelManifest, diffManifests, encodeManifestText, hashManifest,
  type ManifestTensor, type ModelErrorCode, type ModelManifest
} from '../../../agent/model/index.js'
import { ONNX_WIRE_SCHEMA } from '../../../protocol/onnx-wire-check.js'
import {
  encodeModel, makeBranchModel, makeClassifierModel, makeClassifierVariant, makeClassifierWeights,
  makeConstantModel, makeExternalDataModel, makeNonModelProtobuf, makeTensorProto, onnxProtoFunctions,
  type TensorValues, type TestDtype
} from '../../helpers/onnx-models.js'

const { onnx } = onnxProto
const sha256hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
const bytesOf = (a: ArrayBufferView): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength)

// tap's test context type, taken from t.test's last overload `(cb: (t) => any)`.
type Asserts = Parameters<Parameters<typeof t.test>[0]>[0]

function expectModelError (t: Asserts, fn: () => unknown, code: ModelErrorCode): void {
  try {
    fn()
    t.fail(`expected ${code}`)
  } catch (e) {
    t.ok(e instanceof ModelError, `ModelError, got ${String(e)}`)
    t.equal((e as ModelError).code, code)
  }
}

t.test('behavior: manifest of the classifier lists W and b with their raw-byte hashes', async (t) => {
  const bytes = makeClassifierModel({ seed: 1 })
  const m = buildModelManifest(bytes)
  const { W, b } = makeClassifierWeights({ seed: 1 })
  t.equal(m.fileHash, sha256hex(bytes))
  t.same(m.initializers, [
    { name: 'W', dtype: 'float32', dims: [4, 3], byteLength: 48, sha256: sha256hex(bytesOf(W)) },
    { name: 'b', dtype: 'float32', dims: [3], byteLength: 12, sha256: sha256hex(bytesOf(b)) }
  ])
  t.same(m.inputs, [{ name: 'x', dtype: 'float32', dims: [1, 4] }])
  t.same(m.outputs, [{ name: 'probs', dtype: 'float32', dims: [1, 3] }])
  t.same(m.opsets, [{ domain: '', version: 13 }])
  t.equal(m.irVersion, 8)
  t.equal(m.producer.name, 'edge-provenance-tests')
  t.equal(m.unknownFields, 0)
})

t.test('behavior: diff names exactly the tensor whose weight changed', async (t) => {
  const base = buildModelManifest(makeClassifierModel({ seed: 3 }))
  for (const [tensor, index] of [['W', 5], ['W', 0], ['b', 2]] as const) {
    const variant = buildModelManifest(makeClassifierVariant({ seed: 3 }, { tensor, index }))
    const diff = diffManifests(base, variant)
    t.same(diff.changed.map((c) => c.name), [tensor], `${tensor}[${index}]`)
    t.same(diff.added, [])
    t.same(diff.removed, [])
    t.equal(diff.graphChanged, false)
    t.not(variant.fileHash, base.fileHash)
    t.not(variant.manifestHash, base.manifestHash)
  }
  const same = diffManifests(base, buildModelManifest(makeClassifierModel({ seed: 3 })))
  t.same(same, { added: [], removed: [], changed: [], graphChanged: false })
})

t.test('behavior: diff reports graph changes, added and removed tensors', async (t) => {
  const a = buildModelManifest(makeClassifierModel({ seed: 3 }))
  const renamed = buildModelManifest(makeClassifierModel({ seed: 3, producerName: 'other' }))
  t.same(diffManifests(a, renamed), { added: [], removed: [], changed: [], graphChanged: true })
  const b = buildModelManifest(makeBranchModel(1))
  const diff = diffManifests(a, b)
  t.same(diff.added, ['branch/else_branch/else_const/value', 'branch/then_branch/tw'])
  t.same(diff.removed, ['W', 'b'])
  t.equal(diff.graphChanged, true)
})

t.test('behavior: same weights in raw_data and float_data hash the same', async (t) => {
  for (const seed of [1, 2, 99]) {
    const raw = buildModelManifest(makeClassifierModel({ seed, weightsIn: 'raw' }))
    const typed = buildModelManifest(makeClassifierModel({ seed, weightsIn: 'float_data' }))
    t.not(raw.fileHash, typed.fileHash, 'different files')
    t.same(typed.initializers, raw.initializers)
    t.equal(typed.graphHash, raw.graphHash, 'graph hash ignores where the data sat')
    t.equal(typed.manifestHash, raw.manifestHash)
  }
})

t.test('behavior: canonical bytes per dtype equal onnxruntime decoded values, raw or typed', async (t) => {
  const cases: Array<[TestDtype, TensorValues]> = [
    ['float32', [1.5, -2.25, 3.4028234663852886e38, -0]],
    ['float64', [Math.PI, -0, 1e300]],
    ['int8', [-128, 0, 127]],
    ['uint8', [0, 255, 7]],
    ['int16', [-32768, 1, 32767]],
    ['uint16', [65535, 0, 3]],
    ['int32', [-(2 ** 31), 0, 2 ** 31 - 1]],
    ['uint32', [2 ** 32 - 1, 0, 5]],
    ['int64', [-(2n ** 63n), 0n, 2n ** 63n - 1n, -1n]],
    ['uint64', [2n ** 64n - 1n, 0n, 1n]],
    ['bool', [1, 0, 1]],
    ['float16', [0x3c00, 0xc000, 0x7bff]]
  ]
  for (const [dtype, values] of cases) {
    const raw = buildModelManifest(makeConstantModel(dtype, values, 'raw')).initializers[0] as ManifestTensor
    const typedBytes = makeConstantModel(dtype, values, 'typed')
    const typed = buildModelManifest(typedBytes).initializers[0] as ManifestTensor
    t.same(typed, raw, `${dtype}: typed field hashes as raw_data`)
    const session = await InferenceSession.create(typedBytes)
    const y = (await session.run({})).y
    await session.release()
    t.equal(raw.sha256, sha256hex(bytesOf(y?.data as ArrayBufferView)), `${dtype}: hash of onnxruntime's own bytes`)
  }
})

t.test('behavior: out-of-range values in int32_data narrow the way onnxruntime narrows them', async (t) => {
  const cases: Array<[TestDtype, number[]]> = [
    ['bool', [2, 0, -1]],
    ['uint8', [263, -1]],
    ['int8', [200, -129]],
    ['uint16', [70000, -2]]
  ]
  for (const [dtype, values] of cases) {
    const bytes = makeConstantModel(dtype, values, 'typed')
    const session = await InferenceSession.create(bytes)
    const y = (await session.run({})).y
    await session.release()
    t.equal(buildModelManifest(bytes).initializers[0]?.sha256, sha256hex(bytesOf(y?.data as ArrayBufferView)), dtype)
  }
})

t.test('behavior: strings hash as length-prefixed UTF-8', async (t) => {
  const values = ['', 'héllo', 'a\tb']
  const m = buildModelManifest(makeConstantModel('string', values, 'typed'))
  const expected = Buffer.concat(values.map((s) => {
    const body = Buffer.from(s, 'utf8')
    const length = Buffer.alloc(8)
    length.writeBigUInt64LE(BigInt(body.length))
    return Buffer.concat([length, body])
  }))
  t.match(m.initializers[0], { dtype: 'string', dims: [3], byteLength: expected.length, sha256: sha256hex(expected) })
  const session = await InferenceSession.create(makeConstantModel('string', values, 'typed'))
  t.same((await session.run({})).y?.data, values, 'onnxruntime runs it')
  await session.release()
})

t.test('behavior: subgraph initializers and Constant tensors are named by node and attribute', async (t) => {
  const m = buildModelManifest(makeBranchModel(4))
  t.same(m.initializers.map((i) => i.name), ['branch/else_branch/else_const/value', 'branch/then_branch/tw'])
  t.same(m.inputs.map((i) => [i.name, i.dtype, i.dims]), [['cond', 'bool', []], ['x', 'float32', [3]]])
  const session = await InferenceSession.create(makeBranchModel(4))
  t.same(session.inputNames, ['cond', 'x'], 'onnxruntime loads it')
  await session.release()
})

t.test('behavior: manifest text and hash follow the documented encoding', async (t) => {
  const m = buildModelManifest(makeClassifierModel({ seed: 8 }))
  const [W, b] = m.initializers as [ManifestTensor, ManifestTensor]
  const text = `graph\t${m.graphHash}\nW\tfloat32\t4,3\t${W.sha256}\nb\tfloat32\t3\t${b.sha256}\n`
  t.equal(encodeManifestText(m), text)
  t.equal(m.manifestHash, sha256hex(Buffer.from(text)))
  t.equal(hashManifest(m), m.manifestHash)
})

t.test('behavior: manifest lines sort by UTF-8 bytes and escape separators in names', async (t) => {
  const tensor = (name: string, dims: number[] = []): ManifestTensor =>
    ({ name, dtype: 'float32', dims, byteLength: 4, sha256: '00'.repeat(32) })
  const graphHash = 'ab'.repeat(32)
  // UTF-16 order would be é < 😀 < ！; UTF-8 order is é < ！ < 😀.
  const text = encodeManifestText({ graphHash, initializers: [tensor('😀'), tensor('！'), tensor('é'), tensor('a\tb\nc\\'), tensor('s', [2, 0])] })
  const h = '00'.repeat(32)
  t.equal(text, `graph\t${graphHash}\na\\tb\\nc\\\\\tfloat32\t\t${h}\ns\tfloat32\t2,0\t${h}\né\tfloat32\t\t${h}\n！\tfloat32\t\t${h}\n😀\tfloat32\t\t${h}\n`)
})

t.test('behavior: manifest lines sort by UTF-8 bytes for any names, BMP-only or not', async (t) => {
  // Names without surrogates sort as JavaScript strings; with them, by their UTF-8 bytes.
  const name = fc.oneof(fc.string({ unit: 'grapheme-ascii' }), fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme' }))
  fc.assert(fc.property(fc.uniqueArray(name, { maxLength: 12 }), (names) => {
    const initializers = names.map((n): ManifestTensor => ({ name: n, dtype: 'float32', dims: [], byteLength: 4, sha256: '00'.repeat(32) }))
    const lines = encodeManifestText({ graphHash: 'ab'.repeat(32), initializers }).split('\n').slice(1, -1)
    const expected = [...names].sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')))
    return lines.length === names.length && expected.every((n, i) => lines[i]?.startsWith(`${n.replace(/[\\\t\n\r]/g, (c) => ({ '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' })[c] as string)}\t`))
  }), { seed: 20261203, numRuns: 500 })
  t.pass('500 name sets')
})

t.test('behavior: unknown fields are counted, and onnxruntime still loads the model', async (t) => {
  const base = makeClassifierModel({ seed: 2 })
  // ModelProto field 100, varint 1: unknown to the ONNX 1.10 schema.
  const extended = Buffer.concat([base, Buffer.from([0xa0, 0x06, 0x01])])
  const m = buildModelManifest(extended)
  t.equal(m.unknownFields, 1)
  t.same(m.initializers, buildModelManifest(base).initializers)
  t.equal(m.graphHash, buildModelManifest(base).graphHash, 'dropped field is not in the graph hash')
  const session = await InferenceSession.create(extended)
  await session.release()
})

t.test('behavior: the wire schema matches the one compiled into onnx-proto', async (t) => {
  // onnx-proto's generated encoders name every field: "id N, wireType W" and the message type.
  const encoders = onnxProtoFunctions('encode')
  t.equal(encoders.length, Object.keys(ONNX_WIRE_SCHEMA).length)
  for (const { message: name, body } of encoders) {
    const schema = ONNX_WIRE_SCHEMA[name]
    t.ok(schema, name)
    const ids = [...new Set([...body.matchAll(/id (\d+), wireType/g)].map((x) => Number(x[1])))].sort((a, b) => a - b)
    t.same(Object.keys(schema ?? {}).map(Number).sort((a, b) => a - b), ids, `${name} field numbers`)
    for (const [, field, child] of body.matchAll(/\$root\.onnx\.([\w.]+)\.encode\(message\.\w+(?:\[i\])?, writer\.uint32\(\/\* id (\d+)/g)) {
      const kind = schema?.[Number(child)]
      t.equal(typeof kind === 'object' ? kind.message.replace(/^TensorProto\./, '') : kind, (field as string).replace(/^TensorProto\./, ''), `${name}.${child as string}`)
    }
  }
})

t.test('error: external data is refused', async (t) => {
  expectModelError(t, () => buildModelManifest(makeExternalDataModel()), 'MODEL_EXTERNAL_DATA')
})

t.test('error: bytes that are not a ModelProto', async (t) => {
  expectModelError(t, () => buildModelManifest(new Uint8Array(0)), 'MODEL_NOT_ONNX')
  expectModelError(t, () => buildModelManifest(makeNonModelProtobuf()), 'MODEL_NOT_ONNX')
  expectModelError(t, () => buildModelManifest(Buffer.from('hello, world\n')), 'MODEL_NOT_ONNX')
  expectModelError(t, () => buildModelManifest(Buffer.from('\x89PNG\r\n\x1a\n')), 'MODEL_NOT_ONNX')
  // A ModelProto header with no graph.
  expectModelError(t, () => buildModelManifest(Buffer.from([0x08, 0x08])), 'MODEL_CORRUPT')
})

t.test('error: a second graph field is refused (C++ protobuf would merge what protobufjs drops)', async (t) => {
  const a = makeClassifierModel({ seed: 1 })
  const hidden = onnx.ModelProto.encode({ graph: { initializer: [makeTensorProto('hidden', 'float32', [1], [1], 'raw')] } }).finish()
  // Hidden after ir_version (the first two bytes), where a reader would meet it first.
  expectModelError(t, () => buildModelManifest(Buffer.concat([a.subarray(0, 2), hidden, a.subarray(2)])), 'MODEL_CORRUPT')
  expectModelError(t, () => buildModelManifest(Buffer.concat([a, hidden])), 'MODEL_CORRUPT')
})

t.test('error: a known field with the wrong wire type is refused', async (t) => {
  const a = makeClassifierModel({ seed: 1 })
  // ModelProto.opset_import (8) as a varint.
  expectModelError(t, () => buildModelManifest(Buffer.concat([a, Buffer.from([0x40, 0x01])])), 'MODEL_CORRUPT')
  // TensorProto.data_type (2) as bytes, deep inside the graph.
  const model = onnx.ModelProto.decode(a)
  const tensor = onnx.TensorProto.encode(model.graph?.initializer?.[0] ?? {}).finish()
  const at = Buffer.from(a).indexOf(Buffer.from(tensor))
  t.ok(at > 0)
  const mutated = Buffer.from(a)
  // The tensor opens with packed dims (0a 02 04 03), then data_type: tag 0x10 (varint) → 0x12 (bytes).
  t.equal(mutated[at + 4], 0x10, 'data_type tag')
  mutated[at + 4] = 0x12
  expectModelError(t, () => buildModelManifest(mutated), 'MODEL_CORRUPT')
})

t.test('error: inconsistent or absurd tensors are refused', async (t) => {
  const withTensor = (tensor: onnxProto.onnx.ITensorProto): Uint8Array => encodeModel({
    graph: {
      node: [{ opType: 'Identity', input: ['c'], output: ['y'] }],
      initializer: [tensor],
      output: [{ name: 'y', type: { tensorType: { elemType: 1 } } }]
    }
  })
  const good = makeTensorProto('c', 'float32', [2], [1, 2], 'raw')
  t.ok(buildModelManifest(withTensor(good)), 'the baseline is fine')
  const cases: Array<[string, onnxProto.onnx.ITensorProto]> = [
    ['rank 33', { ...good, dims: new Array(33).fill(1), rawData: Buffer.alloc(4) }],
    ['negative dim', { ...good, dims: [-2] }],
    ['huge dim', { ...good, dims: [{ low: 0, high: 0x7fffffff, unsigned: false }] }],
    ['raw_data too short', { ...good, rawData: Buffer.alloc(7) }],
    ['raw_data too long', { ...good, rawData: Buffer.alloc(12) }],
    ['both raw and typed', { ...good, floatData: [1, 2] }],
    ['wrong typed field', { name: 'c', dataType: 1, dims: [2], int32Data: [1, 2] }],
    ['typed count mismatch', { name: 'c', dataType: 1, dims: [3], floatData: [1, 2] }],
    ['no data', { name: 'c', dataType: 1, dims: [2] }],
    ['undefined dtype', { name: 'c', dataType: 0, dims: [2], rawData: Buffer.alloc(8) }],
    ['string in raw_data', { name: 'c', dataType: 8, dims: [1], rawData: Buffer.alloc(1) }]
  ]
  for (const [label, tensor] of cases) {
    t.test(label, async (t) => expectModelError(t, () => buildModelManifest(withTensor(tensor)), 'MODEL_CORRUPT'))
  }
})

t.test('error: subgraphs nested beyond the limit are refused', async (t) => {
  let graph: onnxProto.onnx.IGraphProto = { node: [{ opType: 'Identity', input: ['x'], output: ['y'] }] }
  for (let i = 0; i < 70; i++) {
    graph = { node: [{ opType: 'If', input: ['c'], output: ['y'], attribute: [{ name: 'then_branch', type: 5, g: graph }] }] }
  }
  expectModelError(t, () => buildModelManifest(encodeModel({ graph })), 'MODEL_CORRUPT')
})

t.test('behavior: the manifest does not modify the bytes it reads', async (t) => {
  const bytes = makeClassifierModel({ seed: 5 })
  const copy = Buffer.from(bytes)
  const m: ModelManifest = buildModelManifest(bytes)
  t.ok(m)
  t.same(Buffer.from(bytes), copy)
  t.equal(buildModelManifest(bytes).manifestHash, m.manifestHash, 'deterministic')
})
