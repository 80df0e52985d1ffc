/**
 * identifyModel: file hash, tensor hashes and graph hash from one read, with large tensors hashed
 * on the thread pool during the read. Its identities must equal buildModelManifest's on the same
 * bytes, whatever the file's layout, including layouts crafted to mislead the read-time scan.
 */
import { createHash } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import onnxProto from 'onnx-proto'
import { buildModelManifest, identifyModel, ModelError } from '../../../agent/model/index.js'
import { RawDataScanner } from '../../../agent/model/raw-data-scan.js'
import { encodeModel, makeBranchModel, makeClassifierModel, makeTensorProto, mulberry32 } from '../../helpers/onnx-models.js'
import { makeTempDir } from '../../helpers/tmp.js'

const { onnx: proto } = onnxProto

function bigTensor (name: string, elements: number, seed: number): ReturnType<typeof makeTensorProto> {
  const random = mulberry32(seed)
  const raw = Buffer.alloc(elements * 4)
  for (let i = 0; i < elements; i++) raw.writeFloatLE(random(), i * 4)
  return { name, dataType: 1, dims: [elements], rawData: raw }
}

/** y = Sum(tensors): several initializers, some far above the offload size, one in float_data. */
function makeWideModel (): Uint8Array {
  const inits = [bigTensor('a', 300_000, 1), bigTensor('b', 20, 2), bigTensor('c', 70_000, 3), makeTensorProto('d', 'float32', [20], Array(20).fill(0.5), 'typed')]
  return encodeModel({
    graph: {
      name: 'wide',
      node: [{ name: 'sum', opType: 'Identity', input: ['a'], output: ['y'] }],
      initializer: inits,
      output: [{ name: 'y' }]
    }
  })
}

function lengthDelimited (field: number, payload: Uint8Array): Buffer {
  const header: number[] = []
  let tag = field * 8 + 2
  while (tag >= 0x80) { header.push((tag & 0x7f) | 0x80); tag >>>= 7 }
  header.push(tag)
  let len = payload.length
  while (len >= 0x80) { header.push((len & 0x7f) | 0x80); len = Math.floor(len / 128) }
  header.push(len)
  return Buffer.concat([Buffer.from(header), payload])
}

async function identifyBytes (t: { teardown: (fn: () => unknown) => void }, bytes: Uint8Array, options: Parameters<typeof identifyModel>[1] = {}): Promise<Awaited<ReturnType<typeof identifyModel>>> {
  const dir = await makeTempDir(t, 'prov-identify-')
  const path = join(dir, 'model.onnx')
  await writeFile(path, bytes)
  return await identifyModel(path, options)
}

t.test('behavior: one read gives the same identities as hashing and building the manifest from the bytes', async t => {
  for (const bytes of [makeWideModel(), makeClassifierModel({ seed: 3, inputSize: 40_000 }), makeBranchModel(2), makeClassifierModel({ seed: 4, weightsIn: 'float_data' })]) {
    const id = await identifyBytes(t, bytes)
    const want = buildModelManifest(bytes)
    t.equal(id.fileHash.toString('hex'), createHash('sha256').update(bytes).digest('hex'))
    t.same(id.manifest, want, 'manifest identical, tensor by tensor')
    t.ok(Buffer.from(bytes).equals(id.bytes), 'the bytes read are the file')
  }
})

t.test('behavior: progress is reported after every read, ending at the file size', async t => {
  const bytes = makeWideModel()
  const seen: Array<[number, number]> = []
  await identifyBytes(t, bytes, { onProgress: (read, total) => { seen.push([read, total]) } })
  t.ok(seen.length >= 1)
  t.same(seen[seen.length - 1], [bytes.length, bytes.length])
  t.ok(seen.every(([read], i) => i === 0 || read > (seen[i - 1] as [number, number])[0]), 'strictly increasing')
})

t.test('attack: a tensor with two raw_data fields (the decoder keeps the last) gets the hash of the bytes that run', async t => {
  const first = bigTensor('W', 40_000, 7)
  const second = bigTensor('W', 40_000, 8)
  const tensor = Buffer.concat([proto.TensorProto.encode(first).finish(), lengthDelimited(9, second.rawData as Uint8Array)])
  const graph = Buffer.concat([
    proto.GraphProto.encode({ name: 'g', node: [{ opType: 'Identity', input: ['W'], output: ['y'] }], output: [{ name: 'y' }] }).finish(),
    lengthDelimited(5, tensor)
  ])
  const bytes = Buffer.concat([encodeModel({}), lengthDelimited(7, graph)])
  const id = await identifyBytes(t, bytes)
  const want = buildModelManifest(bytes)
  t.same(id.manifest, want)
  t.equal(id.manifest.initializers[0]?.sha256, createHash('sha256').update(second.rawData as Uint8Array).digest('hex'), 'the second raw_data is the one hashed')
})

t.test('attack: a graph field given twice is refused as by buildModelManifest, not scanned into a manifest', async t => {
  const graph = proto.GraphProto.encode({ name: 'g', initializer: [bigTensor('W', 40_000, 9)], node: [{ opType: 'Identity', input: ['W'], output: ['y'] }], output: [{ name: 'y' }] }).finish()
  const bytes = Buffer.concat([encodeModel({}), lengthDelimited(7, graph), lengthDelimited(7, graph)])
  let code: string | undefined
  try { buildModelManifest(bytes) } catch (e) { code = (e as ModelError).code }
  t.ok(code !== undefined, 'the reference refuses it')
  await t.rejects(identifyBytes(t, bytes), { code })
  await t.rejects(identifyBytes(t, bytes), ModelError)
})

t.test('behavior: the read-time scan finds the same ranges whether the bytes arrive at once or one by one', async t => {
  const bytes = makeWideModel()
  const atOnce = new RawDataScanner(bytes).advance(bytes.length)
  const scanner = new RawDataScanner(bytes)
  const stepwise = []
  for (let filled = 1; filled <= bytes.length; filled += 997) stepwise.push(...scanner.advance(filled))
  stepwise.push(...scanner.advance(bytes.length))
  t.same(stepwise, atOnce)
  t.equal(atOnce.length, 3, 'three raw_data initializers')
  for (const [start, end] of atOnce) t.ok(end > start && end <= bytes.length)
})

t.test('behavior: garbage and truncated files stop the scan without a throw', async t => {
  const random = mulberry32(11)
  for (let i = 0; i < 200; i++) {
    const junk = Uint8Array.from({ length: 1 + Math.floor(random() * 300) }, () => Math.floor(random() * 256))
    t.doesNotThrow(() => new RawDataScanner(junk).advance(junk.length))
  }
  const truncated = makeWideModel().subarray(0, 5000)
  t.same(new RawDataScanner(truncated).advance(truncated.length), [], 'no range past the end')
})
