import t from 'tap'
import { join } from 'node:path'
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import ort from 'onnxruntime-node'
import { ProvenanceAgent, type Logger, type ProvenanceModel } from '../../../agent/session/index.js'
import {
  CaptureRing, CaptureStoreError, CAPTURE_FILE_PATTERN, capturesDir, deleteFrozenCapture, listFrozenCaptures, readFrozenCapture,
  type CaptureRingOptions, type CaptureRunEnd
} from '../../../agent/capture/index.js'
import { commitCapturedTensor, decodeCapture, equalBytes, sizeCaptureEntry, type InferenceBody, type SignedRecord, type TensorLike } from '../../../protocol/index.js'
import { makeClassifierModel, makeIdentityModel } from '../../helpers/onnx-models.js'
import { makeTempDir } from '../../helpers/tmp.js'

const DEVICE = 'dev-capture-1'

function captureLogger (): Logger & { lines: string[] } {
  const lines: string[] = []
  const put = (obj: object, msg?: string): void => { lines.push(JSON.stringify({ ...obj, msg })) }
  return { lines, info: put, warn: put, error: put }
}

interface Rig {
  stateDir: string
  ring: CaptureRing
  agent: ProvenanceAgent
  model: ProvenanceModel
  run: (v: number, decision?: string) => Promise<SignedRecord>
  logger: Logger & { lines: string[] }
  /** Another ring, with its own logger, observing this agent's runs from now on (a model load costs ~1 s of CPU). */
  swapRing: (options: Partial<CaptureRingOptions>) => { ring: CaptureRing, logger: Logger & { lines: string[] } }
}

type Watch = (ring: CaptureRing, inputs: Readonly<Record<string, TensorLike>>, hold: () => () => void) => CaptureRunEnd | undefined

/** A real agent running the tiny classifier, with a ring watching its runs (through `watch`, by default directly). */
async function rig (t: { teardown: (fn: () => unknown) => void }, options: Partial<CaptureRingOptions> = {}, watch: Watch = (ring, inputs, hold) => ring.watch(inputs, hold)): Promise<Rig> {
  const dir = await makeTempDir(t, 'prov-capture-')
  const modelPath = join(dir, 'tiny.onnx')
  await writeFile(modelPath, makeClassifierModel({ seed: 1 }))
  const stateDir = join(dir, 'state')
  const logger = captureLogger()
  let ring = new CaptureRing({ stateDir, deviceId: DEVICE, logger, ...options })
  const agent = await ProvenanceAgent.start({
    stateDir,
    deviceId: DEVICE,
    syncWrites: false,
    logger,
    watchRun: (inputs, hold) => watch(ring, inputs, hold)
  })
  t.teardown(async () => await agent.stop())
  const model = await agent.loadModel(modelPath)
  const run = async (v: number, decision = 'confident'): Promise<SignedRecord> => {
    const x = new ort.Tensor('float32', Float32Array.from([v, v / 2, -v, 1]), [1, 4])
    const { record } = await model.run({ x }, { decide: () => decision })
    // The caller reuses its buffer at once: the ring must have copied it.
    ;(x.data).fill(0)
    return record
  }
  const swapRing = (o: Partial<CaptureRingOptions>): { ring: CaptureRing, logger: Logger & { lines: string[] } } => {
    const ringLogger = captureLogger()
    ring = new CaptureRing({ stateDir, deviceId: DEVICE, logger: ringLogger, ...o })
    return { ring, logger: ringLogger }
  }
  return { stateDir, ring, agent, model, run, logger, swapRing }
}

t.test('behavior: the ring keeps the most recent runs within its entry bound', async t => {
  const { ring, run } = await rig(t, { maxEntries: 3 })
  for (let i = 0; i < 6; i++) await run(i / 10)
  t.same(ring.seqs, [5, 6, 7], 'seqs 2..7 ran; the three newest stay')
  t.match(ring.stats(), { entries: 3, evicted: 3, oversized: 0, frozen: 0 })
})

