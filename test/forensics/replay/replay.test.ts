import t from 'tap'
import { join } from 'node:path'
import { mkdir, writeFile, copyFile } from 'node:fs/promises'
import ort from 'onnxruntime-node'
import { replayCapture, ReplayError } from '../../../forensics/replay/index.js'
import {
  commitTensor, encodeCanonical, deriveSalt, encodeCapture, encodeRecord, fixedKey, sha256, toHex, verifyChain,
  verifyRecordSignature, CaptureError, captureTensor, type InferenceBody, type SignedRecord
} from '../../../protocol/index.js'
import { makeClassifierModel, makeClassifierVariant } from '../../helpers/onnx-models.js'
import { ChainBuilder, sampleBody } from '../../helpers/records.js'
import { makeTempDir } from '../../helpers/tmp.js'
import { editCapture, flipByte, runScenario } from '../../helpers/replay.js'

const TINY = { seed: 1 }
const tinyFeeds = [0.1, 0.5, 0.9].map(v => ({ x: new ort.Tensor('float32', Float32Array.from([v, 1 - v, v * 2, -v]), [1, 4]) }))

t.test('behavior: an honest capture of the tiny classifier replays ok, bit for bit', async t => {
  const s = await runScenario(t, makeClassifierModel(TINY), tinyFeeds)
  t.same(s.frozen.seqs, [2, 3, 4], 'the three runs after boot and model-load')
  const report = await replayCapture({ capture: s.frozen.bytes, records: s.records, modelPaths: new Map([[s.modelHashHex, s.modelPath]]) })
  t.same(report.entries.map(e => e.verdict), ['ok', 'ok', 'ok'])
  t.same(report.entries.map(e => e.replay.status), ['exact', 'exact', 'exact'])
  t.equal(report.summary.ok, true)
  t.equal(report.summary.exact, 3)
  t.equal(report.summary.deviceId, s.deviceId)
  t.equal(report.summary.reason, 'investigator request')
  t.equal(report.summary.captureSha256, s.frozen.sha256)
  t.same(report.summary.models, [{ modelHash: s.modelHashHex, status: 'loaded', path: s.modelPath }])
  t.equal(report.entries[0]?.recordHash, toHex((s.records.find(r => r.record.seq === 2) as SignedRecord).hash))
  // A run of a shredded subject (PROTOCOL.md §12.2) is reported as such, not opened, and is no failure.
  const shredded = await replayCapture({ capture: s.frozen.bytes, records: s.records, modelPaths: new Map([[s.modelHashHex, s.modelPath]]), shredded: [{ firstSeq: 3, lastSeq: 3 }] })
  t.same(shredded.entries.map(e => e.verdict), ['ok', 'shredded', 'ok'])
  t.equal(shredded.summary.ok, true)

  // The same through a folder searched by hash, among other files.
  const models = join(s.dir, 'models')
  await mkdir(models)
  await writeFile(join(models, 'other.onnx'), makeClassifierModel({ seed: 9 }))
  await writeFile(join(models, 'notes.txt'), 'not a model')
  await copyFile(s.modelPath, join(models, 'classifier-v1.onnx'))
  const viaDir = await replayCapture({ capture: s.frozen.bytes, records: s.records, modelPaths: models })
  t.same(viaDir.entries.map(e => e.verdict), ['ok', 'ok', 'ok'])
  t.equal(viaDir.summary.models[0]?.path, join(models, 'classifier-v1.onnx'))
})

