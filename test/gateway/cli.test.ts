import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startDevChain } from '../../contracts/index.js'
import { Gateway, runCli, type CliIo } from '../../gateway/index.js'
import { envNameOf } from '../../gateway/cli.js'
import { makeTempDir } from '../helpers/tmp.js'

function io (env: Record<string, string> = {}): CliIo & { out: string[], err: string[], stop: () => void } {
  const out: string[] = []
  const err: string[] = []
  let handler: ((s: string) => void) | undefined
  return {
    out,
    err,
    env,
    stdout: { write: (s: string) => { out.push(s) } },
    stderr: { write: (s: string) => err.push(s) },
    onStopSignal: (h) => { handler = h },
    stop: () => handler?.('SIGTERM')
  }
}

t.test('behavior: --help prints the usage on stdout and exits 0; --version prints the version; no command exits 2', async t => {
  const a = io()
  t.equal(await runCli(['--help'], a), 0)
  t.match(a.out.join(''), /Usage: provenance-gateway <command>/)
  t.match(a.out.join(''), /PROVENANCE_GATEWAY_BROKER_URL/)
  t.same(a.err, [])
  const b = io()
  t.equal(await runCli(['start', '--help'], b), 0)
  t.match(b.out.join(''), /--config <file>/)
  const v = io()
  t.equal(await runCli(['--version'], v), 0)
  t.match(v.out.join(''), /^\d+\.\d+\.\d+\n$/)
  const none = io()
  t.equal(await runCli([], none), 2)
  t.match(none.err.join(''), /^usage: /)
})

