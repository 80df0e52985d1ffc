/**
 * Tiny ONNX models built in code with onnx-proto, for tests of every part: a seeded classifier
 * (and variants with one weight changed), identity and constant models per dtype, a model with
 * subgraphs, and deliberately bad ones (external data, not a ModelProto). No tap dependency.
 */

import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import onnxProto from 'onnx-proto'
import type { onnx } from 'onnx-proto'
import { TENSOR_DTYPES } from '../../protocol/index.js'

const { onnx: proto } = onnxProto

/** IR version 8 (ONNX 1.10), opset 13: well inside what onnxruntime 1.x loads. */
export const TEST_IR_VERSION = 8
export const TEST_OPSET = 13

/** ONNX TensorProto.DataType numbers of the dtypes the helpers build (the protocol's table). */
export const ONNX_DTYPE = TENSOR_DTYPES
export type TestDtype = keyof typeof ONNX_DTYPE

/** Values of a tensor: numbers (float16 as its uint16 bits, bool as 0/1), bigints for 64-bit ints, strings. */
export type TensorValues = readonly number[] | readonly bigint[] | readonly string[]

/** Where a tensor keeps its values: `raw_data`, or the typed field ONNX assigns to its dtype. */
export type TensorStorage = 'raw' | 'typed'

export interface ClassifierModelOptions {
  readonly seed: number
  /** Features of input "x" [1, inputSize]. Default 4. */
  readonly inputSize?: number
  /** Classes of output "probs" [1, classes]. Default 3. */
  readonly classes?: number
  /** Where the weights are stored; the manifest must hash both the same. Default 'raw'. */
  readonly weightsIn?: 'raw' | 'float_data'
  readonly producerName?: string
}

export interface WeightChange {
  readonly tensor: 'W' | 'b'
  /** Flat (row-major) index of the element to change. */
  readonly index: number
  /** Added to the element. Default 0.5. */
  readonly delta?: number
}

/** The classifier's weights: W [inputSize, classes] row-major, b [classes], all float32 values. */
export function makeClassifierWeights (options: ClassifierModelOptions): { W: Float32Array, b: Float32Array } {
  const inputSize = options.inputSize ?? 4
  const classes = options.classes ?? 3
  const random = mulberry32(options.seed)
  const W = Float32Array.from({ length: inputSize * classes }, () => random() * 2 - 1)
  const b = Float32Array.from({ length: classes }, () => random() * 0.2 - 0.1)
  return { W, b }
}

/**
 * x float32 [1, inputSize] → MatMul(W) → Add(b) → Softmax → probs float32 [1, classes].
 * The same seed always gives the same bytes.
 */
export function makeClassifierModel (options: ClassifierModelOptions): Uint8Array {
  return buildClassifier(options, makeClassifierWeights(options))
}

/** The classifier of `options` with one weight changed: its manifest differs in that tensor only. */
export function makeClassifierVariant (options: ClassifierModelOptions, change: WeightChange): Uint8Array {
  const weights = makeClassifierWeights(options)
  const target = weights[change.tensor]
  if (!Number.isInteger(change.index) || change.index < 0 || change.index >= target.length) {
    throw new RangeError(`index ${change.index} outside ${change.tensor}[${target.length}]`)
  }
  target[change.index] = (target[change.index] as number) + (change.delta ?? 0.5)
  return buildClassifier(options, weights)
}

/** Reference output of the classifier for one input row, computed in float64. */
export function runClassifierReference (options: ClassifierModelOptions, x: readonly number[]): number[] {
  const classes = options.classes ?? 3
  const { W, b } = makeClassifierWeights(options)
  const logits = Array.from({ length: classes }, (_, j) =>
    x.reduce((sum, xi, i) => sum + xi * (W[i * classes + j] as number), b[j] as number))
  const max = Math.max(...logits)
  const exps = logits.map((l) => Math.exp(l - max))
  const total = exps.reduce((a, e) => a + e, 0)
  return exps.map((e) => e / total)
}

function buildClassifier (options: ClassifierModelOptions, weights: { W: Float32Array, b: Float32Array }): Uint8Array {
  const inputSize = options.inputSize ?? 4
  const classes = options.classes ?? 3
  const storage: TensorStorage = (options.weightsIn ?? 'raw') === 'raw' ? 'raw' : 'typed'
  return encodeModel({
    producerName: options.producerName ?? 'edge-provenance-tests',
    graph: {
      name: 'classifier',
      node: [
        { name: 'matmul', opType: 'MatMul', input: ['x', 'W'], output: ['logits0'] },
        { name: 'bias', opType: 'Add', input: ['logits0', 'b'], output: ['logits'] },
        { name: 'softmax', opType: 'Softmax', input: ['logits'], output: ['probs'] }
      ],
      initializer: [
        makeTensorProto('W', 'float32', [inputSize, classes], [...weights.W], storage),
        makeTensorProto('b', 'float32', [classes], [...weights.b], storage)
      ],
      input: [valueInfo('x', 'float32', [1, inputSize])],
      output: [valueInfo('probs', 'float32', [1, classes])]
    }
  })
}

