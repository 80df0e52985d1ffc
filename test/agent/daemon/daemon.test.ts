import t from 'tap'
import { request } from 'node:http'
import { connect } from 'node:net'
import { readFile, readdir, writeFile, access } from 'node:fs/promises'
import { join } from 'node:path'
import mqtt from 'mqtt'
import ort from 'onnxruntime-node'
import { Daemon, type DaemonOptions, type DaemonStatus } from '../../../agent/daemon/index.js'
import { resolveProfile } from '../../../agent/profile/index.js'
import { RecordLog } from '../../../agent/log/index.js'
import { KeyRing } from '../../../agent/keys/index.js'
import { readFrozenCapture } from '../../../agent/capture/index.js'
import type { Logger } from '../../../agent/session/index.js'
import { commitSample, createSigner, decodeCapture, deviceTopic, fromHex, sha256, signPolicy, toHex, verifyChain, type DataCaptureBody, type InferenceBody, type ModelLoadBody, type ModelPolicy } from '../../../protocol/index.js'
import { replayCapture } from '../../../forensics/replay/index.js'
import { makeClassifierModel, makeClassifierVariant, runClassifierReference } from '../../helpers/onnx-models.js'
import { startMosquitto } from '../../helpers/mosquitto.js'
import { makeTempDir } from '../../helpers/tmp.js'

// As the CLI does: provider failures reach our log as warnings, not as onnxruntime's own lines.
ort.env.logLevel = 'fatal'

const admin = createSigner(new Uint8Array(32).fill(7))
const modelA = makeClassifierModel({ seed: 1 })
const modelB = makeClassifierVariant({ seed: 1 }, { tensor: 'b', index: 1 })
const policy = (o: Partial<ModelPolicy> = {}): Uint8Array =>
  signPolicy({ issuedAtMs: 1, version: 1, mode: 'enforce', modelHashes: [sha256(modelA)], fleetId: 'f', ...o }, admin).envelope

function captureLogger (): Logger & { lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const put = (obj: object, msg?: string): void => { lines.push({ ...obj, msg }) }
  return { lines, info: put, warn: put, error: put }
}

async function setup (t: { teardown: (fn: () => unknown) => void }, o: Partial<DaemonOptions> & { profileName?: string } = {}) {
  const dir = await makeTempDir(t, 'prov-daemon-')
  await writeFile(join(dir, 'a.onnx'), modelA)
  await writeFile(join(dir, 'b.onnx'), modelB)
  const logger = captureLogger()
  const options: DaemonOptions = {
    deviceId: 'dev-d',
    stateDir: join(dir, 'state'),
    profile: await resolveProfile(o.profileName ?? 'generic-x86_64'),
    models: [{ name: 'tiny', path: join(dir, 'a.onnx') }],
    logger,
    ...o
  }
  const start = async (): Promise<Daemon> => {
    const daemon = await Daemon.start(options)
    t.teardown(async () => await daemon.stop('test teardown'))
    return daemon
  }
  return { dir, logger, options, start }
}

interface Reply { status: number, body: any }
/** The daemon's socket (the default), or its TCP API with a token. */
type To = Daemon | { port: number, token?: string }
async function call (to: To, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body)
  const where = to instanceof Daemon
    ? { socketPath: to.socketPath }
    : { host: '127.0.0.1', port: to.port, headers: to.token === undefined ? {} : { authorization: `Bearer ${to.token}` } }
  return await new Promise((resolve, reject) => {
    const req = request({ ...where, method, path, headers: { ...where.headers, ...(payload !== undefined ? { 'content-type': 'application/json' } : {}), ...headers } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        resolve({ status: res.statusCode ?? 0, body: (res.headers['content-type'] ?? '').startsWith('application/json') ? JSON.parse(text) : text })
      })
    })
    req.on('error', reject)
    req.end(payload)
  })
}

