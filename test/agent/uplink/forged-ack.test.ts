// Issue 9, item 3: a device deletes only what a signed ack of a gateway it trusts proves stored.
// The attack that worked before, run as an outsider would: no gateway, an anonymous client reads
// the device's records off the broker, computes the tip's hash and publishes a retained ack.
import t from 'tap'
import mqtt from 'mqtt'
import { RecordLog } from '../../../agent/log/index.js'
import type { Logger } from '../../../agent/session/index.js'
import { Uplink, type AckRejection } from '../../../agent/uplink/index.js'
import { startEmbeddedBroker } from '../../../gateway/index.js'
import {
  createSigner, decodeEnvelope, decodeRecordBatch, deviceTopic, encodeCanonical, sha256, signAck, ZERO_HASH,
  type Ack, type RecordBody
} from '../../../protocol/index.js'
import { startMosquitto } from '../../helpers/mosquitto.js'
import { makeTempDir } from '../../helpers/tmp.js'

const DEVICE = 'dev-forged'
const deviceKey = createSigner(new Uint8Array(32).fill(4))
/** The fleet's real gateway: its key is what the device trusts. It never runs in the attack. */
const gatewayKey = createSigner(new Uint8Array(32).fill(8))
const attackerKey = createSigner(new Uint8Array(32).fill(9))
const body = (seq: number): RecordBody => ({ kind: 'inference', modelHash: sha256(new Uint8Array([1])), inputs: [], outputs: [], latencyUs: seq, decision: null })
let issued = 1_000
const sign = (signer: typeof gatewayKey, deviceId: string, ack: Ack, issuedAtMs = issued++): Uint8Array =>
  signAck({ deviceId, gatewayId: 'gateway.gw-1', issuedAtMs, ...ack }, signer).envelope

