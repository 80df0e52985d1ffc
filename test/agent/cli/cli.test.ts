// The `provenance-agent` command line as operators and systemd run it: real processes
// (node --import tsx agent/cli/main.ts), real LevelDB, real models, real signals. Checks about
// what a command says run runCli in-process (one process costs ~1 s of CPU); each exit-code path
// and the daemon's lifecycle still go through a real process.
import t from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { access, mkdir, readFile, writeFile, chmod } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { COMMANDS, COMMON_OPTIONS, TOP_OPTIONS, parseCommandLine, runCli, type OptionSpec } from '../../../agent/cli/index.js'
import { KeyRing } from '../../../agent/keys/index.js'
import { RecordLog } from '../../../agent/log/index.js'
import { createSigner, decodeCanonical, decodeEnvelope, fromHex, toHex, verifyChain, type SignedRecord } from '../../../protocol/index.js'
import { makeClassifierModel } from '../../helpers/onnx-models.js'
import { makeTempDir } from '../../helpers/tmp.js'
import { processSlots } from '../../helpers/semaphore.js'

const MAIN = fileURLToPath(new URL('../../../agent/cli/main.ts', import.meta.url))
// The children get no PROVENANCE_AGENT_* variable of ours: unknown ones are configuration errors.
const BASE_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PROVENANCE_AGENT_') && k !== 'STATE_DIRECTORY'))

interface Result { code: number | null, stdout: string, stderr: string }

function spawnCli (args: string[], env: Record<string, string> = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { env: { ...BASE_ENV, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
}

/** One CLI run; runs beyond the shared process slots wait their turn (the timer only catches a hang). */
async function cli (args: string[], env: Record<string, string> = {}): Promise<Result> {
  return await processSlots.run(async () => {
    const proc = spawnCli(args, env)
    let stdout = ''
    let stderr = ''
    proc.stdout?.on('data', (d: Buffer) => { stdout += d.toString() })
    proc.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
    const timer = setTimeout(() => proc.kill('SIGKILL'), 60_000)
    const code = await new Promise<number | null>(resolve => proc.on('close', resolve))
    clearTimeout(timer)
    return { code, stdout, stderr }
  })
}

/** The same run as `cli`, in this process: for what a command says, when the process boundary is not the point. */
async function inProcess (args: string[], env: Record<string, string> = {}): Promise<Result> {
  let stdout = ''
  let stderr = ''
  const code = await runCli(args, {
    env: { ...BASE_ENV, ...env },
    stdout: { write: (s) => { stdout += String(s) } },
    stderr: { write: (s) => { stderr += String(s) } }
  })
  return { code, stdout, stderr }
}

/** `inProcess` over every case, one after another. */
async function eachInProcess (cases: Array<[string[], Record<string, string>?]>): Promise<Result[]> {
  const results: Result[] = []
  for (const [args, env] of cases) results.push(await inProcess(args, env))
  return results
}

/** The lines of stderr that are not JSON log lines. */
function plainLines (stderr: string): string[] {
  return stderr.split('\n').filter(l => l !== '' && !l.startsWith('{'))
}

interface Running { port: number, proc: ChildProcess, stop: (signal?: NodeJS.Signals) => Promise<Result> }

async function startDaemon (config: string): Promise<Running> {
  const proc = spawnCli(['start', '--json', '--config', config])
  let stdout = ''
  let stderr = ''
  proc.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
  const closed = new Promise<number | null>(resolve => proc.on('close', resolve))
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`daemon not ready: ${stderr}`)) }, 60_000)
    proc.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString()
      const ready = stdout.split('\n').map(l => { try { return JSON.parse(l) as { event?: string, port?: number } } catch { return {} } }).find(e => e.event === 'ready')
      if (ready?.port !== undefined) { clearTimeout(timer); resolve(ready.port) }
    })
    void closed.then(code => { clearTimeout(timer); reject(new Error(`daemon exited ${code}: ${stderr}`)) })
  })
  return {
    port,
    proc,
    stop: async (signal = 'SIGTERM') => {
      proc.kill(signal)
      const code = await closed
      return { code, stdout, stderr }
    }
  }
}

async function setup (t: { teardown: (fn: () => unknown) => void }, config: Record<string, unknown> = {}): Promise<{ dir: string, configPath: string, stateDir: string }> {
  const dir = await makeTempDir(t, 'prov-cli-')
  await writeFile(join(dir, 'tiny.onnx'), makeClassifierModel({ seed: 1 }))
  const configPath = join(dir, 'config.json')
  await writeFile(configPath, JSON.stringify({ deviceId: 'cli-dev', stateDir: 'state', profile: 'generic-x86_64', models: [{ name: 'tiny', path: 'tiny.onnx' }], statusPort: 0, ...config }))
  return { dir, configPath, stateDir: join(dir, 'state') }
}

