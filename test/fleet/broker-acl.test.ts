// Broker security with the real Mosquitto 2.x: users and ACLs written by `provenance-fleet`
// (device and gateway registration, broker add-user) are enforced by the broker itself — a device
// cannot publish on another device's topic or read another device's policy, and the policy
// reaches devices only through the publisher's user.
import t from 'tap'
import { spawn } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import mqtt, { type MqttClient } from 'mqtt'
import { startAnvil } from '../../contracts/index.js'
import { ENROLLMENT_FORMAT, createSigner, decodeEnvelope, decodeRecordBatch, generateSeed, toHex } from '../../protocol/index.js'
import { fleet } from '../helpers/fleet.js'
import { startMosquitto } from '../helpers/mosquitto.js'
import { makeTempDir } from '../helpers/tmp.js'

const dir = await makeTempDir(t, 'prov-fleet-broker-')
const anvil = await startAnvil({ accountCount: 1 })
t.teardown(anvil.stop)
const operator = anvil.accounts[0]!
const chainEnv: Record<string, string> = { PROVENANCE_RPC_URL: anvil.rpcUrl, PROVENANCE_FLEET_KEY: operator.privateKey }
const deployed = await fleet(['deploy'], chainEnv)
chainEnv.PROVENANCE_REGISTRY = deployed.stdout.trim()
await fleet(['role', 'grant', '--role', 'device-registrar', '--account', operator.address], chainEnv)

const acl = join(dir, 'acl')
const passwd = join(dir, 'passwd')
const brokerFiles = (name: string): string[] => ['--mosquitto-acl', acl, '--mosquitto-passwd', passwd, '--mqtt-password-file', join(dir, `${name}.pw`)]
const password = async (name: string): Promise<string> => (await readFile(join(dir, `${name}.pw`), 'utf8')).trim()

for (const id of ['cam-a', 'cam-b']) {
  const file = join(dir, `${id}.json`)
  await writeFile(file, JSON.stringify({ format: ENROLLMENT_FORMAT, deviceId: id, publicKey: toHex(createSigner(generateSeed()).publicKey), validFromMs: 0, profile: 'generic-x86_64', agentVersion: '0.1.0', createdMs: 1 }))
  const r = await fleet(['device', 'register', '--enrollment', file, ...brokerFiles(id), '--json'], chainEnv)
  if (r.code !== 0) throw new Error(r.stderr)
}
const gw = await fleet(['gateway', 'register', '--id', 'gateway-1', '--public-key', toHex(createSigner(generateSeed()).publicKey), ...brokerFiles('gateway-1')], chainEnv)
if (gw.code !== 0) throw new Error(gw.stderr)
const pub = await fleet(['broker', 'add-user', '--username', 'policy-publisher', '--role', 'publisher', ...brokerFiles('policy-publisher')])
if (pub.code !== 0) throw new Error(pub.stderr)

// The example config as shipped, with this test's files: listener and persistence are the
// helper's (a free loopback port, no state), everything else runs as written.
const example = (await readFile(new URL('../../fleet/mosquitto/provenance.conf', import.meta.url), 'utf8')).split('\n')
  .map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#') && !/^(listener|persistence|persistence_location) /.test(l))
  .map(l => l.replace(/^password_file .*/, `password_file ${passwd}`).replace(/^acl_file .*/, `acl_file ${acl}`))
const broker = await startMosquitto({
  config: [
    ...example,
    // Mosquitto started as root drops to user mosquitto, which cannot read 0600 files owned by
    // the test's user; stay as the starting user (ignored when not root).
    'user root'
  ]
})
t.teardown(broker.close)

const clients: MqttClient[] = []
t.teardown(async () => { await Promise.all(clients.map(async c => await c.endAsync(true))) })
async function connect (username: string | undefined, pw?: string, clientId?: string): Promise<MqttClient> {
  const c = await mqtt.connectAsync(broker.url, {
    protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 10_000, ...(clientId !== undefined ? { clientId } : {}),
    ...(username !== undefined ? { username } : {}), ...(pw !== undefined ? { password: pw } : {})
  })
  clients.push(c)
  return c
}

