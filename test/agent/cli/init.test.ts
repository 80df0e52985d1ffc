// `provenance-agent init`: the device key exists, owner-only, before the first start, at the path
// start uses; the enrollment request names it; a second init reuses it; an unsafe key file stops it.
import t from 'tap'
import { chmod, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { runCli, type CliIo } from '../../../agent/cli/index.js'
import { KeyRing } from '../../../agent/keys/index.js'
import { AGENT_VERSION } from '../../../agent/session/index.js'
import { ENROLLMENT_FORMAT, parseEnrollmentRequest, toHex } from '../../../protocol/index.js'
import { makeTempDir } from '../../helpers/tmp.js'

async function agent (argv: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const io: CliIo = { env: {}, stdout: { write: (s) => { stdout += String(s) } }, stderr: { write: (s) => { stderr += String(s) } } }
  const code = await runCli(argv, io)
  return { code, stdout, stderr }
}

async function setup (t: { teardown: (fn: () => unknown) => void }): Promise<{ dir: string, config: string, keyPath: string }> {
  const dir = await makeTempDir(t, 'prov-init-')
  const config = join(dir, 'config.json')
  await writeFile(config, JSON.stringify({ deviceId: 'cam-7', stateDir: join(dir, 'state'), profile: 'generic-x86_64' }))
  return { dir, config, keyPath: join(dir, 'state', 'keys', 'device-key.json') }
}

t.test('behavior: creates the key file 0600 in a 0700 folder and prints the enrollment request', async t => {
  const { dir, config, keyPath } = await setup(t)
  const out = join(dir, 'enroll.json')
  const r = await agent(['init', '--config', config, '--out', out])
  t.equal(r.code, 0, r.stderr)
  const request = parseEnrollmentRequest(r.stdout)
  const ring = await KeyRing.open(keyPath)
  t.same(request, { format: ENROLLMENT_FORMAT, deviceId: 'cam-7', publicKey: toHex(ring.publicKey), validFromMs: 0, profile: 'generic-x86_64', agentVersion: AGENT_VERSION, createdMs: ring.createdMs })
  t.equal((await stat(keyPath)).mode & 0o777, 0o600, 'key file is the owner\'s only')
  t.equal((await stat(join(dir, 'state', 'keys'))).mode & 0o777, 0o700)
  t.same(parseEnrollmentRequest(await readFile(out, 'utf8')), request, '--out holds the same request')
  t.equal((await stat(out)).mode & 0o777, 0o644, 'the request holds no secret')
  t.notMatch(r.stdout + r.stderr + await readFile(out, 'utf8'), /seed|saltSecret/, 'no secret printed')
  t.match(r.stderr, /created key file: .*device-key\.json/)
})

t.test('behavior: a second init reuses the key; --json prints one line', async t => {
  const { config } = await setup(t)
  const first = await agent(['init', '--config', config])
  const second = await agent(['init', '--config', config, '--json'])
  t.equal(second.code, 0, second.stderr)
  t.equal(second.stdout.trimEnd().split('\n').length, 1)
  t.same(parseEnrollmentRequest(second.stdout), parseEnrollmentRequest(first.stdout), 'same key, same request')
  t.match(second.stderr, /key file exists, reused/)
})

t.test('error: a key file others may read exits 78 with KEY_INSECURE, and is not replaced', async t => {
  const { config, keyPath } = await setup(t)
  await agent(['init', '--config', config])
  const before = await readFile(keyPath, 'utf8')
  await chmod(keyPath, 0o644)
  const r = await agent(['init', '--config', config])
  t.equal(r.code, 78)
  t.match(r.stderr, /^KEY_INSECURE: /)
  t.equal(r.stdout, '')
  t.equal(await readFile(keyPath, 'utf8'), before)
})

t.test('error: no configuration exits 78; an unknown option exits 2', async t => {
  t.equal((await agent(['init'])).code, 78)
  t.equal((await agent(['init', '--bogus'])).code, 2)
})