/** A request announcing a body larger than the daemon takes; the daemon answers before reading it. */
async function callTooLarge (daemon: Daemon): Promise<Reply> {
  return await new Promise((resolve, reject) => {
    const socket = connect(daemon.socketPath)
    let text = ''
    socket.on('data', (d: Buffer) => { text += d.toString('utf8') })
    socket.on('error', reject)
    socket.on('close', () => {
      const status = Number(text.split(' ')[1])
      resolve({ status, body: JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) })
    })
    socket.write(`POST /v1/models/tiny/run HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/json\r\ncontent-length: ${64 * 1024 * 1024}\r\nconnection: close\r\n\r\n{`)
  })
}

const f32 = (values: number[]): string => Buffer.from(Float32Array.from(values).buffer).toString('base64')
const runBody = (x: number[], decision?: string) => ({ inputs: { x: { type: 'float32', dims: [1, 4], data: f32(x) } }, ...(decision !== undefined ? { decision } : {}) })

async function waitFor (what: string, fn: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

t.test('behavior: an application runs the tiny classifier over HTTP, gets its outputs and its durable record', async t => {
  const { start, options } = await setup(t)
  const daemon = await start()
  const x = [0.1, -0.2, 0.3, 0.4]
  const reply = await call(daemon, 'POST', '/v1/models/tiny/run', runBody(x, 'class=2'))
  t.equal(reply.status, 200, JSON.stringify(reply.body))
  t.equal(reply.body.modelHash, toHex(sha256(modelA)))
  const probs = reply.body.outputs.probs
  t.same(probs.dims, [1, 3])
  const got = [...new Float32Array(new Uint8Array(Buffer.from(probs.data, 'base64')).buffer)]
  runClassifierReference({ seed: 1 }, x).forEach((p, i) => t.ok(Math.abs(p - (got[i] as number)) < 1e-5, `probs[${i}]`))
  t.equal(reply.body.record.seq, 2, 'boot 0, model-load 1, inference 2')
  const stored = await daemon.log.get(2)
  t.equal(toHex(stored?.hash ?? new Uint8Array()), reply.body.record.hash, 'the record the caller got is the one in the log')
  t.equal((stored?.record.body as InferenceBody).decision, 'class=2')

  const s = (await call(daemon, 'GET', '/status')).body as DaemonStatus
  t.equal(s.deviceId, 'dev-d')
  t.equal(s.seq, 2)
  t.equal(s.boot, 1)
  t.equal(s.state, 'running')
  t.match(s.profile.id, /^generic-x86_64@/)
  t.same(s.uplink, { configured: false })
  t.same(s.policy, { configured: false, required: false, awaiting: false })
  t.same(s.registration, { state: 'no-uplink' })
  t.equal(s.budget.budgetBytes, options.profile.profile.storage.budgetBytes)
  t.ok(s.budget.usedBytes > 0 && s.budget.diskBytes > 0)
  t.match(s.models, [{ name: 'tiny', state: 'loaded', runnable: true, modelHash: toHex(sha256(modelA)), providers: ['cpu'], fallback: false, policy: 'unchecked', loadSeq: 1 }])
  t.equal(s.publicKey, toHex((await KeyRing.open(join(options.stateDir, 'keys', 'device-key.json'))).publicKey))
  await access(join(options.stateDir, 'daemon.json'))

  await daemon.stop('signal SIGTERM')
  await t.rejects(access(join(options.stateDir, 'daemon.json')), 'the runtime file is removed')
  const ring = await KeyRing.open(join(options.stateDir, 'keys', 'device-key.json'))
  const log = await RecordLog.open({ dir: join(options.stateDir, 'records'), deviceId: 'dev-d', signer: ring.signer })
  const records = await log.range(0, 100)
  await log.close()
  t.same(records.map(r => r.record.body.kind), ['boot', 'model-load', 'inference', 'shutdown'])
  t.match(records.at(-1)?.record.body, { kind: 'shutdown', reason: 'signal SIGTERM' })
  t.equal(verifyChain(records, { deviceId: 'dev-d', keyAt: ring.keyAt }).failure, undefined)
})

t.test('behavior: on a Jetson profile without GPU the model falls back to CPU, and the log and status say so', async t => {
  const { start, logger } = await setup(t, { profileName: 'jetson-orin-nano' })
  const daemon = await start()
  const m = (await daemon.status()).models[0]
  t.equal(m?.fallback, true)
  t.same(m?.providers, ['cpu'])
  t.same(m?.requestedProviders, ['tensorrt', 'cuda', 'cpu'])
  t.same(m?.providerWarnings.map(w => w.provider), ['tensorrt', 'cuda'])
  t.ok(logger.lines.some(l => l.msg === 'model runs on a fallback execution provider (cpu instead of tensorrt)'), 'one warning names the fallback')
  const load = await daemon.log.get(1)
  t.same((load?.record.body as ModelLoadBody).providers, ['cpu'], 'the model-load record names the provider that runs')
})

t.test('behavior: a profile\'s threads.niceness runs the model worker at that nice value, the main thread at its own', { skip: process.platform !== 'linux' && 'thread nice values are read from Linux /proc' }, async t => {
  const overrideDir = await makeTempDir(t, 'prov-daemon-nice-')
  const override = join(overrideDir, 'nice.json')
  await writeFile(override, JSON.stringify({ threads: { niceness: 6 } }))
  // Field 19 (nice) of a thread's stat, counted from field 3, the first after the command name's ')'.
  const niceOf = async (tid: string | number): Promise<number | undefined> => {
    const stat = await readFile(`/proc/self/task/${tid}/stat`, 'utf8').catch(() => '')
    return stat === '' ? undefined : Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16])
  }
  const mainBefore = await niceOf(process.pid)
  const { start } = await setup(t, { profile: await resolveProfile('generic-x86_64', override) })
  await start()
  const nices = await Promise.all((await readdir('/proc/self/task')).map(niceOf))
  t.ok(nices.includes(6), 'the loaded model\'s worker runs at nice 6')
  t.equal(await niceOf(process.pid), mainBefore, 'the main thread keeps its own nice value')
})

