/**
 * provenance trace, end to end without a chain: a device runs a model trained on a dataset of field
 * captures and a model from a federated round; the trace walks from each inference record to the
 * dataset files, captures and contributing devices, and names the reason when a link is broken.
 * One fixture (two real agents) for the file; the HTML lineage diagram is checked in Chromium.
 */
import t from 'tap'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import { ProvenanceAgent } from '../../../agent/session/index.js'
import { createSigner, toHex, type BundleModel, type ModelLoadBody, type SignedRecord } from '../../../protocol/index.js'
import { buildCaptures } from '../../../forensics/lineage/captures.js'
import { buildLogisticModel, readLogisticWeights, trainLogistic } from '../../../forensics/lineage/fl-model.js'
import { aggregateRound, buildContribution, encodeFlUpdate, flDatasetOf, FL_CONTRIBUTIONS_FORMAT, FL_UPDATE_LABEL, type Contribution } from '../../../forensics/lineage/federated.js'
import { encodeManifest, hashTree } from '../../../forensics/lineage/manifest.js'
import { buildTrainingStatement, signTrainingStatement } from '../../../forensics/lineage/training.js'
import { traceRecord, formatTrace, type TraceOptions, type TraceNode } from '../../../forensics/lineage/trace.js'
import { runCli } from '../../../forensics/cli.js'
import { makeTempDir } from '../../helpers/tmp.js'
import { offlineBundle } from '../../helpers/forensics-fixture.js'
import type { ChainBuilder } from '../../helpers/records.js'
import { runChromium as chromium, hasChromium } from '../../helpers/chromium.js'

const trainer = createSigner(new Uint8Array(32).fill(0x51))
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
const rows = [[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.1, 0.6]]
const labels = [1, 0, 1, 0]

const fixture = (async () => {
  const dir = await makeTempDir(t, 'prov-trace-')
  const cam = await ProvenanceAgent.start({ stateDir: join(dir, 'cam'), deviceId: 'cam-7' })
  const edge = await ProvenanceAgent.start({ stateDir: join(dir, 'edge'), deviceId: 'edge-1' })
  t.teardown(async () => { await edge.stop(); await cam.stop() })
  // The dataset: samples the camera kept, each with its data-capture record.
  const entries = []
  await mkdir(join(dir, 'data'))
  for (const [i, x] of rows.entries()) {
    const bytes = new TextEncoder().encode(`${x.join(',')},${labels[i] as number}\n`)
    const name = `s${i}.csv`
    await writeFile(join(dir, 'data', name), bytes)
    const receipt = await cam.recordDataCapture(bytes, { dataset: 'speeds', label: String(labels[i]) })
    entries.push({ name, record: receipt.record, salt: receipt.salt })
  }
  const manifest = await hashTree(join(dir, 'data'), { name: 'speeds', workers: 1 })
  const manifestBytes = new TextEncoder().encode(encodeManifest(manifest))
  // Model A: trained centrally on the dataset, with a signed training-run statement.
  const zero = buildLogisticModel({ inputSize: 2, W: new Float32Array(4), b: new Float32Array(2) })
  const modelA = buildLogisticModel(trainLogistic(readLogisticWeights(zero), rows, labels, { epochs: 30 }))
  const run = signTrainingStatement(buildTrainingStatement({
    datasets: [{ name: 'speeds', version: '1.0.0', digest: { sha256: manifest.subject[0].digest.sha256 } }],
    baseModelHash: null, outputModel: { name: 'speed-a', hash: sha(modelA) }, hyperparameters: { epochs: 30, learningRate: 0.5 },
    codeRevision: 'git:abc123', environment: { node: '20' }, startedAt: '2026-11-30T19:00:00Z', finishedAt: '2026-11-30T19:01:00Z'
  }), trainer)
  // Model B: a federated round of both devices' updates.
  const contributions: Contribution[] = []
  for (const [agent, part] of [[cam, rows.slice(0, 2)], [edge, rows.slice(2)]] as const) {
    const weights = trainLogistic(readLogisticWeights(zero), part, part === rows.slice(0, 2) ? labels.slice(0, 2) : labels.slice(2), { epochs: 20 })
    const update = encodeFlUpdate({ roundId: 'r1', baseModelHash: sha(zero), sampleCount: part.length, weights })
    const receipt = await agent.recordDataCapture(update, { dataset: flDatasetOf('r1'), label: FL_UPDATE_LABEL })
    contributions.push(buildContribution(receipt.record, receipt.salt, update))
  }
  const keys = new Map([['cam-7', cam.publicKey], ['edge-1', edge.publicKey]])
  const keyAt: TraceOptions['keyAt'] = async (id) => keys.has(id) ? { publicKey: keys.get(id)!, revoked: false } : undefined
  const round = await aggregateRound({ baseModel: zero, roundId: 'r1', contributions: { format: FL_CONTRIBUTIONS_FORMAT, contributions }, keyAt, signer: trainer, name: 'speed-b' })
  // The edge device runs both models; its records become the bundle.
  const seqs: Record<string, number> = {}
  const models: BundleModel[] = []
  for (const [name, bytes] of [['speed-a', modelA], ['speed-b', round.model]] as const) {
    await writeFile(join(dir, `${name}.onnx`), bytes)
    const model = await edge.loadModel(join(dir, `${name}.onnx`), { name })
    const { record } = await model.run({ x: new ort.Tensor('float32', Float32Array.from([0.8, 0.2]), [1, 2]) }, { decide: () => 'fast' })
    seqs[name] = record.record.seq
    models.push({ hash: sha(bytes), name, version: '1.0.0', parentHash: null, manifestHash: toHex((model.loadRecord.record.body as ModelLoadBody).manifestHash), status: 'approved', metadataUri: '' })
  }
  const records: SignedRecord[] = []
  for await (const r of edge.log.iterate(0, edge.log.head.seq)) records.push(r)
  const bundle = offlineBundle({ deviceId: 'edge-1', records, keys: [{ publicKey: edge.publicKey, validFromMs: 0 }] } as unknown as ChainBuilder, models)
  const base: TraceOptions = {
    bundle, seq: seqs['speed-a']!, verify: { offline: true }, statements: [new TextEncoder().encode(JSON.stringify(run)), new TextEncoder().encode(JSON.stringify(round.envelope))],
    trainerKeys: [trainer.publicKey], datasets: [{ name: 'speeds', manifest: manifestBytes, dir: join(dir, 'data'), captures: buildCaptures(entries) }],
    contributions: { format: FL_CONTRIBUTIONS_FORMAT, contributions }, keyAt
  }
  return { dir, base, seqs, keys, manifestBytes, runHash: sha(Buffer.from(run.payload, 'base64')) }
})()