t.test('behavior: runs kept after evictions open their own commitments (the ring copies into the buffers of evicted runs)', async t => {
  const { ring, run, agent } = await rig(t, { maxEntries: 2 })
  const records: SignedRecord[] = []
  for (let i = 0; i < 7; i++) records.push(await run(i / 10 + 0.05))
  t.match(ring.stats(), { entries: 2, evicted: 5 })
  const capture = decodeCapture((await ring.freeze()).bytes)
  t.same(capture.entries.map(e => e.seq), records.slice(-2).map(r => r.record.seq))
  for (const entry of capture.entries) {
    const body = records.find(r => r.record.seq === entry.seq)!.record.body as InferenceBody
    t.ok(equalBytes(entry.salt, agent.saltFor(entry.seq)))
    t.ok(equalBytes(commitCapturedTensor(entry.salt, entry.inputs[0]!), body.inputs[0]!.hash), `seq ${entry.seq}: its input opens its commitment`)
    t.ok(equalBytes(commitCapturedTensor(entry.salt, entry.outputs[0]!), body.outputs[0]!.hash), `seq ${entry.seq}: its output opens its commitment`)
  }
})

t.test('behavior: the ring keeps the most recent runs within its byte bound; a run larger than the bound is not kept', async t => {
  const probe = await rig(t)
  await probe.run(0.1)
  const frozen = await probe.ring.freeze()
  const entryBytes = sizeCaptureEntry(decodeCapture(frozen.bytes).entries[0]!)
  t.ok(frozen.bytes.byteLength <= entryBytes + 512, 'the bound holds for the encoded file')

  // The same agent, observed by rings with other bounds.
  const { ring } = probe.swapRing({ maxBytes: Math.floor(entryBytes * 2.5) })
  const seqs: number[] = []
  for (let i = 0; i < 5; i++) seqs.push((await probe.run(i)).record.seq)
  t.equal(ring.size, 2)
  t.equal(ring.bytes, 2 * entryBytes)
  t.same(ring.seqs, seqs.slice(-2))
  t.ok(ring.bytes <= ring.maxBytes)

  const tiny = probe.swapRing({ maxBytes: entryBytes - 1 })
  await probe.run(1)
  t.match(tiny.ring.stats(), { entries: 0, bytes: 0, oversized: 1 })
  t.ok(tiny.logger.lines.some(l => l.includes('larger than the capture ring')))

  // Inputs alone over the bound (16 bytes): nothing is copied; the run is counted and the trigger asked.
  let asked = 0
  const smaller = probe.swapRing({ maxBytes: 8, triggerOn: () => { asked++; return false } })
  await probe.run(1)
  t.match(smaller.ring.stats(), { entries: 0, bytes: 0, oversized: 1 })
  t.equal(asked, 1)
})

t.test('behavior: freeze on request writes the capture atomically (0600) and empties the ring; the capture opens the records', async t => {
  const { stateDir, ring, run, agent, logger } = await rig(t)
  const records = [await run(0.1), await run(0.2), await run(0.3)]
  const frozen = await ring.freeze('case 2024-17')
  t.match(frozen, { reason: 'case 2024-17', origin: 'request', seqs: [2, 3, 4] })
  t.match(frozen.name, CAPTURE_FILE_PATTERN)
  t.equal(ring.size, 0, 'frozen runs leave the ring')
  t.same(new Uint8Array(await readFile(frozen.path)), frozen.bytes)
  t.equal((await stat(frozen.path)).mode & 0o777, 0o600)
  t.equal((await stat(capturesDir(stateDir))).mode & 0o777, 0o700)
  const listed = await listFrozenCaptures(stateDir)
  t.same(listed.map(l => l.name), [frozen.name])
  t.same(await readFrozenCapture(stateDir, frozen.name), frozen.bytes)

  const capture = decodeCapture(frozen.bytes)
  t.equal(capture.deviceId, DEVICE)
  for (const [i, entry] of capture.entries.entries()) {
    const body = records[i]!.record.body as InferenceBody
    t.ok(equalBytes(entry.salt, agent.saltFor(entry.seq)), `seq ${entry.seq}: the salt of the record`)
    t.ok(equalBytes(entry.modelHash, body.modelHash))
    t.ok(equalBytes(commitCapturedTensor(entry.salt, entry.inputs[0]!), body.inputs[0]!.hash), 'input opens its commitment')
    t.ok(equalBytes(commitCapturedTensor(entry.salt, entry.outputs[0]!), body.outputs[0]!.hash), 'output opens its commitment')
  }
  t.notOk(logger.lines.some(l => l.includes(Buffer.from(capture.entries[0]!.salt).toString('hex'))), 'salts never reach the log')

  const empty = await ring.freeze()
  t.same(decodeCapture(empty.bytes).entries, [], 'an empty ring freezes to a capture without entries')
  await deleteFrozenCapture(stateDir, frozen.name)
  t.same((await listFrozenCaptures(stateDir)).map(l => l.name), [empty.name])
  await deleteFrozenCapture(stateDir, frozen.name)
  await t.rejects(ring.freeze('x'.repeat(300)), RangeError)
})

