// `provenance-agent init --policy`: the fleet's signed policy pinned at provisioning is verified
// with the configured admin key and fleet and stored where a received one goes, so the first
// start loads approved models at once; forged, foreign, older or unverifiable ones are refused.
import t from 'tap'
import { readFile, stat, writeFile, access } from 'node:fs/promises'
import { join } from 'node:path'
import { runCli, type CliIo } from '../../../agent/cli/index.js'
import { createSigner, signPolicy, toHex, type ModelPolicy } from '../../../protocol/index.js'
import { makeTempDir } from '../../helpers/tmp.js'

const admin = createSigner(new Uint8Array(32).fill(7))
const policy = (o: Partial<ModelPolicy> = {}, signer = admin): Uint8Array =>
  signPolicy({ issuedAtMs: 1, version: 2, mode: 'enforce', modelHashes: [new Uint8Array(32).fill(1)], fleetId: 'fleet-1', ...o }, signer).envelope

async function agent (argv: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const io: CliIo = { env: {}, stdout: { write: (s) => { stdout += String(s) } }, stderr: { write: (s) => { stderr += String(s) } } }
  const code = await runCli(argv, io)
  return { code, stdout, stderr }
}

async function setup (t: { teardown: (fn: () => unknown) => void }, config: Record<string, unknown> = { policyAdminPublicKey: toHex(admin.publicKey), fleetId: 'fleet-1' }) {
  const dir = await makeTempDir(t, 'prov-init-policy-')
  const path = join(dir, 'config.json')
  await writeFile(path, JSON.stringify({ deviceId: 'cam-7', stateDir: join(dir, 'state'), profile: 'generic-x86_64', ...config }))
  const file = async (name: string, bytes: Uint8Array): Promise<string> => { const p = join(dir, name); await writeFile(p, bytes); return p }
  return { dir, config: path, stored: join(dir, 'state', 'policy.cbor'), file }
}

t.test('behavior: init --policy verifies the policy and stores it 0600 where a received one goes', async t => {
  const { config, stored, file } = await setup(t)
  const envelope = policy()
  const r = await agent(['init', '--config', config, '--policy', await file('p.cbor', envelope)])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stderr, /policy v2 \(enforce, 1 models, fleet fleet-1\) pinned/)
  t.same(new Uint8Array(await readFile(stored)), envelope)
  t.equal((await stat(stored)).mode & 0o777, 0o600)
  const again = await agent(['init', '--config', config, '--policy', await file('p.cbor', envelope)])
  t.match(again.stderr, /already in force/, 'a second init with the same policy changes nothing')
})

t.test('error: forged, foreign, older and unverifiable policies are refused and nothing is stored', async t => {
  const { config, stored, file } = await setup(t)
  const cases: Array<[string, Uint8Array, number, string]> = [
    ['signed by another key', policy({}, createSigner(new Uint8Array(32).fill(9))), 78, 'POLICY_SIGNATURE_INVALID'],
    ['for another fleet', policy({ fleetId: 'fleet-2' }), 78, 'POLICY_WRONG_FLEET'],
    ['not a policy', new TextEncoder().encode('{"allow":"everything"}'), 78, 'POLICY_MALFORMED']
  ]
  for (const [what, bytes, code, error] of cases) {
    const r = await agent(['init', '--config', config, '--policy', await file('bad.cbor', bytes)])
    t.equal(r.code, code, `${what}: exit ${code}`)
    t.match(r.stderr, new RegExp(`^${error}: `, 'm'), `${what}: ${error}`)
    t.equal(r.stdout, '', `${what}: no enrollment request printed`)
  }
  await t.rejects(access(stored), 'nothing was stored')
  const missing = await agent(['init', '--config', config, '--policy', '/nonexistent/p.cbor'])
  t.equal(missing.code, 78)
  t.match(missing.stderr, /^CONFIG_UNREADABLE: cannot read the policy file/m)
  t.equal((await agent(['init', '--config', config, '--policy', await file('p.cbor', policy())])).code, 0)
  const older = await agent(['init', '--config', config, '--policy', await file('old.cbor', policy({ version: 1 }))])
  t.equal(older.code, 1)
  t.match(older.stderr, /^POLICY_STALE: /m, 'an older policy does not replace the pinned one')
})

t.test('error: init --policy without policyAdminPublicKey is a configuration error', async t => {
  const { config, stored, file } = await setup(t, {})
  const r = await agent(['init', '--config', config, '--policy', await file('p.cbor', policy())])
  t.equal(r.code, 78)
  t.match(r.stderr, /^CONFIG_INVALID: init --policy needs policyAdminPublicKey/m)
  await t.rejects(access(stored))
})
