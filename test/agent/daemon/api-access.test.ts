// Attacks on the daemon's local API: who may reach it (another local user on the socket, a
// process without the token on TCP) and what malformed requests get (a 4xx, never a 500, never a
// crash). As root, the "other user" runs as nobody (uid 65534) in a child process, so that file
// permissions are really checked; otherwise the mode bits are asserted.
import t from 'tap'
import { spawn } from 'node:child_process'
import { chmod, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import { Daemon, type DaemonOptions } from '../../../agent/daemon/index.js'
import { resolveProfile } from '../../../agent/profile/index.js'
import { makeClassifierModel } from '../../helpers/onnx-models.js'
import { makeTempDir } from '../../helpers/tmp.js'
import { rawRequest } from '../../helpers/raw-http.js'

ort.env.logLevel = 'fatal'
const NOBODY = 65534
const isRoot = process.getuid?.() === 0

async function startDaemon (t: { teardown: (fn: () => unknown) => void }, o: Partial<DaemonOptions> = {}): Promise<{ daemon: Daemon, dir: string, stateDir: string }> {
  const dir = await makeTempDir(t, 'prov-api-')
  await writeFile(join(dir, 'a.onnx'), makeClassifierModel({ seed: 1 }))
  const stateDir = join(dir, 'state')
  const daemon = await Daemon.start({
    deviceId: 'dev-api',
    stateDir,
    profile: await resolveProfile('generic-x86_64'),
    models: [{ name: 'tiny', path: join(dir, 'a.onnx') }],
    ...o
  })
  t.teardown(async () => await daemon.stop('test teardown'))
  return { daemon, dir, stateDir }
}

/** Runs `script` (plain JS) as uid/gid `id`, without the test runner's NODE_OPTIONS; resolves with its output. */
async function runAs (id: number, script: string): Promise<string> {
  // Through `env -i`: the test runner hooks node children (NODE_OPTIONS) and its hook cannot
  // write its files as another user.
  const child = spawn('/usr/bin/env', ['-i', `PATH=${process.env.PATH ?? '/usr/bin:/bin'}`, process.execPath, '--input-type=module', '-e', script],
    { uid: id, gid: id, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { out += d.toString() })
  await new Promise(resolve => child.on('close', resolve))
  return out.trim()
}

const tryConnect = (socket: string): string => `
import { request } from 'node:http'
const req = request({ socketPath: ${JSON.stringify(socket)}, path: '/v1/captures', headers: { host: 'localhost' } }, res => { console.log('HTTP ' + res.statusCode); res.resume() })
req.on('error', e => console.log(e.code))
req.end()`

const tryRead = (file: string): string => `
import { readFile } from 'node:fs/promises'
readFile(${JSON.stringify(file)}, 'utf8').then(() => console.log('READ'), e => console.log(e.code))`

t.test('attack: another local user cannot open the API socket (0600), nor read the TCP token file', async t => {
  const { daemon, dir, stateDir } = await startDaemon(t, { statusPort: 0 })
  const socket = daemon.socketPath
  t.equal(socket, join(stateDir, 'api.sock'), 'the socket lives in the state folder')
  t.ok((await stat(socket)).isSocket())
  t.equal((await stat(socket)).mode & 0o777, 0o600, 'socket mode 0600')
  t.equal((await stat(join(stateDir, 'api-token'))).mode & 0o777, 0o600, 'token file mode 0600')
  t.equal((await stat(stateDir)).mode & 0o777, 0o700, 'state folder 0700')
  if (!isRoot) {
    t.comment('not root: cannot run a process as another user; the mode bits above are the check')
    return
  }
  // Open the folders on the way so that only the socket's and the token's own modes stand in the way.
  for (const d of [dir, stateDir]) await chmod(d, 0o755)
  t.equal(await runAs(NOBODY, tryConnect(socket)), 'EACCES', 'nobody: EACCES on the socket')
  t.equal(await runAs(NOBODY, tryRead(join(stateDir, 'api-token'))), 'EACCES', 'nobody: EACCES on the token file')
  // The control: the same child reaches the API once the mode lets it, so the refusal above was the mode's.
  await chmod(socket, 0o666)
  t.equal(await runAs(NOBODY, tryConnect(socket)), 'HTTP 200', 'with mode 0666 the same child gets in')
  await chmod(socket, 0o600)
  // And the state folder alone (0700, its default) keeps it out too.
  await chmod(stateDir, 0o700)
  t.equal(await runAs(NOBODY, tryConnect(socket)), 'EACCES', 'state folder 0700: EACCES')
})

t.test('behavior: apiSocketMode 0660 opens the socket to the service group, and no further', async t => {
  const { daemon, dir, stateDir } = await startDaemon(t, { apiSocketMode: 0o660 })
  t.equal((await stat(daemon.socketPath)).mode & 0o777, 0o660)
  if (!isRoot) return
  for (const d of [dir, stateDir]) await chmod(d, 0o755)
  // Owner root:root, so uid/gid nobody is "other": still refused.
  t.equal(await runAs(NOBODY, tryConnect(daemon.socketPath)), 'EACCES', 'a user outside the group: EACCES')
  const { chown } = await import('node:fs/promises')
  await chown(daemon.socketPath, 0, NOBODY)
  t.equal(await runAs(NOBODY, tryConnect(daemon.socketPath)), 'HTTP 200', 'a member of the socket\'s group gets in')
})

t.test('behavior: a stale socket left by a killed daemon is replaced at the next start', async t => {
  const dir = await makeTempDir(t, 'prov-stale-')
  const path = join(dir, 'stale.sock')
  // A process that listens on the path and dies by SIGKILL leaves the socket file behind.
  const holder = spawn('/usr/bin/env', ['-i', process.execPath, '-e', `require('node:net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'ignore'] })
  await new Promise<void>(resolve => holder.stdout.once('data', () => resolve()))
  const gone = new Promise(resolve => holder.once('exit', resolve))
  holder.kill('SIGKILL')
  await gone
  t.ok((await stat(path)).isSocket(), 'the stale socket is there')
  const { daemon } = await startDaemon(t, { apiSocket: path })
  t.equal(daemon.socketPath, path)
  t.equal((await rawRequest({ path }, 'GET /status HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n')).status, 200, 'the daemon serves on it')
})

t.test('attack: the TCP API refuses requests without the token (401), with a wrong one (403) or a foreign Host', async t => {
  const { daemon, stateDir } = await startDaemon(t, { statusPort: 0 })
  const token = (await readFile(join(stateDir, 'api-token'), 'utf8')).trim()
  t.ok(token.length >= 32)
  const url = `http://127.0.0.1:${daemon.port}`
  const run = { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ inputs: {} }) }
  for (const [path, init] of [['/status', {}], ['/v1/captures', {}], ['/v1/models/tiny/run', run], ['/nope', {}]] as const) {
    const none = await fetch(url + path, init)
    t.equal(none.status, 401, `${path}: 401 without a token`)
    t.match(none.headers.get('www-authenticate'), /^Bearer /)
    t.match(await none.json(), { error: { code: 'UNAUTHENTICATED' } })
    const wrong = await fetch(url + path, { ...init, headers: { ...('headers' in init ? init.headers : {}), authorization: `Bearer ${token.slice(0, -1)}x` } })
    t.equal(wrong.status, 403, `${path}: 403 with a wrong token`)
    t.match(await wrong.json(), { error: { code: 'TOKEN_INVALID' } })
  }
  t.equal(daemon.log.head.seq, 1, 'nothing ran: boot and model-load only')
  const ok = await fetch(`${url}/status`, { headers: { authorization: `Bearer ${token}` } })
  t.equal(ok.status, 200, 'the token opens it')
  const rebinding = await rawRequest({ port: daemon.port }, `GET /status HTTP/1.1\r\nhost: evil.example:${daemon.port}\r\nauthorization: Bearer ${token}\r\nconnection: close\r\n\r\n`)
  t.equal(rebinding.status, 400, 'a foreign Host (DNS rebinding) is refused even with the token')
  const page = await fetch(`${url}/status`, { headers: { authorization: `Bearer ${token}`, origin: 'http://evil.example' } })
  t.equal(page.status, 400, 'a web page (Origin) is refused even with the token')
})

t.test('attack: malformed requests on the socket get a JSON 4xx, never a 500, and the daemon keeps running', async t => {
  const { daemon } = await startDaemon(t)
  const to = { path: daemon.socketPath }
  const H = 'host: localhost\r\nconnection: close\r\n'
  const cases: Array<[string, string, number]> = [
    ['//', `GET // HTTP/1.1\r\n${H}\r\n`, 404],
    ['/\\', `GET /\\ HTTP/1.1\r\n${H}\r\n`, 404],
    ['//host/status', `GET //evil/status HTTP/1.1\r\n${H}\r\n`, 404],
    ['bad escape in a model name', `POST /v1/models/%zz/run HTTP/1.1\r\n${H}content-type: application/json\r\ncontent-length: 2\r\n\r\n{}`, 400],
    ['bad escape in a reload', `POST /v1/models/%E0%A4%A/reload HTTP/1.1\r\n${H}content-length: 0\r\n\r\n`, 400],
    ['bad escape in a capture name', `GET /v1/captures/%zz HTTP/1.1\r\n${H}\r\n`, 400],
    ['capture name climbing out', `GET /v1/captures/..%2f..%2fkeys%2fdevice-key.json HTTP/1.1\r\n${H}\r\n`, 400],
    ['model name climbing out', `POST /v1/models/..%2f..%2fetc/run HTTP/1.1\r\n${H}content-type: application/json\r\ncontent-length: 13\r\n\r\n{"inputs":{}}`, 404],
    ['bad escape in a query', `GET /v1/records?from=%zz HTTP/1.1\r\n${H}\r\n`, 400],
    ['absolute form', `GET http://x/status HTTP/1.1\r\n${H}\r\n`, 400],
    ['long path', `GET /${'a'.repeat(5000)} HTTP/1.1\r\n${H}\r\n`, 414],
    ['path longer than the head limit', `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nhost: x\r\n\r\n`, 431],
    ['huge header', `GET /status HTTP/1.1\r\nhost: x\r\nx-junk: ${'j'.repeat(20_000)}\r\n\r\n`, 431],
    ['garbage', 'BLAH\r\n\r\n', 400],
    ['NUL in the target', `GET /v1/\0 HTTP/1.1\r\n${H}\r\n`, 400],
    ['unknown method', `BREW /status HTTP/1.1\r\n${H}\r\n`, 400]
  ]
  for (const [name, request, status] of cases) {
    const answer = await rawRequest(to, request)
    t.equal(answer.status, status, `${name}: ${status}`)
    if (answer.status !== 0) t.match(JSON.parse(answer.body), { error: { code: String } }, `${name}: a JSON error body`)
  }
  // An endless body on a run: refused once past maxRequestBytes, and the connection closed.
  const endless = await rawRequest(to, `POST /v1/models/tiny/run HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n`,
    { feed: Buffer.from('10000\r\n' + ' '.repeat(0x10000) + '\r\n') })
  t.equal(endless.status, 413, 'endless body: 413 past maxRequestBytes')
  t.ok(endless.closed, 'and the connection is closed')
  // A body on a GET is not read and does not keep the connection.
  // One unterminated chunk sent with the head, no feed: a server that waited for the body would never answer,
  // and no write of ours races the answer and the close.
  const getBody = await rawRequest(to, 'GET /status HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\n\r\n400\r\n' + 'z'.repeat(1024) + '\r\n')
  t.equal(getBody.status, 200)
  t.ok(getBody.closed, 'a GET whose body was not read closes after the answer')
  const status = await rawRequest(to, `GET /status HTTP/1.1\r\n${H}\r\n`)
  t.equal(status.status, 200, 'still serving')
  t.equal(daemon.log.head.seq, 1, 'no record from any of it')
})