t.test('behavior: a trigger freezes automatically, at most once per cooldown and while few captures wait', async t => {
  let now = 1_700_000_000_000
  const seen: string[] = []
  const { stateDir, ring, run } = await rig(t, {
    maxEntries: 4,
    triggerCooldownMs: 10_000,
    maxFrozenCaptures: 2,
    clock: () => now,
    triggerOn: (decision, outputs) => {
      const probs = outputs.probs?.data as Float32Array
      t.equal(probs.length, 3)
      return decision === 'low' ? `low confidence ${Math.max(...probs).toFixed(2)}` : false
    },
    onFrozen: f => seen.push(f.name)
  })
  await run(0.1)
  await run(0.2)
  const low = await run(0.3, 'low')
  await run(0.4) // after the trigger: must not be in its capture
  await ring.idle()
  let files = await listFrozenCaptures(stateDir)
  t.equal(files.length, 1)
  const first = decodeCapture(await readFrozenCapture(stateDir, files[0]!.name))
  t.same(first.entries.map(e => e.seq), [2, 3, low.record.seq])
  t.match(first.reason, /^low confidence 0\.\d\d$/)
  t.same(ring.seqs, [5], 'frozen runs left the ring, the later one stayed')
  t.same(seen, [files[0]!.name])

  now += 1000
  await run(0.5, 'low')
  await ring.idle()
  t.equal((await listFrozenCaptures(stateDir)).length, 1, 'within the cooldown: skipped')
  t.equal(ring.stats().triggersSkipped, 1)

  now += 10_000
  await run(0.6, 'low')
  await ring.idle()
  files = await listFrozenCaptures(stateDir)
  t.equal(files.length, 2)
  now += 10_000
  await run(0.7, 'low')
  await ring.idle()
  t.equal((await listFrozenCaptures(stateDir)).length, 2, 'two captures wait for upload: the third trigger is skipped')
  t.equal(ring.stats().triggersSkipped, 2)
  t.ok(ring.size > 0, 'a skipped trigger leaves the runs in the ring')
  // An upload deletes one: triggers work again.
  await deleteFrozenCapture(stateDir, files[0]!.name)
  now += 10_000
  await run(0.8, 'low')
  await ring.idle()
  t.equal((await listFrozenCaptures(stateDir)).length, 2)
  t.equal(ring.stats().frozen, 3)
})

t.test('error: a failing observer, trigger or write never fails a run; the runs stay in the ring', async t => {
  const broken = await rig(t, {}, () => { throw new Error('observer broke') })
  const record = await broken.run(0.1)
  t.equal(record.record.seq, 2, 'the run resolved with its record')
  t.ok(broken.logger.lines.some(l => l.includes('watchRun hook failed')))

  // The watcher's end throws after the ring kept the run.
  const late = await rig(t, {}, (ring, inputs) => {
    const end = ring.watch(inputs)
    return run => { end(run); throw new Error('end broke') }
  })
  t.equal((await late.run(0.1)).record.seq, 2, 'the run resolved with its record')
  t.equal(late.ring.size, 1)
  t.ok(late.logger.lines.some(l => l.includes('watchRun hook failed') && l.includes('"seq":2')))

  const healthy = await rig(t)
  const throwing = healthy.swapRing({ triggerOn: () => { throw new Error('bad trigger') } })
  await healthy.run(0.1)
  t.equal(throwing.ring.size, 1)
  t.ok(throwing.logger.lines.some(l => l.includes('capture trigger failed')))

  // The captures folder cannot be made (a file is in the way).
  const blocked = healthy.swapRing({ triggerOn: () => true, triggerCooldownMs: 0 })
  await writeFile(capturesDir(healthy.stateDir), 'in the way')
  await healthy.run(0.1)
  await blocked.ring.idle()
  t.equal(blocked.ring.stats().freezeFailures, 1)
  t.equal(blocked.ring.size, 1, 'nothing was written, so nothing left the ring')
  const err = await blocked.ring.freeze().catch(e => e)
  t.type(err, CaptureStoreError)
  t.equal(err.code, 'CAPTURE_WRITE_FAILED')
  t.equal(blocked.ring.size, 1)
})

