import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  ProfileError, assertProfile, listProfileFields, listProfiles, mergeProfile, profileThreadOptions, resolveProfile, INTRA_OP_ALL_BUT_ONE,
  PROFILES_DIR, type FieldSpec
} from '../../../agent/profile/index.js'
import { makeTempDir } from '../../helpers/tmp.js'

const REQUIRED = ['generic-x86_64', 'jetson-orin-nano', 'jetson-xavier-nx', 'raspberry-pi-4', 'raspberry-pi-5']

async function shipped (name: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(join(PROFILES_DIR, `${name}.json`), 'utf8')) as Record<string, unknown>
}

function setPath (obj: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.')
  let o = obj
  for (const p of parts.slice(0, -1)) o = o[p] as Record<string, unknown>
  const last = parts.at(-1) as string
  if (value === undefined) Reflect.deleteProperty(o, last)
  else o[last] = value
}

/** A value of the wrong kind for each field kind. */
function badValue (spec: FieldSpec): unknown {
  switch (spec.kind) {
    case 'integer': return spec.min - 1
    case 'boolean': return 'yes'
    case 'string': return ''
    case 'enum': return 'sometimes'
    case 'providers': return ['gpu-please']
    case 'object': return 'not an object'
  }
}

t.test('behavior: every shipped profile validates, and the five device classes are there', async t => {
  const names = await listProfiles()
  for (const name of REQUIRED) t.ok(names.includes(name), `${name} is shipped`)
  for (const name of names) {
    const resolved = await resolveProfile(name)
    t.equal(resolved.profile.name, name, `${name}: name matches the file`)
    t.match(resolved.id, new RegExp(`^${name.replace('.', '\\.')}@[0-9a-f]{8}$`))
    t.equal(resolved.profile.executionProviders.at(-1), 'cpu', `${name}: cpu is the last resort`)
  }
  const orin = (await resolveProfile('jetson-orin-nano')).profile
  t.same(orin.executionProviders, ['tensorrt', 'cuda', 'cpu'], 'Jetson prefers TensorRT, then CUDA')
  const pi = (await resolveProfile('raspberry-pi-4')).profile
  t.same(pi.executionProviders, ['cpu'])
  t.ok(pi.storage.maxBatchRecords > orin.storage.maxBatchRecords, 'SD cards get larger group commits')
})

t.test('behavior: threads.intraOp -1 leaves one core to the agent (at least one thread); 0 leaves onnxruntime\'s default', async t => {
  const threads = { intraOp: INTRA_OP_ALL_BUT_ONE, interOp: 0, niceness: 0 }
  t.same(profileThreadOptions(threads, 2), { intraOpNumThreads: 1 }, '2 cores: one thread for the model')
  t.same(profileThreadOptions(threads, 8), { intraOpNumThreads: 7 })
  t.same(profileThreadOptions(threads, 1), { intraOpNumThreads: 1 }, 'one core: still one thread')
  t.same(profileThreadOptions({ intraOp: 0, interOp: 0, niceness: 0 }, 4), {}, '0: onnxruntime chooses')
  t.same(profileThreadOptions({ intraOp: 3, interOp: 1, niceness: 5 }, 4), { intraOpNumThreads: 3, interOpNumThreads: 1, inferenceNiceness: 5 })
  const base = await shipped('generic-x86_64')
  setPath(base, 'threads.intraOp', -2)
  t.throws(() => assertProfile(base), { code: 'PROFILE_INVALID', fields: ['threads.intraOp'] }, 'below -1 is refused')
})

t.test('error: each bad field of a profile is named', async t => {
  const base = await shipped('raspberry-pi-5')
  const fields = listProfileFields()
  t.same(fields.map(f => f.path), [
    'schemaVersion', 'name', 'description', 'executionProviders', 'threads.intraOp', 'threads.interOp', 'threads.niceness',
    'storage.budgetBytes', 'storage.budgetMode', 'storage.syncWrites', 'storage.maxBatchRecords',
    'uplink.batchRecords', 'uplink.maxInFlightBatches', 'uplink.keepUntil', 'uplink.reconnectMinMs', 'uplink.reconnectMaxMs',
    'keys.path', 'keys.keyStore', 'keys.tpmTcti'
  ], 'providers, threads, budget and mode, sync policy, batching, retention, key path and store')
  for (const { path, spec } of fields) {
    const bad = structuredClone(base)
    setPath(bad, path, badValue(spec))
    const e = (() => { try { assertProfile(bad); return undefined } catch (err) { return err as ProfileError } })()
    t.type(e, ProfileError, `${path}: refused`)
    t.equal(e?.code, 'PROFILE_INVALID')
    t.ok(e?.fields.some(f => f === path || f.startsWith(`${path}[`)), `${path}: named (${e?.fields.join(', ')})`)
    t.match(e?.message, path)
    const missing = structuredClone(base)
    setPath(missing, path, undefined)
    t.throws(() => assertProfile(missing), { code: 'PROFILE_INVALID', fields: [path] }, `${path}: missing is named`)
  }
})