async function readLog (stateDir: string): Promise<SignedRecord[]> {
  const ring = await KeyRing.open(join(stateDir, 'keys', 'device-key.json'))
  const log = await RecordLog.open({ dir: join(stateDir, 'records'), deviceId: 'cli-dev', signer: ring.signer })
  try { return await log.range(0, Number.MAX_SAFE_INTEGER) } finally { await log.close() }
}

t.test('behavior: --help of every command exits 0 and names exactly the options its parser accepts', async t => {
  // `parse` is the command line an option named in the help is tried with.
  const help = COMMON_OPTIONS.find(o => o.name === 'help') as (typeof COMMON_OPTIONS)[number]
  const topics: Array<{ args: string[], options: readonly OptionSpec[], parse: string[], mentions: string[] }> = [
    { args: ['--help'], options: [...TOP_OPTIONS, ...COMMON_OPTIONS], parse: ['start'], mentions: COMMANDS.map(c => c.path.join(' ')) },
    { args: ['keys', '--help'], options: [help], parse: ['keys'], mentions: ['keys show', 'keys rotate'] },
    ...COMMANDS.map(c => ({ args: [...c.path, '--help'], options: c.options, parse: c.path, mentions: [] }))
  ]
  const said = await eachInProcess(topics.map(topic => [topic.args]))
  const results = topics.map((topic, i) => ({ topic, result: said[i] as Result }))
  // One real process: the bin prints what runCli says, and exits 0.
  t.same(await cli(['--help']), results[0]?.result, 'the process prints the same help, exit 0')
  for (const { topic, result } of results) {
    const where = topic.args.join(' ')
    t.equal(result.code, 0, `${where}: exit 0`)
    t.equal(result.stderr, '', `${where}: nothing on stderr`)
    for (const o of topic.options) {
      t.match(result.stdout, new RegExp(`--${o.name}\\b`), `${where}: mentions --${o.name}`)
      if (o.short !== undefined) t.match(result.stdout, new RegExp(`-${o.short},`), `${where}: mentions -${o.short}`)
    }
    for (const m of topic.mentions) t.match(result.stdout, m, `${where}: mentions ${m}`)
    // And the other way round: every option the help names is one the parser takes.
    const named = [...new Set([...result.stdout.matchAll(/(?<![\w-])--([a-z][a-z-]*)/g)].map(m => m[1] as string))]
    for (const name of named) {
      const spec = topic.options.find(o => o.name === name)
      t.ok(spec, `${where}: --${name} is an option of this command`)
      if (spec === undefined) continue
      const parse = TOP_OPTIONS.includes(spec) ? [] : topic.parse
      const argv = [...parse, `--${name}`, ...(spec.type === 'string' ? ['1'] : [])]
      t.doesNotThrow(() => parseCommandLine(argv), `${where}: the parser takes ${argv.join(' ')}`)
    }
    t.match(result.stdout, /Exit codes:[\s\S]*0 +ok[\s\S]*1 +failure[\s\S]*2 +usage[\s\S]*78 +configuration/, `${where}: documents the exit codes`)
  }
  for (const c of COMMANDS) for (const o of COMMON_OPTIONS) t.ok(c.options.includes(o), `${c.path.join(' ')} takes --${o.name}`)
  t.match(results[2]?.result.stdout, /PROVENANCE_AGENT_DEVICE_ID/, 'start --help lists the environment overrides')
})

// The shared CLI convention (common/cli): one usage-error prefix, `usage: `, in every bin (was `USAGE: `).
t.test('error: usage errors exit 2 with one usage: line', async t => {
  const cases = [[], ['frobnicate'], ['start', '--bogus'], ['keys'], ['keys', 'burn'], ['status', '--port', 'abc'], ['export'], ['export', '--out', '-', '--json'], ['export', '--out', 'x', '--format', 'xml'], ['verify-log', 'extra']]
  const results = await eachInProcess(cases.map(args => [args]))
  // Two real processes: exit code 2 and the usage line reach the shell.
  t.same(await Promise.all([cli(cases[0] as string[]), cli(cases[2] as string[])]), [results[0], results[2]], 'the process says the same')
  results.forEach((r, i) => {
    const where = cases[i]?.join(' ') || '(nothing)'
    t.equal(r.code, 2, `${where}: exit 2`)
    t.match(plainLines(r.stderr)[0], /^usage: /, `${where}: usage line`)
    t.equal(r.stdout, '', `${where}: nothing on stdout`)
  })
})