t.test('attack: the caller writes its next frame into the same buffer while a run is in flight: the ring keeps the bytes the model got, which open the record', async t => {
  const { ring, model, agent } = await rig(t)
  const frame = Float32Array.from([0.3, 0.1, -0.3, 1])
  const x = new ort.Tensor('float32', frame, [1, 4])
  const first = model.run({ x })
  frame.set([9, -9, 9, -9])
  const second = model.run({ x })
  frame.fill(0)
  const records = (await Promise.all([first, second])).map(r => r.record)
  const capture = decodeCapture((await ring.freeze()).bytes)
  t.same(capture.entries.map(e => e.seq), records.map(r => r.record.seq))
  t.same(new Float32Array(capture.entries[0]!.inputs[0]!.data.slice().buffer), Float32Array.from([0.3, 0.1, -0.3, 1]), 'the first frame as it was when run() was called')
  t.same(new Float32Array(capture.entries[1]!.inputs[0]!.data.slice().buffer), Float32Array.from([9, -9, 9, -9]), 'the second frame')
  for (const entry of capture.entries) {
    const body = records.find(r => r.record.seq === entry.seq)!.record.body as InferenceBody
    t.ok(equalBytes(commitCapturedTensor(agent.saltFor(entry.seq), entry.inputs[0]!), body.inputs[0]!.hash), `seq ${entry.seq}: the captured input opens the record's commitment`)
  }
})

t.test('behavior: a run\'s inputs are copied while it computes when a spare buffer is at hand; otherwise the snapshot is held and copied at the end, and always let go', async t => {
  let holds = 0
  let releases = 0
  const { ring, model, run } = await rig(t, { maxEntries: 2 }, (r, inputs, hold) => r.watch(inputs, () => {
    holds++
    const release = hold()
    return () => { releases++; release() }
  }))
  for (let i = 0; i < 6; i++) await run(i / 10)
  // Runs 2-4 (seqs): the ring fills, and the first eviction comes at the end of the third.
  t.equal(holds, 3, 'held while no evicted run had left a buffer')
  t.equal(releases, 3)
  const x = (v: number): ort.Tensor => new ort.Tensor('float32', Float32Array.from([v, v, v, v]), [1, 4])
  await Promise.all([0.1, 0.2, 0.3, 0.4].map(async v => await model.run({ x: x(v) })))
  t.ok(holds >= 4 && holds <= 6, `four runs at once, one spare: the others held (${holds - 3})`)
  t.equal(releases, holds, 'every hold let go')
  await t.rejects(model.run({ x: new ort.Tensor('float32', new Float32Array(5), [1, 5]) }), { code: 'INFERENCE_FAILED' })
  t.equal(releases, holds, 'a run that left no record lets go too')
  t.equal(ring.size, 2)
})

