import t, { type Test } from 'tap'
import mqtt from 'mqtt'
import { deviceTopic, encodeRecordBatch, hashLeaf, parseProof, verifyAck, verifyProof, type AckStatement, type SignedRecord } from '../../protocol/index.js'
import { deviceIdOf } from '../../contracts/index.js'
import { Gateway, type GatewayLogger } from '../../gateway/index.js'
import { startGatewayEnv, httpGet, type GatewayEnv } from '../fixtures/gateway-env.js'
import { ChainBuilder, sampleBody } from '../helpers/records.js'

async function waitFor (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 25))
  }
}

async function setup (t: Test, deviceId: string): Promise<{ env: GatewayEnv, device: ChainBuilder, publish: (records: SignedRecord[]) => Promise<void> }> {
  const env = await startGatewayEnv(t)
  const device = new ChainBuilder({ deviceId, seed: deviceId, startTimeMs: Date.now(), stepMs: 10 })
  await env.chain.registryAs('deviceRegistrar').registerDevice({ deviceId: deviceIdOf(deviceId), publicKey: device.signer.publicKey, validFromMs: 0 })
  const client = await mqtt.connectAsync(env.broker.url, { protocolVersion: 5, clientId: `pub-${deviceId}` })
  t.teardown(async () => await client.endAsync(true))
  const publish = async (records: SignedRecord[]): Promise<void> => {
    await client.publishAsync(deviceTopic(deviceId, 'records'), Buffer.from(encodeRecordBatch(records.map(r => r.envelope))), { qos: 1 })
  }
  return { env, device, publish }
}

t.test('behavior: records ahead of the tip wait durably, across a restart, until the gap fills', async t => {
  const { env, device, publish } = await setup(t, 'late')
  device.append(sampleBody('boot'))
  for (let i = 1; i < 10; i++) device.appendInference()
  const r = device.records
  const options = env.gatewayOptions({ name: 'gw-order' })
  let gw = new Gateway(options)
  await gw.start()
  await gw.waitForBroker()
  await publish(r.slice(7, 10))
  await publish(r.slice(5, 7))
  await waitFor('5 waiting', () => gw.deviceStatus('late')?.pending === 5)
  t.match(gw.deviceStatus('late'), { lastSeq: -1, stored: 0, pending: 5, openGaps: [{ firstSeq: 0, lastSeq: 4, overdue: false }] })
  t.equal((await httpGet(`${gw.httpUrl}/v1/proof/late/7`)).status, 404, 'waiting records are not stored yet')
  await gw.stop()

  gw = new Gateway(options)
  t.teardown(async () => await gw.stop())
  await gw.start()
  await gw.waitForBroker()
  t.match(gw.deviceStatus('late'), { pending: 5 }, 'waiting records survived the restart')
  await publish(r.slice(0, 3))
  await publish(r.slice(2, 5))
  await waitFor('all stored', () => gw.deviceStatus('late')?.lastSeq === 9)
  t.match(gw.deviceStatus('late'), { lastSeq: 9, stored: 10, pending: 0, openGaps: [], quarantined: 0 })
  await gw.sealNow()
  for (const rec of r) {
    const res = await httpGet(`${gw.httpUrl}/v1/proof/late/${rec.record.seq}`)
    t.equal(res.status, 200)
    verifyProof(parseProof(res.text), hashLeaf(rec.envelope))
  }
})

t.test('behavior: a hole the device declares in a signed gap record is accepted, in any arrival order', async t => {
  const { env, device, publish } = await setup(t, 'dropper')
  device.append(sampleBody('boot'))
  for (let i = 0; i < 3; i++) device.appendInference()
  device.drop(2) // seqs 4 and 5 never leave the device
  device.appendGap() // seq 6
  device.appendInference()
  device.appendInference() // seqs 7, 8
  const r = device.records
  t.same(r.map(x => x.record.seq), [0, 1, 2, 3, 6, 7, 8])
  const gw = await env.gateway()
  await publish(r.slice(5)) // 7, 8
  await publish(r.slice(4, 5)) // the gap record
  await waitFor('three waiting', () => gw.deviceStatus('dropper')?.pending === 3)
  await publish(r.slice(0, 4))
  await waitFor('tip 8', () => gw.deviceStatus('dropper')?.lastSeq === 8)
  t.match(gw.deviceStatus('dropper'), { stored: 7, pending: 0, quarantined: 0 })
  t.equal((await httpGet(`${gw.httpUrl}/v1/proof/dropper/4`)).status, 404, 'dropped records are not invented')
})

t.test('behavior: a gap open longer than gapReportAfterMs is reported in status, metrics and log', async t => {
  const { env, device, publish } = await setup(t, 'gappy')
  device.append(sampleBody('boot'))
  for (let i = 1; i < 5; i++) device.appendInference()
  const warnings: string[] = []
  const logger: GatewayLogger = { debug () {}, info () {}, error () {}, warn (_o, m) { warnings.push(m ?? '') } }
  const gw = await env.gateway({ gapReportAfterMs: 200, logger })
  await publish(device.records.slice(3))
  await waitFor('the gap overdue', () => gw.deviceStatus('gappy')?.openGaps[0]?.overdue === true)
  t.match(gw.deviceStatus('gappy')?.openGaps, [{ firstSeq: 0, lastSeq: 2, overdue: true }])
  await waitFor('the log line', () => warnings.includes('records missing: gap still open'))
  const metrics = (await httpGet(`${gw.httpUrl}/metrics`)).text
  t.match(metrics, /provenance_gateway_open_gaps_overdue 1\b/)
  t.match(metrics, /provenance_gateway_open_gaps 1\b/)
  await publish(device.records.slice(0, 3))
  await waitFor('gap closed', () => gw.deviceStatus('gappy')?.openGaps.length === 0)
  t.match((await httpGet(`${gw.httpUrl}/metrics`)).text, /provenance_gateway_open_gaps 0\b/)
})