const kinds = (n: TraceNode): string[] => [n.kind, ...n.children.flatMap(kinds)]
const failures = (n: TraceNode): Array<[string, string]> => [...(n.ok ? [] : [[n.kind, n.reason as string] as [string, string]]), ...n.children.flatMap(failures)]

t.test('behavior: an inference traces, every link verified, to its training run, dataset files and the device captures behind them', async t => {
  const f = await fixture
  const trace = await traceRecord(f.base)
  t.same(trace.broken, [], formatTrace(trace))
  t.same(kinds(trace.root), ['record', 'model-load', 'model', 'training-run', 'dataset', 'capture', 'capture', 'capture', 'capture'])
  t.match(trace.root.label, /inference edge-1:\d+ decision "fast"/)
  t.match(formatTrace(trace), /└─ ok {2}s3\.csv by cam-7:4/)
})

t.test('behavior: an inference of the federated model traces to the round and each contributing device', async t => {
  const f = await fixture
  const trace = await traceRecord({ ...f.base, seq: f.seqs['speed-b']! })
  t.same(trace.broken, [], formatTrace(trace))
  t.same(kinds(trace.root), ['record', 'model-load', 'model', 'fl-round', 'contribution', 'contribution', 'model'])
  const revoked = await traceRecord({ ...f.base, seq: f.seqs['speed-b']!, keyAt: async (id) => ({ publicKey: f.keys.get(id)!, revoked: id === 'cam-7' }) })
  t.same(failures(revoked.root), [['contribution', 'CONTRIBUTION_INVALID']], 'a contribution from a revoked device breaks its link')
})