t.test('error: bad config, bad profile, unreadable key, missing model exit 78 with one message, and write no boot record', async t => {
  const { dir, configPath, stateDir } = await setup(t)
  const write = async (name: string, value: unknown): Promise<string> => {
    const p = join(dir, name)
    await writeFile(p, typeof value === 'string' ? value : JSON.stringify(value))
    return p
  }
  const base = JSON.parse(await readFile(configPath, 'utf8')) as Record<string, unknown>
  await mkdir(join(dir, 'file-not-dir'), { recursive: true })
  await writeFile(join(dir, 'file-not-dir', 'plain'), 'x')
  const insecureDir = join(dir, 'insecure')
  await mkdir(insecureDir)
  const insecure = join(insecureDir, 'key.json')
  await writeFile(insecure, '{}')
  await chmod(insecure, 0o644)
  const cases: Array<[string, string[], Record<string, string>, string, RegExp?]> = [
    ['config not JSON', ['--config', await write('c1.json', '{ nope')], {}, 'CONFIG_INVALID', /not JSON/],
    ['config fields', ['--config', await write('c2.json', { ...base, deviceId: 'bad id!', statusPort: 70000, syncWrite: true })], {}, 'CONFIG_INVALID', /deviceId.*statusPort.*syncWrite/],
    ['config missing', ['--config', join(dir, 'none.json')], {}, 'CONFIG_UNREADABLE'],
    ['unknown variable', ['--config', configPath], { PROVENANCE_AGENT_BROKERURL: 'mqtt://x' }, 'CONFIG_INVALID', /PROVENANCE_AGENT_BROKERURL/],
    ['environment only, incomplete', [], { PROVENANCE_AGENT_DEVICE_ID: 'cli-dev' }, 'CONFIG_INVALID', /stateDir.*profile/],
    ['unknown profile', ['--config', await write('c3.json', { ...base, profile: 'jetson-tx0' })], {}, 'PROFILE_NOT_FOUND'],
    ['bad override', ['--config', await write('c4.json', { ...base, overrideProfile: await write('o1.json', { storage: { budgetMode: 'sometimes' } }) })], {}, 'PROFILE_INVALID', /storage\.budgetMode/],
    ['missing model', ['--config', await write('c5.json', { ...base, models: [{ name: 'tiny', path: 'gone.onnx' }] })], {}, 'MODEL_UNREADABLE', /gone\.onnx/],
    ['unreadable key', ['--config', await write('c6.json', { ...base, overrideProfile: await write('o2.json', { keys: { path: join(dir, 'file-not-dir', 'plain', 'key.json') } }) })], {}, 'KEY_UNREADABLE'],
    ['insecure key', ['--config', await write('c7.json', { ...base, overrideProfile: await write('o3.json', { keys: { path: insecure } }) })], {}, 'KEY_INSECURE', /chmod 600/],
    ['bad admin key', ['--config', configPath], { PROVENANCE_AGENT_POLICY_ADMIN_PUBLIC_KEY: 'abc' }, 'CONFIG_INVALID', /policyAdminPublicKey/]
  ]
  const results = await eachInProcess(cases.map(([, args, env]) => [['start', ...args], env]))
  // Real processes for a file problem and an environment problem: exit 78 and the one message reach the shell.
  const real = await Promise.all([1, 3].map(async i => { const [, args, env] = cases[i] as (typeof cases)[number]; return await cli(['start', ...args], env) }))
  t.same(real, [results[1], results[3]], 'the process says the same')
  results.forEach((r, i) => {
    const [what, , , code, message] = cases[i] as (typeof cases)[number]
    t.equal(r.code, 78, `${what}: exit 78`)
    const lines = plainLines(r.stderr)
    t.equal(lines.length, 1, `${what}: one message (${lines.join(' | ')})`)
    t.match(lines[0], new RegExp(`^${code}: `), `${what}: ${code}`)
    if (message !== undefined) t.match(lines[0], message, `${what}: names the problem`)
  })
  await t.rejects(access(join(stateDir, 'records')), 'no record log, so no boot record')
  await t.rejects(access(join(stateDir, 'daemon.json')), 'nothing was listening')
  const status = await inProcess(['status', '--config', configPath])
  t.equal(status.code, 1)
  t.match(status.stderr, /^DAEMON_NOT_RUNNING: /)
})

