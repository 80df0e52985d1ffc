/**
 * identifyModel: file hash, tensor hashes and graph hash from one read, with large tensors hashed
 * on the thread pool during the read. Its identities must equal buildModelManifest's on the same
 * bytes, whatever the file's layout, including layouts crafted to mislead the read-time scan.
 */
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { appendFileSync, truncateSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import onnxProto from 'onnx-proto'
import { buildModelManifest, identifyModel, ModelError } from '../../../agent/model/index.js'
import { RawDataScanner } from '../../../agent/model/raw-data-scan.js'
import { hashWorkerSettings, READ_SCAN_MIN_MODEL_BYTES } from '../../../agent/model/tensor-hashes.js'
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

/** A Constant node whose `value` attribute is `tensor` (how Paddle2ONNX stores every weight). */
function constantNode (output: string, tensor: ReturnType<typeof makeTensorProto>): onnxProto.onnx.INodeProto {
  return { opType: 'Constant', output: [output], attribute: [{ name: 'value', type: proto.AttributeProto.AttributeType.TENSOR, t: tensor }] }
}

/**
 * Tensors everywhere a model keeps them and of every size the loader treats apart: 3.2 MB and
 * 300 kB in Constant nodes, one tiny, a `tensors` attribute list, an If branch with a Constant
 * and an initializer, and a model-local function with a Constant.
 */
function makeEverywhereModel (): Uint8Array {
  const branch = {
    name: 'then',
    initializer: [bigTensor('then_w', 80_000, 21)],
    node: [constantNode('then_c', bigTensor('', 300_000, 22)), { opType: 'Add', input: ['then_w', 'then_c'], output: ['then_out'] }],
    output: [{ name: 'then_out' }]
  }
  return encodeModel({
    graph: {
      name: 'everywhere',
      node: [
        constantNode('big', bigTensor('', 800_000, 23)),
        constantNode('medium', bigTensor('', 75_000, 24)),
        constantNode('tiny', bigTensor('', 3, 25)),
        { opType: 'Custom', domain: 'test', output: ['listed'], attribute: [{ name: 'values', type: proto.AttributeProto.AttributeType.TENSORS, tensors: [bigTensor('', 70_000, 26), bigTensor('', 5, 27)] }] },
        { opType: 'If', input: ['cond'], output: ['y'], attribute: [{ name: 'then_branch', type: proto.AttributeProto.AttributeType.GRAPH, g: branch }, { name: 'else_branch', type: proto.AttributeProto.AttributeType.GRAPH, g: { ...branch, name: 'else' } }] }
      ],
      output: [{ name: 'y' }]
    },
    functions: [{ name: 'f', domain: 'test', output: ['o'], node: [constantNode('o', bigTensor('', 40_000, 28))] }]
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

// These models are small: every test here but the first takes the read-time scan and its hashes
// on the pool as a model of 16 MiB or more would, since that is what their layouts attack.
hashWorkerSettings.readScanMinModelBytes = 0
t.teardown(() => { hashWorkerSettings.readScanMinModelBytes = READ_SCAN_MIN_MODEL_BYTES })

t.test('behavior: one read gives the same identities as hashing and building the manifest from the bytes', async t => {
  t.teardown(() => { hashWorkerSettings.readScanMinModelBytes = 0 })
  for (const scan of [READ_SCAN_MIN_MODEL_BYTES, 0]) {
    hashWorkerSettings.readScanMinModelBytes = scan
    for (const bytes of [makeWideModel(), makeClassifierModel({ seed: 3, inputSize: 40_000 }), makeBranchModel(2), makeClassifierModel({ seed: 4, weightsIn: 'float_data' }), makeEverywhereModel()]) {
      const id = await identifyBytes(t, bytes)
      const want = buildModelManifest(bytes)
      t.equal(id.fileHash.toString('hex'), createHash('sha256').update(bytes).digest('hex'))
      t.same(id.manifest, want, `manifest identical, tensor by tensor (${scan === 0 ? 'scanned while read' : 'after the read'})`)
      t.ok(Buffer.from(bytes).equals(id.bytes), 'the bytes read are the file')
    }
  }
})

t.test('behavior: tensors in Constant nodes, attribute lists, subgraphs and functions are found by the read-time scan', async t => {
  const bytes = makeEverywhereModel()
  const ranges = new RawDataScanner(bytes).advance(bytes.length)
  const want = buildModelManifest(bytes)
  t.equal(want.initializers.length, 10)
  t.equal(ranges.length, want.initializers.length, 'one range per tensor (all keep raw_data)')
  const rangeHashes = ranges.map(([start, end]) => createHash('sha256').update(bytes.subarray(start, end)).digest('hex')).sort()
  t.same(rangeHashes, want.initializers.map((x) => x.sha256).sort(), 'each range is exactly a tensor\'s raw_data')
  const id = await identifyBytes(t, bytes)
  t.same(id.manifest, want)
})

t.test('attack: a Constant node tensor with two raw_data fields gets the hash of the bytes that run', async t => {
  const first = bigTensor('', 300_000, 31)
  const second = bigTensor('', 300_000, 32)
  const tensor = Buffer.concat([proto.TensorProto.encode(first).finish(), lengthDelimited(9, second.rawData as Uint8Array)])
  // AttributeProto { name = 1: 'value', type = 20: TENSOR, t = 5: tensor }
  const attribute = Buffer.concat([proto.AttributeProto.encode({ name: 'value', type: proto.AttributeProto.AttributeType.TENSOR }).finish(), lengthDelimited(5, tensor)])
  const node = Buffer.concat([proto.NodeProto.encode({ opType: 'Constant', output: ['W'] }).finish(), lengthDelimited(5, attribute)])
  const graph = Buffer.concat([lengthDelimited(1, node), proto.GraphProto.encode({ name: 'g', output: [{ name: 'W' }] }).finish()])
  const bytes = Buffer.concat([encodeModel({}), lengthDelimited(7, graph)])
  const id = await identifyBytes(t, bytes)
  t.same(id.manifest, buildModelManifest(bytes))
  t.equal(id.manifest.initializers[0]?.sha256, createHash('sha256').update(second.rawData as Uint8Array).digest('hex'), 'the second raw_data is the one hashed')
})

t.test('attack: a file that shrinks or grows while it is read is refused', async t => {
  const bytes = makeEverywhereModel()
  t.ok(bytes.length > 3 * 2 * 1024 ** 2, 'more chunks than reads in flight')
  const dir = await makeTempDir(t, 'prov-identify-')
  const path = join(dir, 'model.onnx')
  await writeFile(path, bytes)
  let cut = false
  const shrink = identifyModel(path, { onProgress: () => { if (!cut) { cut = true; truncateSync(path, 3 * 1024 ** 2) } } })
  await t.rejects(shrink, { code: 'MODEL_UNREADABLE', message: /shrank/ })
  await writeFile(path, bytes)
  let grown = false
  const grow = identifyModel(path, { onProgress: () => { if (!grown) { grown = true; appendFileSync(path, Buffer.from([0])) } } })
  await t.rejects(grow, { code: 'MODEL_UNREADABLE', message: /grew/ })
  await writeFile(path, bytes)
  t.same((await identifyModel(path)).manifest, buildModelManifest(bytes), 'the same file, left alone, loads')
})

t.test('attack: a FIFO named like a model is refused without waiting for a writer', async t => {
  const dir = await makeTempDir(t, 'prov-identify-')
  const path = join(dir, 'model.onnx')
  const made = spawnSync('mkfifo', [path])
  if (made.status !== 0) { t.fail('mkfifo unavailable'); return }
  await t.rejects(identifyModel(path), { code: 'MODEL_UNREADABLE', message: /not a regular file/ })
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
