/**
 * Issue 15's must-shows end to end, every step a spawned bin, with a real software TPM (swtpm):
 * TPM-attested enrollment, records under certified boot keys stored, anchored and `provenance
 * verify`-ed VALID across two boots; the state folder copied to another TPM yields no accepted
 * record; revoking the identity stops the device's next records at the gateway.
 */
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startAnvil } from '../contracts/index.js'
import { freePort, startMosquitto } from '../test/helpers/mosquitto.js'
import { makeClassifierModel } from '../test/helpers/onnx-models.js'
import { startSwtpm } from '../test/helpers/swtpm.js'
import { makeTempDir } from '../test/helpers/tmp.js'

const ROOT = resolve(fileURLToPath(new URL('..', import.meta.url)))
const BIN = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')).bin as Record<string, string>

interface Run { code: number | null, stdout: string, stderr: string }

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

async function ok (cmd: string, args: string[], env: Record<string, string> = {}): Promise<string> {
  const r = await sh(cmd, args, env)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${String(r.code)}:\n${r.stdout}\n${r.stderr}`)
  return r.stdout
}

/** A long-running bin, stopped (SIGTERM by pid, then SIGKILL) by `stop` or at teardown. */
function service (cmd: string, args: string[]): { child: ChildProcess, output: () => string, stop: () => Promise<void> } {
  const child = spawn(process.execPath, [join(ROOT, BIN[cmd] as string), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-20_000) })
  child.stderr?.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-20_000) })
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise(resolve => child.once('exit', resolve))
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    await exited
    clearTimeout(timer)
  }
  t.teardown(stop)
  return { child, output: () => output, stop }
}

async function waitFor (what: string, check: () => Promise<boolean>, diagnostics: () => string, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${diagnostics()}`)
    await new Promise(resolve => setTimeout(resolve, 200))
  }
}