t.test('error: bad requests get a code and an HTTP status, and cost no seq', async t => {
  const { start, options } = await setup(t, { statusPort: 0 })
  const daemon = await start()
  const port = daemon
  const tcp = { port: daemon.port, token: (await readFile(join(options.stateDir, 'api-token'), 'utf8')).trim() }
  const cases: Array<[string, Reply, number, string]> = [
    ['unknown model', await call(port, 'POST', '/v1/models/nope/run', runBody([1, 2, 3, 4])), 404, 'MODEL_UNKNOWN'],
    ['not JSON', await call(port, 'POST', '/v1/models/tiny/run', '{'), 400, 'REQUEST_INVALID'],
    ['wrong content type', await call(port, 'POST', '/v1/models/tiny/run', JSON.stringify(runBody([1, 2, 3, 4])), { 'content-type': 'text/plain' }), 400, 'REQUEST_INVALID'],
    ['bad tensor', await call(port, 'POST', '/v1/models/tiny/run', { inputs: { x: { type: 'float33', dims: [1, -4], data: 5 } }, extra: 1 }), 400, 'REQUEST_INVALID'],
    ['wrong input name', await call(port, 'POST', '/v1/models/tiny/run', { inputs: { y: { type: 'float32', dims: [1, 4], data: f32([1, 2, 3, 4]) } } }), 400, 'INPUT_INVALID'],
    ['wrong shape', await call(port, 'POST', '/v1/models/tiny/run', { inputs: { x: { type: 'float32', dims: [1, 5], data: f32([1, 2, 3, 4, 5]) } } }), 422, 'INFERENCE_FAILED'],
    ['foreign Host header on TCP', await call(tcp, 'GET', '/status', undefined, { host: 'attacker.example' }), 400, 'REQUEST_INVALID'],
    ['a web page', await call(port, 'POST', '/v1/models/tiny/run', runBody([1, 2, 3, 4]), { origin: 'http://attacker.example' }), 400, 'REQUEST_INVALID'],
    ['unknown route', await call(port, 'GET', '/v2/whatever'), 404, 'ROUTE_UNKNOWN'],
    ['too large', await callTooLarge(daemon), 413, 'REQUEST_TOO_LARGE'],
    ['data capture without a dataset', await call(port, 'POST', '/v1/data-captures?label=car', 'sample'), 400, 'REQUEST_INVALID'],
    ['data capture at a bad time', await call(port, 'POST', '/v1/data-captures?dataset=d&capturedAtMs=-1', 'sample'), 400, 'REQUEST_INVALID'],
    ['data capture dataset too long', await call(port, 'POST', `/v1/data-captures?dataset=${'d'.repeat(300)}`, 'sample'), 400, 'INPUT_INVALID'],
    // As long as the dims ask, but without padding it decodes to 18 bytes, not 16: never cut to fit.
    ['base64 of more bytes than the dims hold', await call(port, 'POST', '/v1/models/tiny/run', { inputs: { x: { type: 'float32', dims: [1, 4], data: f32([1, 2, 3, 4]).replace(/==$/, 'AA') } } }), 400, 'REQUEST_INVALID']
  ]
  for (const [what, reply, status, code] of cases) {
    t.equal(reply.status, status, `${what}: HTTP ${status}`)
    t.equal(reply.body.error?.code, code, `${what}: ${code}`)
  }
  const bad = cases[3]?.[1].body.error.message as string
  for (const field of ['inputs.x.type', 'inputs.x.dims[1]', 'extra']) t.match(bad, field, `names ${field}`)
  t.equal(daemon.log.head.seq, 1, 'no record for a refused request')
  t.equal((await call(port, 'POST', '/v1/models/tiny/run', runBody([1, 2, 3, 4]))).body.record.seq, 2)
  // A sample an application keeps for training: a data-capture record whose commitment the salt opens.
  const kept = await call(port, 'POST', '/v1/data-captures?dataset=roadside&label=car&capturedAtMs=1700000000000', 'speed,42\n')
  t.equal(kept.status, 200, JSON.stringify(kept.body))
  t.equal(kept.body.record.seq, 3)
  t.equal(kept.body.contentHash, toHex(sha256(new TextEncoder().encode('speed,42\n'))))
  const body = (await daemon.log.get(3))?.record.body as DataCaptureBody
  t.match(body, { kind: 'data-capture', dataset: 'roadside', label: 'car', sizeBytes: 9, capturedAtMs: 1_700_000_000_000 })
  t.equal(toHex(body.commitment), toHex(commitSample(fromHex(kept.body.salt as string), fromHex(kept.body.contentHash as string))))
})