t.test('behavior: a device publishing on another device\'s topic is refused by the broker; its own records reach the gateway', async t => {
  const gateway = await connect('gateway-1', await password('gateway-1'))
  const received: string[] = []
  let wake: (() => void) | undefined
  gateway.on('message', (topic, payload) => { received.push(`${topic} ${payload.toString()}`); wake?.() })
  await gateway.subscribeAsync('prov/v1/+/records', { qos: 1 })
  const camA = await connect('cam-a', await password('cam-a'))
  const refused = await camA.publishAsync('prov/v1/cam-b/records', 'forged by cam-a', { qos: 1 }).then(() => undefined, (e: unknown) => e)
  t.match(refused, { code: 135 }, 'PUBACK reason 0x87 not authorized')
  // The broker handles one client's publishes in order: once the allowed one arrives, the forged
  // one (sent first) would have arrived before it.
  const arrived = new Promise<void>(resolve => { wake = () => { if (received.some(r => r.endsWith('own by cam-a'))) resolve() } })
  await camA.publishAsync('prov/v1/cam-a/records', 'own by cam-a', { qos: 1 })
  await arrived
  t.same(received, ['prov/v1/cam-a/records own by cam-a'], 'only its own topic was delivered')
})

t.test('behavior: policy publish reaches a device through the publisher user; a device can neither publish a policy nor read another\'s', async t => {
  const seedFile = join(dir, 'publisher.seed')
  t.equal((await fleet(['policy', 'keygen', '--out', seedFile])).code, 0)
  const envelopeFile = join(dir, 'policy.cbor')
  const signed = await fleet(['policy', 'sign', '--publisher-key-file', seedFile, '--policy-version', '1', '--fleet-id', 'fleet-1', '--model-hash', 'ab'.repeat(32), '--out', envelopeFile])
  t.equal(signed.code, 0, signed.stderr)
  const forged = await fleet(['policy', 'publish', '--policy', envelopeFile, '--device', 'cam-b', '--broker-url', broker.url, '--mqtt-username', 'cam-a', '--mqtt-password-file', join(dir, 'cam-a.pw')])
  t.equal(forged.code, 1)
  t.match(forged.last, /^MQTT_PUBLISH_FAILED: the broker refused prov\/v1\/cam-b\/policy/)
  const ok = await fleet(['policy', 'publish', '--policy', envelopeFile, '--device', 'cam-a', '--device', 'cam-b', '--broker-url', broker.url, '--mqtt-username', 'policy-publisher', '--json'],
    { PROVENANCE_MQTT_PASSWORD: await password('policy-publisher') })
  t.equal(ok.code, 0, ok.stderr)
  t.match(ok.json(), { dryRun: false, topics: ['prov/v1/cam-a/policy', 'prov/v1/cam-b/policy'], policyVersion: 1 })
  const camA = await connect('cam-a', await password('cam-a'))
  const messages: string[] = []
  const own = new Promise<Buffer>(resolve => camA.on('message', (topic, payload) => { messages.push(topic); if (topic === 'prov/v1/cam-a/policy') resolve(payload) }))
  // Mosquitto 2.0 grants the subscription but delivers nothing the read ACL refuses. Subscribing
  // to cam-b's policy first: its retained message would be queued before cam-a's own.
  await camA.subscribeAsync('prov/v1/cam-b/policy', { qos: 1 })
  await camA.subscribeAsync('prov/v1/cam-a/policy', { qos: 1 })
  t.same(new Uint8Array(await own), new Uint8Array(await readFile(envelopeFile)), 'the retained policy is the signed envelope')
  t.same(messages, ['prov/v1/cam-a/policy'], 'cam-b\'s retained policy was not delivered to cam-a')
})

