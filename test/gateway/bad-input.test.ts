import t from 'tap'
import mqtt from 'mqtt'
import {
  RECORD_KINDS, RECORD_SIGNING_PREFIX, RECORD_VERSION, concat, deviceTopic, encodeCanonical, encodeRecordBatch, hashLeaf, parseProof, verifyProof, type SignedRecord
} from '../../protocol/index.js'
import { deviceIdOf } from '../../contracts/index.js'
import { startGatewayEnv, httpGet } from '../fixtures/gateway-env.js'
import { DeviceFleet, makeDevices, registerDevices } from '../fixtures/gateway-fleet.js'
import { ChainBuilder, sampleBody, sampleInference, resign } from '../helpers/records.js'

const LIMIT = 64 * 1024

async function waitFor (what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

t.test('behavior: bad input is quarantined with its reason, counted, and nothing else is affected', async t => {
  const env = await startGatewayEnv(t)
  const registrar = env.chain.registryAs('deviceRegistrar')
  const good = makeDevices('good', 4, 40)
  const now = Date.now()
  const victim = new ChainBuilder({ deviceId: 'victim', seed: 'victim', startTimeMs: now, stepMs: 10 })
  victim.append(sampleBody('boot'))
  for (let i = 0; i < 9; i++) victim.appendInference()
  const revoked = new ChainBuilder({ deviceId: 'revoked', seed: 'revoked', startTimeMs: now, stepMs: 10 })
  revoked.append(sampleBody('boot'))
  const unknown = new ChainBuilder({ deviceId: 'stranger', seed: 'stranger', startTimeMs: now, stepMs: 10 })
  unknown.append(sampleBody('boot'))
  await registerDevices(registrar, good)
  await registrar.registerDevice({ deviceId: deviceIdOf('victim'), publicKey: victim.signer.publicKey, validFromMs: 0 })
  await registrar.registerDevice({ deviceId: deviceIdOf('revoked'), publicKey: revoked.signer.publicKey, validFromMs: 0 })
  await registrar.revokeDevice(deviceIdOf('revoked'), now - 1000)

  const gw = await env.gateway({ maxPayloadBytes: LIMIT, batchMaxRecords: 50 })
  const fleet = new DeviceFleet({ brokerUrl: env.broker.url, devices: good })
  t.teardown(async () => await fleet.stop())
  await fleet.start()

  const attacker = await mqtt.connectAsync(env.broker.url, { protocolVersion: 5, clientId: 'attacker' })
  t.teardown(async () => await attacker.endAsync(true))
  const send = async (topic: string, payload: Uint8Array): Promise<void> => {
    await attacker.publishAsync(topic, Buffer.from(payload), { qos: 1 })
  }
  const records = (deviceId: string, list: SignedRecord[]): [string, Uint8Array] =>
    [deviceTopic(deviceId, 'records'), encodeRecordBatch(list.map(r => r.envelope))]
  const v = victim.records

  // Forged first: a record of the victim signed by another key, before the genuine one.
  const forged = resign(v[0]?.record as SignedRecord['record'], 'not-the-victim')
  await send(...records('victim', [forged]))
  await send(deviceTopic('victim', 'records'), Uint8Array.of(0xff, 0x00)) // not CBOR
  await send(deviceTopic('victim', 'records'), encodeCanonical([1, 2, 3])) // not an array of byte strings
  await send(deviceTopic('victim', 'records'), encodeCanonical([Uint8Array.of(1, 2, 3)])) // not an envelope
  await send(deviceTopic('victim', 'records'), new Uint8Array(LIMIT + 1)) // oversized
  await send(...records('victim', [...(good[0]?.records.slice(0, 1) ?? [])])) // another device's record on the victim's topic
  await send(...records('stranger', unknown.records)) // unregistered device
  await send(...records('revoked', revoked.records)) // revoked device
  await send('prov/v1/bad!topic/records', encodeRecordBatch([])) // not a device id
  // Now the genuine records: out of order, with a resend of some.
  await send(...records('victim', v.slice(5, 10)))
  await send(...records('victim', v.slice(0, 5)))
  await send(...records('victim', v.slice(3, 6)))
  await waitFor('the victim stored', async () => gw.deviceStatus('victim')?.lastSeq === 9)

  // A replay that is a different, validly signed record for a stored seq; a broken link.
  const fork = new ChainBuilder({ deviceId: 'victim', seed: 'victim', startTimeMs: now + 5, stepMs: 10 })
  fork.append(sampleBody('boot'))
  fork.append(sampleInference(999))
  await send(...records('victim', [fork.records[1] as SignedRecord]))
  const badLink = new ChainBuilder({ deviceId: 'victim', seed: 'victim', startTimeMs: now + 200, stepMs: 10, startSeq: 10, prev: new Uint8Array(32).fill(7) })
  badLink.appendInference()
  await send(...records('victim', badLink.records))
  victim.appendInference()
  await send(...records('victim', [victim.records[10] as SignedRecord]))
  await waitFor('the victim record 10', async () => gw.deviceStatus('victim')?.lastSeq === 10)
  // Signed by the victim's own key, with a header that reads as the next record, but a body that
  // is not a record's (an inference with 4 fields): its signature goes ahead to the pool and is
  // valid, and it must still be quarantined as malformed when its turn decodes it, never stored.
  const last = victim.records[10] as SignedRecord
  const badBody = encodeCanonical([RECORD_VERSION, RECORD_KINDS.inference, 'victim', last.record.boot, 11, last.record.timeMs + 10, last.hash, [new Uint8Array(32), [], [], 1]])
  const signedBadBody = encodeCanonical([badBody, victim.signer.sign(concat(RECORD_SIGNING_PREFIX, badBody))])
  await send(deviceTopic('victim', 'records'), encodeRecordBatch([signedBadBody]))

  const expected: Record<string, number> = {
    'bad-signature': 1,
    'payload-malformed': 2,
    'record-malformed': 2,
    'payload-too-large': 1,
    'topic-mismatch': 1,
    'unknown-device': 1,
    'device-revoked': 1,
    'bad-topic': 1,
    'seq-reuse': 1,
    'prev-hash-mismatch': 1
  }
  const total = Object.values(expected).reduce((a, b) => a + b, 0)
  let seen: Array<{ reason: string }> = []
  await waitFor('every quarantine entry', async () => {
    seen = (await httpGet(`${gw.httpUrl}/v1/quarantine?limit=100`)).json().entries
    return seen.length === total
  }).catch((e: Error) => { throw new Error(`${e.message}: ${seen.length} of ${total}: ${JSON.stringify(seen.map(x => x.reason))}`) })
  const entries = (await httpGet(`${gw.httpUrl}/v1/quarantine?limit=100`)).json().entries as Array<{ reason: string, device: string | null, seq: number | null, rawBytes: number, raw: string }>
  const byReason: Record<string, number> = {}
  for (const e of entries) byReason[e.reason] = (byReason[e.reason] ?? 0) + 1
  t.same(byReason, expected, 'quarantined with their reasons')
  const tooLarge = entries.find(e => e.reason === 'payload-too-large')
  t.equal(tooLarge?.rawBytes, LIMIT + 1, 'the full size is recorded')
  t.ok(Buffer.from(tooLarge?.raw ?? '', 'base64').length <= 16 * 1024, 'raw bytes cut at the limit')
  t.match(entries.find(e => e.reason === 'seq-reuse'), { device: 'victim', seq: 1 })

  const metrics = (await httpGet(`${gw.httpUrl}/metrics`)).text
  for (const [reason, n] of Object.entries(expected)) {
    t.match(metrics, new RegExp(`provenance_gateway_records_quarantined_total\\{reason="${reason}"\\} ${n}\\b`), `metric for ${reason}`)
  }
  t.match(metrics, /provenance_gateway_records_duplicate_total [1-9]/, 'resends counted as duplicates')

  // Nothing else affected: the fleet and the victim are stored once, anchored, and provable.
  await fleet.waitAllStored(20_000)
  await fleet.waitAllAnchored(20_000)
  t.match(gw.deviceStatus('victim'), { lastSeq: 10, stored: 11, quarantined: 9, pending: 0 })
  for (const d of good) t.match(gw.deviceStatus(d.id), { stored: 40, quarantined: 0 })
  await gw.sealNow()
  for (const r of victim.records) {
    const res = await httpGet(`${gw.httpUrl}/v1/proof/victim/${r.record.seq}`)
    t.equal(res.status, 200)
    verifyProof(parseProof(res.text), hashLeaf(r.envelope))
  }
  t.equal((await httpGet(`${gw.httpUrl}/v1/proof/stranger/0`)).status, 404, 'nothing stored for the unknown device')
  t.equal((await httpGet(`${gw.httpUrl}/v1/proof/revoked/0`)).status, 404, 'nothing stored for the revoked device')
  t.match((await httpGet(`${gw.httpUrl}/healthz`)).json(), { ok: true })
})

t.test('behavior: the quarantine keeps the newest quarantineMaxEntries entries', async t => {
  const env = await startGatewayEnv(t)
  const gw = await env.gateway({ quarantineMaxEntries: 3, gapReportAfterMs: 200 })
  const attacker = await mqtt.connectAsync(env.broker.url, { protocolVersion: 5, clientId: 'flooder' })
  t.teardown(async () => await attacker.endAsync(true))
  for (let i = 0; i < 8; i++) await attacker.publishAsync(deviceTopic('flood', 'records'), Buffer.from([0xff, i]), { qos: 1 })
  await waitFor('pruned to 3', async () => {
    const entries = (await httpGet(`${gw.httpUrl}/v1/quarantine?limit=100`)).json().entries as Array<{ raw: string }>
    return entries.length === 3 && entries[0]?.raw === Buffer.from([0xff, 7]).toString('base64')
  })
  t.match((await httpGet(`${gw.httpUrl}/metrics`)).text, /provenance_gateway_records_quarantined_total\{reason="payload-malformed"\} 8\b/, 'all counted')
})
