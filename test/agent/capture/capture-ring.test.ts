import t from 'tap'
import { join } from 'node:path'
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import ort from 'onnxruntime-node'
import { ProvenanceAgent, type Logger } from '../../../agent/session/index.js'
import {
  CaptureRing, CaptureStoreError, CAPTURE_FILE_PATTERN, capturesDir, deleteFrozenCapture, listFrozenCaptures, readFrozenCapture,
  type CaptureRingOptions
} from '../../../agent/capture/index.js'
import { commitCapturedTensor, decodeCapture, equalBytes, sizeCaptureEntry, type InferenceBody, type SignedRecord } from '../../../protocol/index.js'
import { makeClassifierModel } from '../../helpers/onnx-models.js'
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
  run: (v: number, decision?: string) => Promise<SignedRecord>
  logger: Logger & { lines: string[] }
  /** Another ring, with its own logger, observing this agent's runs from now on (a model load costs ~1 s of CPU). */
  swapRing: (options: Partial<CaptureRingOptions>) => { ring: CaptureRing, logger: Logger & { lines: string[] } }
}

/** A real agent running the tiny classifier, with a ring observing its runs. */
async function rig (t: { teardown: (fn: () => unknown) => void }, options: Partial<CaptureRingOptions> = {}, onRunThrows = false): Promise<Rig> {
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
    onRun: run => { if (onRunThrows) throw new Error('observer broke'); ring.observe(run) }
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
  return { stateDir, ring, agent, run, logger, swapRing }
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
  const broken = await rig(t, {}, true)
  const record = await broken.run(0.1)
  t.equal(record.record.seq, 2, 'the run resolved with its record')
  t.ok(broken.logger.lines.some(l => l.includes('onRun hook failed')))

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
