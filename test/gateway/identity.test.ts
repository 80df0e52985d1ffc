/**
 * A TPM-rooted device at the gateway (docs/PROTOCOL.md §13): the registry holds its identity key id,
 * certified boots are stored, the boot key survives a gateway restart, and a replayed or foreign
 * certification and records under an uncertified key are quarantined with their reasons.
 */
import t from 'tap'
import mqtt from 'mqtt'
import { deviceTopic, encodeRecordBatch, type SignedRecord } from '../../protocol/index.js'
import { deviceIdOf } from '../../contracts/index.js'
import { Gateway } from '../../gateway/index.js'
import { startGatewayEnv, httpGet } from '../fixtures/gateway-env.js'
import { CertifiedChain, softwareIdentity } from '../helpers/identity.js'

async function waitFor (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 25))
  }
}

t.test('behavior: certified boots are stored across a gateway restart; replayed, foreign and uncertified boots are quarantined by reason', async t => {
  const env = await startGatewayEnv(t)
  const id = 'tpm-cam'
  const device = new CertifiedChain(softwareIdentity(), { deviceId: id, startTimeMs: Date.now(), stepMs: 10 })
  await env.chain.registryAs('deviceRegistrar').registerDevice({ deviceId: deviceIdOf(id), publicKey: device.registryKey, validFromMs: 0 })
  const client = await mqtt.connectAsync(env.broker.url, { protocolVersion: 5, clientId: `pub-${id}` })
  t.teardown(async () => await client.endAsync(true))
  const publish = async (records: SignedRecord[]): Promise<void> => {
    await client.publishAsync(deviceTopic(id, 'records'), Buffer.from(encodeRecordBatch(records.map(r => r.envelope))), { qos: 1 })
  }
  const options = env.gatewayOptions({ name: 'gw-identity' })
  let gw = new Gateway(options)
  await gw.start()
  await gw.waitForBroker()

  await device.boot()
  device.inferences(3)
  await publish(device.records.slice(0, 4))
  await waitFor('boot 1 stored', () => gw.deviceStatus(id)?.lastSeq === 3)

  // The boot key lives with the device's stored state: the rest of boot 1 verifies after a restart.
  await gw.stop()
  gw = new Gateway(options)
  t.teardown(async () => await gw.stop())
  await gw.start()
  await gw.waitForBroker()
  device.inferences(2)
  await publish(device.records.slice(4, 6))
  await waitFor('the rest of boot 1 stored', () => gw.deviceStatus(id)?.lastSeq === 5)
  t.match(gw.deviceStatus(id), { stored: 6, quarantined: 0 })

  // Boot 2 carrying boot 1's certification (its key kept from memory), then a record under it.
  const fork = new CertifiedChain(device.identity, { deviceId: id })
  Object.assign(fork.b, { seq: device.b.seq, timeMs: device.b.timeMs, prev: device.b.prev, boot: device.b.boot })
  await fork.boot({ replay: device.lastCertification })
  fork.inferences(1)
  await publish(fork.records)
  // Boot 2 certified by another TPM (the state folder copied elsewhere).
  const foreign = new CertifiedChain(device.identity, { deviceId: id })
  Object.assign(foreign.b, { seq: device.b.seq, timeMs: device.b.timeMs, prev: device.b.prev, boot: device.b.boot })
  await foreign.boot({ by: softwareIdentity() })
  await publish(foreign.records)
  // The counter moves at once, the entries once their write is done: wait for the entries.
  const quarantine = async (): Promise<Array<{ reason: string, seq: number }>> => (await httpGet(`${gw.httpUrl}/v1/quarantine?limit=10`)).json().entries
  await waitFor('three quarantine entries', async () => (await quarantine()).length === 3)
  const entries = await quarantine()
  t.same(entries.map(e => `${e.reason}@${e.seq}`).sort(), ['bad-certification@6', 'certification-replayed@6', 'uncertified-key@7'])
  t.match(gw.deviceStatus(id), { lastSeq: 5, stored: 6 }, 'nothing of the forged boots stored')

  // The honest boot 2 still goes through.
  await device.boot()
  device.inferences(1)
  await publish(device.records.slice(6))
  await waitFor('boot 2 stored', () => gw.deviceStatus(id)?.lastSeq === 7)
})