t.test('behavior: a device using the gateway\'s client id does not take over the gateway\'s session', async t => {
  const gateway = await connect('gateway-1', await password('gateway-1'), 'provenance-gateway-gateway-1')
  const closed = new Promise<string>(resolve => gateway.once('close', () => resolve('gateway disconnected')))
  const received: string[] = []
  let wake: (() => void) | undefined
  gateway.on('message', (topic) => { received.push(topic); wake?.() })
  await gateway.subscribeAsync('prov/v1/+/records', { qos: 1 })
  const thief = await connect('cam-a', await password('cam-a'), 'provenance-gateway-gateway-1')
  t.equal(thief.connected, true, 'the broker lets it in under its own name')
  // The gateway is still connected and still receives: a device's own publish gets through.
  const arrived = new Promise<string>(resolve => { wake = () => resolve('delivered') })
  await thief.publishAsync('prov/v1/cam-a/records', 'after the takeover attempt', { qos: 1 })
  // Either outcome ends the wait: no timer decides.
  t.equal(await Promise.race([arrived, closed]), 'delivered', 'the gateway was not disconnected')
  t.same(received, ['prov/v1/cam-a/records'])
})

t.test('error: a wrong password, an unknown user and anonymous clients are refused at connect', async t => {
  await t.rejects(connect('cam-a', 'wrong'), /Bad User Name or Password|Not authorized/i)
  await t.rejects(connect('nobody', 'x'), /Bad User Name or Password|Not authorized/i)
  await t.rejects(connect(undefined), /Bad User Name or Password|Not authorized/i)
})

t.test('behavior: the agent\'s uplink logs in as its device with the registered password; its records reach the gateway\'s user', async t => {
  const gateway = await connect('gateway-1', await password('gateway-1'))
  const batch = new Promise<Buffer>(resolve => gateway.on('message', (topic, payload) => { if (topic === 'prov/v1/cam-a/records') resolve(payload) }))
  await gateway.subscribeAsync('prov/v1/+/records', { qos: 1 })
  const config = join(dir, 'cam-a.agent.json')
  await writeFile(config, JSON.stringify({ deviceId: 'cam-a', stateDir: join(dir, 'cam-a-state'), profile: 'generic-x86_64', brokerUrl: broker.url, brokerUsername: 'cam-a' }))
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PROVENANCE_')))
  const agent = spawn(process.execPath, [new URL('../../agent/cli/bin.mjs', import.meta.url).pathname, 'start', '--config', config],
    { env: { ...env, PROVENANCE_AGENT_BROKER_PASSWORD: await password('cam-a') }, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  agent.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const exited = new Promise<Buffer>((_resolve, reject) => agent.once('close', code => reject(new Error(`agent exited ${String(code)}: ${stderr}`))))
  t.teardown(() => { agent.kill('SIGKILL') })
  const payload = await Promise.race([batch, exited])
  const records = decodeRecordBatch(new Uint8Array(payload)).map(e => decodeEnvelope(e).record)
  t.equal(records[0]?.deviceId, 'cam-a')
  t.equal(records[0]?.body.kind, 'boot', 'the boot record came through the broker')
  const stopped = new Promise<number | null>(resolve => agent.once('close', resolve))
  exited.catch(() => {})
  agent.kill('SIGTERM')
  t.equal(await stopped, 0, 'clean stop')
})

t.test('behavior: device revoke with the broker files removes the device\'s user, so it can no longer connect', async t => {
  const pw = await password('cam-b')
  const r = await fleet(['device', 'revoke', '--id', 'cam-b', '--mosquitto-acl', acl, '--mosquitto-passwd', passwd, '--json'], chainEnv)
  t.equal(r.code, 0, r.stderr)
  t.match(r.json(), { brokerRemoved: { acl: true, passwd: true } })
  // Mosquitto rereads its password and ACL files on SIGHUP; a restart does the same here.
  await broker.stop()
  await broker.restart()
  await t.rejects(connect('cam-b', pw), /Bad User Name or Password|Not authorized/i)
  t.ok(await connect('cam-a', await password('cam-a')), 'the other device still connects')
})