t.test('error: one altered byte of a captured input, or of an output, breaks its commitment', async t => {
  const s = await runScenario(t, makeClassifierModel(TINY), tinyFeeds)
  const modelPaths = new Map([[s.modelHashHex, s.modelPath]])

  const badInput = editCapture(s.frozen.bytes, c => flipByte((c.entries[1] as { inputs: Array<{ data: Uint8Array }> }).inputs[0]!.data, 5))
  const r1 = await replayCapture({ capture: badInput, records: s.records, modelPaths })
  t.same(r1.entries.map(e => e.verdict), ['ok', 'input-mismatch', 'ok'])
  t.match(r1.entries[1]?.findings[0], { code: 'input-mismatch', tensor: 'x' })
  t.equal(r1.summary.ok, false)
  t.equal(r1.summary.counts['input-mismatch'], 1)

  const badOutput = editCapture(s.frozen.bytes, c => flipByte(c.entries[2]!.outputs[0]!.data, 0))
  const r2 = await replayCapture({ capture: badOutput, records: s.records, modelPaths })
  t.same(r2.entries.map(e => e.verdict), ['ok', 'ok', 'output-mismatch'])
  t.match(r2.entries[2]?.findings, [{ code: 'output-mismatch', tensor: 'probs' }, { code: 'replay-diverged', tensor: 'probs' }],
    'the honest replay also disagrees with the altered output')

  // A salt that is not the record's opens nothing.
  const badSalt = editCapture(s.frozen.bytes, c => flipByte(c.entries[0]!.salt, 31))
  const r3 = await replayCapture({ capture: badSalt, records: s.records, modelPaths })
  t.equal(r3.entries[0]?.verdict, 'input-mismatch')
  t.match(r3.entries[0]?.findings.map(f => f.code), ['input-mismatch', 'output-mismatch'])
})

t.test('error: another model file for the recorded hash is a model-mismatch; editing the record breaks its signature', async t => {
  const s = await runScenario(t, makeClassifierModel(TINY), tinyFeeds)
  const variantPath = join(s.dir, 'variant.onnx')
  const variant = makeClassifierVariant(TINY, { tensor: 'W', index: 0 })
  await writeFile(variantPath, variant)
  const report = await replayCapture({ capture: s.frozen.bytes, records: s.records, modelPaths: new Map([[s.modelHashHex, variantPath]]) })
  t.same(report.entries.map(e => e.verdict), ['model-mismatch', 'model-mismatch', 'model-mismatch'])
  t.same(report.summary.models, [{ modelHash: s.modelHashHex, status: 'mismatch', path: variantPath, fileHash: toHex(sha256(variant)) }])
  t.same(report.entries.map(e => e.replay.status), ['not-run', 'not-run', 'not-run'], 'bytes with another hash are never run')

  // The attacker rewrites the records to name the variant: the signatures no longer verify.
  const forged = s.records.map(r => r.record.body.kind !== 'inference'
    ? r
    : forge(r as SignedRecord<InferenceBody>, { ...(r.record.body), modelHash: sha256(variant) }))
  const target = forged.find(r => r.record.seq === 2) as SignedRecord
  t.notOk(verifyRecordSignature(target, s.publicKey, 'noble'), 'the edited record does not verify')
  const chain = verifyChain(forged, { deviceId: s.deviceId, keyAt: fixedKey(s.publicKey) })
  t.match(chain.failure, { reason: 'bad-signature', seq: 2 })
  t.equal(verifyChain(s.records, { deviceId: s.deviceId, keyAt: fixedKey(s.publicKey) }).failure, undefined, 'the honest chain verifies')
  // And even unchecked, replay does not bless it: the capture names the real model, and the variant's outputs differ.
  const viaForged = await replayCapture({ capture: s.frozen.bytes, records: forged, modelPaths: new Map([[toHex(sha256(variant)), variantPath]]) })
  t.same(viaForged.entries.map(e => e.verdict), ['model-mismatch', 'model-mismatch', 'model-mismatch'])
  t.ok(viaForged.entries.every(e => e.findings.some(f => f.code === 'replay-diverged')))
})

t.test('error: no file with the recorded hash is a model-missing; a missing folder is a typed error', async t => {
  const s = await runScenario(t, makeClassifierModel(TINY), tinyFeeds.slice(0, 1))
  const empty = join(s.dir, 'empty')
  await mkdir(empty)
  await writeFile(join(empty, 'other.onnx'), makeClassifierModel({ seed: 2 }))
  const r = await replayCapture({ capture: s.frozen.bytes, records: s.records, modelPaths: empty })
  t.same(r.entries.map(e => e.verdict), ['model-missing'])
  t.same(r.summary.models, [{ modelHash: s.modelHashHex, status: 'missing' }])
  const viaMap = await replayCapture({ capture: s.frozen.bytes, records: s.records, modelPaths: new Map() })
  t.same(viaMap.entries.map(e => e.verdict), ['model-missing'])
  const err = await replayCapture({ capture: s.frozen.bytes, records: s.records, modelPaths: join(s.dir, 'nope') }).catch(e => e)
  t.type(err, ReplayError)
  t.equal(err.code, 'REPLAY_MODELS_UNREADABLE')
})