t.test('behavior: under enforce a refused model is not loaded and runs are refused; a newer policy that approves it loads it', async t => {
  const { start, options, dir, logger } = await setup(t, { policyAdminPublicKey: admin.publicKey, fleetId: 'f' })
  options.models = [{ name: 'tiny', path: join(dir, 'a.onnx') }, { name: 'other', path: join(dir, 'b.onnx') }]
  const { writeFileAtomic } = await import('../../../agent/keys/index.js')
  await writeFileAtomic(join(options.stateDir, 'policy.cbor'), policy())
  const daemon = await start()
  const s = await daemon.status()
  t.match(s.policy, { configured: true, version: 1, mode: 'enforce' })
  t.match(s.models, [{ name: 'tiny', state: 'loaded', policy: 'approved' }, { name: 'other', state: 'refused', runnable: false, error: { code: 'MODEL_NOT_APPROVED' } }])
  t.ok(logger.lines.some(l => l.msg === 'model refused by policy; nothing was loaded'))
  const refused = await call(daemon, 'POST', '/v1/models/other/run', runBody([1, 2, 3, 4]))
  t.equal(refused.status, 503)
  t.match(refused.body.error.message, /MODEL_NOT_APPROVED/)
  t.same((await daemon.log.range(0, 10)).map(r => r.record.body.kind), ['boot', 'policy', 'model-load'], 'the stored policy is recorded in force; no record for the refused model')

  await t.rejects(daemon.acceptPolicy(policy({ version: 1, modelHashes: [sha256(modelB)] })), { code: 'POLICY_STALE' })
  t.equal(await daemon.acceptPolicy(policy({ version: 2, modelHashes: [sha256(modelA), sha256(modelB)] })), 'accepted')
  t.match((await daemon.status()).models[1], { name: 'other', state: 'loaded', policy: 'approved', runnable: true })
  t.equal((await call(daemon, 'POST', '/v1/models/other/run', runBody([1, 2, 3, 4]))).status, 200)
  await daemon.acceptPolicy(policy({ version: 3, modelHashes: [sha256(modelB)] }))
  const dropped = await call(daemon, 'POST', '/v1/models/tiny/run', runBody([1, 2, 3, 4]))
  t.equal(dropped.status, 403, 'a model the newer policy dropped runs no more')
  t.equal(dropped.body.error.code, 'MODEL_NOT_APPROVED')
})

