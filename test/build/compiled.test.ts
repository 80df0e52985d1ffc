// `npm run build` emits JavaScript that runs without tsx: the compiled bins answer --version and
// --help, run one real command each (agent init, gateway log-key, forensics verify, fleet help),
// and the launchers pick the compiled code when it is there. Built into a temp folder, never dist/,
// so a stale dist/ cannot be what this test runs.
import t from 'tap'
import { spawn, execFile } from 'node:child_process'
import { copyFile, mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { request } from 'node:http'
import { makeClassifierModel } from '../helpers/onnx-models.js'
import { makeTempDir } from '../helpers/tmp.js'

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..')
const run = promisify(execFile)
/** The environment of a user who has set nothing of ours. */
const BASE_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PROVENANCE_') && k !== 'STATE_DIRECTORY'))

interface Run { code: number | null, stdout: string, stderr: string }

async function node (args: string[], cwd: string): Promise<Run> {
  const child = spawn(process.execPath, args, { cwd, env: BASE_ENV, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  const code = await new Promise<number | null>(resolve => child.on('close', resolve))
  return { code, stdout, stderr }
}

// An application folder as a deployment holds it: the compiled tree, the launchers, node_modules.
const app = await makeTempDir(t, 'prov-build-')
const dist = join(app, 'dist')
await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', dist], { cwd: ROOT })
await run(process.execPath, [join(ROOT, 'scripts/copy-build-assets.mjs'), dist], { cwd: ROOT })
await symlink(join(ROOT, 'node_modules'), join(app, 'node_modules'))
for (const bin of ['agent/cli/bin.mjs', 'gateway/bin.mjs', 'forensics/bin.mjs', 'fleet/bin.mjs']) {
  await mkdir(join(app, bin, '..'), { recursive: true })
  await copyFile(join(ROOT, bin), join(app, bin))
}
const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string, bin: Record<string, string> }

t.test('behavior: the build holds no TypeScript to run and the assets read at run time', async t => {
  const files = await readdir(dist, { recursive: true })
  t.notOk(files.some(f => f.endsWith('.ts') && !f.endsWith('.d.ts')), 'no .ts source in dist')
  t.ok(files.includes(join('firmware-profiles', 'raspberry-pi-4.json')), 'firmware profiles copied')
  t.ok(files.includes(join('contracts', 'build', 'ProvenanceRegistry.json')), 'the registry artifact')
  t.ok(files.includes(join('agent', 'session', 'model-worker.js')), 'the model worker')
  t.ok(files.includes(join('forensics', 'verify', 'signature-worker.js')), 'the signature worker')
  t.equal(JSON.parse(await readFile(join(dist, 'package.json'), 'utf8')).type, 'module', 'dist/*.js are ES modules')
})

t.test('behavior: every launcher runs the compiled code (there is no .ts beside it to fall back to) with --version and --help', async t => {
  for (const [name, bin] of Object.entries(pkg.bin)) {
    const help = await node([join(app, bin), '--help'], app)
    t.equal(help.code, 0, `${name} --help: ${help.stderr}`)
    t.match(help.stdout, /usage/i, `${name} --help on stdout`)
    t.notMatch(help.stderr, /tsx|\.ts\b/, `${name}: no TypeScript at run time`)
  }
  for (const bin of Object.values(pkg.bin)) {
    const version = await node([join(app, bin as string), '--version'], app)
    t.equal(version.code, 0, version.stderr)
    t.equal(version.stdout, `${pkg.version}\n`)
  }
})

t.test('behavior: compiled agent init creates the key and prints the enrollment request (profiles read from dist)', async t => {
  const dir = await makeTempDir(t, 'prov-build-agent-')
  const config = join(dir, 'config.json')
  await writeFile(config, JSON.stringify({ deviceId: 'cam-7', stateDir: join(dir, 'state'), profile: 'raspberry-pi-4' }))
  const r = await node([join(dist, 'agent/cli/main.js'), 'init', '--config', config, '--json'], dir)
  t.equal(r.code, 0, r.stderr)
  t.match(JSON.parse(r.stdout), { deviceId: 'cam-7', profile: 'raspberry-pi-4', agentVersion: pkg.version })
})

t.test('behavior: compiled gateway log-key creates the log key and prints it', async t => {
  const dir = await makeTempDir(t, 'prov-build-gw-')
  const config = join(dir, 'gateway.json')
  await writeFile(config, JSON.stringify({ name: 'gw-1', stateDir: join(dir, 'state'), rpcUrl: 'http://127.0.0.1:1', registry: '0x' + '11'.repeat(20) }))
  const r = await node([join(dist, 'gateway/main.js'), 'log-key', '--config', config], dir)
  t.equal(r.code, 0, r.stderr)
  t.match(JSON.parse(r.stdout), { publicKey: /^[0-9a-f]{64}$/ })
})

t.test('behavior: compiled forensics verify reads a bundle and fails it with a code', async t => {
  const dir = await makeTempDir(t, 'prov-build-fx-')
  await writeFile(join(dir, 'bundle.json'), '{"not":"a bundle"}')
  const r = await node([join(dist, 'forensics/main.js'), 'verify', '--offline', join(dir, 'bundle.json')], dir)
  t.equal(r.code, 1, r.stderr)
  t.match(r.stderr, /^[A-Z_]+: /m)
})

t.test('behavior: the compiled agent starts, runs a model in its compiled worker thread over its socket, and stops on SIGTERM', async t => {
  const dir = await makeTempDir(t, 'prov-build-start-')
  await writeFile(join(dir, 'tiny.onnx'), makeClassifierModel({ seed: 1 }))
  const config = join(dir, 'config.json')
  await writeFile(config, JSON.stringify({ deviceId: 'cam-9', stateDir: join(dir, 'state'), profile: 'generic-x86_64', models: [{ name: 'tiny', path: join(dir, 'tiny.onnx') }] }))
  const proc = spawn(process.execPath, [join(dist, 'agent/cli/main.js'), 'start', '--json', '--config', config], { cwd: dir, env: BASE_ENV, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (proc.exitCode === null) proc.kill('SIGKILL') })
  let stdout = ''
  let stderr = ''
  proc.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  const closed = new Promise<number | null>(resolve => proc.on('close', resolve))
  const socket = await new Promise<string>((resolve, reject) => {
    proc.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s
      const ready = stdout.split('\n').map(l => { try { return JSON.parse(l) as { event?: string, socket?: string } } catch { return {} } }).find(e => e.event === 'ready')
      if (ready?.socket !== undefined) resolve(ready.socket)
    })
    void closed.then(code => { reject(new Error(`agent exited ${String(code)}: ${stderr}`)) })
  })
  const body = JSON.stringify({ inputs: { x: { type: 'float32', dims: [1, 4], data: Buffer.from(Float32Array.from([0.1, 0.2, 0.3, 0.4]).buffer).toString('base64') } } })
  const reply = await new Promise<{ status: number, text: string }>((resolve, reject) => {
    const req = request({ socketPath: socket, method: 'POST', path: '/v1/models/tiny/run', headers: { 'content-type': 'application/json' } }, res => {
      let text = ''
      res.setEncoding('utf8').on('data', (c: string) => { text += c }).on('end', () => { resolve({ status: res.statusCode ?? 0, text }) })
    })
    req.on('error', reject)
    req.end(body)
  })
  t.equal(reply.status, 200, reply.text)
  t.same(JSON.parse(reply.text).outputs.probs.dims, [1, 3], 'the model ran in the compiled worker')
  proc.kill('SIGTERM')
  t.equal(await closed, 0, stderr)
  t.notMatch(stderr, /tsx|\.ts:/, 'no TypeScript at run time')
})
