import t from 'tap'
import { readFile, stat, writeFile, chmod } from 'node:fs/promises'
import { join } from 'node:path'
import { KeyError, KeyRing, keyAtFromHistory, loadOrCreateDeviceKey, readKeyFile, writeKeyFile } from '../../../agent/keys/index.js'
import { RecordLog } from '../../../agent/log/index.js'
import { createSigner, fromHex, toHex, verifyChain, verifyRecordSignature, type KeyRotationBody, type SignedRecord } from '../../../protocol/index.js'
import { makeTempDir } from '../../helpers/tmp.js'

const body = (n: number) => ({ kind: 'shutdown' as const, reason: `r${n}` })

async function setup (t: { teardown: (fn: () => unknown) => void }, wallClock: () => number = Date.now) {
  const dir = await makeTempDir(t, 'prov-keys-')
  const keyPath = join(dir, 'keys', 'device-key.json')
  const ring = await KeyRing.open(keyPath, { create: true, wallClock })
  const log = await RecordLog.open({ dir: join(dir, 'records'), deviceId: 'dev-k', signer: ring.signer, clock: ring.clock })
  let open = true
  t.teardown(async () => { if (open) await log.close() })
  await log.appendBoot({ agentVersion: 't', profile: 'p' })
  for (let i = 0; i < 3; i++) await log.append(() => body(i))
  return { dir, keyPath, ring, log, close: async () => { open = false; await log.close() } }
}

async function all (log: RecordLog): Promise<SignedRecord[]> { return await log.range(0, Number.MAX_SAFE_INTEGER) }

t.test('behavior: a new key file is version 2, mode 0600, with a one-key history valid from 0', async t => {
  const { keyPath, ring } = await setup(t)
  t.equal((await stat(keyPath)).mode & 0o777, 0o600)
  const doc = JSON.parse(await readFile(keyPath, 'utf8'))
  t.equal(doc.v, 2)
  t.same(doc.history, [{ publicKey: toHex(ring.publicKey), validFromMs: 0 }])
  const key = await loadOrCreateDeviceKey(keyPath)
  t.same(key.publicKey, ring.publicKey)
  t.same(key.history.map(h => h.validFromMs), [0])
})

t.test('behavior: a version 1 key file still loads, as a one-key history', async t => {
  const dir = await makeTempDir(t, 'prov-keys-')
  const path = join(dir, 'k.json')
  const seed = new Uint8Array(32).fill(3)
  await writeFile(path, JSON.stringify({ v: 1, seed: toHex(seed), saltSecret: toHex(new Uint8Array(32).fill(4)), createdMs: 5 }), { mode: 0o600 })
  const ring = await KeyRing.open(path)
  t.same(ring.publicKey, createSigner(seed).publicKey)
  t.same(ring.history, [{ publicKey: createSigner(seed).publicKey, validFromMs: 0 }])
})

t.test('behavior: rotate writes a record signed by the old key, the new key signs after it, verify passes with keyAt over the history', async t => {
  const { keyPath, ring, log } = await setup(t)
  const oldSeed = JSON.parse(await readFile(keyPath, 'utf8')).seed as string
  const old = ring.publicKey
  const result = await ring.rotate(log)
  t.same(result.previousPublicKey, old)
  t.same(ring.publicKey, result.publicKey)
  const rotation = result.record
  t.equal(rotation.record.body.kind, 'key-rotation')
  t.same((rotation.record.body as KeyRotationBody).newPublicKey, result.publicKey)
  t.ok(verifyRecordSignature(rotation, old), 'the rotation record is signed by the old key')
  t.ok(rotation.record.timeMs < result.validFromMs, 'and falls before the new key\'s validity')
  const after = await log.append(() => body(9))
  t.ok(verifyRecordSignature(after, result.publicKey), 'later records are signed by the new key')
  t.ok(after.record.timeMs >= result.validFromMs)

  const file = await readFile(keyPath, 'utf8')
  t.notMatch(file, oldSeed, 'the old secret is gone')
  t.equal((await stat(keyPath)).mode & 0o777, 0o600)
  const reopened = await KeyRing.open(keyPath)
  t.same(reopened.history.map(h => toHex(h.publicKey)), [toHex(old), toHex(result.publicKey)])
  t.same(reopened.history.map(h => h.validFromMs), [0, result.validFromMs])
  const records = await all(log)
  t.equal(verifyChain(records, { deviceId: 'dev-k', keyAt: keyAtFromHistory(reopened.history) }).failure, undefined)
  t.equal(verifyChain(records, { deviceId: 'dev-k', keyAt: reopened.keyAt }).failure, undefined)

  const again = await ring.rotate(log)
  await log.append(() => body(10))
  const three = await KeyRing.open(keyPath)
  t.equal(three.history.length, 3)
  t.same(three.publicKey, again.publicKey)
  t.equal(verifyChain(await all(log), { deviceId: 'dev-k', keyAt: three.keyAt }).failure, undefined, 'two rotations verify')
})