t.test('behavior: reload notices a swapped file; an unapproved replacement is refused and the loaded model stays in service', async t => {
  const { start, options, dir, logger } = await setup(t, { policyAdminPublicKey: admin.publicKey })
  await (await import('../../../agent/keys/index.js')).writeFileAtomic(join(options.stateDir, 'policy.cbor'), policy({ modelHashes: [sha256(modelA)] }))
  const daemon = await start()
  await writeFile(join(dir, 'a.onnx'), modelB)
  const reply = await call(daemon, 'POST', '/v1/models/tiny/reload')
  t.equal(reply.status, 403)
  t.equal(reply.body.error.code, 'MODEL_NOT_APPROVED')
  const s = await daemon.status()
  t.match(s.models[0], { state: 'loaded', modelHash: toHex(sha256(modelA)), runnable: true, error: { code: 'MODEL_NOT_APPROVED' } })
  t.equal((await call(daemon, 'POST', '/v1/models/tiny/run', runBody([1, 2, 3, 4]))).body.modelHash, toHex(sha256(modelA)), 'runs go to the approved model')
  await daemon.acceptPolicy(policy({ version: 2, mode: 'audit' }))
  const audited = await call(daemon, 'POST', '/v1/models/tiny/reload')
  t.equal(audited.status, 200)
  t.match(audited.body, { modelHash: toHex(sha256(modelB)), policy: 'unapproved' })
  t.ok(logger.lines.some(l => l.msg === 'model file changed on disk since it was last loaded' && l.previousHash === toHex(sha256(modelA))))
  const models = (await daemon.log.range(0, 100)).filter(r => r.record.body.kind === 'model-load').map(r => (r.record.body as ModelLoadBody).policy)
  t.same(models, ['approved', 'unapproved'])
})

t.test('error: no boot record and nothing listening when the start checks fail', async t => {
  const { options, dir } = await setup(t)
  const check = async (o: Partial<DaemonOptions>, code: string, logMayExist = false): Promise<void> => {
    await t.rejects(Daemon.start({ ...options, ...o }), { code }, code)
    if (!logMayExist) await t.rejects(access(join(options.stateDir, 'records')), `${code}: no record log was created`)
  }
  await check({ models: [{ name: 'gone', path: join(dir, 'missing.onnx') }] }, 'MODEL_UNREADABLE')
  await check({ models: [{ name: 'dir', path: dir }] }, 'MODEL_UNREADABLE')
  await (await import('node:fs/promises')).mkdir(options.stateDir, { recursive: true })
  await writeFile(join(options.stateDir, 'policy.cbor'), policy())
  await check({}, 'POLICY_NOT_CONFIGURED')
  await check({ policyAdminPublicKey: createSigner(new Uint8Array(32).fill(1)).publicKey }, 'POLICY_SIGNATURE_INVALID')
  const { rm } = await import('node:fs/promises')
  await rm(join(options.stateDir, 'policy.cbor'))
  const first = await Daemon.start({ ...options, statusPort: 0 })
  t.teardown(async () => await first.stop())
  await check({}, 'LISTEN_FAILED', true)
  await check({ statusPort: first.port, apiSocket: join(dir, 'other.sock') }, 'LISTEN_FAILED', true)
  await writeFile(join(dir, 'not-a-socket'), 'precious')
  await check({ apiSocket: join(dir, 'not-a-socket') }, 'LISTEN_FAILED', true)
  t.equal(await readFile(join(dir, 'not-a-socket'), 'utf8'), 'precious', 'a file where the socket should go is left alone')
  const rows = await first.log.range(0, 100)
  t.same(rows.map(r => r.record.body.kind), ['boot', 'model-load'], 'the failed starts left no trace')
})