t.test('error: unknown fields, duplicate providers, crossed bounds and escaping key paths are named, all at once', async t => {
  const bad = await shipped('jetson-orin-nano')
  bad.syncWrite = true
  setPath(bad, 'storage.budgetByte', 5)
  setPath(bad, 'executionProviders', ['cuda', 'cuda'])
  setPath(bad, 'uplink.reconnectMinMs', 5000)
  setPath(bad, 'uplink.reconnectMaxMs', 1000)
  setPath(bad, 'keys.path', '../../etc/key.json')
  const e = (() => { try { assertProfile(bad); return undefined } catch (err) { return err as ProfileError } })()
  t.equal(e?.code, 'PROFILE_INVALID')
  t.same(e?.fields.slice().sort(), ['executionProviders[1]', 'keys.path', 'storage.budgetByte', 'syncWrite', 'uplink.reconnectMaxMs'].sort())
})

t.test('behavior: a local override deep-merges into the profile (arrays replace), then validates', async t => {
  const dir = await makeTempDir(t, 'prov-profile-')
  const override = join(dir, 'override.json')
  await writeFile(override, JSON.stringify({ storage: { budgetBytes: 64 * 1024 * 1024 }, executionProviders: ['cuda', 'cpu'] }))
  const plain = await resolveProfile('jetson-xavier-nx')
  const merged = await resolveProfile('jetson-xavier-nx', override)
  t.equal(merged.profile.storage.budgetBytes, 64 * 1024 * 1024)
  t.same(merged.profile.executionProviders, ['cuda', 'cpu'], 'arrays replace')
  t.equal(merged.profile.storage.budgetMode, plain.profile.storage.budgetMode, 'siblings are kept')
  t.same(merged.profile.uplink, plain.profile.uplink, 'untouched objects are kept')
  t.equal(merged.overrideSource, override)
  t.match(merged.id, /^jetson-xavier-nx\+override@[0-9a-f]{8}$/)
  t.not(merged.id, plain.id)

  await writeFile(override, JSON.stringify({ storage: { budgetMode: 'sometimes' }, threads: { intraOps: 2 } }))
  const e = await resolveProfile('jetson-xavier-nx', override).then(() => undefined, (err: unknown) => err as ProfileError) as ProfileError
  t.type(e, ProfileError)
  t.same([...e.fields].sort(), ['storage.budgetMode', 'threads.intraOps'])
  t.match(e.message, 'override')
  await writeFile(override, '[1, 2]')
  await t.rejects(resolveProfile('jetson-xavier-nx', override), { code: 'PROFILE_INVALID' })
  await writeFile(override, JSON.stringify({ name: 'raspberry-pi-4' }))
  await t.rejects(resolveProfile('jetson-xavier-nx', override), { code: 'PROFILE_INVALID', fields: ['name'] }, 'an override cannot rename the profile')
})

t.test('error: unknown names, missing files and files that are not JSON', async t => {
  const dir = await makeTempDir(t, 'prov-profile-')
  await t.rejects(resolveProfile('jetson-nano-9000'), { code: 'PROFILE_NOT_FOUND', message: /raspberry-pi-4/ }, 'names the shipped profiles')
  await t.rejects(resolveProfile('Bad Name'), { code: 'PROFILE_NOT_FOUND' })
  await t.rejects(resolveProfile(join(dir, 'nope.json')), { code: 'PROFILE_NOT_FOUND' })
  await t.rejects(resolveProfile('generic-x86_64', join(dir, 'nope.json')), { code: 'PROFILE_NOT_FOUND' })
  await writeFile(join(dir, 'p.json'), '{ not json')
  await t.rejects(resolveProfile(join(dir, 'p.json')), { code: 'PROFILE_INVALID', message: /not JSON/ })
  await t.rejects(resolveProfile(dir), { code: 'PROFILE_UNREADABLE' }, 'a folder is no profile')
  const custom = { ...(await shipped('generic-x86_64')), name: 'my-box' }
  await writeFile(join(dir, 'my-box.json'), JSON.stringify(custom))
  t.equal((await resolveProfile(join(dir, 'my-box.json'))).profile.name, 'my-box', 'a profile by path')
})

t.test('behavior: merging never writes through __proto__', async t => {
  const merged = mergeProfile({ a: { b: 1 } }, JSON.parse('{"__proto__": {"polluted": true}, "a": {"c": 2}}')) as Record<string, unknown>
  t.same(merged.a, { b: 1, c: 2 })
  t.equal(({} as Record<string, unknown>).polluted, undefined)
  t.throws(() => assertProfile(merged), { code: 'PROFILE_INVALID' })
})
