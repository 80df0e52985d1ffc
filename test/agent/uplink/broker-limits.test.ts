// Issue 9, item 6, on the real Mosquitto: the uplink sizes each records message to the broker's
// Maximum Packet Size (MQTT 5 CONNACK, §3.2.2.3.6) and never sends one the broker would drop;
// and a client reusing the device's MQTT client id does not keep the device offline.
import t from 'tap'
import mqtt from 'mqtt'
import { RecordLog } from '../../../agent/log/index.js'
import { Uplink, publishPacketBytes } from '../../../agent/uplink/index.js'
import { createSigner, deviceTopic, sha256, type RecordBody } from '../../../protocol/index.js'
import { newReceiverState, startReceiver, waitFor, TEST_GATEWAY_KEY } from '../../helpers/ack-receiver.js'
import { startMosquitto } from '../../helpers/mosquitto.js'
import { makeTempDir } from '../../helpers/tmp.js'

const DEVICE = 'dev-limits'
const signer = createSigner(new Uint8Array(32).fill(4))
const gatewayPublicKeys = [TEST_GATEWAY_KEY.publicKey]
const MAX_PACKET = 2048
const h = sha256(new Uint8Array([1]))
/** ~ 150 to 1 150 bytes of envelope, so that a few fit one 2 KiB packet. */
const body = (seq: number): RecordBody => ({ kind: 'inference', modelHash: h, inputs: [{ name: 'x', hash: h }], outputs: [], latencyUs: seq, decision: 'd'.repeat((seq * 97) % 1000) })
/** One record bigger than any packet the broker takes (tensor commitments are ~ 45 bytes each). */
const hugeBody = (seq: number): RecordBody => ({ kind: 'inference', modelHash: h, inputs: Array.from({ length: 100 }, (_, i) => ({ name: `input-${String(i).padStart(3, '0')}`, hash: h })), outputs: [], latencyUs: seq, decision: null })
const recordsTopic = deviceTopic(DEVICE, 'records')

type Tap = { teardown: (fn: () => unknown) => void }
async function openLog (t: Tap): Promise<RecordLog> {
  const log = await RecordLog.open({ dir: await makeTempDir(t), deviceId: DEVICE, signer })
  t.teardown(async () => await log.close())
  await log.appendBoot({ agentVersion: 't', profile: 'p' })
  return log
}

t.test('behavior: Mosquitto disconnects a client that publishes over max_packet_size (what the uplink must avoid)', async t => {
  const broker = await startMosquitto({ config: [`max_packet_size ${MAX_PACKET}`] })
  t.teardown(async () => await broker.close())
  const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: `raw-${process.pid}`, reconnectPeriod: 0 })
  const closed = new Promise<void>(resolve => client.once('close', () => resolve()))
  client.publish(recordsTopic, Buffer.alloc(MAX_PACKET), { qos: 1 })
  await closed
  t.pass('the connection was closed by the broker: the message is lost')
  await client.endAsync(true)
})

t.test('behavior: every records message fits the broker\'s Maximum Packet Size; all records arrive, no disconnect', async t => {
  const broker = await startMosquitto({ config: [`max_packet_size ${MAX_PACKET}`] })
  t.teardown(async () => await broker.close())
  const log = await openLog(t)
  for (let i = 0; i < 200; i++) await log.append(body)
  const receiver = await startReceiver(broker.url, newReceiverState(DEVICE, signer.publicKey))
  t.teardown(async () => await receiver.close())
  const uplink = new Uplink({ log, deviceId: DEVICE, brokerUrl: broker.url, gatewayPublicKeys, reconnectMinMs: 50, reconnectMaxMs: 200 })
  t.teardown(async () => await uplink.stop())
  await uplink.start()
  await waitFor('all acked', () => uplink.status().ackedSeq === 200, 30_000)
  const s = uplink.status()
  t.equal(s.brokerMaxPacketBytes, MAX_PACKET, 'the limit came from the CONNACK')
  t.equal(s.reconnects, 0, 'the broker never had to disconnect the uplink')
  t.same(receiver.failures, [])
  t.equal(receiver.stored.size, 201, 'every record arrived, in order')
  t.ok(receiver.payloadSizes.length > 20, `split into ${receiver.payloadSizes.length} messages (default batch is 256 records)`)
  const largest = Math.max(...receiver.payloadSizes.map(n => publishPacketBytes(recordsTopic, n, 5)))
  t.ok(largest <= MAX_PACKET, `largest packet ${largest} bytes ≤ ${MAX_PACKET}`)
  t.ok(largest > MAX_PACKET - 1200, `messages are filled up to the limit (largest ${largest})`)
})