t.test('behavior: first boot in enforce mode with a late retained policy: nothing loads or is recorded before it, then only the approved model loads', async t => {
  const broker = await startMosquitto()
  t.teardown(async () => await broker.close())
  const gatewayKey = createSigner(new Uint8Array(32).fill(8))
  const { start, options, dir, logger } = await setup(t, { policyAdminPublicKey: admin.publicKey, fleetId: 'f', brokerUrl: broker.url, gatewayPublicKeys: [gatewayKey.publicKey] })
  options.models = [{ name: 'tiny', path: join(dir, 'a.onnx') }, { name: 'other', path: join(dir, 'b.onnx') }]
  const daemon = await start()
  await waitFor('the uplink', async () => ((await daemon.status()).uplink as { connected?: boolean }).connected === true)
  const before = await daemon.status()
  t.match(before.policy, { configured: true, required: true, awaiting: true })
  t.notOk('version' in before.policy, 'no policy in force yet')
  t.match(before.models, [{ name: 'tiny', state: 'awaiting-policy', runnable: false }, { name: 'other', state: 'awaiting-policy', runnable: false }])
  const early = await call(daemon, 'POST', '/v1/models/tiny/run', runBody([1, 2, 3, 4]))
  t.equal(early.status, 503, 'a run before the policy is refused')
  t.equal(early.body.error.code, 'MODEL_UNAVAILABLE')
  t.match(early.body.error.message, /waits for a signed model policy/)
  t.same((await daemon.log.range(0, 10)).map(r => r.record.body.kind), ['boot'], 'no model-load record before the policy')
  // No gateway runs: nothing is acknowledged, everything is kept, and the status says since when.
  t.match(before.registration, { state: 'unacknowledged', unacknowledgedSinceSeq: 0, hint: /device register/ })

  // The fleet publishes the retained policy only now, after the agent started.
  const admin$ = await mqtt.connectAsync(broker.url, { protocolVersion: 5 })
  t.teardown(async () => await admin$.endAsync())
  // An attacker on the broker goes first: a forged policy and one for another fleet change nothing.
  const forged = signPolicy({ issuedAtMs: 1, version: 9, mode: 'audit', modelHashes: [sha256(modelB)], fleetId: 'f' }, createSigner(new Uint8Array(32).fill(3))).envelope
  await admin$.publishAsync(deviceTopic('dev-d', 'policy'), Buffer.from(forged), { qos: 1, retain: true })
  await admin$.publishAsync(deviceTopic('dev-d', 'policy'), Buffer.from(policy({ version: 9, mode: 'audit', fleetId: 'other' })), { qos: 1, retain: true })
  await waitFor('both refusals', async () => logger.lines.filter(l => l.msg === 'model policy refused').length >= 2)
  t.same(logger.lines.filter(l => l.msg === 'model policy refused').map(l => l.code), ['POLICY_SIGNATURE_INVALID', 'POLICY_WRONG_FLEET'])
  t.match((await daemon.status()).models, [{ state: 'awaiting-policy' }, { state: 'awaiting-policy' }], 'still waiting')
  t.same((await daemon.log.range(0, 10)).map(r => r.record.body.kind), ['boot'], 'still no model-load record')
  await admin$.publishAsync(deviceTopic('dev-d', 'policy'), Buffer.from(policy({ modelHashes: [sha256(modelA)] })), { qos: 1, retain: true })
  await waitFor('the policy', async () => (await daemon.status()).models[0]?.state === 'loaded')
  const s = await daemon.status()
  t.match(s.uplink, { configured: true, connected: true, acks: { mode: 'verified' } }, 'the gateway key reached the uplink')
  t.match(s.policy, { version: 1, mode: 'enforce', awaiting: false })
  t.match(s.models, [{ name: 'tiny', state: 'loaded', policy: 'approved', runnable: true }, { name: 'other', state: 'refused', runnable: false, error: { code: 'MODEL_NOT_APPROVED' } }])
  t.equal((await call(daemon, 'POST', '/v1/models/tiny/run', runBody([1, 2, 3, 4]))).status, 200, 'the approved model runs once the policy arrived')
  t.equal((await call(daemon, 'POST', '/v1/models/other/run', runBody([1, 2, 3, 4]))).body.error.code, 'MODEL_UNAVAILABLE')
  const loads = (await daemon.log.range(0, 100)).filter(r => r.record.body.kind === 'model-load').map(r => r.record.body as ModelLoadBody)
  t.same(loads.map(b => [b.name, b.policy]), [['tiny', 'approved']], 'the excluded model was never loaded nor recorded, nothing says unchecked')
  const rows = await daemon.log.range(0, 100)
  t.same(rows.map(r => r.record.body.kind), ['boot', 'policy', 'model-load', 'inference'], 'the policy in force is recorded before the load it judged')
  t.match(rows[1]?.record.body, { kind: 'policy', version: 1, mode: 'enforce', fleetId: 'f' })

  await admin$.publishAsync(deviceTopic('dev-d', 'policy'), Buffer.from(policy({ version: 2, modelHashes: [sha256(modelA), sha256(modelB)] })), { qos: 1, retain: true })
  await waitFor('the second policy', async () => (await daemon.status()).policy.version === 2)
  await waitFor('the other model', async () => (await daemon.status()).models[1]?.runnable === true)
  t.equal((await call(daemon, 'POST', '/v1/models/other/run', runBody([1, 2, 3, 4]))).status, 200)
  const stored = await readFile(join(options.stateDir, 'policy.cbor'))
  t.equal(stored.byteLength, policy({ version: 2, modelHashes: [sha256(modelA), sha256(modelB)] }).byteLength, 'the accepted policy is stored')
})

