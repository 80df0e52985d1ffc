import t from 'tap'
import mqtt from 'mqtt'
import { RecordLog } from '../../../agent/log/index.js'
import { Uplink } from '../../../agent/uplink/index.js'
import {
  createSigner, sha256, deviceTopic, type RecordBody
} from '../../../protocol/index.js'
import { newReceiverState as newState, startReceiver, testAck, waitFor, TEST_GATEWAY_KEY, type ReceiverState } from '../../helpers/ack-receiver.js'
import { startMosquitto } from '../../helpers/mosquitto.js'
import { makeTempDir } from '../../helpers/tmp.js'

const signer = createSigner(new Uint8Array(32).fill(4))
const gatewayPublicKeys = [TEST_GATEWAY_KEY.publicKey]
const body = (seq: number): RecordBody => ({ kind: 'inference', modelHash: sha256(new Uint8Array([1])), inputs: [], outputs: [], latencyUs: seq, decision: null })
const newReceiverState = (): ReceiverState => newState('dev-u', signer.publicKey)

t.test('behavior: drains the offline backlog oldest first once the broker comes back, deletes only acked records', async t => {
  const broker = await startMosquitto()
  t.teardown(async () => await broker.close())
  const dir = await makeTempDir(t)
  const log = await RecordLog.open({ dir, deviceId: 'dev-u', signer })
  t.teardown(async () => await log.close())
  await log.appendBoot({ agentVersion: 't', profile: 'p' })
  await broker.stop()
  const uplink = new Uplink({ log, deviceId: 'dev-u', brokerUrl: broker.url, batchRecords: 50, reconnectMinMs: 50, reconnectMaxMs: 200, gatewayPublicKeys })
  t.teardown(async () => await uplink.stop())
  await uplink.start()
  for (let i = 0; i < 500; i++) await log.append(body)
  t.equal(uplink.status().connected, false)
  t.equal(uplink.status().backlog, 501)
  await broker.restart()
  const receiver = await startReceiver(broker.url, newReceiverState())
  t.teardown(async () => await receiver.close())
  // New records keep coming while the backlog drains.
  const more = (async () => { for (let i = 0; i < 200; i++) await log.append(body) })()
  await more
  // ackedSeq moves before the deletion is durable: wait for the log itself too.
  await waitFor('all acked', async () => uplink.status().ackedSeq === 700 && (await log.range(0, 10_000)).length === 1)
  t.same(receiver.failures, [])
  t.equal(receiver.stored.size, 701, 'every record arrived once, in order')
  t.equal(uplink.status().backlog, 0)
  // ackedSeq moves when the ack is applied; its deletions are written by the log's queue after.
  await log.flush()
  const left = await log.range(0, 10_000)
  t.same(left.map(r => r.record.seq), [700], 'acked records deleted, only the chain tip kept')
})

t.test('behavior: a flapping broker loses nothing', async t => {
  const broker = await startMosquitto()
  t.teardown(async () => await broker.close())
  const dir = await makeTempDir(t)
  const log = await RecordLog.open({ dir, deviceId: 'dev-u', signer })
  t.teardown(async () => await log.close())
  await log.appendBoot({ agentVersion: 't', profile: 'p' })
  const receiver = await startReceiver(broker.url, newReceiverState())
  const uplink = new Uplink({ log, deviceId: 'dev-u', brokerUrl: broker.url, batchRecords: 20, reconnectMinMs: 20, reconnectMaxMs: 100, ackTimeoutMs: 1000, gatewayPublicKeys })
  t.teardown(async () => await uplink.stop())
  await uplink.start()
  let receiverNow = receiver
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 100; i++) await log.append(body)
    await new Promise(resolve => setTimeout(resolve, 30))
    await receiverNow.close()
    await broker.stop()
    for (let i = 0; i < 50; i++) await log.append(body)
    await broker.restart()
    // The receiver keeps what it stored across the outage, as a gateway keeps its store.
    receiverNow = await startReceiver(broker.url, receiverNow)
  }
  t.teardown(async () => await receiverNow.close())
  await waitFor('all acked', () => uplink.status().ackedSeq === 600, 30_000)
  t.same(receiverNow.failures, [])
  t.equal(receiverNow.stored.size, 601, 'every record stored exactly once')
  t.ok(uplink.status().reconnects >= 4)
})

t.test('behavior: keepUntil anchored deletes records only once anchored, and a wrong-hash ack is ignored', async t => {
  const broker = await startMosquitto()
  t.teardown(async () => await broker.close())
  const dir = await makeTempDir(t)
  const log = await RecordLog.open({ dir, deviceId: 'dev-u', signer })
  t.teardown(async () => await log.close())
  await log.appendBoot({ agentVersion: 't', profile: 'p' })
  for (let i = 0; i < 9; i++) await log.append(body)
  const uplink = new Uplink({ log, deviceId: 'dev-u', brokerUrl: broker.url, keepUntil: 'anchored', gatewayPublicKeys })
  t.teardown(async () => await uplink.stop())
  const gw = await mqtt.connectAsync(broker.url, { protocolVersion: 5 })
  t.teardown(async () => await gw.endAsync())
  await uplink.start()
  await waitFor('connected', () => uplink.status().connected)
  const ack = async (stored: number, hash: Uint8Array, anchored: number): Promise<void> => {
    await gw.publishAsync(deviceTopic('dev-u', 'ack'), testAck('dev-u', { storedSeq: stored, storedHash: hash, anchoredSeq: anchored }), { qos: 1, retain: true })
  }
  await ack(5, sha256(new Uint8Array([9])), -1)
  await waitFor('refusal', () => uplink.status().acks.rejected.ACK_HASH_MISMATCH === 1)
  t.equal(uplink.status().ackedSeq, -1, 'an ack naming another record is ignored')
  const r5 = await log.get(5)
  await ack(5, r5?.hash as Uint8Array, -1)
  await waitFor('stored ack', () => uplink.status().ackedSeq === 5)
  t.equal((await log.range(0, 100)).length, 10, 'stored but not anchored: kept')
  await ack(5, r5?.hash as Uint8Array, 3)
  await waitFor('anchored ack', async () => (await log.range(0, 100)).length === 6)
  t.same((await log.range(0, 100)).map(r => r.record.seq), [4, 5, 6, 7, 8, 9])
})
