// The timeline of a device from a bundle: boots and reboots, model loads named by the registry
// facts, inferences per model per interval, decision counts, declared and undeclared gaps, key
// rotations (fingerprints only) and shutdowns, within a time window. No chain needed.
import t from 'tap'
import { createSigner, sha256, toHex } from '../../protocol/index.js'
import { buildTimeline, chooseInterval, MAX_TIMELINE_BUCKETS } from '../../forensics/timeline/index.js'
import { makeMixedChain, seedFrom, TEST_START_TIME_MS } from '../helpers/records.js'
import { MODEL_0, MODEL_1, clone, offlineBundle } from '../helpers/forensics-fixture.js'

// makeMixedChain: boot 0, model-load 1 (model 0), inferences 2-5, dropped 6-7, gap 8, inference 9,
// rotation 10, inferences 11-14 (14 without decision), shutdown 15, boot 16, model-load 17
// (model 1), inferences 18-21. One record per second from TEST_START_TIME_MS.
const builder = makeMixedChain()
const bundle = offlineBundle(builder)
const at = (seq: number): number => TEST_START_TIME_MS + seq * 1000

t.test('behavior: boots, reboots, model loads, gaps, rotations and shutdowns, in order', async t => {
  const tl = buildTimeline(bundle)
  t.equal(tl.records, 20)
  t.equal(tl.malformed, 0)
  t.same(tl.boots.map(b => [b.seq, b.boot]), [[0, 1], [16, 2]])
  t.same(tl.reboots, [{ seq: 16, timeMs: at(16), fromBoot: 1, toBoot: 2, clean: true }])
  t.match(tl.modelLoads, [
    { seq: 1, modelHash: MODEL_0, name: 'detector', version: '1.0.0', status: 'approved', file: 'detector-v0.onnx', policy: 'approved', providers: ['CPUExecutionProvider'] },
    { seq: 17, modelHash: MODEL_1, name: 'detector', version: '1.1.0' }
  ])
  t.same(tl.gaps, [{ seq: 8, timeMs: at(8), firstSeq: 6, lastSeq: 7, reason: 'disk-budget' }])
  t.same(tl.missing, [], 'the only seq jump is declared')
  t.same(tl.shutdowns, [{ seq: 15, timeMs: at(15), reason: 'sigterm' }])
  const rotated = createSigner(seedFrom('rotated')).publicKey
  t.same(tl.keyRotations, [{ seq: 10, timeMs: at(10), keyFingerprint: toHex(sha256(rotated)).slice(0, 16), validFromMs: at(11) }])
  t.notMatch(JSON.stringify(tl), toHex(rotated), 'fingerprints, never keys')
})

t.test('behavior: inferences per model and per interval, and decision counts', async t => {
  const tl = buildTimeline(bundle, { intervalMs: 5000 })
  t.equal(tl.inferences, 13)
  t.match(tl.models, [{ modelHash: MODEL_0, inferences: 9, firstMs: at(2), lastMs: at(14) }, { modelHash: MODEL_1, inferences: 4, firstMs: at(18), lastMs: at(21) }])
  t.equal(tl.intervalMs, 5000)
  t.equal(tl.startMs, TEST_START_TIME_MS)
  t.same(tl.buckets.map(b => b.total), [3, 2, 4, 2, 2], 'seqs 2-4 | 5, 9 | 11-14 | 18-19 | 20-21')
  t.same(tl.buckets[4]?.byModel, { [MODEL_1]: 2 })
  t.same(tl.buckets[1]?.byModel, { [MODEL_0]: 2 })
  t.equal(tl.buckets.reduce((n, b) => n + b.total, 0), tl.inferences)
  t.same(tl.decisions, [{ decision: 'class-0', count: 5 }, { decision: 'class-2', count: 4 }, { decision: 'class-1', count: 3 }, { decision: null, count: 1 }])
  t.same(tl.otherDecisions, { distinct: 0, count: 0 })
  t.equal(buildTimeline(bundle).intervalMs, 1000, 'default: a round width giving at most 48 buckets over 22 s')
  t.equal(chooseInterval(86_400_000, 48), 1_800_000)
  t.equal(chooseInterval(86_400_001, 48), 3_600_000)
})

t.test('behavior: a window keeps its records only; undeclared seq jumps are listed as missing', async t => {
  const tl = buildTimeline(bundle, { fromMs: at(16), toMs: at(19) })
  t.equal(tl.records, 4)
  t.same(tl.boots.map(b => b.seq), [16])
  t.same(tl.reboots.map(r => r.seq), [16], 'the record before the window still tells the boot counter')
  t.same(tl.modelLoads.map(m => m.seq), [17])
  t.equal(tl.inferences, 2)
  t.same(tl.shutdowns, [])
  t.same([tl.fromMs, tl.toMs], [at(16), at(19)])
  const b = clone(bundle)
  b.records.splice(11, 2) // seqs 13 and 14
  b.records[0] = 'AAAA' // not an envelope
  const cut = buildTimeline(b)
  t.same(cut.missing, [{ firstSeq: 13, lastSeq: 14 }])
  t.equal(cut.malformed, 1)
  t.match(buildTimeline({ ...bundle, models: [] }).modelLoads, [{ name: null, version: null, status: 'none' }, { name: null }], 'no facts: unnamed')
})

t.test('error: bad windows and intervals are RangeError; a bad bundle is BundleError', async t => {
  t.throws(() => buildTimeline(bundle, { intervalMs: 0 }), RangeError)
  t.throws(() => buildTimeline(bundle, { fromMs: -5 }), RangeError)
  t.throws(() => buildTimeline(bundle, { fromMs: 0, toMs: MAX_TIMELINE_BUCKETS * 1000 * 10, intervalMs: 1 }), RangeError)
  t.throws(() => buildTimeline({ ...bundle, records: [1] } as never), { code: 'BUNDLE_INVALID' })
  const empty = buildTimeline(bundle, { fromMs: 1, toMs: 2 })
  t.equal(empty.records, 0)
  t.equal(empty.buckets.length, 1)
})