t.test('behavior: start → status → run → SIGTERM: the shutdown record is written and the exit code is 0', async t => {
  const { configPath, stateDir } = await setup(t)
  const daemon = await startDaemon(configPath)
  t.teardown(() => { daemon.proc.kill('SIGKILL') })
  const status = await cli(['status', '--json', '--config', configPath])
  t.equal(status.code, 0, status.stderr)
  const s = JSON.parse(status.stdout)
  t.match(s, { deviceId: 'cli-dev', state: 'running', boot: 1, seq: 1, http: { port: daemon.port } })
  t.match(s.models, [{ name: 'tiny', state: 'loaded', providers: ['cpu'] }])
  const human = await inProcess(['status', '--config', configPath, '--port', String(daemon.port)])
  t.match(human.stdout, /device +cli-dev/)
  t.match(human.stdout, /tiny +loaded/)

  const x = Buffer.from(Float32Array.from([1, 0, 0, 1]).buffer).toString('base64')
  // Over TCP (statusPort is set) with the token the daemon keeps in its state folder.
  const token = (await readFile(join(stateDir, 'api-token'), 'utf8')).trim()
  t.equal((await fetch(`http://127.0.0.1:${daemon.port}/status`)).status, 401, 'no token, no TCP API')
  const reply = await fetch(`http://127.0.0.1:${daemon.port}/v1/models/tiny/run`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify({ inputs: { x: { type: 'float32', dims: [1, 4], data: x } }, decision: 'ok' }) })
  t.equal(reply.status, 200)
  const run = await reply.json() as { record: { seq: number, hash: string } }
  t.equal(run.record.seq, 2)

  const live = await inProcess(['verify-log', '--json', '--config', configPath])
  t.equal(live.code, 0, live.stderr)
  t.match(JSON.parse(live.stdout), { ok: true, via: 'daemon', count: 3 }, 'verify-log reads through the daemon while it holds the log')

  const stopped = await daemon.stop('SIGTERM')
  t.equal(stopped.code, 0, 'exit 0 on SIGTERM')
  t.match(stopped.stdout, /"event":"stopped","signal":"SIGTERM"/)
  t.equal(plainLines(stopped.stderr).length, 0, 'stderr is JSON lines only')
  const records = await readLog(stateDir)
  t.same(records.map(r => r.record.body.kind), ['boot', 'model-load', 'inference', 'shutdown'])
  t.match(records.at(-1)?.record.body, { kind: 'shutdown', reason: 'signal SIGTERM' })
  t.equal(toHex(records[2]?.hash ?? new Uint8Array()), run.record.hash)

  const verdict = await cli(['verify-log', '--config', configPath])
  t.equal(verdict.code, 0)
  t.match(verdict.stdout, /^chain ok/)
  const gone = await inProcess(['status', '--config', configPath])
  t.equal(gone.code, 1)
  t.match(gone.stderr, /^DAEMON_NOT_RUNNING: /)

  const out = join(stateDir, '..', 'export.cbor')
  const exported = await inProcess(['export', '--config', configPath, '--from', '1', '--to', '2', '--out', out, '--json'])
  t.equal(exported.code, 0, exported.stderr)
  t.match(JSON.parse(exported.stdout), { count: 2, firstSeq: 1, lastSeq: 2, format: 'cbor' })
  const envelopes = decodeCanonical(new Uint8Array(await readFile(out)), { maxDepth: 1 }) as Uint8Array[]
  t.same(envelopes.map(e => decodeEnvelope(e).record.seq), [1, 2])
  t.same(envelopes[1], records[2]?.envelope, 'byte for byte')
  const lines = await inProcess(['export', '--config', configPath, '--format', 'jsonl', '--out', '-'])
  const rows = lines.stdout.trim().split('\n').map(l => JSON.parse(l) as { seq: number, kind: string, envelope: string })
  t.same(rows.map(r => r.kind), ['boot', 'model-load', 'inference', 'shutdown'])
  t.same(fromHex(rows[3]?.envelope ?? ''), records[3]?.envelope)
})

