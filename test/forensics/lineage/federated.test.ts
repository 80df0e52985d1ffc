/**
 * A real federated round: three device agents train logistic regression on their own synthetic data,
 * log their updates as data-capture records, and the aggregator averages the accepted ones into an
 * ONNX model the agent loads and runs. Forged, unregistered and revoked contributions are refused.
 */
import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import { ProvenanceAgent } from '../../../agent/session/index.js'
import { createSigner, signRecord, commitSample, sha256, toHex } from '../../../protocol/index.js'
import type { DeviceKeyLookup } from '../../../forensics/lineage/captures.js'
import { buildLogisticModel, predictLogistic, readLogisticWeights, trainLogistic } from '../../../forensics/lineage/fl-model.js'
import {
  aggregateRound, buildContribution, checkRound, encodeFlUpdate, flDatasetOf, parseRound, FL_CONTRIBUTIONS_FORMAT, FL_UPDATE_LABEL,
  type Contribution, type ContributionsFile
} from '../../../forensics/lineage/federated.js'
import { ForensicsError } from '../../../forensics/errors.js'
import { runCli } from '../../../forensics/cli.js'
import { makeTempDir } from '../../helpers/tmp.js'

const D = 3
const TRUE_W = [1.5, -2, 0.75]
const ROUND = 'round-1'
const trainer = createSigner(new Uint8Array(32).fill(0x51))

/** Deterministic samples of the rule y = [w·x > 0.1] (xorshift, seeded per device). */
function samples (seed: number, n: number): { xs: number[][], ys: number[] } {
  let s = seed >>> 0 || 1
  const next = (): number => { s ^= s << 13; s >>>= 0; s ^= s >> 17; s ^= s << 5; s >>>= 0; return s / 2 ** 32 * 2 - 1 }
  const xs = Array.from({ length: n }, () => Array.from({ length: D }, next))
  return { xs, ys: xs.map(x => x.reduce((a, v, i) => a + v * (TRUE_W[i] as number), 0) > 0.1 ? 1 : 0) }
}

interface Round {
  dir: string
  base: Uint8Array
  baseHash: string
  honest: Contribution[]
  forged: Contribution
  outsider: Contribution
  keys: Map<string, Uint8Array>
  agent: ProvenanceAgent
}

// One round for the whole file: three registered devices and one outsider, each a real agent.
const fixture = (async (): Promise<Round> => {
  const dir = await makeTempDir(t, 'prov-fl-')
  const base = buildLogisticModel({ inputSize: D, W: new Float32Array(D * 2), b: new Float32Array(2) })
  const baseHash = createHash('sha256').update(base).digest('hex')
  const keys = new Map<string, Uint8Array>()
  const agents: ProvenanceAgent[] = []
  const contribute = async (deviceId: string, seed: number, n: number): Promise<Contribution> => {
    const agent = await ProvenanceAgent.start({ stateDir: join(dir, deviceId), deviceId })
    agents.push(agent)
    keys.set(deviceId, agent.publicKey)
    const { xs, ys } = samples(seed, n)
    const weights = trainLogistic(readLogisticWeights(base), xs, ys, { epochs: 40 })
    const update = encodeFlUpdate({ roundId: ROUND, baseModelHash: baseHash, sampleCount: n, weights })
    const receipt = await agent.recordDataCapture(update, { dataset: flDatasetOf(ROUND), label: FL_UPDATE_LABEL })
    return buildContribution(receipt.record, receipt.salt, update)
  }
  const honest = [await contribute('cam-1', 11, 40), await contribute('cam-2', 22, 60), await contribute('cam-3', 33, 20)]
  // Records signed by keys the registry does not hold for their device id: an intruder's own (a
  // well-formed record of an unregistered device), and one claiming to be cam-1 (a forgery).
  const update = encodeFlUpdate({ roundId: ROUND, baseModelHash: baseHash, sampleCount: 1000, weights: { inputSize: D, W: new Float32Array(D * 2).fill(50), b: new Float32Array(2) } })
  const salt = new Uint8Array(32).fill(7)
  const signedAs = (deviceId: string, seed: number): Contribution => buildContribution(signRecord({
    deviceId, boot: 1, seq: 99, timeMs: Date.now(), prev: new Uint8Array(32),
    body: { kind: 'data-capture', commitment: commitSample(salt, sha256(update)), sizeBytes: update.byteLength, dataset: flDatasetOf(ROUND), label: FL_UPDATE_LABEL, capturedAtMs: 1 }
  }, createSigner(new Uint8Array(32).fill(seed))), salt, update)
  const outsider = signedAs('intruder-9', 0x65)
  const forged = signedAs('cam-1', 0x66)
  for (const a of agents.slice(1)) await a.stop()
  t.teardown(async () => { await agents[0]!.stop() })
  return { dir, base, baseHash, honest, forged, outsider, keys, agent: agents[0]! }
})()

