// The forensics CLI: export → verify → timeline → report end to end in child processes, offline
// verification under a preload that makes every network call throw and refuses to load ethers,
// exit codes (0 valid, 1 invalid or failure with CODE: message, 2 usage), --help, --json, progress.
import t from 'tap'
import { spawn } from 'node:child_process'
import { readFile, truncate, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BUNDLE_LIMITS, decodeBundle, encodeBundle } from '../../protocol/index.js'
import { runCli, type CliIo } from '../../forensics/cli.js'
import { createProgress } from '../../forensics/cli/index.js'
import { makeTempDir } from '../helpers/tmp.js'
import { clone, startChain, startIncident } from '../helpers/forensics-fixture.js'

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..')
const chain = await startChain(t)
const incident = await startIncident(t, chain)
const dir = await makeTempDir(t, 'forensics-cli-')
const bundlePath = join(dir, 'bundle.json')
const tokenFile = join(dir, 'gateway-token')
await writeFile(tokenFile, incident.gatewayToken + '\n', { mode: 0o600 })

interface Run { code: number | null, stdout: string, stderr: string }

/** Runs the CLI in a child process (with extra `--import` preloads), like an investigator would. */
async function cli (args: string[], options: { preload?: string, env?: Record<string, string> } = {}): Promise<Run> {
  const node = ['--import', 'tsx', ...(options.preload === undefined ? [] : ['--import', options.preload]), join(ROOT, 'forensics/cli.ts'), ...args]
  const child = spawn(process.execPath, node, { cwd: ROOT, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  const code = await new Promise<number | null>(resolve => child.on('close', resolve))
  return { code, stdout, stderr }
}

/** Runs the CLI in this process with captured output. */
async function inProcess (args: string[], env: Record<string, string> = {}): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const io: CliIo = { stdout: s => { stdout += s }, stderr: { write: s => { stderr += s }, isTTY: false }, env }
  const code = await runCli(args, io)
  return { code, stdout, stderr }
}

// Makes every way out of the process throw, and (unless NO_NET_ALLOW_ETHERS is set) refuses to
// load ethers at all: offline verification must not even construct a provider.
const PRELOAD = `
import net from 'node:net'
import tls from 'node:tls'
import dns from 'node:dns'
import http from 'node:http'
import https from 'node:https'
import { register } from 'node:module'
const deny = what => function () {
  process.stderr.write('NETWORK_ATTEMPT ' + what + '\\n')
  throw new Error('network call in an offline run: ' + what)
}
net.connect = net.createConnection = deny('net.connect')
net.Socket.prototype.connect = deny('net.Socket.prototype.connect')
tls.connect = deny('tls.connect')
dns.lookup = deny('dns.lookup')
dns.resolve = deny('dns.resolve')
dns.promises.lookup = deny('dns.promises.lookup')
http.request = http.get = deny('http.request')
https.request = https.get = deny('https.request')
globalThis.fetch = deny('fetch')
if (process.env.NO_NET_ALLOW_ETHERS !== '1') {
  const hook = 'export async function resolve (specifier, context, next) {' +
    ' const r = await next(specifier, context);' +
    ' if (/[\\\\/]node_modules[\\\\/]ethers[\\\\/]/.test(r.url)) throw new Error("ethers loaded in an offline run: " + r.url);' +
    ' return r }'
  register('data:text/javascript,' + encodeURIComponent(hook))
}
`

t.test('behavior: export writes a bundle that verify, timeline and report accept', async t => {
  const exported = await cli(['export', '--gateway', incident.gatewayUrl, '--token-file', tokenFile, '--rpc-url', chain.anvil.rpcUrl, '--registry', chain.deployment.address,
    '--device', 'dev-0001', '--out', bundlePath, '--json'])
  t.equal(exported.code, 0, exported.stderr)
  const summary = JSON.parse(exported.stdout) as { records: number, proofs: number }
  t.equal(summary.records, incident.device.records.length)
  t.equal(summary.proofs, summary.records)
  t.equal(decodeBundle(await readFile(bundlePath)).records.length, summary.records)

  const online = await cli(['verify', bundlePath, '--rpc-url', chain.anvil.rpcUrl, '--json'])
  t.equal(online.code, 0, online.stderr)
  t.match(JSON.parse(online.stdout), { verdict: 'valid', mode: 'online' })

  const timeline = await inProcess(['timeline', bundlePath])
  t.equal(timeline.code, 0)
  t.match(timeline.stdout, /boot 2 .*\n/)
  t.match(timeline.stdout, /gap 6\.\.7 dropped: disk-budget/)
  t.match(timeline.stdout, /model load detector 1\.1\.0/)
  const json = JSON.parse((await inProcess(['timeline', bundlePath, '--json', '--interval-ms', '5000'])).stdout) as { intervalMs: number, inferences: number }
  t.equal(json.intervalMs, 5000)
  t.equal(json.inferences, incident.device.records.filter(r => r.record.body.kind === 'inference').length)

  const reportPath = join(dir, 'report.html')
  const report = await inProcess(['report', bundlePath, '--offline', '--out', reportPath])
  t.equal(report.code, 0, report.stderr)
  t.match(report.stdout, /report written to .*: valid/)
  t.match(await readFile(reportPath, 'utf8'), /<svg class="chart"/)
})

t.test('behavior: verify --offline makes no network call and never loads ethers', async t => {
  const preload = join(dir, 'no-network.mjs')
  await writeFile(preload, PRELOAD)
  const offline = await cli(['verify', bundlePath, '--offline', '--json'], { preload })
  t.equal(offline.code, 0, offline.stderr)
  t.notMatch(offline.stderr, /NETWORK_ATTEMPT/)
  t.match(JSON.parse(offline.stdout), { verdict: 'valid', mode: 'offline', counts: { signaturesValid: incident.device.records.length } })

  // The guard is real: the same preload stops online verification, at the import and at the socket.
  const online = await cli(['verify', bundlePath, '--rpc-url', chain.anvil.rpcUrl], { preload })
  t.equal(online.code, 1)
  t.match(online.stderr, /ethers loaded in an offline run/)
  const socket = await cli(['verify', bundlePath, '--rpc-url', chain.anvil.rpcUrl], { preload, env: { NO_NET_ALLOW_ETHERS: '1' } })
  t.equal(socket.code, 1)
  t.match(socket.stderr, /NETWORK_ATTEMPT/)
  t.match(socket.stderr, /^RPC_FAILED: /m)
})

t.test('error: an invalid verdict exits 1 with the seq and reason on stdout and CODE: message on stderr', async t => {
  const b = decodeBundle(await readFile(bundlePath))
  const tampered = clone(b)
  tampered.records.splice(3, 1) // seq 3
  const path = join(dir, 'tampered.json')
  await writeFile(path, encodeBundle(tampered))
  const r = await inProcess(['verify', path, '--offline'])
  t.equal(r.code, 1)
  t.match(r.stdout, /^INVALID {2}device dev-0001/)
  t.match(r.stdout, /seq 3 +seq-gap/)
  t.match(r.stderr, /^VERDICT_INVALID: 1 failure\(s\) on 1 record\(s\); first: seq 3 seq-gap$/m)
  t.match(r.stdout, /^signature .* valid \(node:crypto\)$/m, 'the summary names the verifier that ran')
  const here = await inProcess(['verify', path, '--offline', '--workers', '0', '--verifier', 'noble'])
  t.equal(here.code, 1, '--workers 0 (this thread) is accepted, as the help says')
  t.match(here.stdout, /^signature .* valid \(@noble\/ed25519\)$/m)
  const json = await inProcess(['verify', path, '--offline', '--json'])
  t.match(JSON.parse(json.stdout), { verdict: 'invalid', failures: [{ seq: 3, reason: 'seq-gap' }] })
  const env = await inProcess(['verify', path], { PROVENANCE_RPC_URL: chain.anvil.rpcUrl })
  t.equal(env.code, 1, 'the RPC URL may come from the environment')
  t.match(JSON.stringify(env.stdout), /online/)
})

t.test('error: unreadable or malformed files are CODE: message with exit 1', async t => {
  const missing = await inProcess(['verify', join(dir, 'nope.json'), '--offline'])
  t.equal(missing.code, 1)
  t.match(missing.stderr, /^IO_FAILED: /)
  const folder = await inProcess(['verify', dir, '--offline'])
  t.equal(folder.code, 1)
  t.match(folder.stderr, /^IO_FAILED: .* is not a file/, 'a directory is refused before any read')
  // Sparse: the size is checked before the file is read, so no disk space or memory is taken.
  const huge = join(dir, 'huge.json')
  await writeFile(huge, '')
  await truncate(huge, BUNDLE_LIMITS.bundleBytes + 1)
  const tooLarge = await inProcess(['timeline', huge])
  t.equal(tooLarge.code, 1)
  t.match(tooLarge.stderr, /^BUNDLE_TOO_LARGE: .* at most /, 'a bundle over the limit is refused by its size')
  const junk = join(dir, 'junk.json')
  await writeFile(junk, '{"format": "edge-provenance-bundle/v1", ')
  const bad = await inProcess(['timeline', junk])
  t.equal(bad.code, 1)
  t.match(bad.stderr, /^BUNDLE_MALFORMED: /)
  const unknown = await inProcess(['export', '--gateway', incident.gatewayUrl, '--rpc-url', chain.anvil.rpcUrl, '--registry', chain.deployment.address, '--device', 'nobody-9'],
    { PROVENANCE_GATEWAY_TOKEN: incident.gatewayToken })
  t.equal(unknown.code, 1)
  t.match(unknown.stderr, /^DEVICE_NOT_REGISTERED: /)
})

t.test('error: export without the gateway token, or with a wrong one, is refused and says so', async t => {
  const base = ['export', '--gateway', incident.gatewayUrl, '--rpc-url', chain.anvil.rpcUrl, '--registry', chain.deployment.address, '--device', 'dev-0001']
  const none = await inProcess(base)
  t.equal(none.code, 1)
  t.match(none.stderr, /^GATEWAY_FAILED: .*HTTP 401 \(UNAUTHENTICATED\).*--token-file/)
  const wrongFile = join(dir, 'wrong-token')
  await writeFile(wrongFile, 'not-the-gateway-token-at-all\n')
  const wrong = await inProcess([...base, '--token-file', wrongFile])
  t.equal(wrong.code, 1)
  t.match(wrong.stderr, /^GATEWAY_FAILED: .*HTTP 403 \(FORBIDDEN\)/)
  t.notMatch(wrong.stderr, /not-the-gateway-token/, 'the token never reaches the output')
  const missing = await inProcess([...base, '--token-file', join(dir, 'no-such-token')])
  t.equal(missing.code, 2, 'an unreadable token file is a usage error')
  t.match(missing.stderr, /--token-file/)
})

t.test('error: usage errors exit 2 with the usage on stderr; --help exits 0 on stdout', async t => {
  const cases: string[][] = [
    [], ['frobnicate'], ['verify'], ['verify', bundlePath], ['verify', bundlePath, '--offline', '--rpc-url', 'http://127.0.0.1:1'],
    ['verify', bundlePath, '--offline', '--from', 'yesterday'], ['verify', bundlePath, '--offline', '--bogus'],
    ['verify', bundlePath, '--offline', '--from', '10', '--to', '5'], ['timeline', bundlePath, '--interval-ms', '0'],
    ['export', '--gateway', incident.gatewayUrl], ['export', '--gateway', 'x', '--rpc-url', 'y', '--registry', '0x12', '--device', 'd'],
    ['report', bundlePath], ['verify', bundlePath, '--offline', '--offline']
  ]
  for (const args of cases) {
    const r = await inProcess(args)
    t.equal(r.code, 2, `${args.join(' ')}: exit 2`)
    t.match(r.stderr, /usage/, `${args.join(' ')}: usage on stderr`)
    t.equal(r.stdout, '')
  }
  for (const command of ['verify', 'timeline', 'export', 'report']) {
    const r = await inProcess([command, '--help'])
    t.equal(r.code, 0)
    t.match(r.stdout, new RegExp(`^Usage: provenance ${command} `))
    t.equal(r.stderr, '')
  }
  t.match((await inProcess(['--help'])).stdout, /Commands:/)
})

t.test('behavior: progress is a bar redrawn on a terminal, periodic plain lines otherwise', async t => {
  let clock = 0
  const now = (): number => clock
  const tty = { out: '', isTTY: true, columns: 120, write (s: string) { this.out += s } }
  const bar = createProgress(tty, { label: 'verify', now })
  bar.update('records', 0, 20_000)
  clock = 2000
  bar.update('records', 5000, 20_000)
  bar.finish()
  t.match(tty.out, /\r\x1b\[K\[######\.+\] verify: records 5 000\/20 000, 2 500\/s, 6 s left/)
  t.ok(tty.out.endsWith('\r\x1b[K'), 'the bar is cleared at the end')

  const pipe = { out: '', isTTY: false, write (s: string) { this.out += s } }
  const lines = createProgress(pipe, { label: 'verify', now, lineIntervalMs: 5000 })
  clock = 0
  lines.update('records', 0, 100)
  clock = 1000
  lines.update('records', 10, 100)
  t.equal(pipe.out, '', 'nothing before the interval')
  clock = 5000
  lines.update('records', 50, 100)
  clock = 6000
  lines.update('records', 60, 100)
  lines.finish()
  t.same(pipe.out.split('\n').filter(Boolean), ['verify: records 50/100, 10/s, 5 s left', 'verify: records 60/100, 10/s, 4 s left (done)'])
  const quiet = { out: '', write (s: string) { this.out += s } }
  createProgress(quiet, { label: 'x' }, false).update('records', 1, 2)
  t.equal(quiet.out, '')
})
