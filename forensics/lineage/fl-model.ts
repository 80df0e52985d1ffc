/**
 * The federated rounds' model: logistic regression as a real ONNX file (x [1, d] → MatMul W [d, 2]
 * → Add b [2] → Softmax → probs [1, 2], weights as float32 initializers), its local training by
 * gradient descent, and FedAvg. Small on purpose: devices train it in TypeScript, no framework.
 */
import onnxProto from 'onnx-proto'
import { ForensicsError } from '../errors.js'

const { onnx: proto } = onnxProto

/** Logistic-regression weights: W [inputSize, 2] row-major, b [2]. */
export interface LogisticWeights { inputSize: number, W: Float32Array, b: Float32Array }

/** Local training: full-batch gradient descent on the cross-entropy. */
export interface TrainOptions {
  /** Passes over the samples. Default DEFAULT_TRAIN_EPOCHS. */
  epochs?: number
  /** Step size. Default DEFAULT_LEARNING_RATE. */
  learningRate?: number
}
export const DEFAULT_TRAIN_EPOCHS = 50
export const DEFAULT_LEARNING_RATE = 0.5
const FLOAT32 = 1

/** The ONNX bytes of the model with these weights (IR 8, opset 13: what onnxruntime 1.x loads). */
export function buildLogisticModel (w: LogisticWeights): Uint8Array {
  const tensor = (name: string, dims: number[], values: Float32Array): onnxProto.onnx.ITensorProto =>
    ({ name, dataType: FLOAT32, dims, rawData: new Uint8Array(Buffer.from(values.buffer, values.byteOffset, values.byteLength)) })
  const info = (name: string, dims: number[]): onnxProto.onnx.IValueInfoProto =>
    ({ name, type: { tensorType: { elemType: FLOAT32, shape: { dim: dims.map(d => ({ dimValue: d })) } } } })
  return proto.ModelProto.encode({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 13 }],
    producerName: 'edge-provenance-fl',
    graph: {
      name: 'logistic',
      node: [
        { name: 'matmul', opType: 'MatMul', input: ['x', 'W'], output: ['logits0'] },
        { name: 'bias', opType: 'Add', input: ['logits0', 'b'], output: ['logits'] },
        { name: 'softmax', opType: 'Softmax', input: ['logits'], output: ['probs'] }
      ],
      initializer: [tensor('W', [w.inputSize, 2], w.W), tensor('b', [2], w.b)],
      input: [info('x', [1, w.inputSize])],
      output: [info('probs', [1, 2])]
    }
  }).finish()
}

/**
 * The weights of a model built by buildLogisticModel (or any with float32 initializers W [d, 2], b [2]).
 * @throws ForensicsError FL_MODEL_INVALID
 */
export function readLogisticWeights (bytes: Uint8Array): LogisticWeights {
  let model: onnxProto.onnx.ModelProto
  try { model = proto.ModelProto.decode(bytes) } catch (e) { throw new ForensicsError('FL_MODEL_INVALID', 'not an ONNX model', { cause: e }) }
  const init = (name: string): { dims: number[], values: Float32Array } => {
    const t = model.graph?.initializer?.find(i => i.name === name)
    if (t == null || t.dataType !== FLOAT32) throw new ForensicsError('FL_MODEL_INVALID', `no float32 initializer "${name}"`)
    const dims = (t.dims ?? []).map(d => Number(d))
    const count = dims.reduce((a, d) => a * d, 1)
    let values: Float32Array
    if (t.rawData != null && t.rawData.byteLength > 0) {
      if (t.rawData.byteLength !== count * 4) throw new ForensicsError('FL_MODEL_INVALID', `initializer "${name}": ${t.rawData.byteLength} bytes for ${count} floats`)
      values = new Float32Array(Uint8Array.from(t.rawData).buffer)
    } else {
      values = Float32Array.from(t.floatData ?? [])
      if (values.length !== count) throw new ForensicsError('FL_MODEL_INVALID', `initializer "${name}": ${values.length} values for ${count}`)
    }
    return { dims, values }
  }
  const W = init('W')
  const b = init('b')
  if (W.dims.length !== 2 || W.dims[1] !== 2 || b.dims.length !== 1 || b.dims[0] !== 2) throw new ForensicsError('FL_MODEL_INVALID', 'expected W [d, 2] and b [2]')
  return { inputSize: W.dims[0] as number, W: W.values, b: b.values }
}

