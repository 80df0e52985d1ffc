import t from 'tap'
import { writeFile, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ModelGuard, ModelPolicyError, type ModelGuardOptions } from '../../../agent/policy/index.js'
import { ProvenanceAgent, type Logger } from '../../../agent/session/index.js'
import { createSigner, sha256, signPolicy, type ModelLoadBody, type ModelPolicy } from '../../../protocol/index.js'
import { startDevChain } from '../../../contracts/index.js'
import { makeClassifierModel, makeClassifierVariant } from '../../helpers/onnx-models.js'
import { makeTempDir } from '../../helpers/tmp.js'

const admin = createSigner(new Uint8Array(32).fill(7))
const forger = createSigner(new Uint8Array(32).fill(9))
const modelA = makeClassifierModel({ seed: 1 })
const modelB = makeClassifierVariant({ seed: 1 }, { tensor: 'W', index: 0 })
const hashA = sha256(modelA)
const hashB = sha256(modelB)

function policy (o: Partial<ModelPolicy> = {}): Uint8Array {
  return signPolicy({ issuedAtMs: 1_700_000_000_000, version: 1, mode: 'enforce', modelHashes: [hashA], fleetId: 'fleet-a', ...o }, admin).envelope
}

function captureLogger (): Logger & { lines: Array<{ msg?: string } & Record<string, unknown>> } {
  const lines: Array<{ msg?: string } & Record<string, unknown>> = []
  const put = (obj: object, msg?: string): void => { lines.push({ ...obj, ...(msg !== undefined ? { msg } : {}) }) }
  return { lines, info: put, warn: put, error: put }
}

async function setup (t: { teardown: (fn: () => unknown) => void }, options: Partial<ModelGuardOptions> = {}) {
  const dir = await makeTempDir(t, 'prov-policy-')
  const pathA = join(dir, 'a.onnx')
  const pathB = join(dir, 'b.onnx')
  await writeFile(pathA, modelA)
  await writeFile(pathB, modelB)
  const logger = captureLogger()
  const guard = await ModelGuard.open({ storePath: join(dir, 'policy.cbor'), adminPublicKey: admin.publicKey, fleetId: 'fleet-a', logger, ...options })
  const agent = await ProvenanceAgent.start({ stateDir: join(dir, 's'), deviceId: 'dev-p', judgeModel: (m) => guard.judge(m) })
  t.teardown(async () => await agent.stop())
  /** What the daemon does: the pre-check, then the load judged on its own bytes. */
  const load = async (path: string, name: string) => { await guard.check(path, name); return await agent.loadModel(path, { name }) }
  return { dir, pathA, pathB, guard, agent, logger, load }
}

t.test('behavior: enforce refuses an unlisted model before it loads: clear error, no session, no model-load record', async t => {
  const { guard, agent, pathA, pathB, load } = await setup(t)
  t.equal(await guard.accept(policy()), 'accepted')
  const refused = await load(pathB, 'b').catch(e => e)
  t.type(refused, ModelPolicyError)
  t.equal(refused.code, 'MODEL_NOT_APPROVED')
  t.match(refused.message, /not on the allowlist of policy v1/)
  // The load path judges the loaded bytes too: skipping the pre-check changes nothing.
  await t.rejects(agent.loadModel(pathB, { name: 'b' }), { code: 'MODEL_NOT_APPROVED' })
  const ok = await load(pathA, 'a')
  t.equal((ok.loadRecord.record.body as ModelLoadBody).policy, 'approved')
  const kinds = (await agent.log.range(0, 100)).map(r => r.record.body.kind)
  t.same(kinds, ['boot', 'model-load'], 'no record for the refused model')
  t.equal(guard.allows(ok.loaded.fileHashHex), true)
})

t.test('behavior: audit loads an unlisted model and its model-load record says unapproved', async t => {
  const { guard, pathA, pathB, load } = await setup(t)
  await guard.accept(policy({ mode: 'audit' }))
  const b = await load(pathB, 'b')
  t.equal((b.loadRecord.record.body as ModelLoadBody).policy, 'unapproved')
  t.equal((await load(pathA, 'a')).loadRecord.record.body.kind, 'model-load')
  t.equal(guard.allows(b.loaded.fileHashHex), true, 'audit never blocks a run')
})

