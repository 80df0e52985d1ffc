// Issue 9, item 3, the gateway's side: its acks are signed with its log key (kept 0600 in its
// state folder, the same key across restarts), and in a share group it takes a peer's retained
// ack as a device's tip only when a trusted gateway signed it.
import t from 'tap'
import mqtt from 'mqtt'
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RecordLog } from '../../agent/log/index.js'
import { Uplink } from '../../agent/uplink/index.js'
import { deviceIdOf } from '../../contracts/index.js'
import { GatewayError, loadOrCreateLogKey, type GatewayLogger } from '../../gateway/index.js'
import { createSigner, deviceTopic, encodeCanonical, encodeRecordBatch, signAck, toHex, verifyAck } from '../../protocol/index.js'
import { startGatewayEnv } from '../fixtures/gateway-env.js'
import { ChainBuilder, sampleBody } from '../helpers/records.js'

async function waitFor (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 25))
  }
}

async function codeOf (p: Promise<unknown>): Promise<string | undefined> {
  try { await p; return undefined } catch (e) {
    if (!(e instanceof GatewayError)) throw e
    return e.code
  }
}

t.test('behavior: the log key is created 0600 once and read back the same', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'prov-logkey-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'state', 'log-key.json')
  const first = await loadOrCreateLogKey(path, { nowMs: 5 })
  t.equal((await stat(path)).mode & 0o777, 0o600)
  const again = await loadOrCreateLogKey(path)
  t.equal(toHex(again.publicKey), toHex(first.publicKey), 'same key after a restart')
  t.equal(again.createdMs, 5)
  const raced = await Promise.all([1, 2, 3].map(async i => await loadOrCreateLogKey(join(dir, 'race.json'), { nowMs: i })))
  t.equal(new Set(raced.map(k => toHex(k.publicKey))).size, 1, 'concurrent creators end with one key')
})

t.test('error: an unreadable, insecure or foreign log key file', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'prov-logkey-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  t.equal(await codeOf(loadOrCreateLogKey(join(dir, 'missing.json'), { create: false })), 'LOG_KEY_UNREADABLE')
  const path = join(dir, 'k.json')
  await loadOrCreateLogKey(path)
  await chmod(path, 0o644)
  t.equal(await codeOf(loadOrCreateLogKey(path)), 'LOG_KEY_INSECURE')
  await writeFile(join(dir, 'bad.json'), '{"v":1,"seed":"zz","createdMs":0}', { mode: 0o600 })
  t.equal(await codeOf(loadOrCreateLogKey(join(dir, 'bad.json'))), 'LOG_KEY_INVALID')
  await writeFile(join(dir, 'notjson.json'), 'seed', { mode: 0o600 })
  t.equal(await codeOf(loadOrCreateLogKey(join(dir, 'notjson.json'))), 'LOG_KEY_INVALID')
})

