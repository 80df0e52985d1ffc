// The deploy command end to end: spawned against anvil, it prints the address of a registry whose
// code is on chain; failures exit 1 with `CODE: message`, usage errors exit 2.
import t from 'tap'
import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startAnvil, createRpcProvider, RegistryClient, runDeployCli, DEPLOYER_KEY_ENV, type DeployCliIo } from '../../contracts/index.js'
import artifact from '../../contracts/build/ProvenanceRegistry.json' with { type: 'json' }
import { makeTempDir } from '../helpers/tmp.js'

const script = fileURLToPath(new URL('../../contracts/deploy.ts', import.meta.url))
const anvil = await startAnvil({ accountCount: 3 })
t.teardown(anvil.stop)
const provider = createRpcProvider(anvil.rpcUrl, { chainId: anvil.chainId })
t.teardown(() => { provider.destroy() })
const deployer = anvil.accounts[0]!
const other = anvil.accounts[1]!

/** Runs the real command in a child process: node --import tsx contracts/deploy.ts … */
async function runCommand (args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString() })
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  const code = await new Promise<number | null>(resolve => child.once('close', resolve))
  return { code, stdout, stderr }
}

function captureIo (env: NodeJS.ProcessEnv = {}): DeployCliIo & { out: string[], err: string[] } {
  const out: string[] = []
  const err: string[] = []
  return { out, err, env, stdout: s => { out.push(s) }, stderr: s => { err.push(s) } }
}

t.test('behavior: prints the address of a deployed registry whose admin is the deployer', async t => {
  const { code, stdout, stderr } = await runCommand(['--rpc-url', anvil.rpcUrl], { [DEPLOYER_KEY_ENV]: deployer.privateKey })
  t.equal(code, 0, stderr)
  const address = stdout.trim()
  t.match(address, /^0x[0-9a-fA-F]{40}$/)
  t.equal(await provider.getCode(address), artifact.deployedBytecode)
  t.equal(await new RegistryClient(address, provider).hasRole('admin', deployer.address), true)
})

t.test('behavior: --json with --key-file and --admin prints the deployment for machines', async t => {
  const dir = await makeTempDir(t, 'prov-deploy-')
  const keyFile = join(dir, 'deployer.key')
  await writeFile(keyFile, deployer.privateKey + '\n', { mode: 0o600 })
  const { code, stdout, stderr } = await runCommand(['--rpc-url', anvil.rpcUrl, '--key-file', keyFile, '--admin', other.address, '--json'], {})
  t.equal(code, 0, stderr)
  const out = JSON.parse(stdout) as Record<string, unknown>
  t.match(out, { chainId: anvil.chainId, deployer: deployer.address, admin: other.address, address: String, txHash: /^0x/, blockNumber: Number, gasUsed: /^\d+$/ })
  const registry = new RegistryClient(out.address as string, provider)
  t.equal(await registry.hasRole('admin', other.address), true)
  t.equal(await registry.hasRole('admin', deployer.address), false)
  t.not(await provider.getCode(out.address as string), '0x')
})

t.test('error: an unreachable RPC exits 1 with REGISTRY_RPC_FAILED', async t => {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  await new Promise<void>(resolve => server.close(() => resolve()))
  const { code, stdout, stderr } = await runCommand(['--rpc-url', `http://127.0.0.1:${port}`], { [DEPLOYER_KEY_ENV]: deployer.privateKey })
  t.equal(code, 1)
  t.equal(stdout, '')
  t.match(stderr, /^REGISTRY_RPC_FAILED: /)
})

t.test('error: a missing or malformed key exits 1 with its code and never echoes the key', async t => {
  let io = captureIo()
  t.equal(await runDeployCli(['--rpc-url', anvil.rpcUrl], io), 1)
  t.match(io.err.join(''), /^DEPLOY_KEY_MISSING: /)

  io = captureIo({ [DEPLOYER_KEY_ENV]: 'abad1dea' })
  t.equal(await runDeployCli(['--rpc-url', anvil.rpcUrl], io), 1)
  t.match(io.err.join(''), /^DEPLOY_KEY_INVALID: /)
  t.notMatch(io.err.join(''), /abad1dea/)

  io = captureIo()
  t.equal(await runDeployCli(['--rpc-url', anvil.rpcUrl, '--key-file', '/nonexistent/key'], io), 1)
  t.match(io.err.join(''), /^DEPLOY_KEY_MISSING: /)
  t.same(io.out, [])
})

t.test('error: usage errors exit 2; --help exits 0', async t => {
  for (const args of [[], ['--bogus'], ['--rpc-url', 'ftp://x'], ['--rpc-url', anvil.rpcUrl, '--admin', 'nope'], ['--rpc-url', anvil.rpcUrl, 'extra']]) {
    const io = captureIo({ [DEPLOYER_KEY_ENV]: deployer.privateKey })
    t.equal(await runDeployCli(args, io), 2, args.join(' '))
    t.match(io.err.join(''), /^USAGE: /)
  }
  const io = captureIo()
  t.equal(await runDeployCli(['--help'], io), 0)
  t.match(io.out.join(''), /--rpc-url URL/)
})