const lookup = (keys: Map<string, Uint8Array>, revoked: string[] = []): DeviceKeyLookup =>
  async (id) => keys.has(id) ? { publicKey: keys.get(id)!, revoked: revoked.includes(id) } : undefined
const file = (contributions: Contribution[]): ContributionsFile => ({ format: FL_CONTRIBUTIONS_FORMAT, contributions })

t.test('behavior: FedAvg of three devices\' logged updates is a real ONNX model the agent loads, runs and that learned the rule', async t => {
  const r = await fixture
  const result = await aggregateRound({ baseModel: r.base, roundId: ROUND, contributions: file(r.honest), keyAt: lookup(r.keys), signer: trainer, name: 'speed-classifier', finishedAt: '2026-11-30T20:00:00Z' })
  t.same(result.checks.map(c => [c.deviceId, c.ok, c.sampleCount]), [['cam-1', true, 40], ['cam-2', true, 60], ['cam-3', true, 20]])
  t.same(result.statement.predicate.contributions.map(c => c.weight), [40 / 120, 60 / 120, 20 / 120], 'weights by sample count')
  t.equal(result.statement.predicate.baseModel.digest.sha256, r.baseHash)
  t.equal(result.modelHash, createHash('sha256').update(result.model).digest('hex'))
  // The averaged weights, recomputed here by hand from the three updates.
  const w = readLogisticWeights(result.model)
  const test = samples(999, 200)
  const accuracy = test.xs.filter((x, i) => (predictLogistic(w, x)[1] > 0.5 ? 1 : 0) === test.ys[i]).length / test.xs.length
  t.ok(accuracy > 0.85, `the averaged model classifies held-out samples (accuracy ${accuracy})`)
  const path = join(r.dir, 'round-1.onnx')
  await writeFile(path, result.model)
  const model = await r.agent.loadModel(path, { name: 'speed-classifier' })
  t.equal(toHex(model.fileHash), result.modelHash, 'the agent loads the very model the statement names')
  const x = test.xs[0] as number[]
  const { outputs } = await model.run({ x: new ort.Tensor('float32', Float32Array.from(x), [1, D]) })
  const probs = outputs.probs?.data as Float32Array
  t.ok(Math.abs((probs[1] as number) - predictLogistic(w, x)[1]) < 1e-5, 'onnxruntime computes what the weights say')
  // The statement checks out against the model, its contributions and a FedAvg recomputed from them.
  const round = parseRound(new TextEncoder().encode(JSON.stringify(result.envelope)))
  t.equal(round.statementHash, result.statementHash)
  const ok = await checkRound(round, { trainerKeys: [trainer.publicKey], modelHash: result.modelHash, registeredStatementHash: result.statementHash, contributions: file(r.honest), keyAt: lookup(r.keys), baseModel: r.base, model: result.model })
  t.same(ok.checks.filter(c => !c.ok), [], 'every check passes')
  t.equal(ok.checks.length, 7, 'signature, model, chain run, three contributions, aggregate')
})

t.test('attack: a forged contribution, one from an unregistered client and one from a revoked device are refused and not averaged', async t => {
  const r = await fixture
  const result = await aggregateRound({ baseModel: r.base, roundId: ROUND, contributions: file([...r.honest, r.forged, r.outsider]), keyAt: lookup(r.keys, ['cam-3']), signer: trainer, name: 'm' })
  t.same(result.checks.map(c => [c.deviceId, c.reason ?? 'ok']), [['cam-1', 'ok'], ['cam-2', 'ok'], ['cam-3', 'DEVICE_REVOKED'], ['cam-1', 'SIGNATURE_INVALID'], ['intruder-9', 'DEVICE_UNKNOWN']])
  t.same(result.statement.predicate.contributions.map(c => c.deviceId), ['cam-1', 'cam-2'])
  t.equal(result.statement.predicate.totalSamples, 100)
  // A replayed contribution and one for another round count once / not at all.
  const again = await aggregateRound({ baseModel: r.base, roundId: 'round-2', contributions: file([r.honest[0]!]), keyAt: lookup(r.keys), signer: trainer, name: 'm' })
    .catch((e: unknown) => e)
  t.match(again, { constructor: ForensicsError, code: 'FL_NO_ACCEPTED_CONTRIBUTION' }, 'a round-1 update is not a round-2 contribution')
  const dup = await aggregateRound({ baseModel: r.base, roundId: ROUND, contributions: file([r.honest[0]!, r.honest[0]!]), keyAt: lookup(r.keys), signer: trainer, name: 'm' })
  t.same(dup.checks.map(c => c.reason ?? 'ok'), ['ok', 'DUPLICATE'])
})

