import t, { type Test } from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import { deviceIdOf } from '../../contracts/index.js'
import { ProvenanceAgent } from '../../agent/session/index.js'
import { Uplink } from '../../agent/uplink/index.js'
import { exportBundle, verifyBundle } from '../../forensics/index.js'
import { decodeBundleRecord, decodeEnvelope, sha256 } from '../../protocol/index.js'
import type { Gateway } from '../../gateway/index.js'
import { startGatewayEnv, type GatewayEnv } from '../fixtures/gateway-env.js'
import { makeClassifierModel } from '../helpers/onnx-models.js'

// Issue 5's must-show, against the real Mosquitto, the real gateway and anvil: an agent that
// logs while the broker is down, or flapping, or past a tiny fail-open budget, ends with a chain
// that the gateway stored whole (honest gaps only) and that verifies end to end.

async function waitFor (what: string, check: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

async function device (t: Tap, env: GatewayEnv, gateway: Gateway, id: string, options: { budgetBytes?: number } = {}): Promise<{ agent: ProvenanceAgent, uplink: Uplink, run: (n: number) => Promise<void> }> {
  const modelPath = join(env.dir, `${id}.onnx`)
  const modelBytes = makeClassifierModel({ seed: 3 })
  await writeFile(modelPath, modelBytes)
  const publisher = env.chain.registryAs('modelPublisher')
  if ((await publisher.modelStatus(sha256(modelBytes))) === 'none') {
    await publisher.registerModel({ modelHash: sha256(modelBytes), name: 'tiny', version: '1' })
    await publisher.approveModel(sha256(modelBytes))
  }
  const agent = await ProvenanceAgent.start({
    stateDir: join(env.dir, id), deviceId: id,
    ...(options.budgetBytes !== undefined ? { logOptions: { budgetBytes: options.budgetBytes, budgetMode: 'fail-open' as const, dropFraction: 0.2 } } : {})
  })
  await env.chain.registryAs('deviceRegistrar').registerDevice({ deviceId: deviceIdOf(id), publicKey: agent.publicKey, validFromMs: 0 })
  const model = await agent.loadModel(modelPath, { name: 'tiny' })
  const uplink = new Uplink({ log: agent.log, deviceId: id, brokerUrl: env.broker.url, batchRecords: 64, reconnectMinMs: 50, reconnectMaxMs: 300, ackTimeoutMs: 2000, gatewayPublicKeys: [gateway.logPublicKey as Uint8Array] })
  t.teardown(async () => { await uplink.stop(); await agent.stop() })
  let i = 0
  const run = async (n: number): Promise<void> => {
    for (let k = 0; k < n; k++, i++) await model.run({ x: new ort.Tensor('float32', Float32Array.from([i, 1, 2, 3]), [1, 4]) })
  }
  return { agent, uplink, run }
}
type Tap = { teardown: (fn: () => unknown) => void }

async function verifyAtGateway (t: Test, env: GatewayEnv, gateway: Gateway, id: string, agent: ProvenanceAgent): Promise<void> {
  await waitFor('anchoring', () => (gateway.deviceStatus(id)?.anchoredSeq ?? -1) >= agent.log.head.seq)
  const status = gateway.deviceStatus(id)
  t.equal(status?.lastSeq, agent.log.head.seq, 'the gateway holds the chain up to the device head')
  t.same(status?.openGaps, [], 'no open gap at the gateway')
  const bundle = await exportBundle({ gatewayUrl: gateway.httpUrl as string, gatewayToken: gateway.httpToken, rpcUrl: env.chain.anvil.rpcUrl, registry: env.chain.deployment.address, deviceId: id })
  const seqs = bundle.records.map(r => decodeEnvelope(decodeBundleRecord(r)).record.seq)
  t.equal(new Set(seqs).size, seqs.length, 'no duplicate stored')
  const verdict = await verifyBundle(bundle, { rpcUrl: env.chain.anvil.rpcUrl })
  t.equal(verdict.verdict, 'valid', JSON.stringify(verdict.failures.slice(0, 3)))
  return verdict as never
}

t.test('behavior: an offline backlog drains through the gateway with no gap and no duplicate', async t => {
  const env = await startGatewayEnv(t)
  const gateway = await env.gateway()
  const d = await device(t, env, gateway, 'soak-offline')
  await env.broker.stop()
  await d.uplink.start()
  await d.run(300)
  t.equal(d.uplink.status().connected, false)
  t.ok(d.uplink.status().backlog >= 300, 'records wait on the device')
  await env.broker.restart()
  await waitFor('the backlog to drain', () => d.uplink.status().ackedSeq === d.agent.log.head.seq)
  await verifyAtGateway(t, env, gateway, 'soak-offline', d.agent)
})

t.test('behavior: a broker flapping every second loses nothing', async t => {
  const env = await startGatewayEnv(t)
  const gateway = await env.gateway()
  const d = await device(t, env, gateway, 'soak-flap')
  await d.uplink.start()
  for (let cycle = 0; cycle < 4; cycle++) {
    await d.run(60)
    await env.broker.stop()
    await d.run(40)
    await new Promise(resolve => setTimeout(resolve, 300))
    await env.broker.restart()
    await new Promise(resolve => setTimeout(resolve, 700))
  }
  await waitFor('everything acknowledged', () => d.uplink.status().ackedSeq === d.agent.log.head.seq)
  t.ok(d.uplink.status().reconnects >= 4)
  await verifyAtGateway(t, env, gateway, 'soak-flap', d.agent)
})

t.test('behavior: a fail-open budget writes gap records that the gateway and the verifier accept as honest', async t => {
  const env = await startGatewayEnv(t)
  const gateway = await env.gateway()
  const d = await device(t, env, gateway, 'soak-budget', { budgetBytes: 24 * 1024 })
  await d.uplink.start()
  await d.run(20)
  await waitFor('first records acknowledged', () => d.uplink.status().ackedSeq === d.agent.log.head.seq)
  await env.broker.stop()
  await d.run(400)
  const dropped = d.agent.log.stats().droppedRecords
  t.ok(dropped > 0, `the device dropped ${dropped} records under its budget`)
  await env.broker.restart()
  await waitFor('the backlog to drain', () => d.uplink.status().ackedSeq === d.agent.log.head.seq, 20_000).catch(async e => {
    const kept = await d.agent.log.range(0, 1e9)
    console.error(JSON.stringify({ up: d.uplink.status(), gw: gateway.deviceStatus('soak-budget'), head: d.agent.log.head.seq, kept: kept.map(r => r.record.seq + (r.record.body.kind === 'gap' ? `G[${r.record.body.firstSeq}-${r.record.body.lastSeq}]` : '')).join(' ') }))
    throw e
  })
  await verifyAtGateway(t, env, gateway, 'soak-budget', d.agent)
  const bundle = await exportBundle({ gatewayUrl: gateway.httpUrl as string, gatewayToken: gateway.httpToken, rpcUrl: env.chain.anvil.rpcUrl, registry: env.chain.deployment.address, deviceId: 'soak-budget' })
  const verdict = await verifyBundle(bundle, { rpcUrl: env.chain.anvil.rpcUrl })
  t.equal(verdict.gaps.reduce((n, g) => n + g.lastSeq - g.firstSeq + 1, 0), dropped, 'every dropped record is declared by a signed gap')
})