t.test('error: runs whose record is absent, of another device, not an inference, or contradicted are record-missing', async t => {
  const s = await runScenario(t, makeClassifierModel(TINY), tinyFeeds)
  const modelPaths = new Map([[s.modelHashHex, s.modelPath]])
  const without3 = s.records.filter(r => r.record.seq !== 3)
  const r1 = await replayCapture({ capture: s.frozen.bytes, records: without3, modelPaths })
  t.same(r1.entries.map(e => e.verdict), ['ok', 'record-missing', 'ok'])

  const other = await replayCapture({ capture: editCapture(s.frozen.bytes, c => { c.deviceId = 'dev-other' }), records: s.records, modelPaths })
  t.same(other.entries.map(e => e.verdict), ['record-missing', 'record-missing', 'record-missing'], 'records of another device are not evidence')

  const renumbered = editCapture(s.frozen.bytes, c => { c.entries[0]!.seq = 1 }) // seq 1 is the model-load record
  const r2 = await replayCapture({ capture: renumbered, records: s.records, modelPaths })
  t.equal(r2.entries[0]?.verdict, 'record-missing')
  t.match(r2.entries[0]?.findings[0]?.message, /model-load record, not an inference/)

  const dup = s.records.find(r => r.record.seq === 4) as SignedRecord<InferenceBody>
  const conflicting = [...s.records, forge(dup, { ...dup.record.body, decision: 'forged' })]
  const r3 = await replayCapture({ capture: s.frozen.bytes, records: [...conflicting, dup], modelPaths })
  t.same(r3.entries.map(e => e.verdict), ['ok', 'ok', 'record-missing'])
  t.match(r3.entries[2]?.findings[0]?.message, /two different records/)
  const repeated = await replayCapture({ capture: s.frozen.bytes, records: [...s.records, ...s.records], modelPaths })
  t.equal(repeated.summary.ok, true, 'a record delivered twice is the same record')
})

t.test('behavior: a device that ran other weights than it recorded is caught by the replay (replay-diverged)', async t => {
  // Built by hand: the record and capture are consistent with each other, but the outputs came
  // from the variant while the record names the original model.
  const dir = await makeTempDir(t, 'prov-replay-')
  const original = makeClassifierModel(TINY)
  const originalPath = join(dir, 'original.onnx')
  await writeFile(originalPath, original)
  const session = await ort.InferenceSession.create(makeClassifierVariant(TINY, { tensor: 'b', index: 1, delta: 2 }))
  t.teardown(async () => await session.release())
  const x = tinyFeeds[0]!.x
  const outputs = await session.run({ x })
  const { capture, records } = forgeRun(sha256(original), { x }, { probs: outputs.probs as ort.Tensor })
  const report = await replayCapture({ capture, records, modelPaths: new Map([[toHex(sha256(original)), originalPath]]) })
  t.equal(report.entries[0]?.verdict, 'replay-diverged')
  t.equal(report.entries[0]?.replay.status, 'diverged')
  t.ok((report.entries[0]?.replay.maxAbsDiff ?? 0) > 0.01)
  // A tolerance far below the change still calls it.
  const tolerant = await replayCapture({ capture, records, modelPaths: originalPath.replace(/original\.onnx$/, ''), tolerance: { absolute: 1e-4, relative: 1e-4 } })
  t.equal(tolerant.entries[0]?.verdict, 'replay-diverged')
})

