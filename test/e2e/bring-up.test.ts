// The bring-up of docs/OPERATIONS.md, run as an operator would: every step is a spawned bin
// (package.json `bin` paths) or curl, against anvil and the real Mosquitto with the shipped
// ACL config; no step imports the project's TypeScript. The harness only starts the chain and
// the broker process (test/helpers), writes config files and waits.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startAnvil } from '../../contracts/index.js'
import { freePort, startMosquitto } from '../helpers/mosquitto.js'
import { makeClassifierModel, makeClassifierVariant } from '../helpers/onnx-models.js'
import { makeTempDir } from '../helpers/tmp.js'

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)))
const BIN = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')).bin as Record<string, string>

interface Run { code: number | null, stdout: string, stderr: string }

/** Runs one command to its end, like a shell would. */
async function sh (cmd: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  const [file, argv] = cmd in BIN ? [process.execPath, [join(ROOT, BIN[cmd] as string), ...args]] : [cmd, args]
  const child = spawn(file, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const code = await new Promise<number | null>(resolve => child.once('close', resolve))
  return { code, stdout, stderr }
}

/** `sh`, failing the whole test with the command's stderr when it does not exit 0. */
async function ok (cmd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await sh(cmd, args, env)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${String(r.code)}:\n${r.stderr}`)
  return r.stdout
}

/** Starts a long-running bin (a service); stopped with SIGTERM by pid at teardown. */
function service (cmd: string, args: string[], env: Record<string, string> = {}): { child: ChildProcess, output: () => string } {
  const child = spawn(process.execPath, [join(ROOT, BIN[cmd] as string), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-20_000) })
  child.stderr?.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-20_000) })
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise(resolve => child.once('exit', resolve))
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(timer)
  })
  return { child, output: () => output }
}

async function waitFor (what: string, check: () => Promise<boolean>, diagnostics: () => string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${diagnostics()}`)
    await new Promise(resolve => setTimeout(resolve, 200))
  }
}