async function waitFor (what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

interface Setup { log: RecordLog, uplink: Uplink, seqs: () => Promise<number[]> }

async function device (t: Tap, url: string, version: 4 | 5, gatewayPublicKeys: Uint8Array[] = [gatewayKey.publicKey], logger?: Logger): Promise<Setup> {
  const log = await RecordLog.open({ dir: await makeTempDir(t), deviceId: DEVICE, signer: deviceKey })
  t.teardown(async () => await log.close())
  await log.appendBoot({ agentVersion: 't', profile: 'p' })
  for (let i = 0; i < 21; i++) await log.append(body)
  const uplink = new Uplink({ log, deviceId: DEVICE, brokerUrl: url, mqttProtocolVersion: version, reconnectMinMs: 50, reconnectMaxMs: 200, gatewayPublicKeys, ...(logger !== undefined ? { logger } : {}) })
  t.teardown(async () => await uplink.stop())
  return { log, uplink, seqs: async () => (await log.range(0, 1000)).map(r => r.record.seq) }
}
type Tap = { teardown: (fn: () => unknown) => void }

/** The outsider: anonymous, reads the records topic, acks the tip it saw with forged acks. */
async function forge (t: Tap, url: string, version: 4 | 5, forgeries: (tip: { seq: number, hash: Uint8Array }) => Uint8Array[]): Promise<number> {
  const attacker = await mqtt.connectAsync(url, { protocolVersion: version, clientId: `attacker-${process.pid}` })
  t.teardown(async () => await attacker.endAsync(true))
  let tip = { seq: -1, hash: ZERO_HASH }
  attacker.on('message', (_topic, payload) => {
    for (const env of decodeRecordBatch(new Uint8Array(payload))) {
      const r = decodeEnvelope(env)
      if (r.record.seq > tip.seq) tip = { seq: r.record.seq, hash: r.hash }
    }
  })
  await attacker.subscribeAsync(deviceTopic(DEVICE, 'records'), { qos: 1 })
  await waitFor('the attacker to see the tip', () => tip.seq === 21)
  const payloads = forgeries(tip)
  for (const p of payloads) await attacker.publishAsync(deviceTopic(DEVICE, 'ack'), Buffer.from(p), { qos: 1, retain: true })
  return payloads.length
}

/** Version 1 (unsigned), self-signed, and the real gateway's name on the attacker's signature. */
function attackPayloads (tip: { seq: number, hash: Uint8Array }): Uint8Array[] {
  const ack = { storedSeq: tip.seq, storedHash: tip.hash, anchoredSeq: tip.seq }
  const selfSigned = sign(attackerKey, DEVICE, ack)
  // The statement re-encoded with the trusted key in it, the attacker's signature kept.
  const ackBytes = encodeCanonical([2, DEVICE, 'gateway.gw-1', gatewayKey.publicKey, issued++, tip.seq + 1, tip.hash, tip.seq + 1])
  const stolenName = encodeCanonical([ackBytes, attackerKey.sign(ackBytes)])
  return [encodeCanonical([1, tip.seq + 1, tip.hash, tip.seq + 1]), selfSigned, stolenName]
}

const rejected = (u: Uplink, reason: AckRejection): number => u.status().acks.rejected[reason] ?? 0

for (const broker of ['mosquitto', 'aedes'] as const) {
  t.test(`attack (${broker}): forged retained acks from an anonymous client with no gateway running delete nothing`, async t => {
    const b = broker === 'mosquitto' ? await startMosquitto() : await startEmbeddedBroker()
    t.teardown(async () => await b.close())
    const version = broker === 'mosquitto' ? 5 : 4
    const d = await device(t, b.url, version)
    await d.uplink.start()
    await forge(t, b.url, version, attackPayloads)
    await waitFor('every forgery refused', () => rejected(d.uplink, 'ACK_UNSIGNED') >= 1 && rejected(d.uplink, 'ACK_UNKNOWN_KEY') >= 1 && rejected(d.uplink, 'ACK_SIGNATURE_INVALID') >= 1)
    // The last forgery stays retained: a reconnect reads it again, and refuses it again.
    t.same(await d.seqs(), Array.from({ length: 22 }, (_, i) => i), 'all 22 records kept')
    t.equal(d.log.acked, -1, 'nothing counts as acknowledged')
    t.match(d.uplink.status(), { ackedSeq: -1, anchoredSeq: -1, acks: { mode: 'verified', accepted: 0 } })
  })
}

t.test('attack: with no gateway key configured, even a genuine signed ack deletes nothing (keep-all)', async t => {
  const b = await startMosquitto()
  t.teardown(async () => await b.close())
  const d = await device(t, b.url, 5, [])
  await d.uplink.start()
  await forge(t, b.url, 5, tip => [...attackPayloads(tip), sign(gatewayKey, DEVICE, { storedSeq: tip.seq, storedHash: tip.hash, anchoredSeq: tip.seq })])
  await waitFor('in flight cleared by the acks', async () => d.uplink.status().sentMessages >= 1)
  await new Promise(resolve => setTimeout(resolve, 300))
  t.equal((await d.seqs()).length, 22, 'all 22 records kept')
  t.equal(d.log.acked, -1)
  t.equal(d.uplink.status().acks.mode, 'keep-all', 'status says acks delete nothing')
})

t.test('error: each reason an ack is refused for changes nothing and is counted', async t => {
  const b = await startMosquitto()
  t.teardown(async () => await b.close())
  const d = await device(t, b.url, 5)
  const gw = await mqtt.connectAsync(b.url, { protocolVersion: 5, clientId: `gw-${process.pid}` })
  t.teardown(async () => await gw.endAsync(true))
  await d.uplink.start()
  await waitFor('connected', () => d.uplink.status().connected)
  const publish = async (payload: Uint8Array): Promise<void> => { await gw.publishAsync(deviceTopic(DEVICE, 'ack'), Buffer.from(payload), { qos: 1, retain: true }) }
  const hashAt = async (seq: number): Promise<Uint8Array> => (await d.log.get(seq))?.hash as Uint8Array
  const expectRefused = async (reason: AckRejection, payload: Uint8Array): Promise<void> => {
    const before = rejected(d.uplink, reason)
    const seqsBefore = await d.seqs()
    const ackedBefore = d.log.acked
    await publish(payload)
    await waitFor(reason, () => rejected(d.uplink, reason) === before + 1)
    t.same(await d.seqs(), seqsBefore, `${reason}: nothing deleted`)
    t.equal(d.log.acked, ackedBefore, `${reason}: acked unchanged`)
    t.equal(d.uplink.status().acks.lastRejection?.reason, reason)
  }

  await expectRefused('ACK_MALFORMED', new Uint8Array([0x82, 0x41, 0x00]))
  await expectRefused('ACK_UNSIGNED', encodeCanonical([1, 22, await hashAt(21), 0]))
  await expectRefused('ACK_UNKNOWN_KEY', sign(attackerKey, DEVICE, { storedSeq: 21, storedHash: await hashAt(21), anchoredSeq: -1 }))
  const genuine = sign(gatewayKey, DEVICE, { storedSeq: 21, storedHash: await hashAt(21), anchoredSeq: -1 })
  const tampered = genuine.slice()
  tampered[tampered.length - 1] = (tampered.at(-1) as number) ^ 1
  await expectRefused('ACK_SIGNATURE_INVALID', tampered)
  // A genuine ack of the gateway for another device, replayed on this device's topic.
  await expectRefused('ACK_FOREIGN_DEVICE', sign(gatewayKey, 'dev-other', { storedSeq: 21, storedHash: await hashAt(21), anchoredSeq: -1 }))
  await expectRefused('ACK_HASH_MISMATCH', sign(gatewayKey, DEVICE, { storedSeq: 21, storedHash: sha256(new Uint8Array([7])), anchoredSeq: -1 }))
  await expectRefused('ACK_BEYOND_HEAD', sign(gatewayKey, DEVICE, { storedSeq: 500, storedHash: await hashAt(21), anchoredSeq: -1 }))

  // A genuine ack is taken; then older ones of the same gateway roll nothing back.
  const older = sign(gatewayKey, DEVICE, { storedSeq: 5, storedHash: await hashAt(5), anchoredSeq: -1 })
  const olderSameSeq = sign(gatewayKey, DEVICE, { storedSeq: 10, storedHash: await hashAt(10), anchoredSeq: -1 })
  await publish(sign(gatewayKey, DEVICE, { storedSeq: 10, storedHash: await hashAt(10), anchoredSeq: -1 }))
  await waitFor('genuine ack taken, records through it deleted', async () => (await d.seqs())[0] === 11)
  t.equal(d.log.acked, 10)
  t.equal(d.uplink.status().acks.accepted, 1)
  await expectRefused('ACK_STALE', older)
  await expectRefused('ACK_STALE', olderSameSeq)
  t.equal(d.uplink.status().acks.accepted, 1, 'only the genuine, current ack was taken')
})

t.test('attack: a flood of forged and oversized acks deletes nothing, logs a handful of lines, and a genuine ack still gets through', async t => {
  const b = await startMosquitto()
  t.teardown(async () => await b.close())
  const warnings: string[] = []
  const logger: Logger = { info () {}, error () {}, warn (_o, msg) { warnings.push(msg ?? '') } }
  const d = await device(t, b.url, 5, [gatewayKey.publicKey], logger)
  await d.uplink.start()
  await waitFor('connected', () => d.uplink.status().connected)
  const flood = await mqtt.connectAsync(b.url, { protocolVersion: 5, clientId: `flood-${process.pid}` })
  t.teardown(async () => await flood.endAsync(true))
  const tip = await d.log.get(21)
  const forged = sign(attackerKey, DEVICE, { storedSeq: 21, storedHash: tip?.hash as Uint8Array, anchoredSeq: 21 })
  const big = new Uint8Array(100_000)
  for (let i = 0; i < 2000; i++) flood.publish(deviceTopic(DEVICE, 'ack'), Buffer.from(i % 40 === 0 ? big : forged), { qos: 1 })
  await flood.publishAsync(deviceTopic(DEVICE, 'ack'), Buffer.from(sign(gatewayKey, DEVICE, { storedSeq: 21, storedHash: tip?.hash as Uint8Array, anchoredSeq: -1 })), { qos: 1 })
  // log.acked moves before the deletion is durable: wait for the log itself.
  await waitFor('the genuine ack applied', async () => d.log.acked === 21 && (await d.seqs()).length === 1)
  const r = d.uplink.status().acks.rejected
  t.equal((r.ACK_UNKNOWN_KEY ?? 0) + (r.ACK_MALFORMED ?? 0), 2000, 'every forgery refused and counted')
  t.ok(warnings.filter(w => w === 'ack refused: nothing deleted').length <= 24, `${warnings.length} warnings for 2000 forgeries`)
  t.same((await d.seqs()), [21], 'only what the genuine ack covers was deleted (the tip stays)')
})