t.test('attack: forged peer acks do not move a device\'s tip at a gateway in a share group, a trusted peer\'s does', async t => {
  const env = await startGatewayEnv(t)
  const device = new ChainBuilder({ deviceId: 'shared-dev', seed: 'shared-dev', startTimeMs: Date.now(), stepMs: 10 })
  await env.chain.registryAs('deviceRegistrar').registerDevice({ deviceId: deviceIdOf('shared-dev'), publicKey: device.signer.publicKey, validFromMs: 0 })
  device.append(sampleBody('boot'))
  for (let i = 1; i < 6; i++) device.appendInference()
  const peer = createSigner(new Uint8Array(32).fill(0x51))
  const gw = await env.gateway({ name: 'gw-s', shareGroup: 'fleet', peerGatewayKeys: [toHex(peer.publicKey)] })
  // The gateway's own acks verify under its log key, as a device checks them.
  const own = await mqtt.connectAsync(env.broker.url, { protocolVersion: 5, clientId: `listener-${process.pid}` })
  t.teardown(async () => await own.endAsync(true))
  let ownAck: ReturnType<typeof verifyAck> | undefined
  own.on('message', (_topic, payload) => {
    // Later the attacker's acks come by too: keep only what the gateway's key signed.
    try { ownAck = verifyAck(new Uint8Array(payload), { deviceId: 'shared-dev', trustedKeys: [gw.logPublicKey as Uint8Array] }) } catch {}
  })
  await own.subscribeAsync(deviceTopic('shared-dev', 'ack'), { qos: 1 })

  const attacker = await mqtt.connectAsync(env.broker.url, { protocolVersion: 5, clientId: `attacker-${process.pid}` })
  t.teardown(async () => await attacker.endAsync(true))
  const records = device.records
  await attacker.publishAsync(deviceTopic('shared-dev', 'records'), Buffer.from(encodeRecordBatch(records.slice(0, 3).map(r => r.envelope))), { qos: 1 })
  await waitFor('stored 0..2', () => gw.deviceStatus('shared-dev')?.lastSeq === 2)
  await waitFor('own signed ack', () => ownAck?.statement.storedSeq === 2)
  t.equal(ownAck?.statement.gatewayId, 'gateway.gw-s')

  const far = records[5]
  const publishAck = async (deviceId: string, payload: Uint8Array): Promise<void> => {
    await attacker.publishAsync(deviceTopic(deviceId, 'ack'), Buffer.from(payload), { qos: 1, retain: true })
  }
  const attackerKey = createSigner(new Uint8Array(32).fill(0x66))
  await publishAck('shared-dev', encodeCanonical([1, 101, far?.hash as Uint8Array, 101]))
  await publishAck('shared-dev', signAck({ deviceId: 'shared-dev', gatewayId: 'gateway.evil', issuedAtMs: 1, storedSeq: 100, storedHash: far?.hash as Uint8Array, anchoredSeq: 100 }, attackerKey).envelope)
  await publishAck('ghost-dev', encodeCanonical([1, 101, far?.hash as Uint8Array, 101]))
  // A genuine ack of the trusted peer for this device, replayed on another device's topic.
  await publishAck('other-dev', signAck({ deviceId: 'shared-dev', gatewayId: 'gateway.peer', issuedAtMs: 2, storedSeq: 5, storedHash: far?.hash as Uint8Array, anchoredSeq: -1 }, peer).envelope)
  // Last, on the same topic and connection (so delivered after the forgeries): the trusted peer stored through 4.
  await publishAck('shared-dev', signAck({ deviceId: 'shared-dev', gatewayId: 'gateway.peer', issuedAtMs: 3, storedSeq: 4, storedHash: records[4]?.hash as Uint8Array, anchoredSeq: -1 }, peer).envelope)
  await waitFor('the peer\'s tip taken', () => gw.deviceStatus('shared-dev')?.lastSeq === 4)
  t.match(gw.deviceStatus('shared-dev'), { lastSeq: 4, tipFromPeer: true, anchoredSeq: -1 }, 'only the trusted peer moved the tip; no forged anchored seq')
  t.equal(gw.deviceStatus('ghost-dev'), undefined, 'a forged ack creates no device state')
  t.equal(gw.deviceStatus('other-dev'), undefined, 'a replayed foreign ack creates no device state')
  // And the records after the peer's tip link to it.
  await attacker.publishAsync(deviceTopic('shared-dev', 'records'), Buffer.from(encodeRecordBatch([records[5]?.envelope as Uint8Array])), { qos: 1 })
  await waitFor('record 5 stored', () => gw.deviceStatus('shared-dev')?.lastSeq === 5)
})