t.test('behavior: status and capture go through the 0600 socket by default; another user gets DAEMON_ACCESS_DENIED', async t => {
  const { dir, configPath, stateDir } = await setup(t, { statusPort: undefined })
  const daemon = await startDaemon(configPath)
  t.teardown(() => { daemon.proc.kill('SIGKILL') })
  t.equal(daemon.port, 0, 'no TCP listener unless statusPort is set')
  const status = await inProcess(['status', '--json', '--config', configPath])
  t.equal(status.code, 0, status.stderr)
  t.match(JSON.parse(status.stdout), { http: { socket: join(stateDir, 'api.sock'), port: 0 } })
  const out = join(dir, 'incident.cbor')
  const frozen = await cli(['capture', 'freeze', '--config', configPath, '--reason', 'drill', '--out', out, '--json'])
  t.equal(frozen.code, 0, frozen.stderr)
  t.ok((await readFile(out)).byteLength > 0, 'the capture came through the socket')
  const list = await inProcess(['capture', 'list', '--config', configPath, '--json'])
  t.equal(JSON.parse(list.stdout).captures.length, 1)
  if (process.getuid?.() === 0) {
    // The same CLI as uid nobody, with the folders on the way opened: the socket's 0600 stops it.
    for (const d of [dir, stateDir]) await chmod(d, 0o755)
    await chmod(configPath, 0o644)
    const proc = spawn('/usr/bin/env', ['-i', `PATH=${process.env.PATH ?? '/usr/bin:/bin'}`, process.execPath, '--import', 'tsx', MAIN, 'status', '--config', configPath],
      { uid: 65534, gid: 65534, cwd: fileURLToPath(new URL('../../..', import.meta.url)), stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    proc.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
    const code = await new Promise<number | null>(resolve => proc.on('close', resolve))
    t.equal(code, 1, stderr)
    t.match(stderr, /^DAEMON_ACCESS_DENIED: /m, 'another user: access denied')
  }
  const stopped = await daemon.stop('SIGTERM')
  t.equal(stopped.code, 0)
  await t.rejects(access(join(stateDir, 'api.sock')), 'the socket is gone once stopped')
})

t.test('behavior: keys rotate, then verify-log passes; a record signed with the old key afterwards fails it', async t => {
  const { configPath, stateDir } = await setup(t)
  const keyPath = join(stateDir, 'keys', 'device-key.json')
  await (await startDaemon(configPath)).stop()
  const oldSeed = fromHex(JSON.parse(await readFile(keyPath, 'utf8')).seed as string)

  const rotated = await inProcess(['keys', 'rotate', '--json', '--config', configPath])
  t.equal(rotated.code, 0, rotated.stderr)
  const r = JSON.parse(rotated.stdout) as { previousPublicKey: string, publicKey: string, seq: number, validFromMs: number }
  t.equal(r.previousPublicKey, toHex(createSigner(oldSeed).publicKey))
  t.equal(r.seq, 3, 'after boot, model-load, shutdown')
  const shown = JSON.parse((await inProcess(['keys', 'show', '--json', '--config', configPath])).stdout)
  t.same(shown.history.map((h: { publicKey: string }) => h.publicKey), [r.previousPublicKey, r.publicKey])
  t.equal(shown.publicKey, r.publicKey)
  t.notMatch(JSON.stringify(shown), toHex(oldSeed), 'no secret is shown')

  const daemon = await startDaemon(configPath)
  t.teardown(() => { daemon.proc.kill('SIGKILL') })
  const busy = await inProcess(['keys', 'rotate', '--config', configPath])
  t.equal(busy.code, 1)
  t.match(busy.stderr, /^LOG_LOCKED: the daemon holds the record log: stop it first/)
  t.equal((await daemon.stop()).code, 0)

  const ok = await inProcess(['verify-log', '--json', '--config', configPath])
  t.equal(ok.code, 0, ok.stderr)
  t.match(JSON.parse(ok.stdout), { ok: true, count: 7, keys: 2, rotations: 1 })
  const records = await readLog(stateDir)
  t.same(records.map(x => x.record.body.kind), ['boot', 'model-load', 'shutdown', 'key-rotation', 'boot', 'model-load', 'shutdown'])
  t.equal(verifyChain(records, { deviceId: 'cli-dev', keyAt: () => fromHex(r.publicKey) }).failure?.seq, 0, 'the old records need the old key')

  const forged = await RecordLog.open({ dir: join(stateDir, 'records'), deviceId: 'cli-dev', signer: createSigner(oldSeed) })
  const bad = await forged.append(() => ({ kind: 'shutdown', reason: 'signed with the old key' }))
  await forged.close()
  const broken = await cli(['verify-log', '--config', configPath])
  t.equal(broken.code, 1, 'a broken chain exits 1')
  t.match(broken.stdout, /^chain BROKEN/)
  t.equal(plainLines(broken.stderr)[0], `CHAIN_BROKEN: seq ${bad.record.seq}: bad-signature: seq ${bad.record.seq}: signature does not verify under the device key`)
})
