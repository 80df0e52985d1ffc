import t from 'tap'
import { RecordLog } from '../../../agent/log/index.js'
import { AgentError } from '../../../agent/errors.js'
import { makeTempDir as tempDir } from '../../helpers/tmp.js'
import { createSigner, verifyChain, fixedKey, sha256, type RecordBody } from '../../../protocol/index.js'

const signer = createSigner(new Uint8Array(32).fill(3))
const body = (seq: number): RecordBody => ({
  kind: 'inference', modelHash: sha256(new Uint8Array([1])), inputs: [], outputs: [], latencyUs: seq, decision: null
})


t.test('behavior: group commit writes concurrent appends in few batches, in seq order', async t => {
  const dir = await tempDir(t)
  const log = await RecordLog.open({ dir, deviceId: 'dev-a', signer })
  await log.appendBoot({ agentVersion: 't', profile: 'p' })
  const results = await Promise.all(Array.from({ length: 500 }, async () => await log.append(body)))
  t.same(results.map(r => r.record.seq), Array.from({ length: 500 }, (_, i) => i + 1))
  t.equal(log.head.seq, 500)
  const all = await log.range(0, 1000)
  t.equal(all.length, 501)
  const v = verifyChain(all, { deviceId: 'dev-a', keyAt: fixedKey(signer.publicKey) })
  t.equal(v.failure, undefined)
  t.equal(v.count, 501)
  await log.close()
})

t.test('behavior: seq, boot and chain continue across restarts', async t => {
  const dir = await tempDir(t)
  let log = await RecordLog.open({ dir, deviceId: 'dev-a', signer })
  await log.appendBoot({ agentVersion: 't', profile: 'p' })
  for (let i = 0; i < 5; i++) await log.append(body)
  await log.close()
  log = await RecordLog.open({ dir, deviceId: 'dev-a', signer })
  t.equal(log.head.seq, 5)
  t.equal(log.head.boot, 1)
  const boot = await log.appendBoot({ agentVersion: 't', profile: 'p' })
  t.equal(boot.record.seq, 6)
  t.equal(boot.record.boot, 2)
  await log.append(body)
  const all = await log.range(0, 100)
  t.equal(verifyChain(all, { deviceId: 'dev-a', keyAt: fixedKey(signer.publicKey) }).failure, undefined)
  await log.close()
})

t.test('behavior: iterate from a watermark, acknowledge deletes acked records but keeps the head', async t => {
  const dir = await tempDir(t)
  const log = await RecordLog.open({ dir, deviceId: 'dev-a', signer })
  await log.appendBoot({ agentVersion: 't', profile: 'p' })
  for (let i = 0; i < 9; i++) await log.append(body)
  const seqs: number[] = []
  for await (const r of log.iterate(4, 6)) seqs.push(r.record.seq)
  t.same(seqs, [4, 5, 6])
  await log.acknowledge(6)
  t.equal(await log.ackedSeq(), 6)
  t.same((await log.range(0, 100)).map(r => r.record.seq), [7, 8, 9])
  await log.acknowledge(9)
  t.same((await log.range(0, 100)).map(r => r.record.seq), [9], 'head record kept')
  await log.close()
  const again = await RecordLog.open({ dir, deviceId: 'dev-a', signer })
  t.equal(again.head.seq, 9)
  const next = await again.append(body)
  t.equal(next.record.seq, 10)
  await again.close()
})

t.test('error: a bad body costs no seq and breaks nothing', async t => {
  const dir = await tempDir(t)
  const log = await RecordLog.open({ dir, deviceId: 'dev-a', signer })
  await log.appendBoot({ agentVersion: 't', profile: 'p' })
  await t.rejects(log.append(() => ({ kind: 'shutdown', reason: 'x'.repeat(10_000) })), { code: 'RECORD_INVALID' })
  const r = await log.append(body)
  t.equal(r.record.seq, 1)
  await log.close()
})

t.test('error: a second process-level open of the same log is refused as locked', async t => {
  const dir = await tempDir(t)
  const log = await RecordLog.open({ dir, deviceId: 'dev-a', signer })
  const err = await RecordLog.open({ dir, deviceId: 'dev-a', signer }).catch(e => e)
  t.type(err, AgentError)
  t.match(err.code, /^LOG_(LOCKED|OPEN_FAILED)$/)
  await log.close()
})

t.test('error: a log of another device is refused as corrupt', async t => {
  const dir = await tempDir(t)
  const log = await RecordLog.open({ dir, deviceId: 'dev-a', signer })
  await log.appendBoot({ agentVersion: 't', profile: 'p' })
  await log.close()
  await t.rejects(RecordLog.open({ dir, deviceId: 'dev-b', signer }), { code: 'LOG_CORRUPT' })
})

t.test('error: append after close', async t => {
  const dir = await tempDir(t)
  const log = await RecordLog.open({ dir, deviceId: 'dev-a', signer })
  await log.close()
  await t.rejects(log.append(body), { code: 'LOG_CLOSED' })
})