t.test('behavior: outputs that differ in the last bits (another platform) pass only within a stated tolerance', async t => {
  const dir = await makeTempDir(t, 'prov-replay-')
  const model = makeClassifierModel(TINY)
  const modelPath = join(dir, 'model.onnx')
  await writeFile(modelPath, model)
  const session = await ort.InferenceSession.create(model)
  t.teardown(async () => await session.release())
  const x = tinyFeeds[1]!.x
  const probs = (await session.run({ x })).probs as ort.Tensor
  // What a GPU might have answered: each probability one float32 ulp away.
  const nudged = Float32Array.from(probs.data as Float32Array)
  const bits = new Uint32Array(nudged.buffer)
  for (let i = 0; i < bits.length; i++) bits[i] = (bits[i] as number) + 1
  const { capture, records } = forgeRun(sha256(model), { x }, { probs: new ort.Tensor('float32', nudged, probs.dims) })
  const modelPaths = new Map([[toHex(sha256(model)), modelPath]])

  const exact = await replayCapture({ capture, records, modelPaths })
  t.equal(exact.entries[0]?.verdict, 'replay-diverged', 'no tolerance: exact match required')
  t.ok((exact.entries[0]?.replay.maxRelDiff ?? 1) < 1e-6, 'and the report shows how small the difference is')

  const tolerant = await replayCapture({ capture, records, modelPaths, tolerance: { relative: 1e-6 } })
  t.equal(tolerant.entries[0]?.verdict, 'ok')
  t.equal(tolerant.entries[0]?.replay.status, 'within-tolerance')
  t.equal(tolerant.summary.withinTolerance, 1)
  t.equal(tolerant.summary.exact, 0)
  t.same(tolerant.summary.tolerance, { absolute: 0, relative: 1e-6 })

  for (const bad of [{ absolute: -1 }, { relative: Number.NaN }, { absolute: Infinity }]) {
    await t.rejects(replayCapture({ capture, records, modelPaths, tolerance: bad }), RangeError)
  }
})

t.test('error: a capture that is not one is a typed CaptureError before anything runs', async t => {
  const err = await replayCapture({ capture: new Uint8Array([0x85, 0x01]), records: [], modelPaths: new Map() }).catch(e => e)
  t.type(err, CaptureError)
  t.equal(err.code, 'CAPTURE_MALFORMED')
  const big = await replayCapture({ capture: new Uint8Array(100), records: [], modelPaths: new Map(), maxCaptureBytes: 99 }).catch(e => e)
  t.type(big, CaptureError)
  t.equal(big.code, 'CAPTURE_TOO_LARGE')
})

/** The record with a new body, keeping the old signature (what an attacker without the key can do). */
function forge (r: SignedRecord<InferenceBody>, body: InferenceBody): SignedRecord<InferenceBody> {
  const record = { ...r.record, body }
  const recordBytes = encodeRecord(record)
  const envelope = encodeCanonical([recordBytes, r.signature])
  return { record, recordBytes, signature: r.signature, envelope, hash: sha256(envelope) }
}

/** A device's signed record and capture of one run, with whatever tensors and model hash it claims. */
function forgeRun (modelHash: Uint8Array, feeds: Record<string, ort.Tensor>, outputs: Record<string, ort.Tensor>): { capture: Uint8Array, records: SignedRecord[] } {
  const secret = new Uint8Array(32).fill(7)
  const b = new ChainBuilder({ deviceId: 'dev-forged' })
  b.append(sampleBody('boot'))
  const seq = b.seq
  const salt = deriveSalt(secret, seq)
  const commit = (m: Record<string, ort.Tensor>): Array<{ name: string, hash: Uint8Array }> =>
    Object.keys(m).sort().map(n => ({ name: n, hash: commitTensor(salt, n, m[n] as ort.Tensor) }))
  b.append({ kind: 'inference', modelHash, inputs: commit(feeds), outputs: commit(outputs), latencyUs: 100, decision: null })
  const capture = encodeCapture({
    deviceId: 'dev-forged',
    reason: 'test',
    frozenAtMs: 1_700_000_000_000,
    entries: [{
      seq,
      salt,
      modelHash,
      inputs: Object.keys(feeds).sort().map(n => captureTensor(n, feeds[n] as ort.Tensor)),
      outputs: Object.keys(outputs).sort().map(n => captureTensor(n, outputs[n] as ort.Tensor))
    }]
  })
  return { capture, records: b.records }
}