t.test('attack: runs of large inputs, one at a time and four at once, each on its own reused frame buffer: every kept run opens its record, none sees a later run\'s bytes', async t => {
  const dir = await makeTempDir(t, 'prov-capture-')
  const modelPath = join(dir, 'identity.onnx')
  await writeFile(modelPath, makeIdentityModel('float32'))
  const stateDir = join(dir, 'state')
  const ring = new CaptureRing({ stateDir, deviceId: DEVICE, maxEntries: 3 })
  const agent = await ProvenanceAgent.start({ stateDir, deviceId: DEVICE, syncWrites: false, watchRun: (inputs, hold) => ring.watch(inputs, hold) })
  t.teardown(async () => await agent.stop())
  const model = await agent.loadModel(modelPath)
  // 400 KB: above the size from which the agent pools its snapshots (reused run after run) and
  // the ring recycles the buffers of evicted runs.
  const n = 100_000
  const frames = [0, 1, 2, 3].map(() => new Float32Array(n))
  const value = new Map<number, number>()
  const check = async (label: string): Promise<void> => {
    const capture = decodeCapture((await ring.freeze()).bytes)
    t.equal(capture.entries.length, 3, label)
    for (const entry of capture.entries) {
      const data = new Float32Array(entry.inputs[0]!.data.slice().buffer)
      const want = value.get(entry.seq)!
      t.ok(data.every(v => v === want), `${label}: seq ${entry.seq} holds its own frame (${want})`)
      const records = await agent.log.range(entry.seq, entry.seq)
      t.ok(equalBytes(commitCapturedTensor(entry.salt, entry.inputs[0]!), (records[0]!.record.body as InferenceBody).inputs[0]!.hash), `${label}: seq ${entry.seq} opens its record`)
    }
  }
  let v = 1
  for (let i = 0; i < 9; i++) {
    const frame = frames[0]!.fill(v)
    const { record } = await model.run({ x: new ort.Tensor('float32', frame, [n]) })
    value.set(record.record.seq, v++)
  }
  await check('one at a time')
  for (let round = 0; round < 4; round++) {
    const pending = frames.map(frame => {
      const mine = v++
      const p = model.run({ x: new ort.Tensor('float32', frame.fill(mine), [n]) }).then(r => { value.set(r.record.record.seq, mine) })
      frame.fill(-1)
      return p
    })
    await Promise.all(pending)
  }
  await check('four at once')
})

t.test('error: a run that leaves no record leaves nothing in the ring; its watcher is told so once', async t => {
  const ends: Array<string | undefined> = []
  const { ring, model, run } = await rig(t, {}, (r, inputs) => {
    const end = r.watch(inputs)
    return o => { ends.push(o === undefined ? undefined : String(o.record.record.seq)); end(o) }
  })
  // onnxruntime refuses the shape: no record.
  const wrong = new ort.Tensor('float32', new Float32Array(5), [1, 5])
  await t.rejects(model.run({ x: wrong }), { code: 'INFERENCE_FAILED' })
  // The run computed but its decision could not be made: no record either.
  const x = new ort.Tensor('float32', Float32Array.from([1, 2, 3, 4]), [1, 4])
  await t.rejects(model.run({ x }, { decide: () => { throw new Error('no decision') } }), /no decision/)
  t.same(ends, [undefined, undefined])
  t.equal(ring.size, 0)
  await run(0.5)
  t.same(ends, [undefined, undefined, '2'])
  t.same(ring.seqs, [2])
})

t.test('error: capture names are names, never paths; unknown ones are CAPTURE_NOT_FOUND', async t => {
  // Only the store's functions: no agent needed, just a state folder.
  const stateDir = join(await makeTempDir(t, 'prov-capture-'), 'state')
  await mkdir(stateDir)
  for (const name of ['../device-key.json', '/etc/passwd', 'x.capture', '000000000000001-0123456789abcdef.capture/..']) {
    const err = await readFrozenCapture(stateDir, name).catch(e => e)
    t.type(err, CaptureStoreError)
    t.equal(err.code, 'CAPTURE_NAME_INVALID', name)
    await t.rejects(deleteFrozenCapture(stateDir, name), { code: 'CAPTURE_NAME_INVALID' })
  }
  const missing = await readFrozenCapture(stateDir, '001700000000000-0123456789abcdef.capture').catch(e => e)
  t.equal(missing.code, 'CAPTURE_NOT_FOUND')
  t.same(await listFrozenCaptures(join(stateDir, 'nowhere')), [], 'no folder yet: nothing waits')
  t.throws(() => new CaptureRing({ stateDir, deviceId: DEVICE, maxEntries: 0 }), RangeError)
  t.throws(() => new CaptureRing({ stateDir, deviceId: DEVICE, maxBytes: -1 }), RangeError)
})