t.test('behavior: a device trusting both gateways of a share group deletes on the signed acks of either', async t => {
  const env = await startGatewayEnv(t)
  const second = env.chain.anvil.accounts[5]
  if (second === undefined) throw new Error('anvil has no account 5')
  await env.chain.registryAs('admin').grantRole('anchorer', second.address)
  const keyA = await loadOrCreateLogKey(join(env.dir, 'gw-sa', 'log-key.json'))
  const keyB = await loadOrCreateLogKey(join(env.dir, 'gw-sb', 'log-key.json'))
  const a = await env.gateway({ name: 'gw-sa', shareGroup: 'fleet', peerGatewayKeys: [toHex(keyB.publicKey)] })
  const b = await env.gateway({ name: 'gw-sb', shareGroup: 'fleet', anchorPrivateKey: second.privateKey, peerGatewayKeys: [toHex(keyA.publicKey)] })
  // Both keys on chain, as devices' are: an auditor finds which keys signed acks.
  for (const [g, k] of [[a, keyA], [b, keyB]] as const) {
    await env.chain.registryAs('deviceRegistrar').registerDevice({ deviceId: deviceIdOf(g.options.gatewayId), publicKey: k.publicKey, validFromMs: 0 })
  }
  const signer = createSigner(new Uint8Array(32).fill(0x42))
  await env.chain.registryAs('deviceRegistrar').registerDevice({ deviceId: deviceIdOf('both-dev'), publicKey: signer.publicKey, validFromMs: 0 })
  const log = await RecordLog.open({ dir: join(env.dir, 'device'), deviceId: 'both-dev', signer })
  t.teardown(async () => await log.close())
  await log.appendBoot({ agentVersion: 't', profile: 'p' })
  for (let i = 0; i < 59; i++) await log.append(() => sampleBody('inference'))
  const uplink = new Uplink({ log, deviceId: 'both-dev', brokerUrl: env.broker.url, batchRecords: 5, maxInFlightBatches: 1, gatewayPublicKeys: [keyA.publicKey, keyB.publicKey] })
  t.teardown(async () => await uplink.stop())
  await uplink.start()
  await waitFor('all acked and deleted', async () => log.acked === 59 && (await log.range(0, 100)).length === 1, 30_000)
  const storedA = a.deviceStatus('both-dev')?.stored ?? 0
  const storedB = b.deviceStatus('both-dev')?.stored ?? 0
  t.equal(storedA + storedB, 60, `every record stored once (${storedA} + ${storedB})`)
  t.ok(storedA > 0 && storedB > 0, 'both gateways stored some')
  const acks = uplink.status().acks
  t.ok(acks.accepted >= 2, `${acks.accepted} acks taken`)
  t.same(Object.keys(acks.rejected).filter(r => r !== 'ACK_STALE'), [], 'nothing refused but an older ack of the other gateway')
})

t.test('behavior: at start the gateway says whether its log key is registered on chain under its gatewayId', async t => {
  const env = await startGatewayEnv(t)
  const lines: Array<{ level: string, msg: string }> = []
  const logger: GatewayLogger = {
    debug () {},
    info (_f, msg) { lines.push({ level: 'info', msg: msg ?? '' }) },
    warn (_f, msg) { lines.push({ level: 'warn', msg: msg ?? '' }) },
    error (_f, msg) { lines.push({ level: 'error', msg: msg ?? '' }) }
  }
  const said = async (msg: string): Promise<void> => { await waitFor(msg, () => lines.some(l => l.msg === msg)) }
  await env.gateway({ name: 'gw-unregistered', logger })
  await said('log key not registered on chain: register it with provenance-fleet gateway register --id <gatewayId> --public-key <key> (registerDevice under gatewayId)')
  const key = await loadOrCreateLogKey(join(env.dir, 'gw-registered', 'log-key.json'))
  await env.chain.registryAs('deviceRegistrar').registerDevice({ deviceId: deviceIdOf('gateway.gw-registered'), publicKey: key.publicKey, validFromMs: 0 })
  await env.gateway({ name: 'gw-registered', logger })
  await said('log key registered on chain')
  await env.chain.registryAs('deviceRegistrar').registerDevice({ deviceId: deviceIdOf('gateway.gw-other'), publicKey: key.publicKey, validFromMs: 0 })
  await env.gateway({ name: 'gw-other', logger })
  await said('the key registered on chain under gatewayId is not this gateway\'s log key')
  t.pass()
})