t.test('behavior: a resend of stored records is answered with the current ack (the device may have missed it)', async t => {
  const { env, device, publish } = await setup(t, 'forgetful')
  device.append(sampleBody('boot'))
  for (let i = 1; i < 4; i++) device.appendInference()
  const gw = await env.gateway()
  await publish(device.records)
  await waitFor('stored', () => gw.deviceStatus('forgetful')?.lastSeq === 3)
  const listener = await mqtt.connectAsync(env.broker.url, { protocolVersion: 5, clientId: 'forgetful-listener' })
  t.teardown(async () => await listener.endAsync(true))
  const acks: AckStatement[] = []
  // The answer is a signed ack that verifies under the gateway's log key.
  const trustedKeys = [gw.logPublicKey as Uint8Array]
  listener.on('message', (_topic, payload) => { if (payload.length > 0) acks.push(verifyAck(new Uint8Array(payload), { deviceId: 'forgetful', trustedKeys }).statement) })
  await listener.subscribeAsync(deviceTopic('forgetful', 'ack'), { qos: 1 })
  // lastSeq is the in-memory tip: the ack of seq 3 goes out only once its write is durable, and
  // the ack of seq 0 may still be on its way before it. Once seq 3's ack is out, no older one follows.
  await waitFor('the ack of seq 3', () => acks.some(a => a.storedSeq === 3))
  // Drop the retained ack, as a broker restart without persistence would.
  await listener.publishAsync(deviceTopic('forgetful', 'ack'), Buffer.alloc(0), { qos: 1, retain: true })
  acks.length = 0
  await publish(device.records.slice(2))
  await waitFor('an ack', () => acks.length > 0)
  t.match(acks[0], { storedSeq: 3, deviceId: 'forgetful', gatewayId: `gateway.${gw.options.name}` })
  t.match((await httpGet(`${gw.httpUrl}/metrics`)).text, /provenance_gateway_records_duplicate_total 2\b/)
})

t.test('behavior: a key rotated on chain is picked up at once, without quarantining records', async t => {
  const { env, device, publish } = await setup(t, 'rotator')
  device.append(sampleBody('boot'))
  device.appendInference()
  const gw = await env.gateway()
  await publish(device.records)
  await waitFor('first two', () => gw.deviceStatus('rotator')?.lastSeq === 1)
  const rotation = device.rotateKey('rotator/2')
  const { newPublicKey, validFromMs } = rotation.record.body as { newPublicKey: Uint8Array, validFromMs: number }
  await env.chain.registryAs('deviceRegistrar').rotateDeviceKey({ deviceId: deviceIdOf('rotator'), publicKey: newPublicKey, validFromMs })
  device.appendInference()
  device.appendInference()
  await publish(device.records.slice(2))
  await waitFor('all five', () => gw.deviceStatus('rotator')?.lastSeq === 4)
  t.match(gw.deviceStatus('rotator'), { stored: 5, quarantined: 0 })
})

t.test('attack: a verify worker killed while records flow: every record is still verified and stored, in seq order, none lost', async t => {
  const { env, device, publish } = await setup(t, 'pooled')
  device.append(sampleBody('boot'))
  for (let i = 1; i < 400; i++) device.appendInference()
  const r = device.records
  const gw = await env.gateway({ verifyWorkers: 2 })
  await publish(r.slice(0, 100))
  await waitFor('first message', () => gw.deviceStatus('pooled')?.lastSeq === 99)
  // With the key cached, each message's 100 signatures go to the workers ahead of their turn.
  await publish(r.slice(300, 400))
  await publish(r.slice(100, 200))
  await publish(r.slice(200, 300))
  const pool = gw.verifyPool
  await waitFor('workers started', () => pool?.stats.started === true)
  await pool?.threads[0]?.terminate()
  await waitFor('all stored', () => gw.deviceStatus('pooled')?.lastSeq === 399, 60_000)
  t.match(gw.deviceStatus('pooled'), { stored: 400, quarantined: 0, pending: 0 })
  t.ok((pool?.stats.restarts ?? 0) >= 1, 'the killed worker was replaced')
  // A forged record after the kill is still refused by the replacement workers.
  const forged = device.appendInference()
  const envelope = forged.envelope.slice()
  envelope[envelope.length - 1] = (envelope[envelope.length - 1] as number) ^ 1
  const client = await mqtt.connectAsync(env.broker.url, { protocolVersion: 5, clientId: 'pooled-forger' })
  t.teardown(async () => await client.endAsync(true))
  await client.publishAsync(deviceTopic('pooled', 'records'), Buffer.from(encodeRecordBatch([envelope])), { qos: 1 })
  await waitFor('quarantined', () => gw.deviceStatus('pooled')?.quarantined === 1)
  t.equal(gw.deviceStatus('pooled')?.lastSeq, 399)
})
