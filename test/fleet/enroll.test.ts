// Enrollment end to end, with the bins as an operator runs them: `provenance-agent init` writes the
// enrollment file, `provenance-fleet device register --enrollment` puts the key on chain, and the
// daemon's first records are signed by exactly that key.
import t from 'tap'
import { spawn } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { RegistryClient, createRpcProvider, deviceIdOf, startAnvil } from '../../contracts/index.js'
import { decodeCanonical, decodeEnvelope, fromHex, verifyRecordSignature } from '../../protocol/index.js'
import { makeTempDir } from '../helpers/tmp.js'
import { processSlots } from '../helpers/semaphore.js'

const AGENT_BIN = fileURLToPath(new URL('../../agent/cli/bin.mjs', import.meta.url))
const FLEET_BIN = fileURLToPath(new URL('../../fleet/bin.mjs', import.meta.url))
// No PROVENANCE_* variable of the test runner reaches the children.
const BASE_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PROVENANCE_') && k !== 'STATE_DIRECTORY'))

interface Result { code: number | null, stdout: string, stderr: string }

/** One bin run; runs beyond the shared process slots wait their turn. */
async function run (bin: string, args: string[], env: Record<string, string> = {}, onStdout?: (text: string, kill: (s: NodeJS.Signals) => void) => void): Promise<Result> {
  return await processSlots.run(async () => {
    const child = spawn(process.execPath, [bin, ...args], { env: { ...BASE_ENV, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); onStdout?.(stdout, s => child.kill(s)) })
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
    const code = await new Promise<number | null>(resolve => child.once('close', resolve))
    return { code, stdout, stderr }
  })
}

t.test('behavior: provenance-fleet as a process: --help and --version on stdout, usage exit 2, config exit 78', async t => {
  const [help, version, usage, noKey] = await Promise.all([
    run(FLEET_BIN, ['device', 'register', '--help']),
    run(FLEET_BIN, ['--version']),
    run(FLEET_BIN, ['device', 'frobnicate']),
    run(FLEET_BIN, ['role', 'grant', '--role', 'admin', '--account', '0x' + '11'.repeat(20), '--rpc-url', 'http://127.0.0.1:1', '--registry', '0x' + '22'.repeat(20)])
  ])
  t.equal(help.code, 0)
  t.match(help.stdout, /^Usage: provenance-fleet device register/)
  t.equal(help.stderr, '')
  t.equal(version.code, 0)
  t.match(version.stdout, /^\d+\.\d+\.\d+\n$/)
  t.equal(usage.code, 2)
  t.match(usage.stderr, /^usage: unknown subcommand "device frobnicate"/)
  t.equal(usage.stdout, '')
  t.equal(noKey.code, 78)
  t.match(noKey.stderr, /^SECRET_MISSING: /)
})

t.test('behavior: init → enrollment file → device register → the registry knows the key the daemon signs with', async t => {
  const dir = await makeTempDir(t, 'prov-enroll-')
  const anvil = await startAnvil({ accountCount: 1 })
  t.teardown(anvil.stop)
  const provider = createRpcProvider(anvil.rpcUrl, { chainId: anvil.chainId })
  t.teardown(() => { provider.destroy() })
  const keyFile = join(dir, 'operator.key')
  await writeFile(keyFile, anvil.accounts[0]!.privateKey + '\n', { mode: 0o600 })
  const chainEnv = { PROVENANCE_RPC_URL: anvil.rpcUrl, PROVENANCE_FLEET_KEY_FILE: keyFile }

  const deployed = await run(FLEET_BIN, ['deploy'], chainEnv)
  t.equal(deployed.code, 0, deployed.stderr)
  const registryAddress = deployed.stdout.trim()
  const env = { ...chainEnv, PROVENANCE_REGISTRY: registryAddress }
  const granted = await run(FLEET_BIN, ['role', 'grant', '--role', 'device-registrar', '--account', anvil.accounts[0]!.address], env)
  t.equal(granted.code, 0, granted.stderr)

  const config = join(dir, 'agent.json')
  await writeFile(config, JSON.stringify({ deviceId: 'cam-e2e', stateDir: join(dir, 'state'), profile: 'generic-x86_64' }))
  const enrollment = join(dir, 'cam-e2e.enroll.json')
  const init = await run(AGENT_BIN, ['init', '--config', config, '--out', enrollment])
  t.equal(init.code, 0, init.stderr)

  const registered = await run(FLEET_BIN, ['device', 'register', '--enrollment', enrollment, '--json'], env)
  t.equal(registered.code, 0, registered.stderr)
  const request = JSON.parse(await readFile(enrollment, 'utf8')) as { publicKey: string }
  const registry = new RegistryClient(registryAddress, provider)
  const onChain = await registry.keyAt(deviceIdOf('cam-e2e'), Date.now())
  t.equal(onChain.publicKey, '0x' + request.publicKey, 'the registry holds the key init created')

  // The first start signs with that key: the boot record verifies under the registered key.
  const started = await run(AGENT_BIN, ['start', '--json', '--config', config], {}, (out, kill) => { if (out.includes('"event":"ready"')) kill('SIGTERM') })
  t.equal(started.code, 0, started.stderr)
  const out = join(dir, 'records.cbor')
  const exported = await run(AGENT_BIN, ['export', '--config', config, '--out', out])
  t.equal(exported.code, 0, exported.stderr)
  const envelopes = decodeCanonical(new Uint8Array(await readFile(out)), { maxDepth: 1 }) as Uint8Array[]
  t.ok(envelopes.length >= 2, 'boot and shutdown records')
  for (const envelope of envelopes) {
    const signed = decodeEnvelope(envelope)
    t.ok(verifyRecordSignature(signed, fromHex(request.publicKey)), `seq ${signed.record.seq} (${signed.record.body.kind}) verifies under the registered key`)
  }
})