t.test('error: after a rotation a record signed with the old key fails verification', async t => {
  const { dir, keyPath, ring, log, close } = await setup(t)
  const oldSeed = fromHex(JSON.parse(await readFile(keyPath, 'utf8')).seed as string)
  await ring.rotate(log)
  await close()
  const forged = await RecordLog.open({ dir: join(dir, 'records'), deviceId: 'dev-k', signer: createSigner(oldSeed) })
  const bad = await forged.append(() => body(99))
  const records = await all(forged)
  await forged.close()
  const result = verifyChain(records, { deviceId: 'dev-k', keyAt: (await KeyRing.open(keyPath)).keyAt })
  t.equal(result.failure?.reason, 'bad-signature')
  t.equal(result.failure?.seq, bad.record.seq)
})

t.test('behavior: device time never falls below the new key\'s validity, even when the wall clock goes back', async t => {
  let now = 1_000_000
  const { ring, log } = await setup(t, () => now)
  const { validFromMs } = await ring.rotate(log)
  now = 10
  const r = await log.append(() => body(1))
  t.equal(r.record.timeMs, validFromMs)
  t.equal(verifyChain(await all(log), { deviceId: 'dev-k', keyAt: ring.keyAt }).failure, undefined)
})

t.test('behavior: a rotation interrupted before its record is durable rolls back to the old key', async t => {
  const { keyPath, ring, log } = await setup(t)
  const before = await readKeyFile(keyPath)
  if (before === undefined) throw new Error('no key file')
  const next = createSigner(new Uint8Array(32).fill(42))
  // The state a crash leaves between writing the key file and writing the record.
  await writeKeyFile(keyPath, { ...before, seed: new Uint8Array(32).fill(42), history: [...before.history, { publicKey: next.publicKey, validFromMs: Date.now() + 5 }], pending: { previousSeed: before.seed, rotationSeq: log.nextSeq } })
  await t.rejects(loadOrCreateDeviceKey(keyPath), KeyError, 'the plain loader refuses a pending rotation')
  await t.rejects(loadOrCreateDeviceKey(keyPath), { code: 'KEY_ROTATION_PENDING' })
  const pending = await KeyRing.open(keyPath)
  t.same(pending.pendingRotation?.publicKey, next.publicKey)
  t.same(pending.publicKey, ring.publicKey, 'the old key is in force until recovery')
  t.throws(() => pending.signer.sign(new Uint8Array(1)), { code: 'KEY_ROTATION_PENDING' }, 'and it signs nothing before recovery')
  t.equal(await pending.recover(log), 'rolled-back')
  t.same(pending.publicKey, ring.publicKey)
  t.equal(pending.pendingRotation, undefined)
  t.same((await KeyRing.open(keyPath)).history.length, 1)
})

t.test('behavior: a rotation interrupted after its record is durable completes on recovery', async t => {
  const { keyPath, ring, log } = await setup(t)
  const before = await readKeyFile(keyPath)
  if (before === undefined) throw new Error('no key file')
  const rotationSeq = log.nextSeq
  const result = await ring.rotate(log)
  const after = await readKeyFile(keyPath)
  if (after === undefined) throw new Error('no key file')
  // The state a crash leaves between the durable record and the final key file.
  await writeKeyFile(keyPath, { ...after, pending: { previousSeed: before.seed, rotationSeq } })
  const pending = await KeyRing.open(keyPath)
  t.same(pending.publicKey, result.previousPublicKey)
  t.equal(await pending.recover(log), 'completed')
  t.same(pending.publicKey, result.publicKey)
  const settled = await readKeyFile(keyPath)
  t.equal(settled?.pending, undefined)
  t.equal(await pending.recover(log), 'none')
})

t.test('error: key files with a broken history are refused, and stay refused when readable by others', async t => {
  const { keyPath } = await setup(t)
  const doc = JSON.parse(await readFile(keyPath, 'utf8'))
  await writeFile(keyPath, JSON.stringify({ ...doc, history: [{ publicKey: doc.history[0].publicKey, validFromMs: 5 }] }))
  await t.rejects(KeyRing.open(keyPath), { code: 'KEY_INVALID', message: /history\[0\]\.validFromMs/ })
  await writeFile(keyPath, JSON.stringify({ ...doc, history: [{ publicKey: '00'.repeat(32), validFromMs: 0 }] }))
  await t.rejects(KeyRing.open(keyPath), { code: 'KEY_INVALID', message: /last key is not the key of seed/ })
  await writeFile(keyPath, JSON.stringify({ ...doc, pending: { previousSeed: doc.seed, rotationSeq: 1 } }))
  await t.rejects(KeyRing.open(keyPath), { code: 'KEY_INVALID', message: /pending/ })
  await writeFile(keyPath, JSON.stringify(doc))
  await chmod(keyPath, 0o640)
  await t.rejects(KeyRing.open(keyPath), { code: 'KEY_INSECURE' })
  await t.rejects(KeyRing.open(join(keyPath, 'below-a-file')), { code: 'KEY_UNREADABLE' })
})