t.test('error: command-line mistakes exit 2 with usage: on stderr', async t => {
  const cases: Array<[string[], RegExp]> = [
    [['launch'], /unknown command "launch"/],
    [['start', '--verbose'], /Unknown option '--verbose'/],
    [['start', '--config'], /--config <value>' argument missing/]
  ]
  for (const [argv, message] of cases) {
    const x = io()
    t.equal(await runCli(argv, x), 2, argv.join(' '))
    t.match(x.err.join(''), /^usage: /)
    t.match(x.err.join(''), message)
  }
})

// The CLI convention (issue 10 item 6): a configuration error exits 78 (EX_CONFIG), not 2.
t.test('error: configuration errors exit 78 with CONFIG_INVALID on stderr', async t => {
  const dir = await makeTempDir(t)
  const bad = join(dir, 'bad.json')
  const unknown = join(dir, 'unknown.json')
  const wrongType = join(dir, 'type.json')
  await writeFile(bad, '{ not json')
  await writeFile(unknown, JSON.stringify({ name: 'x', colour: 'blue' }))
  // Every problem of the file in one message (checked by the config schema, gateway/config-schema.ts).
  await writeFile(wrongType, JSON.stringify({ name: 'x', batchMaxRecords: '10', logLevel: 'loud', httpPublicHealth: 'yes' }))
  const cases: Array<[string[], Record<string, string>, RegExp]> = [
    [['start', '--config', join(dir, 'missing.json')], {}, /cannot read config file/],
    [['start', '--config', bad], {}, /is not JSON/],
    [['start', '--config', unknown], {}, /colour: unknown option/],
    [['start', '--config', wrongType], {}, /batchMaxRecords: must be an integer/],
    [['start', '--config', wrongType], {}, /httpPublicHealth: must be a boolean; logLevel: must be one of fatal/],
    [['start'], { PROVENANCE_GATEWAY_LOG_LEVEL: 'loud' }, /PROVENANCE_GATEWAY_LOG_LEVEL must be one of fatal, error/],
    [['start'], { PROVENANCE_GATEWAY_HTTP_PORT: 'eighty' }, /PROVENANCE_GATEWAY_HTTP_PORT must be an integer/],
    [['start'], { PROVENANCE_GATEWAY_SYNC_WRITES: 'yes' }, /must be true or false/],
    [['start'], {}, /name must be a non-empty string/],
    [['start'], { PROVENANCE_GATEWAY_NAME: 'gw', PROVENANCE_GATEWAY_STATE_DIR: dir, PROVENANCE_GATEWAY_RPC_URL: 'http://127.0.0.1:1', PROVENANCE_GATEWAY_REGISTRY: '0x0000000000000000000000000000000000000001', PROVENANCE_GATEWAY_BATCH_MAX_RECORDS: '0' }, /batchMaxRecords must be an integer/],
    [['start'], { PROVENANCE_GATEWAY_NAME: 'gw', PROVENANCE_GATEWAY_SHARE_GROUP: 'g', PROVENANCE_GATEWAY_STATE_DIR: dir, PROVENANCE_GATEWAY_RPC_URL: 'http://x', PROVENANCE_GATEWAY_REGISTRY: '0x01' }, /shareGroup needs brokerUrl/]
  ]
  for (const [argv, env, message] of cases) {
    const x = io(env)
    t.equal(await runCli(argv, x), 78, argv.join(' '))
    t.match(x.err.join(''), /^CONFIG_INVALID: /)
    t.match(x.err.join(''), message)
  }
  t.equal(envNameOf('anchorPrivateKey'), 'PROVENANCE_GATEWAY_ANCHOR_PRIVATE_KEY')
})

t.test('behavior: start runs until the stop signal, logs JSON lines without secrets, exits 0', async t => {
  const dir = await makeTempDir(t)
  const chain = await startDevChain()
  t.teardown(async () => await chain.stop())
  const keyFile = join(dir, 'anchor.key')
  const key = chain.anvil.accounts[3]?.privateKey as string
  await writeFile(keyFile, key + '\n', { mode: 0o600 })
  const tokenFile = join(dir, 'api.token')
  const token = 'cli-test-token-that-is-secret'
  await writeFile(tokenFile, token + '\n', { mode: 0o600 })
  const config = join(dir, 'gateway.json')
  await writeFile(config, JSON.stringify({ name: 'cli-gw', stateDir: join(dir, 'state'), rpcUrl: chain.anvil.rpcUrl, registry: chain.deployment.address, anchorPrivateKeyFile: keyFile, httpTokenFile: tokenFile, processMetrics: false }))
  const x = io({ PROVENANCE_GATEWAY_BATCH_MAX_AGE_MS: '250' })
  const running = runCli(['start', '--config', config], x)
  const deadline = Date.now() + 15_000
  while (!x.out.join('').includes('gateway started')) {
    if (Date.now() > deadline) throw new Error(`not started: ${x.err.join('')}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  const announced = x.out.join('').trim().split('\n').map(l => JSON.parse(l) as Record<string, unknown>)
  t.equal(announced.length, 1, 'stdout holds the one start announcement')
  const started = announced[0]
  t.match(started, { gateway: 'cli-gw', level: 'info', broker: /^mqtt:\/\/127\.0\.0\.1:\d+$/, http: /^http:\/\// })
  const lines = x.err.join('').trim().split('\n').map(l => JSON.parse(l) as Record<string, unknown>)
  t.match(lines.find(l => l.msg === 'gateway started'), { gateway: 'cli-gw', anchoring: true }, 'the log on stderr says more')
  let health = { ok: false }
  while (!health.ok && Date.now() < deadline) {
    health = await (await fetch(`${started?.http as string}/healthz`)).json() as { ok: boolean }
    if (!health.ok) await new Promise(resolve => setTimeout(resolve, 20))
  }
  t.equal(health.ok, true, 'healthy once connected to its embedded broker')
  t.equal((await fetch(`${started?.http as string}/v1/devices`)).status, 401, 'the API asks for a token')
  t.equal((await fetch(`${started?.http as string}/v1/devices`, { headers: { authorization: `Bearer ${token}` } })).status, 200, 'the one of httpTokenFile')
  x.stop()
  t.equal(await running, 0)
  const everything = x.out.join('') + x.err.join('')
  t.notOk(everything.includes(key.slice(2)), 'the private key is never logged')
  t.notOk(everything.includes(token), 'nor the API token')
  const logLines = x.err.join('').trim().split('\n').map(l => JSON.parse(l) as Record<string, unknown>)
  t.ok(logLines.every(l => typeof l.time === 'string' && typeof l.level === 'string' && l.service === 'provenance-gateway'), 'stderr: JSON lines in the one log format (level by name)')
})

t.test('error: a start failure exits 1 with CODE: message', async t => {
  const dir = await makeTempDir(t)
  const chain = await startDevChain()
  t.teardown(async () => await chain.stop())
  const options = { name: 'locked', stateDir: join(dir, 'state'), rpcUrl: chain.anvil.rpcUrl, registry: chain.deployment.address, processMetrics: false }
  const holder = new Gateway(options)
  await holder.start()
  t.teardown(async () => await holder.stop())
  const config = join(dir, 'gateway.json')
  await writeFile(config, JSON.stringify(options))
  const x = io()
  t.equal(await runCli(['start', '--config', config], x), 1)
  t.match(x.err.join('').trimEnd().split('\n').pop(), /^STORE_LOCKED: /, 'the last stderr line (logs come before it)')
})

t.test('behavior: log-key creates the gateway log key and prints its id and public key (to register on chain, give to devices)', async t => {
  const dir = await makeTempDir(t)
  const env = { PROVENANCE_GATEWAY_NAME: 'gw-k', PROVENANCE_GATEWAY_STATE_DIR: dir, PROVENANCE_GATEWAY_RPC_URL: 'http://127.0.0.1:1', PROVENANCE_GATEWAY_REGISTRY: '0x0000000000000000000000000000000000000001' }
  const a = io(env)
  t.equal(await runCli(['log-key'], a), 0)
  const printed = JSON.parse(a.out.join('')) as { gatewayId: string, publicKey: string, logKeyFile: string }
  t.match(printed, { gatewayId: 'gateway.gw-k', publicKey: /^[0-9a-f]{64}$/, logKeyFile: join(dir, 'log-key.json') })
  const b = io({ ...env, PROVENANCE_GATEWAY_GATEWAY_ID: 'gw.k.custom', PROVENANCE_GATEWAY_PEER_GATEWAY_KEYS: `${'ab'.repeat(32)},${'cd'.repeat(32)}` })
  t.equal(await runCli(['log-key'], b), 0)
  t.match(JSON.parse(b.out.join('')), { gatewayId: 'gw.k.custom', publicKey: printed.publicKey }, 'the same key on every call')
  const c = io({ ...env, PROVENANCE_GATEWAY_PEER_GATEWAY_KEYS: 'nothex' })
  t.equal(await runCli(['log-key'], c), 78)
  t.match(c.err.join(''), /^CONFIG_INVALID: peerGatewayKeys/)
})