/** Class probabilities for one row (float64), as the ONNX graph computes them. */
export function predictLogistic (w: { W: ArrayLike<number>, b: ArrayLike<number> }, x: readonly number[]): [number, number] {
  const z = [0, 1].map(j => x.reduce((s, xi, i) => s + xi * (w.W[i * 2 + j] as number), w.b[j] as number))
  const m = Math.max(z[0] as number, z[1] as number)
  const e = z.map(v => Math.exp(v - m))
  const sum = (e[0] as number) + (e[1] as number)
  return [(e[0] as number) / sum, (e[1] as number) / sum]
}

/**
 * Trains from `start` on rows `xs` with labels `ys` (0 or 1), in float64, rounded to float32 at the
 * end. Deterministic: the same inputs give the same bytes.
 * @throws RangeError for rows of the wrong width, labels other than 0/1, or no samples
 */
export function trainLogistic (start: LogisticWeights, xs: ReadonlyArray<readonly number[]>, ys: readonly number[], options: TrainOptions = {}): LogisticWeights {
  const d = start.inputSize
  if (xs.length === 0 || xs.length !== ys.length) throw new RangeError('need as many labels as rows, at least one')
  if (xs.some(x => x.length !== d) || ys.some(y => y !== 0 && y !== 1)) throw new RangeError(`rows of ${d} features and labels 0 or 1`)
  const W = Array.from(start.W)
  const b = Array.from(start.b)
  const lr = options.learningRate ?? DEFAULT_LEARNING_RATE
  const current = { W, b }
  for (let epoch = 0; epoch < (options.epochs ?? DEFAULT_TRAIN_EPOCHS); epoch++) {
    const gW = new Array<number>(W.length).fill(0)
    const gb = [0, 0]
    xs.forEach((x, n) => {
      const p = predictLogistic(current, x)
      for (let j = 0; j < 2; j++) {
        const err = (p[j] as number) - (ys[n] === j ? 1 : 0)
        gb[j] = (gb[j] as number) + err
        for (let i = 0; i < d; i++) gW[i * 2 + j] = (gW[i * 2 + j] as number) + err * (x[i] as number)
      }
    })
    for (let k = 0; k < W.length; k++) W[k] = (W[k] as number) - lr * (gW[k] as number) / xs.length
    for (let j = 0; j < 2; j++) b[j] = (b[j] as number) - lr * (gb[j] as number) / xs.length
  }
  return { inputSize: d, W: Float32Array.from(W), b: Float32Array.from(b) }
}

/**
 * FedAvg (McMahan et al. 2017): the mean of the clients' weights, each weighted by its sample count.
 * @throws RangeError for no updates, zero samples, or updates of different shapes
 */
export function fedAvg (updates: ReadonlyArray<{ weights: LogisticWeights, sampleCount: number }>): LogisticWeights {
  const total = updates.reduce((n, u) => n + u.sampleCount, 0)
  const first = updates[0]
  if (first === undefined || total <= 0) throw new RangeError('FedAvg needs at least one update with samples')
  if (updates.some(u => u.weights.inputSize !== first.weights.inputSize)) throw new RangeError('updates of different shapes')
  const W = new Float64Array(first.weights.W.length)
  const b = new Float64Array(2)
  for (const u of updates) {
    const f = u.sampleCount / total
    u.weights.W.forEach((v, i) => { W[i] = (W[i] as number) + f * v })
    u.weights.b.forEach((v, i) => { b[i] = (b[i] as number) + f * v })
  }
  return { inputSize: first.weights.inputSize, W: Float32Array.from(W), b: Float32Array.from(b) }
}