t.test('behavior: a TPM-rooted device, enrolled with attestation, verified end to end; copies and revoked identities are refused', async t => {
  const dir = await makeTempDir(t, 'prov-tpm-e2e-')
  const etc = join(dir, 'etc')
  await mkdir(etc, { mode: 0o700 })
  const tpm = await startSwtpm()
  t.teardown(tpm.close)

  const anvil = await startAnvil({ accountCount: 2 })
  t.teardown(anvil.stop)
  const [admin, anchor] = anvil.accounts as [{ address: string, privateKey: string }, { address: string, privateKey: string }]
  const adminKey = join(etc, 'admin.key')
  await writeFile(adminKey, admin.privateKey + '\n', { mode: 0o600 })
  const env: Record<string, string> = { PROVENANCE_RPC_URL: anvil.rpcUrl, PROVENANCE_FLEET_KEY_FILE: adminKey }
  env.PROVENANCE_REGISTRY = (await ok('provenance-fleet', ['deploy'], env)).trim()
  await ok('provenance-fleet', ['role', 'grant', '--role', 'device-registrar', '--account', admin.address], env)
  await ok('provenance-fleet', ['role', 'grant', '--role', 'anchorer', '--account', anchor.address], env)
  const broker = await startMosquitto()
  t.teardown(broker.close)

  const anchorKey = join(etc, 'anchor.key')
  await writeFile(anchorKey, anchor.privateKey + '\n', { mode: 0o600 })
  const gatewayConfig = join(etc, 'gateway.json')
  const httpPort = await freePort()
  await writeFile(gatewayConfig, JSON.stringify({
    name: 'gateway-1', gatewayId: 'gateway-1', stateDir: join(dir, 'gateway'), brokerUrl: broker.url, rpcUrl: anvil.rpcUrl,
    registry: env.PROVENANCE_REGISTRY, anchorPrivateKeyFile: anchorKey, batchMaxAgeMs: 500, httpHost: '127.0.0.1', httpPort, logLevel: 'info',
    // A revocation reaches the gateway once its cached key answer expires: one second here.
    keyCacheTtlMs: 1000
  }, null, 2))
  const logKey = JSON.parse(await ok('provenance-gateway', ['log-key', '--config', gatewayConfig])) as { publicKey: string }
  await ok('provenance-fleet', ['gateway', 'register', '--id', 'gateway-1', '--public-key', logKey.publicKey], env)
  const gateway = service('provenance-gateway', ['start', '--config', gatewayConfig])
  await waitFor('the gateway', async () => (await fetch(`http://127.0.0.1:${httpPort}/healthz`)).ok, gateway.output)
  const metrics = async (): Promise<string> => {
    const token = (await readFile(join(dir, 'gateway', 'api-token'), 'utf8')).trim()
    return await (await fetch(`http://127.0.0.1:${httpPort}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text()
  }
  const quarantined = async (reason: string): Promise<number> =>
    Number(new RegExp(`records_quarantined_total\\{[^}]*reason="${reason}"[^}]*\\} (\\d+)`).exec(await metrics())?.[1] ?? '0')

  // The device: keyStore "tpm" on this test's swtpm (a profile override, as an operator would write).
  const models = join(dir, 'models')
  await mkdir(models)
  await writeFile(join(models, 'cls.onnx'), makeClassifierModel({ seed: 1 }))
  const agentConfigFor = async (name: string, stateDir: string, tcti: string): Promise<string> => {
    const override = join(etc, `${name}.profile.json`)
    await writeFile(override, JSON.stringify({ keys: { keyStore: 'tpm', tpmTcti: tcti } }))
    const path = join(etc, `${name}.json`)
    await writeFile(path, JSON.stringify({
      deviceId: 'cam-1', stateDir, profile: 'generic-x86_64', overrideProfile: override, brokerUrl: broker.url,
      gatewayPublicKeys: [logKey.publicKey], models: [{ name: 'cls', path: join(models, 'cls.onnx') }]
    }, null, 2))
    return path
  }
  const agentConfig = await agentConfigFor('agent', join(dir, 'agent'), tpm.tcti)

  // Enrollment: init makes the identity in the TPM and attests it; the fleet checks and keeps it.
  const enrollment = join(dir, 'cam-1.enroll.json')
  await ok('provenance-agent', ['init', '--config', agentConfig, '--out', enrollment])
  const request = JSON.parse(await readFile(enrollment, 'utf8'))
  t.equal(request.identity.type, 'tpm-p256')
  t.type(request.identity.attestation.attest, 'string', 'the enrollment carries the TPM key attestation')
  const registered = JSON.parse(await ok('provenance-fleet', ['device', 'register', '--enrollment', enrollment, '--require-attestation',
    '--identity-dir', join(dir, 'fleet-identities'), '--json'], env))
  t.match(registered.identity, { keyType: 'tpm-p256', attested: true })
  t.match(JSON.parse(await readFile(join(dir, 'fleet-identities', 'cam-1.identity.json'), 'utf8')), { deviceId: 'cam-1', identityKey: request.identity.publicKey })

  await ok('provenance-fleet', ['role', 'grant', '--role', 'model-publisher', '--account', admin.address], env)
  await ok('provenance-fleet', ['model', 'register', '--file', join(models, 'cls.onnx'), '--name', 'cls', '--model-version', '1.0'], env)
  await ok('provenance-fleet', ['model', 'approve', '--file', join(models, 'cls.onnx')], env)

  // Two boots, records anchored, the bundle verifies on both backends.
  const run = async (config: string, stateDir: string, runs: number): Promise<void> => {
    const agent = service('provenance-agent', ['start', '--config', config, '--json'])
    const status = async (): Promise<any> => JSON.parse(await ok('provenance-agent', ['status', '--config', config, '--json']))
    await waitFor('the model', async () => (await status()).models[0].state === 'loaded', agent.output)
    const x = Buffer.from(Float32Array.from([0.1, 0.2, 0.3, 0.4]).buffer).toString('base64')
    for (let i = 0; i < runs; i++) {
      await ok('curl', ['-sS', '--fail-with-body', '--unix-socket', join(stateDir, 'api.sock'), '-H', 'content-type: application/json',
        '-d', JSON.stringify({ inputs: { x: { type: 'float32', dims: [1, 4], data: x } } }), 'http://localhost/v1/models/cls/run'])
    }
    const head = (await status()).seq as number
    await waitFor('the records anchored', async () => (await status()).uplink.anchoredSeq >= head, () => agent.output() + gateway.output())
    await agent.stop()
  }
  await run(agentConfig, join(dir, 'agent'), 3)
  await run(agentConfig, join(dir, 'agent'), 2)
  const bundle = join(dir, 'cam-1.bundle.json')
  await ok('provenance', ['export', '--gateway', `http://127.0.0.1:${httpPort}`, '--token-file', join(dir, 'gateway', 'api-token'), '--rpc-url', anvil.rpcUrl,
    '--registry', env.PROVENANCE_REGISTRY, '--device', 'cam-1', '--out', bundle])
  for (const verifier of ['node', 'noble']) {
    const verdict = await sh('provenance', ['verify', bundle, '--rpc-url', anvil.rpcUrl, '--verifier', verifier])
    t.equal(verdict.code, 0, verdict.stdout + verdict.stderr)
    t.match(verdict.stdout, /\bVALID\b/, verifier)
  }
  t.match(await metrics(), /records_quarantined_total/, 'the metric is there')
  t.equal(await quarantined('uncertified-key') + await quarantined('bad-certification') + await quarantined('bad-signature'), 0, 'nothing of the honest device quarantined')

  // The thief copies the whole state folder onto another device (another TPM): the agent cannot
  // start (the identity blob does not load there), so not one record is signed.
  const other = await startSwtpm()
  t.teardown(other.close)
  const stolenDir = join(dir, 'stolen')
  await cp(join(dir, 'agent'), stolenDir, { recursive: true, filter: (p) => !p.endsWith('api.sock') })
  const stolenConfig = await agentConfigFor('stolen', stolenDir, other.tcti)
  const refused = await sh('provenance-agent', ['start', '--config', stolenConfig])
  t.not(refused.code, 0)
  t.match(refused.stderr, /TPM_KEY_UNUSABLE/)
  // Making a new identity there (init) gives boot certifications the registry does not hold:
  // the gateway quarantines the boot record, and no record of that run is stored.
  await rm(join(stolenDir, 'tpm-identity.pub'))
  await rm(join(stolenDir, 'tpm-identity.priv'))
  await ok('provenance-agent', ['init', '--config', stolenConfig, '--out', join(dir, 'stolen.enroll.json')])
  const thief = service('provenance-agent', ['start', '--config', stolenConfig, '--json'])
  await waitFor('the forged boot quarantined', async () => await quarantined('bad-certification') >= 1, () => thief.output() + gateway.output())
  await thief.stop()

  // Revocation of the identity: the device's next records stop at the gateway.
  await ok('provenance-fleet', ['device', 'revoke', '--id', 'cam-1'], env)
  await new Promise(resolve => setTimeout(resolve, 1500)) // the gateway's key cache TTL, not a race
  const before = await quarantined('device-revoked')
  const late = service('provenance-agent', ['start', '--config', agentConfig, '--json'])
  await waitFor('the revoked device\'s boot record refused', async () => await quarantined('device-revoked') > before, () => late.output() + gateway.output())
  await late.stop()
})