/** x [n] → Identity → y [n], for tensor handling tests of any dtype (strings included). */
export function makeIdentityModel (dtype: TestDtype): Uint8Array {
  return encodeModel({
    graph: {
      name: `identity_${dtype}`,
      node: [{ name: 'identity', opType: 'Identity', input: ['x'], output: ['y'] }],
      input: [valueInfo('x', dtype, ['n'])],
      output: [valueInfo('y', dtype, ['n'])]
    }
  })
}

/** No inputs; output y = Identity(initializer "c"), so onnxruntime hands back c's decoded values. */
export function makeConstantModel (dtype: TestDtype, values: TensorValues, storage: TensorStorage, dims: readonly number[] = [values.length]): Uint8Array {
  return encodeModel({
    graph: {
      name: `constant_${dtype}`,
      node: [{ name: 'identity', opType: 'Identity', input: ['c'], output: ['y'] }],
      initializer: [makeTensorProto('c', dtype, dims, values, storage)],
      output: [valueInfo('y', dtype, dims)]
    }
  })
}

/**
 * Subgraphs: inputs cond bool [] and x float32 [3]; node "branch" = If(cond):
 * then: x + initializer "tw" (so the manifest names "branch/then_branch/tw"),
 * else: x * Constant node "else_const" ("branch/else_branch/else_const/value"). Output y [3].
 */
export function makeBranchModel (seed: number): Uint8Array {
  const random = mulberry32(seed)
  const tw = [random(), random(), random()]
  const ec = [random() + 1, random() + 1, random() + 1]
  return encodeModel({
    graph: {
      name: 'branch',
      node: [{
        name: 'branch',
        opType: 'If',
        input: ['cond'],
        output: ['y'],
        attribute: [
          {
            name: 'then_branch',
            type: proto.AttributeProto.AttributeType.GRAPH,
            g: {
              name: 'then',
              node: [{ name: 'then_add', opType: 'Add', input: ['x', 'tw'], output: ['then_out'] }],
              initializer: [makeTensorProto('tw', 'float32', [3], tw, 'raw')],
              output: [valueInfo('then_out', 'float32', [3])]
            }
          },
          {
            name: 'else_branch',
            type: proto.AttributeProto.AttributeType.GRAPH,
            g: {
              name: 'else',
              node: [
                {
                  name: 'else_const',
                  opType: 'Constant',
                  output: ['ec'],
                  attribute: [{ name: 'value', type: proto.AttributeProto.AttributeType.TENSOR, t: makeTensorProto('', 'float32', [3], ec, 'typed') }]
                },
                { name: 'else_mul', opType: 'Mul', input: ['x', 'ec'], output: ['else_out'] }
              ],
              output: [valueInfo('else_out', 'float32', [3])]
            }
          }
        ]
      }],
      input: [valueInfo('cond', 'bool', []), valueInfo('x', 'float32', [3])],
      output: [valueInfo('y', 'float32', [3])]
    }
  })
}

/** The classifier with W moved to an external file 'weights.bin' (which does not exist). */
export function makeExternalDataModel (): Uint8Array {
  const model = proto.ModelProto.decode(makeClassifierModel({ seed: 1 }))
  const W = model.graph?.initializer?.[0]
  if (W === undefined) throw new Error('classifier has no initializer')
  delete (W as { rawData?: Uint8Array }).rawData
  W.dataLocation = proto.TensorProto.DataLocation.EXTERNAL
  W.externalData = [
    proto.StringStringEntryProto.create({ key: 'location', value: 'weights.bin' }),
    proto.StringStringEntryProto.create({ key: 'offset', value: '0' }),
    proto.StringStringEntryProto.create({ key: 'length', value: '48' })
  ]
  return proto.ModelProto.encode(model).finish()
}

/** A valid protobuf that is not a ModelProto: a bare GraphProto. */
export function makeNonModelProtobuf (): Uint8Array {
  const model = proto.ModelProto.decode(makeClassifierModel({ seed: 1 }))
  if (model.graph == null) throw new Error('classifier has no graph')
  return proto.GraphProto.encode(model.graph).finish()
}

/** Encodes a ModelProto, filling ir_version and the default opset when not given. */
export function encodeModel (model: onnx.IModelProto): Uint8Array {
  return proto.ModelProto.encode({
    irVersion: TEST_IR_VERSION,
    opsetImport: [{ domain: '', version: TEST_OPSET }],
    ...model
  }).finish()
}