t.test('behavior: a device with an admin key but requirePolicy false loads unchecked (the daemon opt-out)', async t => {
  const { start } = await setup(t, { policyAdminPublicKey: admin.publicKey, requirePolicy: false })
  const daemon = await start()
  t.match((await daemon.status()).models, [{ name: 'tiny', state: 'loaded', policy: 'unchecked', runnable: true }])
})

t.test('error: a model that only fails once parsed stops the start after the boot record, with a shutdown record saying why', async t => {
  const { options, dir } = await setup(t)
  await writeFile(join(dir, 'garbage.onnx'), Buffer.from('this is not a model at all'))
  const e = await Daemon.start({ ...options, models: [{ name: 'junk', path: join(dir, 'garbage.onnx') }] }).catch(err => err)
  t.equal(e.code, 'MODEL_NOT_ONNX')
  await t.rejects(access(join(options.stateDir, 'daemon.json')), 'not left running')
  const ring = await KeyRing.open(join(options.stateDir, 'keys', 'device-key.json'))
  const log = await RecordLog.open({ dir: join(options.stateDir, 'records'), deviceId: 'dev-d', signer: ring.signer })
  const records = await log.range(0, 10)
  await log.close()
  t.same(records.map(r => r.record.body.kind), ['boot', 'shutdown'])
  t.match(records[1]?.record.body, { reason: 'start failed: MODEL_NOT_ONNX' })
})

