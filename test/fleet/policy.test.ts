// The model policy as the fleet CLI makes it: a publisher key that is never overwritten, a signed
// envelope the agent's own verifier accepts, and refusals for forged, unsafe or unreadable inputs.
import t from 'tap'
import { access, chmod, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ModelGuard } from '../../agent/policy/index.js'
import { fromHex, sha256, verifyPolicy } from '../../protocol/index.js'
import { fleet } from '../helpers/fleet.js'
import { makeClassifierModel } from '../helpers/onnx-models.js'
import { makeTempDir } from '../helpers/tmp.js'

t.test('behavior: keygen, sign and show make a policy the agent\'s model guard accepts', async t => {
  const dir = await makeTempDir(t)
  const seed = join(dir, 'publisher.seed')
  const keygen = await fleet(['policy', 'keygen', '--out', seed, '--json'])
  t.equal(keygen.code, 0, keygen.stderr)
  const publicKey = keygen.json().publicKey as string
  t.equal((await stat(seed)).mode & 0o777, 0o600)
  t.notMatch(keygen.stdout, (await readFile(seed, 'utf8')).trim(), 'the seed is not printed')
  const model = join(dir, 'm.onnx')
  const bytes = makeClassifierModel({ seed: 5 })
  await writeFile(model, bytes)
  const out = join(dir, 'policy.cbor')
  const signed = await fleet(['policy', 'sign', '--policy-version', '3', '--mode', 'audit', '--fleet-id', 'fleet-1', '--model-file', model, '--model-hash', 'ff'.repeat(32), '--out', out, '--json'],
    { PROVENANCE_POLICY_KEY: (await readFile(seed, 'utf8')).trim() })
  t.equal(signed.code, 0, signed.stderr)
  t.match(signed.json(), { policyVersion: 3, mode: 'audit', fleetId: 'fleet-1', publisherPublicKey: publicKey, modelHashes: [Buffer.from(sha256(bytes)).toString('hex'), 'ff'.repeat(32)] })
  const envelope = new Uint8Array(await readFile(out))
  t.equal(verifyPolicy(envelope, fromHex(publicKey)).policy.version, 3)
  const guard = await ModelGuard.open({ adminPublicKey: fromHex(publicKey), fleetId: 'fleet-1', storePath: join(dir, 'accepted.cbor') })
  t.equal(await guard.accept(envelope), 'accepted', 'the agent accepts it')
  const shown = await fleet(['policy', 'show', '--policy', out, '--publisher-public-key', publicKey, '--json'])
  t.match(shown.json(), { signatureChecked: true, policyVersion: 3 })
})

t.test('error: keygen never overwrites a key; a dry run writes nothing', async t => {
  const dir = await makeTempDir(t)
  const seed = join(dir, 'publisher.seed')
  t.equal((await fleet(['policy', 'keygen', '--out', seed, '--dry-run'])).code, 0)
  await t.rejects(access(seed), 'dry run wrote no key')
  t.equal((await fleet(['policy', 'keygen', '--out', seed])).code, 0)
  const before = await readFile(seed, 'utf8')
  const again = await fleet(['policy', 'keygen', '--out', seed])
  t.equal(again.code, 1)
  t.match(again.last, /^FLEET_FILE_UNWRITABLE: cannot create .*EEXIST/)
  t.equal(await readFile(seed, 'utf8'), before, 'the trusted key is untouched')
  const out = join(dir, 'p.cbor')
  t.equal((await fleet(['policy', 'sign', '--publisher-key-file', seed, '--policy-version', '1', '--fleet-id', 'f', '--out', out, '--dry-run'])).code, 0)
  await t.rejects(access(out), 'dry run wrote no policy')
})

t.test('error: a forged or foreign policy fails show and publish before anything is sent', async t => {
  const dir = await makeTempDir(t)
  const seed = join(dir, 'a.seed')
  const other = await fleet(['policy', 'keygen', '--out', join(dir, 'b.seed'), '--json'])
  const mine = await fleet(['policy', 'keygen', '--out', seed, '--json'])
  const out = join(dir, 'p.cbor')
  await fleet(['policy', 'sign', '--publisher-key-file', seed, '--policy-version', '1', '--fleet-id', 'f', '--out', out])
  const wrongKey = await fleet(['policy', 'show', '--policy', out, '--publisher-public-key', other.json().publicKey])
  t.equal(wrongKey.code, 1)
  t.match(wrongKey.last, /^POLICY_SIGNATURE_INVALID: /)
  const envelope = new Uint8Array(await readFile(out))
  envelope[envelope.length - 1] = (envelope[envelope.length - 1] ?? 0) ^ 1
  await writeFile(out, envelope)
  // No broker listens on port 1: reaching the signature check first is what the exit code shows.
  const tampered = await fleet(['policy', 'publish', '--policy', out, '--device', 'cam-1', '--broker-url', 'mqtt://127.0.0.1:1', '--publisher-public-key', mine.json().publicKey])
  t.equal(tampered.code, 1)
  t.match(tampered.last, /^POLICY_SIGNATURE_INVALID: /)
  await writeFile(join(dir, 'junk.cbor'), 'not cbor')
  t.match((await fleet(['policy', 'show', '--policy', join(dir, 'junk.cbor')])).last, /^POLICY_MALFORMED: /)
  for (const device of ['+', '#', 'cam/1', 'a b']) {
    const r = await fleet(['policy', 'publish', '--policy', out, '--device', device, '--broker-url', 'mqtt://127.0.0.1:1'])
    t.equal(r.code, 2, `--device ${device}`)
  }
})

t.test('error: an unsafe or malformed publisher key exits 78; a file that is not a model is refused', async t => {
  const dir = await makeTempDir(t)
  const seed = join(dir, 'p.seed')
  await writeFile(seed, 'ab'.repeat(32))
  await chmod(seed, 0o644)
  const args = ['policy', 'sign', '--policy-version', '1', '--fleet-id', 'f', '--out', join(dir, 'o.cbor')]
  t.match(await fleet([...args, '--publisher-key-file', seed]), { code: 78, last: /^SECRET_INSECURE: / })
  t.match(await fleet(args), { code: 78, last: /^SECRET_MISSING: .*PROVENANCE_POLICY_KEY/ })
  t.match(await fleet(args, { PROVENANCE_POLICY_KEY: 'xyz' }), { code: 78, last: /^SECRET_INVALID: / })
  const notModel = join(dir, 'x.onnx')
  await writeFile(notModel, 'hello')
  t.match(await fleet(['model', 'hash', '--file', notModel]), { code: 1, last: /^MODEL_NOT_ONNX: / })
  t.match(await fleet(['model', 'hash', '--file', join(dir, 'missing.onnx')]), { code: 1, last: /^FLEET_FILE_UNREADABLE: .*ENOENT/ })
  t.match(await fleet([...args, '--policy-version', '0']), { code: 2 })
  t.match(await fleet([...args, '--mode', 'lenient'], { PROVENANCE_POLICY_KEY: 'ab'.repeat(32) }), { code: 2, stderr: /^usage: --mode must be enforce or audit/ })
})