/** A TensorProto whose values sit in raw_data (little-endian) or in the dtype's typed field. */
export function makeTensorProto (name: string, dtype: TestDtype, dims: readonly number[], values: TensorValues, storage: TensorStorage): onnx.ITensorProto {
  const tensor: onnx.ITensorProto = { name, dataType: ONNX_DTYPE[dtype], dims: [...dims] }
  if (dtype === 'string') {
    // raw_data cannot hold strings: both storages use string_data.
    tensor.stringData = (values as readonly string[]).map((s) => Buffer.from(s, 'utf8'))
    return tensor
  }
  if (storage === 'raw') {
    tensor.rawData = encodeRaw(dtype, values as readonly number[] | readonly bigint[])
    return tensor
  }
  switch (dtype) {
    case 'float32': tensor.floatData = (values as readonly number[]).slice(); break
    case 'float64': tensor.doubleData = (values as readonly number[]).slice(); break
    case 'int64': tensor.int64Data = (values as readonly bigint[]).map((v) => toLongLike(v)); break
    case 'uint32': case 'uint64': tensor.uint64Data = (values as ReadonlyArray<number | bigint>).map((v) => toLongLike(BigInt(v), true)); break
    default: tensor.int32Data = (values as readonly number[]).slice()
  }
  return tensor
}

function encodeRaw (dtype: Exclude<TestDtype, 'string'>, values: readonly number[] | readonly bigint[]): Uint8Array {
  const size = { float32: 4, uint8: 1, int8: 1, uint16: 2, int16: 2, int32: 4, int64: 8, bool: 1, float16: 2, float64: 8, uint32: 4, uint64: 8 }[dtype]
  const out = Buffer.alloc(values.length * size)
  values.forEach((v: number | bigint, i: number) => {
    switch (dtype) {
      case 'float32': out.writeFloatLE(Number(v), i * 4); break
      case 'float64': out.writeDoubleLE(Number(v), i * 8); break
      case 'uint8': case 'bool': out.writeUInt8(Number(v), i); break
      case 'int8': out.writeInt8(Number(v), i); break
      case 'uint16': case 'float16': out.writeUInt16LE(Number(v), i * 2); break
      case 'int16': out.writeInt16LE(Number(v), i * 2); break
      case 'int32': out.writeInt32LE(Number(v), i * 4); break
      case 'uint32': out.writeUInt32LE(Number(v), i * 4); break
      case 'int64': out.writeBigInt64LE(BigInt(v), i * 8); break
      case 'uint64': out.writeBigUInt64LE(BigInt(v), i * 8); break
    }
  })
  return out
}

// protobufjs writes 64-bit fields from { low, high, unsigned } (Long-like) objects exactly.
function toLongLike (v: bigint, unsigned = false): { low: number, high: number, unsigned: boolean } {
  const bits = BigInt.asUintN(64, v)
  return { low: Number(bits & 0xffffffffn) | 0, high: Number(bits >> 32n) | 0, unsigned }
}

function valueInfo (name: string, dtype: TestDtype, dims: ReadonlyArray<number | string>): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ONNX_DTYPE[dtype],
        shape: { dim: dims.map((d) => typeof d === 'number' ? { dimValue: d } : { dimParam: d }) }
      }
    }
  }
}

/** Small seeded PRNG (mulberry32): uniform floats in [0, 1), rounded to float32. */
export function mulberry32 (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return Math.fround(((t ^ (t >>> 14)) >>> 0) / 4294967296)
  }
}

/**
 * onnx-proto's generated `encode` or `decode` functions, in its source's order: the message each
 * belongs to (named as in ONNX_WIRE_SCHEMA, e.g. 'TypeProto.Tensor') and the function's body.
 */
export function onnxProtoFunctions (kind: 'encode' | 'decode'): Array<{ message: string, body: string }> {
  const source = readFileSync(createRequire(import.meta.url).resolve('onnx-proto'), 'utf8')
  const signature = kind === 'encode' ? 'encode\\(message, writer\\)' : 'decode\\(reader, length\\)'
  const pattern = new RegExp(`\\n\\s*(\\w+(?:\\.\\w+)?)\\.${kind} = function ${signature} \\{([\\s\\S]*?)\\n\\s*\\};`, 'g')
  return [...source.matchAll(pattern)].map(([, short, body]) => ({ message: NESTED[short as string] ?? short as string, body: body as string }))
}

/** onnx-proto's nested message types by the short name its generated code uses. */
const NESTED: Readonly<Record<string, string>> = {
  Tensor: 'TypeProto.Tensor',
  Sequence: 'TypeProto.Sequence',
  Map: 'TypeProto.Map',
  Optional: 'TypeProto.Optional',
  SparseTensor: 'TypeProto.SparseTensor',
  Dimension: 'TensorShapeProto.Dimension'
}