t.test('behavior: an incident capture frozen through the API replays against the device records', async t => {
  const { start, dir } = await setup(t)
  const daemon = await start()
  for (const x of [[0.1, 0.2, 0.3, 0.4], [1, 0, -1, 0], [0.5, 0.5, 0.5, 0.5]]) {
    t.equal((await call(daemon, 'POST', '/v1/models/tiny/run', runBody(x))).status, 200)
  }
  const frozen = await call(daemon, 'POST', '/v1/captures?reason=incident-42')
  t.equal(frozen.status, 200, JSON.stringify(frozen.body))
  t.equal(frozen.body.entries, 3)
  const list = await call(daemon, 'GET', '/v1/captures')
  t.same(list.body.captures.map((c: { name: string }) => c.name), [frozen.body.name])
  const bytes = await new Promise<Buffer>((resolve, reject) => {
    request({ socketPath: daemon.socketPath, path: `/v1/captures/${frozen.body.name as string}` }, res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve(Buffer.concat(chunks)))
    }).on('error', reject).end()
  })
  const capture = decodeCapture(bytes)
  t.equal(capture.reason, 'incident-42')
  const report = await replayCapture({ capture: bytes, records: await daemon.records(0, 100, 100), modelPaths: dir })
  t.equal(report.summary.ok, true, JSON.stringify(report.summary))
  t.equal(report.summary.entries, 3)
  t.equal((await call(daemon, 'GET', '/v1/captures/not-a-capture')).status, 400)

  // Twenty runs at once through the API, more than the ring keeps: while runs overlap it holds
  // their snapshots and copies them as each ends; every run kept replays.
  const answers = await Promise.all(Array.from({ length: 20 }, async (_, i) => await call(daemon, 'POST', '/v1/models/tiny/run', runBody([i, -i, i / 2, 1]))))
  t.same(answers.map(a => a.status), answers.map(() => 200))
  const again = await call(daemon, 'POST', '/v1/captures?reason=incident-43')
  t.equal(again.body.entries, 16, 'the ring\'s 16 newest')
  const second = await replayCapture({ capture: await readFrozenCapture(daemon.stateDir, again.body.name as string), records: await daemon.records(0, 100, 100), modelPaths: dir })
  t.equal(second.summary.ok, true, JSON.stringify(second.summary))
  t.equal(second.summary.entries, 16)
})

t.test('behavior: /status lists each model\'s inputs and /metrics answers Prometheus text beside the gateway\'s', async t => {
  const { start } = await setup(t)
  const daemon = await start()
  const s = (await call(daemon, 'GET', '/status')).body as DaemonStatus
  t.same(s.models[0]?.inputs, [{ name: 'x', type: 'float32', dims: [1, 4] }], 'name, element type and dims of what a run must send')
  const m = await call(daemon, 'GET', '/metrics')
  t.equal(m.status, 200)
  const text = m.body as string
  t.match(text, /^provenance_agent_info\{device="dev-d",version="[0-9.]+",profile="generic-x86_64@[^"]+"\} 1$/m)
  t.match(text, /^provenance_agent_log_head_seq 1$/m, 'boot 0, model-load 1')
  t.match(text, /^provenance_agent_models\{state="loaded"\} 1$/m)
  t.match(text, /^provenance_agent_models_runnable 1$/m)
  t.match(text, /^provenance_agent_uplink_connected 0$/m)
  t.match(text, /^provenance_agent_process_resident_memory_bytes \d+/m, 'process metrics too')
  await call(daemon, 'POST', '/v1/models/tiny/run', runBody([1, 2, 3, 4]))
  t.match((await call(daemon, 'GET', '/metrics')).body, /^provenance_agent_log_head_seq 2$/m, 'read from the daemon at each scrape')
  // The metrics route is as closed as the rest of the API: a page's request is refused.
  t.equal((await call(daemon, 'GET', '/metrics', undefined, { origin: 'http://attacker.example' })).status, 400)
})

t.test('error: /metrics on the TCP API needs the bearer token, like every route there', async t => {
  const { start, options } = await setup(t, { statusPort: 0 })
  const daemon = await start()
  const token = (await readFile(join(options.stateDir, 'api-token'), 'utf8')).trim()
  t.equal((await call({ port: daemon.port }, 'GET', '/metrics')).status, 401, 'no token')
  t.equal((await call({ port: daemon.port, token: 'x'.repeat(43) }, 'GET', '/metrics')).status, 403, 'a wrong token')
  const ok = await call({ port: daemon.port, token }, 'GET', '/metrics')
  t.equal(ok.status, 200)
  t.match(ok.body, /^provenance_agent_info\{/m)
})