t.test('behavior: the documented bring-up, with the CLIs alone, ends in provenance verify VALID', async t => {
  const dir = await makeTempDir(t, 'prov-bring-up-')
  const etc = join(dir, 'etc')
  const { mkdir } = await import('node:fs/promises')
  await mkdir(etc, { mode: 0o700 })
  const secret = async (name: string, text: string): Promise<string> => { const p = join(etc, name); await writeFile(p, text + '\n', { mode: 0o600 }); return p }

  // 1. Chain: a lab anvil; account 0 is the fleet admin, account 1 the gateway's anchor account.
  const anvil = await startAnvil({ accountCount: 2 })
  t.teardown(anvil.stop)
  const [admin, anchor] = anvil.accounts as [{ address: string, privateKey: string }, { address: string, privateKey: string }]
  const env: Record<string, string> = { PROVENANCE_RPC_URL: anvil.rpcUrl, PROVENANCE_FLEET_KEY_FILE: await secret('admin.key', admin.privateKey) }

  // 2. Registry.
  env.PROVENANCE_REGISTRY = (await ok('provenance-fleet', ['deploy'], env)).trim()
  t.match(env.PROVENANCE_REGISTRY, /^0x[0-9a-fA-F]{40}$/)

  // 3. Roles.
  await ok('provenance-fleet', ['role', 'grant', '--role', 'device-registrar', '--account', admin.address], env)
  await ok('provenance-fleet', ['role', 'grant', '--role', 'model-publisher', '--account', admin.address], env)
  await ok('provenance-fleet', ['role', 'grant', '--role', 'anchorer', '--account', anchor.address], env)
  await ok('provenance-fleet', ['role', 'check', '--role', 'anchorer', '--account', anchor.address], env)

  // 4. Broker: the publisher's user, then Mosquitto with the shipped config (ACLs on).
  const acl = join(etc, 'provenance.acl')
  const passwd = join(etc, 'provenance.passwd')
  const brokerFiles = (pw: string): string[] => ['--mosquitto-acl', acl, '--mosquitto-passwd', passwd, '--mqtt-password-file', join(etc, pw)]
  await ok('provenance-fleet', ['broker', 'add-user', '--username', 'policy-publisher', '--role', 'publisher', ...brokerFiles('policy-publisher.mqtt-password')])
  // The gateway's user now: its password file must exist before `provenance-gateway log-key`
  // reads the gateway's config (step 5); `gateway register` then reuses it.
  await ok('provenance-fleet', ['broker', 'add-user', '--username', 'gateway-1', '--role', 'gateway', ...brokerFiles('gateway-1.mqtt-password')])
  // The example config as shipped, with this test's files: listener and persistence are the
  // helper's (a free loopback port, no state). `user root`: Mosquitto started as root would drop
  // to user mosquitto, which cannot read this test's 0600 files (ignored when not root).
  const example = (await readFile(join(ROOT, 'fleet/mosquitto/provenance.conf'), 'utf8')).split('\n')
    .map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#') && !/^(listener|persistence|persistence_location) /.test(l))
    .map(l => l.replace(/^password_file .*/, `password_file ${passwd}`).replace(/^acl_file .*/, `acl_file ${acl}`))
  const broker = await startMosquitto({ config: [...example, 'user root'] })
  t.teardown(broker.close)
  /** `systemctl reload mosquitto` in production: the helper's broker restarts on its port. */
  const reloadBroker = async (): Promise<void> => { await broker.stop(); await broker.restart() }

  // 5. Gateway: its log key, registered under its id with its broker user.
  const gatewayConfig = join(etc, 'gateway.json')
  const httpPort = await freePort()
  await writeFile(gatewayConfig, JSON.stringify({
    name: 'gateway-1',
    gatewayId: 'gateway-1',
    stateDir: join(dir, 'gateway'),
    brokerUrl: broker.url,
    mqttUsername: 'gateway-1',
    mqttPasswordFile: join(etc, 'gateway-1.mqtt-password'),
    rpcUrl: anvil.rpcUrl,
    registry: env.PROVENANCE_REGISTRY,
    anchorPrivateKeyFile: await secret('anchor.key', anchor.privateKey),
    batchMaxAgeMs: 500,
    httpHost: '127.0.0.1',
    httpPort,
    logLevel: 'info'
  }, null, 2))
  const logKey = JSON.parse(await ok('provenance-gateway', ['log-key', '--config', gatewayConfig])) as { publicKey: string }
  await ok('provenance-fleet', ['gateway', 'register', '--id', 'gateway-1', '--public-key', logKey.publicKey, ...brokerFiles('gateway-1.mqtt-password')], env)
  await reloadBroker()
  const gateway = service('provenance-gateway', ['start', '--config', gatewayConfig])
  await waitFor('the gateway', async () => (await fetch(`http://127.0.0.1:${httpPort}/healthz`)).ok, gateway.output)
  const tokenFile = join(dir, 'gateway', 'api-token')

  // 6. Enroll the device before its first start; reload the broker for its new user.
  const models = join(dir, 'models')
  await mkdir(models)
  await writeFile(join(models, 'cls.onnx'), makeClassifierModel({ seed: 1 }))
  await writeFile(join(models, 'rogue.onnx'), makeClassifierVariant({ seed: 1 }, { tensor: 'b', index: 1 }))
  const seedFile = join(etc, 'policy-publisher.seed')
  const publisher = JSON.parse(await ok('provenance-fleet', ['policy', 'keygen', '--out', seedFile, '--json'])) as { publicKey: string }
  const agentConfig = join(etc, 'agent.json')
  await writeFile(agentConfig, JSON.stringify({
    deviceId: 'cam-1',
    stateDir: join(dir, 'agent'),
    profile: 'generic-x86_64',
    brokerUrl: broker.url,
    brokerUsername: 'cam-1',
    gatewayPublicKeys: [logKey.publicKey],
    policyAdminPublicKey: publisher.publicKey,
    fleetId: 'fleet-1',
    models: [{ name: 'cls', path: join(models, 'cls.onnx') }, { name: 'rogue', path: join(models, 'rogue.onnx') }]
  }, null, 2))
  const enrollment = join(dir, 'cam-1.enroll.json')
  await ok('provenance-agent', ['init', '--config', agentConfig, '--out', enrollment])
  await ok('provenance-fleet', ['device', 'register', '--enrollment', enrollment, ...brokerFiles('cam-1.mqtt-password')], env)
  await ok('provenance-fleet', ['device', 'show', '--id', 'cam-1'], env)
  await reloadBroker()

  // 7. Register and approve the model (the rogue one is never registered).
  await ok('provenance-fleet', ['model', 'register', '--file', join(models, 'cls.onnx'), '--name', 'cls', '--model-version', '1.0'], env)
  await ok('provenance-fleet', ['model', 'approve', '--file', join(models, 'cls.onnx')], env)

  // 8. Policy: signed by the publisher, published retained for the device.
  const policyFile = join(dir, 'policy-v1.cbor')
  await ok('provenance-fleet', ['policy', 'sign', '--publisher-key-file', seedFile, '--policy-version', '1', '--mode', 'enforce', '--fleet-id', 'fleet-1', '--model-file', join(models, 'cls.onnx'), '--out', policyFile])
  await ok('provenance-fleet', ['policy', 'publish', '--policy', policyFile, '--device', 'cam-1', '--broker-url', broker.url, '--mqtt-username', 'policy-publisher',
    '--mqtt-password-file', join(etc, 'policy-publisher.mqtt-password'), '--publisher-public-key', publisher.publicKey])

  // 9. The agent.
  const agentEnv = { PROVENANCE_AGENT_BROKER_PASSWORD: (await readFile(join(etc, 'cam-1.mqtt-password'), 'utf8')).trim() }
  const agent = service('provenance-agent', ['start', '--config', agentConfig, '--json'], agentEnv)
  const status = async (): Promise<any> => JSON.parse(await ok('provenance-agent', ['status', '--config', agentConfig, '--json']))
  await waitFor('the policy and the model', async () => (await status()).models[0].state === 'loaded', agent.output)
  const s = await status()
  t.match(s.policy, { version: 1, mode: 'enforce', awaiting: false })
  t.match(s.models, [{ name: 'cls', state: 'loaded', policy: 'approved' }, { name: 'rogue', state: 'refused', runnable: false }])

  // Runs, as the device's application makes them: the API on the unix socket.
  const x = Buffer.from(Float32Array.from([0.1, 0.2, 0.3, 0.4]).buffer).toString('base64')
  for (let i = 0; i < 3; i++) {
    const reply = JSON.parse(await ok('curl', ['-sS', '--fail-with-body', '--unix-socket', join(dir, 'agent', 'api.sock'), '-H', 'content-type: application/json',
      '-d', JSON.stringify({ inputs: { x: { type: 'float32', dims: [1, 4], data: x } } }), 'http://localhost/v1/models/cls/run']))
    t.type(reply.record.seq, 'number', `run ${i} has its record`)
  }
  const rogue = await sh('curl', ['-sS', '--unix-socket', join(dir, 'agent', 'api.sock'), '-H', 'content-type: application/json',
    '-d', JSON.stringify({ inputs: { x: { type: 'float32', dims: [1, 4], data: x } } }), 'http://localhost/v1/models/rogue/run'])
  t.match(JSON.parse(rogue.stdout), { error: { code: 'MODEL_UNAVAILABLE' } }, 'the model the policy excludes does not run')
  const head = (await status()).seq as number
  await waitFor('the records anchored', async () => (await status()).uplink.anchoredSeq >= head, () => agent.output() + gateway.output())
  t.match((await status()).registration, { state: 'acknowledged' }, 'the registered device\'s records are acknowledged')
  t.match(await ok('provenance-agent', ['status', '--config', agentConfig]), /policy +v1 enforce in force/)

  // Export with the gateway's token, then verify against the chain.
  const bundle = join(dir, 'cam-1.bundle.json')
  await ok('provenance', ['export', '--gateway', `http://127.0.0.1:${httpPort}`, '--token-file', tokenFile, '--rpc-url', anvil.rpcUrl,
    '--registry', env.PROVENANCE_REGISTRY, '--device', 'cam-1', '--out', bundle])
  const verdict = await sh('provenance', ['verify', bundle, '--rpc-url', anvil.rpcUrl])
  t.equal(verdict.code, 0, verdict.stdout + verdict.stderr)
  t.match(verdict.stdout, /\bVALID\b/)
  const timeline = await ok('provenance', ['timeline', bundle])
  t.match(timeline, /policy v1 enforce in force \(fleet fleet-1/, 'the policy in force is in the device\'s records')
  t.match(timeline, /model load cls 1\.0 .*policy approved/)
  t.notMatch(timeline, /unchecked/, 'no model-load record says unchecked')
  t.notMatch(timeline, /rogue/, 'the excluded model was never loaded')
})