t.test('attack: a changed dataset file, a tampered manifest, an unknown trainer key and a mismatched registered run are named', async t => {
  const f = await fixture
  await writeFile(join(f.dir, 'data', 's1.csv'), 'tampered\n')
  const changed = await traceRecord(f.base)
  await writeFile(join(f.dir, 'data', 's1.csv'), `${(rows[1] as number[]).join(',')},0\n`)
  t.same(failures(changed.root), [['dataset', 'DATASET_CHANGED']])
  t.match(changed.broken[0], /dataset speeds@1\.0\.0: DATASET_CHANGED/)
  t.match(formatTrace(changed), /changed s1\.csv/)
  // A manifest edited to list other bytes for a file: its root no longer matches its resources.
  const m = JSON.parse(Buffer.from(f.manifestBytes).toString('utf8')) as { predicate: { resources: Array<{ digest: string }> }, subject: Array<{ digest: { sha256: string } }> }
  m.predicate.resources[0]!.digest = '00'.repeat(32)
  const edited = { ...f.base, datasets: [{ ...f.base.datasets![0]!, manifest: new TextEncoder().encode(JSON.stringify(m)) }] }
  t.same(failures((await traceRecord(edited)).root), [['dataset', 'MANIFEST_INVALID']])
  // ... and one whose root was recomputed to match: it is no longer the dataset the run names.
  const dir2 = await makeTempDir(t, 'prov-trace-other-')
  await writeFile(join(dir2, 's0.csv'), 'other\n')
  const other = await hashTree(dir2, { name: 'speeds', workers: 1 })
  const swapped = { ...f.base, datasets: [{ name: 'speeds', manifest: new TextEncoder().encode(encodeManifest(other)) }] }
  t.same(failures((await traceRecord(swapped)).root), [['dataset', 'DATASET_MISMATCH']])
  t.same(failures((await traceRecord({ ...f.base, datasets: [], trainerKeys: [createSigner(new Uint8Array(32).fill(3)).publicKey] })).root),
    [['training-run', 'TRAINER_UNKNOWN'], ['dataset', 'DATASET_NOT_GIVEN']])
  const chain = async (hash: string | null): Promise<TraceNode> => (await traceRecord({ ...f.base, lineageFacts: async () => ({ trainerKeys: [trainer.publicKey], registeredStatementHash: hash }) })).root
  t.same(failures(await chain('11'.repeat(32))), [['training-run', 'TRAINING_RUN_MISMATCH']])
  t.same(failures(await chain(null)), [['training-run', 'TRAINING_RUN_MISSING']])
  t.same(failures(await chain(f.runHash)), [], 'the attached run is this statement')
})

t.test('behavior: provenance trace prints the tree, exits 1 with TRACE_BROKEN, and writes the report with the lineage diagram', { skip: !hasChromium }, async t => {
  const f = await fixture
  const p = (n: string): string => join(f.dir, n)
  await writeFile(p('bundle.json'), JSON.stringify(f.base.bundle))
  await writeFile(p('run.json'), f.base.statements[0]!)
  await writeFile(p('round.json'), f.base.statements[1]!)
  await writeFile(p('manifest.json'), f.manifestBytes)
  await writeFile(p('captures.json'), JSON.stringify(f.base.datasets![0]!.captures))
  const deviceKeys = [...f.keys].map(([id, k]) => `${id}=${toHex(k)}`).join(',')
  const args = (seq: number): string[] => ['trace', p('bundle.json'), '--offline', '--record', `edge-1:${seq}`, '--statements', `${p('run.json')},${p('round.json')}`,
    '--trainer-keys', toHex(trainer.publicKey), '--datasets', `speeds=${p('manifest.json')}=${p('data')}`, '--captures', `speeds=${p('captures.json')}`, '--device-keys', deviceKeys]
  const ok = io()
  t.equal(await runCli([...args(f.seqs['speed-a']!), '--html', p('trace.html')], ok.io), 0, ok.err())
  t.match(ok.out(), /TRACE OK: every link verified/)
  const dom = await chromium(t, ['--dump-dom', `file://${p('trace.html')}`])
  t.match(dom, /<section id="lineage">/)
  t.match(dom, /<svg class="lineage" role="img"/)
  t.equal((dom.match(/<g class="node ok"/g) ?? []).length, 9, 'one box per link')
  // The round without its contributions file: those links are unchecked, and said so.
  const broken = io()
  t.equal(await runCli([...args(f.seqs['speed-b']!), '--json'], broken.io), 1)
  t.match(broken.err(), /^TRACE_BROKEN: contribution cam-7:\d+ .*CONTRIBUTION_UNCHECKED/)
  t.equal((JSON.parse(broken.out()) as { ok: boolean }).ok, false)
  const html = io()
  t.equal(await runCli([...args(f.seqs['speed-b']!), '--html', p('broken.html')], html.io), 1)
  // The same markup, not rendered again: Chromium showed above that it parses as drawn.
  t.equal(((await readFile(p('broken.html'), 'utf8')).match(/<g class="node fail"/g) ?? []).length, 2, 'the unchecked contributions are red')
  const usage = io()
  t.equal(await runCli(['trace', p('bundle.json'), '--offline', '--record', 'other-device:1'], usage.io), 2)
  const unknown = io()
  t.equal(await runCli(['trace', p('bundle.json'), '--offline', '--record', 'edge-1:999'], unknown.io), 1)
  t.match(unknown.err(), /^TRACE_RECORD_UNKNOWN: /)
})

function io (): { io: Parameters<typeof runCli>[1] & object, out: () => string, err: () => string } {
  let out = ''
  let err = ''
  return {
    io: { stdout: (s: string) => { out += s }, stderr: { write: (s: string) => { err += s; return true }, isTTY: false }, env: {} },
    out: () => out,
    err: () => err
  }
}
