import t from 'tap'
import mqtt from 'mqtt'
import { RecordLog } from '../../../agent/log/index.js'
import { Uplink } from '../../../agent/uplink/index.js'
import {
  ChainVerifier, createSigner, decodeEnvelope, decodeRecordBatch, encodeAck, fixedKey, parseTopic, sha256, topicFilter, deviceTopic, ZERO_HASH,
  type RecordBody, type SignedRecord
} from '../../../protocol/index.js'
import { startMosquitto } from '../../helpers/mosquitto.js'
import { makeTempDir } from '../../helpers/tmp.js'

const signer = createSigner(new Uint8Array(32).fill(4))
const body = (seq: number): RecordBody => ({ kind: 'inference', modelHash: sha256(new Uint8Array([1])), inputs: [], outputs: [], latencyUs: seq, decision: null })

/**
 * The smallest acking receiver: verifies each device's chain in order and acks (retained) the
 * contiguous tip. The uplink's own contract is tested here; the real gateway has its own suite.
 */
interface ReceiverState { stored: Map<number, SignedRecord>, duplicates: number, skipped: number, failures: string[], tip: { seq: number, hash: Uint8Array }, verifier: ChainVerifier }

function newReceiverState (): ReceiverState {
  return { stored: new Map(), duplicates: 0, skipped: 0, failures: [], tip: { seq: -1, hash: ZERO_HASH }, verifier: new ChainVerifier({ deviceId: 'dev-u', keyAt: fixedKey(signer.publicKey) }) }
}

async function startReceiver (url: string, state: ReceiverState = newReceiverState()): Promise<ReceiverState & { close: () => Promise<void> }> {
  const client = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: `receiver-${Math.random()}` })
  client.on('message', (topic, payload) => {
    const p = parseTopic(topic)
    if (p?.kind !== 'records') return
    for (const env of decodeRecordBatch(new Uint8Array(payload))) {
      const r = decodeEnvelope(env)
      if (r.record.seq <= state.tip.seq) { state.duplicates++; continue }
      // A message published while nobody subscribed is lost in transit: the uplink resends on ack timeout.
      if (r.record.seq !== state.tip.seq + 1) { state.skipped++; continue }
      const f = state.verifier.push(r)
      if (f !== undefined) { state.failures.push(f.message); continue }
      state.stored.set(r.record.seq, r)
      state.tip = { seq: r.record.seq, hash: r.hash }
    }
    void client.publishAsync(deviceTopic(p.deviceId, 'ack'), Buffer.from(encodeAck({ storedSeq: state.tip.seq, storedHash: state.tip.hash, anchoredSeq: -1 })), { qos: 1, retain: true }).catch(() => {})
  })
  await client.subscribeAsync(topicFilter('records'), { qos: 1 })
  return Object.assign(state, { close: async () => { await client.endAsync() } })
}

async function waitFor (what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 25))
  }
}

t.test('behavior: drains the offline backlog oldest first once the broker comes back, deletes only acked records', async t => {
  const broker = await startMosquitto()
  t.teardown(async () => await broker.close())
  const dir = await makeTempDir(t)
  const log = await RecordLog.open({ dir, deviceId: 'dev-u', signer })
  t.teardown(async () => await log.close())
  await log.appendBoot({ agentVersion: 't', profile: 'p' })
  await broker.stop()
  const uplink = new Uplink({ log, deviceId: 'dev-u', brokerUrl: broker.url, batchRecords: 50, reconnectMinMs: 50, reconnectMaxMs: 200 })
  t.teardown(async () => await uplink.stop())
  await uplink.start()
  for (let i = 0; i < 500; i++) await log.append(body)
  t.equal(uplink.status().connected, false)
  t.equal(uplink.status().backlog, 501)
  await broker.restart()
  const receiver = await startReceiver(broker.url)
  t.teardown(async () => await receiver.close())
  // New records keep coming while the backlog drains.
  const more = (async () => { for (let i = 0; i < 200; i++) await log.append(body) })()
  await more
  await waitFor('all acked', () => uplink.status().ackedSeq === 700)
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
  const receiver = await startReceiver(broker.url)
  const uplink = new Uplink({ log, deviceId: 'dev-u', brokerUrl: broker.url, batchRecords: 20, reconnectMinMs: 20, reconnectMaxMs: 100, ackTimeoutMs: 1000 })
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
  const uplink = new Uplink({ log, deviceId: 'dev-u', brokerUrl: broker.url, keepUntil: 'anchored' })
  t.teardown(async () => await uplink.stop())
  const gw = await mqtt.connectAsync(broker.url, { protocolVersion: 5 })
  t.teardown(async () => await gw.endAsync())
  await uplink.start()
  await waitFor('connected', () => uplink.status().connected)
  const ack = async (stored: number, hash: Uint8Array, anchored: number): Promise<void> => {
    await gw.publishAsync(deviceTopic('dev-u', 'ack'), Buffer.from(encodeAck({ storedSeq: stored, storedHash: hash, anchoredSeq: anchored })), { qos: 1, retain: true })
  }
  await ack(5, sha256(new Uint8Array([9])), -1)
  await new Promise(resolve => setTimeout(resolve, 300))
  t.equal(uplink.status().ackedSeq, -1, 'an ack naming another record is ignored')
  const r5 = await log.get(5)
  await ack(5, r5?.hash as Uint8Array, -1)
  await waitFor('stored ack', () => uplink.status().ackedSeq === 5)
  t.equal((await log.range(0, 100)).length, 10, 'stored but not anchored: kept')
  await ack(5, r5?.hash as Uint8Array, 3)
  await waitFor('anchored ack', async () => (await log.range(0, 100)).length === 6)
  t.same((await log.range(0, 100)).map(r => r.record.seq), [4, 5, 6, 7, 8, 9])
})