t.test('attack: a tampered update, a statement by an unknown key and a model that is not the average are named', async t => {
  const r = await fixture
  const result = await aggregateRound({ baseModel: r.base, roundId: ROUND, contributions: file(r.honest), keyAt: lookup(r.keys), signer: trainer, name: 'm' })
  const round = parseRound(new TextEncoder().encode(JSON.stringify(result.envelope)))
  // cam-2's update with one weight changed: its record no longer commits to it.
  const bytes = Buffer.from(r.honest[1]!.update, 'base64')
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 1
  const tampered = file([r.honest[0]!, { ...r.honest[1]!, update: bytes.toString('base64') }, r.honest[2]!])
  const bad = await checkRound(round, { trainerKeys: [createSigner(new Uint8Array(32).fill(1)).publicKey], modelHash: result.modelHash, registeredStatementHash: null, contributions: tampered, keyAt: lookup(r.keys), baseModel: r.base, model: buildLogisticModel(readLogisticWeights(r.base)) })
  t.same(bad.checks.filter(c => !c.ok).map(c => [c.check, c.reason]), [
    ['signature', 'TRAINER_UNKNOWN'], ['training run (chain)', 'TRAINING_RUN_MISSING'], ['contribution cam-2#1', 'CONTRIBUTION_INVALID'], ['aggregate', 'AGGREGATE_MISMATCH']
  ])
  t.match(bad.contributions[1], { reason: 'COMMITMENT_MISMATCH' })
  t.throws(() => parseRound(new TextEncoder().encode('{"payloadType":"x","payload":"e30=","signatures":[{"sig":"AA=="}]}')), { constructor: ForensicsError, code: 'STATEMENT_INVALID' })
})

t.test('behavior: provenance fl aggregate writes the model and statement; fl contributors lists and checks them', async t => {
  const r = await fixture
  const p = (n: string): string => join(r.dir, n)
  await writeFile(p('base.onnx'), r.base)
  await writeFile(p('contributions.json'), JSON.stringify(file([...r.honest, r.outsider])))
  await writeFile(p('trainer.key'), '51'.repeat(32) + '\n', { mode: 0o600 })
  const deviceKeys = [...r.keys].map(([id, k]) => `${id}=${Buffer.from(k).toString('hex')}`).join(',')
  const agg = io()
  t.equal(await runCli(['fl', 'aggregate', '--base-model', p('base.onnx'), '--round', ROUND, '--contributions', p('contributions.json'), '--name', 'speed',
    '--key-file', p('trainer.key'), '--device-keys', deviceKeys, '--out', p('new.onnx'), '--statement', p('round.json'), '--json'], agg.io), 0, agg.err())
  const summary = JSON.parse(agg.out()) as { modelHash: string, accepted: number }
  t.equal(summary.accepted, 3)
  t.equal(createHash('sha256').update(await readFile(p('new.onnx'))).digest('hex'), summary.modelHash)
  const list = io()
  t.equal(await runCli(['fl', 'contributors', summary.modelHash, '--statement', p('round.json'), '--trainer-keys', toHex(trainer.publicKey),
    '--contributions', p('contributions.json'), '--device-keys', deviceKeys, '--model', p('new.onnx'), '--base-model', p('base.onnx')], list.io), 0, list.err())
  t.match(list.out(), /cam-2#1 {2}60 samples {2}weight 50\.0%/)
  t.match(list.out(), /ok {4}aggregate/)
  const revoked = io()
  t.equal(await runCli(['fl', 'contributors', summary.modelHash, '--statement', p('round.json'), '--trainer-keys', toHex(trainer.publicKey),
    '--contributions', p('contributions.json'), '--device-keys', deviceKeys.replace(/(cam-3=[0-9a-f]{64})/, '$1:revoked')], revoked.io), 1)
  t.match(revoked.err(), /^ROUND_INVALID: CONTRIBUTION_INVALID\n$/)
  const usage = io()
  t.equal(await runCli(['fl', 'contributors', 'nothex', '--statement', p('round.json')], usage.io), 2)
  const garbage = io()
  await writeFile(p('garbage.json'), '{"format":"nope"}')
  t.equal(await runCli(['fl', 'aggregate', '--base-model', p('base.onnx'), '--round', ROUND, '--contributions', p('garbage.json'), '--name', 'x',
    '--key-file', p('trainer.key'), '--device-keys', deviceKeys, '--out', p('x.onnx'), '--statement', p('x.json')], garbage.io), 1)
  t.match(garbage.err(), /^FL_CONTRIBUTIONS_INVALID: /)
  t.notMatch(garbage.err(), /\n {4}at /, 'no stack trace')
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