t.test('behavior: without a policy every model is unchecked', async t => {
  const { pathB, load, guard } = await setup(t)
  t.equal(((await load(pathB, 'b')).loadRecord.record.body as ModelLoadBody).policy, 'unchecked')
  t.same(guard.status(), { configured: true, required: false, awaiting: false })
})

t.test('error: forged, damaged, foreign and older policies are refused; the one in force stays', async t => {
  const { guard, dir } = await setup(t)
  await guard.accept(policy({ version: 5 }))
  await t.rejects(guard.accept(signPolicy({ issuedAtMs: 1, version: 9, mode: 'audit', modelHashes: [hashB], fleetId: 'fleet-a' }, forger).envelope), { code: 'POLICY_SIGNATURE_INVALID' }, 'wrong key')
  const flipped = policy({ version: 6 })
  flipped[flipped.byteLength - 1] = (flipped[flipped.byteLength - 1] as number) ^ 0x80
  await t.rejects(guard.accept(flipped), { code: 'POLICY_SIGNATURE_INVALID' }, 'bit flip in the signature')
  const flippedBody = policy({ version: 6 })
  flippedBody[20] = (flippedBody[20] as number) ^ 0x01
  await t.rejects(guard.accept(flippedBody), { name: 'PolicyError' }, 'bit flip in the policy bytes')
  await t.rejects(guard.accept(policy({ version: 4 })), { code: 'POLICY_STALE' }, 'older version')
  await t.rejects(guard.accept(policy({ version: 5, mode: 'audit' })), { code: 'POLICY_STALE' }, 'same version, other content')
  await t.rejects(guard.accept(policy({ version: 7, fleetId: 'fleet-b' })), { code: 'POLICY_WRONG_FLEET' })
  t.equal(await guard.accept(policy({ version: 5 })), 'unchanged', 'the retained policy again')
  t.same(guard.status(), { configured: true, required: false, awaiting: false, version: 5, mode: 'enforce', issuedAtMs: 1_700_000_000_000, fleetId: 'fleet-a', modelCount: 1 })
  t.equal(await guard.accept(policy({ version: 6, mode: 'audit' })), 'accepted', 'a newer one replaces it')

  // Stored across restarts, verified again on the way in.
  const reopened = await ModelGuard.open({ storePath: join(dir, 'policy.cbor'), adminPublicKey: admin.publicKey })
  t.equal(reopened.status().version, 6)
  await t.rejects(ModelGuard.open({ storePath: join(dir, 'policy.cbor'), adminPublicKey: forger.publicKey }), { code: 'POLICY_SIGNATURE_INVALID' })
  await t.rejects(ModelGuard.open({ storePath: join(dir, 'policy.cbor') }), { code: 'POLICY_NOT_CONFIGURED' })
  await t.rejects(ModelGuard.open({ storePath: join(dir, 'policy.cbor'), adminPublicKey: admin.publicKey, fleetId: 'fleet-b' }), { code: 'POLICY_WRONG_FLEET' })
  const stored = await readFile(join(dir, 'policy.cbor'))
  stored[stored.byteLength - 2] = (stored[stored.byteLength - 2] as number) ^ 0x04
  await writeFile(join(dir, 'policy.cbor'), stored)
  await t.rejects(ModelGuard.open({ storePath: join(dir, 'policy.cbor'), adminPublicKey: admin.publicKey }), { code: 'POLICY_SIGNATURE_INVALID' }, 'a tampered stored policy')
  const unconfigured = await ModelGuard.open({ storePath: join(dir, 'none.cbor') })
  await t.rejects(unconfigured.accept(policy()), { code: 'POLICY_NOT_CONFIGURED' })
})