t.test('error: a record too large for the broker blocks the uplink (RECORD_TOO_LARGE_FOR_BROKER), is kept, and nothing after it is skipped', async t => {
  const broker = await startMosquitto({ config: [`max_packet_size ${MAX_PACKET}`] })
  t.teardown(async () => await broker.close())
  const log = await openLog(t)
  for (let i = 0; i < 9; i++) await log.append(body)
  await log.append(hugeBody)
  for (let i = 0; i < 5; i++) await log.append(body)
  const big = await log.get(10)
  t.ok((big?.envelope.byteLength ?? 0) > MAX_PACKET, `record 10 is ${big?.envelope.byteLength} bytes`)
  const receiver = await startReceiver(broker.url, newReceiverState(DEVICE, signer.publicKey))
  t.teardown(async () => await receiver.close())
  const uplink = new Uplink({ log, deviceId: DEVICE, brokerUrl: broker.url, gatewayPublicKeys, reconnectMinMs: 50, reconnectMaxMs: 200 })
  t.teardown(async () => await uplink.stop())
  await uplink.start()
  await waitFor('blocked', () => uplink.status().blocked !== undefined && uplink.status().ackedSeq === 9)
  const s = uplink.status()
  t.match(s.blocked, { code: 'RECORD_TOO_LARGE_FOR_BROKER', seq: 10, maxPacketBytes: MAX_PACKET })
  t.ok((s.blocked?.packetBytes ?? 0) > MAX_PACKET)
  t.match(s.lastError, /record 10 needs a \d+-byte packet/)
  t.equal(s.connected, true, 'still connected: nothing was sent that the broker drops')
  t.equal(s.reconnects, 0)
  t.equal(receiver.tip.seq, 9, 'the gateway holds everything before the big record, nothing after it')
  t.same((await log.range(10, 100)).map(r => r.record.seq), [10, 11, 12, 13, 14, 15], 'the big record and the ones after it are kept')
})

t.test('behavior: other clients using the old client id prov-agent-<id> cause no reconnect', async t => {
  const broker = await startMosquitto()
  t.teardown(async () => await broker.close())
  const log = await openLog(t)
  const receiver = await startReceiver(broker.url, newReceiverState(DEVICE, signer.publicKey))
  t.teardown(async () => await receiver.close())
  const uplink = new Uplink({ log, deviceId: DEVICE, brokerUrl: broker.url, gatewayPublicKeys, reconnectMinMs: 50, reconnectMaxMs: 200 })
  t.teardown(async () => await uplink.stop())
  await uplink.start()
  await waitFor('connected', () => uplink.status().connected)
  for (let i = 0; i < 10; i++) {
    const other = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: `prov-agent-${DEVICE}`, reconnectPeriod: 0 })
    await other.endAsync(true)
  }
  for (let i = 0; i < 10; i++) await log.append(body)
  await waitFor('acked', () => uplink.status().ackedSeq === 10)
  t.match(uplink.status(), { connected: true, reconnects: 0, takeovers: 0 })
})

t.test('attack: ten takeovers of the uplink\'s own client id do not keep the device offline', async t => {
  const broker = await startMosquitto()
  t.teardown(async () => await broker.close())
  const log = await openLog(t)
  const receiver = await startReceiver(broker.url, newReceiverState(DEVICE, signer.publicKey))
  t.teardown(async () => await receiver.close())
  const uplink = new Uplink({ log, deviceId: DEVICE, brokerUrl: broker.url, gatewayPublicKeys, reconnectMinMs: 50, reconnectMaxMs: 200 })
  t.teardown(async () => await uplink.stop())
  await uplink.start()
  await waitFor('connected', () => uplink.status().connected)
  const thieves: mqtt.MqttClient[] = []
  t.teardown(async () => { for (const c of thieves) await c.endAsync(true) })
  const ids = new Set<string>()
  for (let i = 0; i < 10; i++) {
    const stolen = uplink.status().clientId
    ids.add(stolen)
    // The thief stays connected under the id it took.
    thieves.push(await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: stolen, reconnectPeriod: 0 }))
    // Mosquitto 2.0.11 closes the taken-over connection without a DISCONNECT 0x8E: the uplink
    // cannot tell a takeover from a drop, and comes back under a fresh id either way.
    await waitFor(`back online after takeover ${i + 1}`, () => uplink.status().connected && uplink.status().clientId !== stolen)
    await log.append(body)
  }
  t.equal(ids.size, 10, 'a fresh client id after each takeover')
  await waitFor('everything acked', () => uplink.status().ackedSeq === log.head.seq)
  for (let i = 0; i < 20; i++) await log.append(body)
  await waitFor('records after the storm acked', () => uplink.status().ackedSeq === log.head.seq)
  t.match(uplink.status(), { connected: true })
  t.equal(uplink.status().reconnects, 10, 'one reconnect per takeover, no ping-pong with the thieves')
  t.same(receiver.failures, [])
})
