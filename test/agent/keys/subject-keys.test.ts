// Crypto-shredding on the device (docs/PROTOCOL.md §12.2-12.3, docs/OPERATIONS.md §Erasure): runs
// for a subject are salted by its own key; shredding destroys that key, so those commitments no
// longer open while the others do, and every signature and chain link still verifies.
import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import { ProvenanceAgent } from '../../../agent/session/index.js'
import { KeyError, SubjectKeyStore, loadOrCreateDeviceKey } from '../../../agent/keys/index.js'
import { commitTensor, fixedKey, toHex, verifyChain, verifyShreddingStatement, type InferenceBody } from '../../../protocol/index.js'
import { makeClassifierModel } from '../../helpers/onnx-models.js'
import { makeTempDir } from '../../helpers/tmp.js'

async function codeOf (p: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  try { await (typeof p === 'function' ? p() : p); return undefined } catch (e) {
    if (!(e instanceof KeyError)) throw e
    return e.code
  }
}

t.test('behavior: after shredding a subject its commitments no longer open, the others do, and the chain still verifies', async t => {
  const dir = await makeTempDir(t, 'prov-shred-')
  const modelPath = join(dir, 'tiny.onnx')
  await writeFile(modelPath, makeClassifierModel({ seed: 1 }))
  const stateDir = join(dir, 's')
  const key = await loadOrCreateDeviceKey(join(stateDir, 'device-key.json'), { create: true })
  const keysPath = join(stateDir, 'subject-keys.json')
  const subjectKeys = await SubjectKeyStore.open({ path: keysPath, secret: key.saltSecret })
  const agent = await ProvenanceAgent.start({ stateDir, deviceId: 'dev-1', key, subjectKeys, syncWrites: false })
  const model = await agent.loadModel(modelPath, { name: 'tiny' })
  const x = (v: number): ort.Tensor => new ort.Tensor('float32', Float32Array.from([v, 0.2, 0.3, 0.4]), [1, 4])
  const runs: Array<{ seq: number, x: ort.Tensor, body: InferenceBody, subject?: string }> = []
  for (const [v, subject] of [[0.1, 'plate:AB-123'], [0.2, undefined], [0.3, 'plate:AB-123'], [0.4, 'plate:ZZ-999']] as const) {
    const { record } = await model.run({ x: x(v) }, subject === undefined ? {} : { subject })
    runs.push({ seq: record.record.seq, x: x(v), body: record.record.body as InferenceBody, ...(subject === undefined ? {} : { subject }) })
  }
  // Before: every commitment opens with the agent's salt.
  for (const r of runs) t.same(r.body.inputs[0]?.hash, commitTensor(agent.saltFor(r.seq), 'x', r.x), `seq ${r.seq} opens before`)
  const saltOfSubject = agent.saltFor(runs[0]?.seq ?? 0)

  const signed = await subjectKeys.shred('plate:AB-123', { deviceId: 'dev-1', signer: key.signer, nowMs: 1_800_000_000_000, reason: 'erasure request 7' })
  t.same(signed.statement.ranges, [{ firstSeq: runs[0]?.seq, lastSeq: runs[0]?.seq }, { firstSeq: runs[2]?.seq, lastSeq: runs[2]?.seq }])
  t.equal(toHex(verifyShreddingStatement(signed.envelope, () => key.publicKey).hash), toHex(signed.hash), 'the statement is signed by the device key')
  t.equal(toHex(signed.statement.subjectRef), subjectKeys.refOf('plate:AB-123'), 'named by pseudonym')

  for (const r of runs) {
    if (r.subject === 'plate:AB-123') {
      t.equal(await codeOf(() => agent.saltFor(r.seq)), 'SUBJECT_SHREDDED', `seq ${r.seq}: opening reports shredded`)
      t.ok(subjectKeys.isShredded(r.seq))
    } else {
      t.same(r.body.inputs[0]?.hash, commitTensor(agent.saltFor(r.seq), 'x', r.x), `seq ${r.seq} still opens`)
    }
  }
  t.equal(await codeOf(subjectKeys.keyFor('plate:AB-123')), 'SUBJECT_SHREDDED', 'no new run may be salted for an erased subject')
  t.equal(await codeOf(subjectKeys.shred('plate:AB-123', { deviceId: 'dev-1', signer: key.signer, nowMs: 1, reason: 'again' })), 'SUBJECT_SHREDDED')
  t.equal(await codeOf(subjectKeys.shred('nobody', { deviceId: 'dev-1', signer: key.signer, nowMs: 1, reason: 'x' })), 'SUBJECT_UNKNOWN')

  const file = await readFile(keysPath, 'utf8')
  t.notOk(file.includes('plate:AB-123'), 'the key file names subjects by pseudonym only')
  t.equal((JSON.parse(file) as { subjects: Record<string, { key: string | null }> }).subjects[subjectKeys.refOf('plate:AB-123')]?.key, null, 'the key is gone from the file')
  t.notOk(file.includes(toHex(saltOfSubject)))
  const reopened = await SubjectKeyStore.open({ path: keysPath, secret: key.saltSecret })
  t.ok(reopened.isShredded(runs[0]?.seq ?? -1), 'shredding survives a restart')
  t.ok(reopened.saltFor(runs[3]?.seq ?? -1) !== undefined, 'the other subject still opens after a restart')

  const records = await agent.log.range(0, 100)
  t.equal(verifyChain(records, { deviceId: 'dev-1', keyAt: fixedKey(agent.publicKey) }).failure, undefined, 'every signature and chain link still verifies')
  await agent.stop()
})

t.test('error: a subject key file others may read is refused', async t => {
  const dir = await makeTempDir(t, 'prov-shred-')
  const path = join(dir, 'subject-keys.json')
  await writeFile(path, '{"v":1,"subjects":{}}', { mode: 0o644 })
  t.equal(await codeOf(SubjectKeyStore.open({ path, secret: new Uint8Array(32) })), 'SUBJECT_KEYS_INVALID')
  await writeFile(join(dir, 'bad.json'), '{"v":1,"subjects":{"zz":{"key":"x","ranges":[]}}}', { mode: 0o600 })
  t.equal(await codeOf(SubjectKeyStore.open({ path: join(dir, 'bad.json'), secret: new Uint8Array(32) })), 'SUBJECT_KEYS_INVALID')
})
