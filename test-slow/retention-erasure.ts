// Issue 16's must-show for retention and erasure, against the real Mosquitto, gateway and anvil: a
// device's oldest records pruned by the gateway's retention policy (refused before retention) and
// a data subject crypto-shredded on the device; the exported bundle verifies VALID online and
// offline, with the pruned range and the shredded records shown as such.
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import { deviceIdOf } from '../contracts/index.js'
import { ProvenanceAgent } from '../agent/session/index.js'
import { KeyError, SubjectKeyStore, loadOrCreateDeviceKey } from '../agent/keys/index.js'
import { Uplink } from '../agent/uplink/index.js'
import { exportBundle, verifyBundle } from '../forensics/index.js'
import { commitTensor, sha256, type InferenceBody } from '../protocol/index.js'
import { GatewayError } from '../gateway/errors.js'
import { loadOrCreateLogKey } from '../gateway/keys/index.js'
import { DAY_MS, Pruner } from '../gateway/retention/index.js'
import { GatewayStore } from '../gateway/store/index.js'
import { startGatewayEnv } from '../test/fixtures/gateway-env.js'
import { makeClassifierModel } from '../test/helpers/onnx-models.js'

async function waitFor (what: string, check: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

t.test('behavior: a pruned range and a shredded subject show as such, and the verdict is VALID', async t => {
  const env = await startGatewayEnv(t)
  const name = 'gw-ret'
  let gateway = await env.gateway({ name })
  const id = 'cam-0001'
  const modelPath = join(env.dir, 'tiny.onnx')
  const modelBytes = makeClassifierModel({ seed: 3 })
  await writeFile(modelPath, modelBytes)
  const publisher = env.chain.registryAs('modelPublisher')
  await publisher.registerModel({ modelHash: sha256(modelBytes), name: 'tiny', version: '1' })
  await publisher.approveModel(sha256(modelBytes))
  const stateDir = join(env.dir, id)
  const key = await loadOrCreateDeviceKey(join(stateDir, 'device-key.json'), { create: true })
  const subjectKeys = await SubjectKeyStore.open({ path: join(stateDir, 'subject-keys.json'), secret: key.saltSecret })
  const agent = await ProvenanceAgent.start({ stateDir, deviceId: id, key, subjectKeys })
  await env.chain.registryAs('deviceRegistrar').registerDevice({ deviceId: deviceIdOf(id), publicKey: agent.publicKey, validFromMs: 0 })
  const model = await agent.loadModel(modelPath, { name: 'tiny' })
  const uplink = new Uplink({ log: agent.log, deviceId: id, brokerUrl: env.broker.url, batchRecords: 64, reconnectMinMs: 50, reconnectMaxMs: 300, ackTimeoutMs: 2000, gatewayPublicKeys: [gateway.logPublicKey as Uint8Array] })
  t.teardown(async () => { await uplink.stop(); await agent.stop() })
  await uplink.start()
  const x = (i: number): ort.Tensor => new ort.Tensor('float32', Float32Array.from([i, 1, 2, 3]), [1, 4])
  const subjectRuns: Array<{ seq: number, i: number, body: InferenceBody }> = []
  const otherRuns: typeof subjectRuns = []
  let i = 0
  const run = async (n: number, subject?: string): Promise<void> => {
    for (let k = 0; k < n; k++, i++) {
      const { record } = await model.run({ x: x(i) }, subject === undefined ? {} : { subject })
      ;(subject === undefined ? otherRuns : subjectRuns).push({ seq: record.record.seq, i, body: record.record.body as InferenceBody })
    }
  }
  await run(4)
  await run(3, 'plate:AB-123')
  await run(2)
  await waitFor('anchoring', () => (gateway.deviceStatus(id)?.anchoredSeq ?? -1) >= agent.log.head.seq)

  // Retention: with the gateway stopped, as `provenance-gateway prune` does. Today the records are
  // anchored but young: refused. 200 days on, seqs 0..4 go, with a signed statement.
  await gateway.stop()
  const gwState = join(env.dir, name)
  const logKey = await loadOrCreateLogKey(join(gwState, 'log-key.json'))
  const store = await GatewayStore.open({ dir: join(gwState, 'store') })
  try {
    const today = await Pruner.open({ store, signer: logKey.signer, gatewayId: `gateway.${name}`, retentionDays: 183 })
    const refused = await today.prune({ deviceId: id, throughSeq: 4 }).catch((e: unknown) => e)
    t.ok(refused instanceof GatewayError && refused.code === 'PRUNE_BEFORE_RETENTION', 'pruning before retention is refused')
    const later = await Pruner.open({ store, signer: logKey.signer, gatewayId: `gateway.${name}`, retentionDays: 183, now: () => Date.now() + 200 * DAY_MS })
    t.match(await later.prune({ deviceId: id, throughSeq: 4 }), { firstSeq: 0, lastSeq: 4, records: 5 })
  } finally {
    await store.close()
  }
  gateway = await env.gateway({ name })
  await run(2)
  await waitFor('anchoring after the restart', () => (gateway.deviceStatus(id)?.anchoredSeq ?? -1) >= agent.log.head.seq)

  // Erasure: the subject's key destroyed on the device, the statement signed by its key.
  const shredding = await subjectKeys.shred('plate:AB-123', { deviceId: id, signer: key.signer, nowMs: Date.now(), reason: 'erasure request 42' })
  for (const r of subjectRuns) t.throws(() => agent.saltFor(r.seq), KeyError, `seq ${r.seq}: its commitments cannot be opened any more`)
  for (const r of otherRuns) t.same(r.body.inputs[0]?.hash, commitTensor(agent.saltFor(r.seq), 'x', x(r.i)), `seq ${r.seq} still opens`)

  const bundle = await exportBundle({
    gatewayUrl: gateway.httpUrl as string, gatewayToken: gateway.httpToken, rpcUrl: env.chain.anvil.rpcUrl,
    registry: env.chain.deployment.address, deviceId: id, shreddings: [shredding.envelope]
  })
  t.equal(bundle.prunings?.length, 1, 'the export carries the pruning statement')
  t.ok(bundle.prunings?.[0]?.checkpoint?.includes('\npruning '), 'with the checkpoint that commits it')
  for (const verdict of [await verifyBundle(bundle, { rpcUrl: env.chain.anvil.rpcUrl }), await verifyBundle(bundle, { offline: true })]) {
    t.equal(verdict.verdict, 'valid', `${verdict.mode}: ${JSON.stringify(verdict.failures.slice(0, 3))}`)
    t.equal(verdict.firstSeq, 5)
    t.match(verdict.pruned, [{ firstSeq: 0, lastSeq: 4, gatewayId: `gateway.${name}`, reason: 'retention', retentionDays: 183, links: true, committed: true }], `${verdict.mode}: PRUNED by policy`)
    t.equal(verdict.prunedFromGenesis, true)
    t.same(verdict.shredded.map(s => [s.firstSeq, s.lastSeq, s.records]), [[subjectRuns[0]?.seq, subjectRuns[2]?.seq, 3]], `${verdict.mode}: SHREDDED`)
    t.notOk(verdict.warnings.some(w => w.reason === 'pruning-uncommitted'))
    t.equal(verdict.counts.signaturesValid, bundle.records.length, 'every signature verifies, the shredded records\' too')
    t.equal(verdict.counts.proofsValid, bundle.records.length, 'and every proof')
  }
})