t.test('behavior: a model file swapped on disk is noticed at the next load, and enforce still judges it', async t => {
  const { guard, pathA, load, logger } = await setup(t)
  await guard.accept(policy({ modelHashes: [hashA, hashB], mode: 'enforce' }))
  await load(pathA, 'm')
  await writeFile(pathA, modelB)
  const swapped = await load(pathA, 'm')
  t.equal((swapped.loadRecord.record.body as ModelLoadBody).policy, 'approved')
  const warning = logger.lines.find(l => l.msg === 'model file changed on disk since it was last loaded')
  t.ok(warning, 'warned')
  t.equal(warning?.previousHash, Buffer.from(hashA).toString('hex'))
  t.equal(warning?.hash, Buffer.from(hashB).toString('hex'))
  await guard.accept(policy({ version: 2, modelHashes: [hashB] }))
  t.equal(guard.allows(Buffer.from(hashA).toString('hex')), false, 'a newer enforce policy blocks runs of a dropped model')
  await writeFile(pathA, modelA)
  await t.rejects(load(pathA, 'm'), { code: 'MODEL_NOT_APPROVED' }, 'swapped back to a model the policy no longer lists')
})

t.test('behavior: the on-chain registry approves or revokes beyond the allowlist; offline, the allowlist decides', async t => {
  const chain = await startDevChain()
  t.teardown(async () => await chain.stop())
  const publisher = chain.registryAs('modelPublisher')
  await publisher.registerModel({ modelHash: hashA, name: 'a', version: '1' })
  await publisher.approveModel(hashA)
  await publisher.registerModel({ modelHash: hashB, name: 'b', version: '1' })
  await publisher.revokeModel(hashB)
  const registry = chain.registryAs('outsider')
  const { guard, pathA, pathB, load } = await setup(t, { registry })
  await guard.accept(policy({ modelHashes: [hashB] }))
  t.equal(((await load(pathA, 'a')).loadRecord.record.body as ModelLoadBody).policy, 'approved', 'approved on chain, though not listed')
  const revoked = await load(pathB, 'b').catch(e => e)
  t.equal(revoked.code, 'MODEL_REVOKED', 'revoked on chain, though listed')

  const logger = captureLogger()
  const { createRpcProvider, RegistryClient } = await import('../../../contracts/index.js')
  const dead = createRpcProvider('http://127.0.0.1:9', { chainId: 31337 })
  t.teardown(() => dead.destroy())
  const offline = await setup(t, { registry: new RegistryClient(chain.deployment.registry.address, dead), registryTimeoutMs: 500, logger })
  await offline.guard.accept(policy({ modelHashes: [hashB] }))
  t.equal(((await offline.load(offline.pathB, 'b')).loadRecord.record.body as ModelLoadBody).policy, 'approved', 'the allowlist decides')
  await t.rejects(offline.load(offline.pathA, 'a'), { code: 'MODEL_NOT_APPROVED' })
  t.ok(logger.lines.some(l => l.msg === 'model registry not reachable; the allowlist decides'))
})

t.test('behavior: with requirePolicy nothing is checked, loaded or recorded before a policy is in force, and nothing says unchecked', async t => {
  const { guard, agent, pathA, pathB, load } = await setup(t, { requirePolicy: true })
  t.match(guard.status(), { required: true, awaiting: true })
  const early = await load(pathA, 'a').catch(e => e)
  t.type(early, ModelPolicyError)
  t.equal(early.code, 'POLICY_AWAITED')
  t.match(early.message, /waits for a signed model policy/)
  // Skipping the pre-check (a load path that forgot it) is refused on the loaded bytes too.
  await t.rejects(agent.loadModel(pathA, { name: 'a' }), { code: 'POLICY_AWAITED' })
  t.equal(guard.allows('00'.repeat(32)), false, 'no run is allowed before the policy')
  t.same((await agent.log.range(0, 100)).map(r => r.record.body.kind), ['boot'], 'no model-load record')
  await guard.accept(policy())
  t.match(guard.status(), { awaiting: false, version: 1 })
  t.equal(((await load(pathA, 'a')).loadRecord.record.body as ModelLoadBody).policy, 'approved')
  await t.rejects(load(pathB, 'b'), { code: 'MODEL_NOT_APPROVED' })
})

t.test('error: requirePolicy without an admin key is a programming error', async t => {
  await t.rejects(ModelGuard.open({ storePath: '/nonexistent/policy.cbor', requirePolicy: true }), TypeError)
})
