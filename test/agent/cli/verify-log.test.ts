// verify-log's reading of a device log that is not whole any more: acknowledged records deleted,
// unsent records dropped at the disk budget behind a gap record, or records removed by someone.
import t from 'tap'
import { join } from 'node:path'
import { Level } from 'level'
import { verifyLog } from '../../../agent/cli/index.js'
import { KeyRing } from '../../../agent/keys/index.js'
import { RecordLog, recordKey } from '../../../agent/log/index.js'
import type { RecordSource } from '../../../agent/cli/index.js'
import { sha256 } from '../../../protocol/index.js'
import { makeTempDir } from '../../helpers/tmp.js'

const body = (n: number) => ({ kind: 'inference' as const, modelHash: sha256(new Uint8Array([n])), inputs: [], outputs: [], latencyUs: n, decision: 'x'.repeat(200) })

async function setup (t: { teardown: (fn: () => unknown) => void }, options: { budgetBytes?: number, budgetMode?: 'fail-open' } = {}) {
  const dir = await makeTempDir(t, 'prov-verify-')
  const ring = await KeyRing.open(join(dir, 'key.json'), { create: true })
  const log = await RecordLog.open({ dir: join(dir, 'records'), deviceId: 'dev-v', signer: ring.signer, clock: ring.clock, syncWrites: false, ...options })
  let open = true
  t.teardown(async () => { if (open) await log.close() })
  await log.appendBoot({ agentVersion: 't', profile: 'p' })
  const source = (l: RecordLog): RecordSource => ({ via: 'log', headSeq: l.head.seq, ackedSeq: l.acked, records: (from, to) => l.iterate(from, to), close: async () => {} })
  return { dir, ring, log, source, close: async () => { open = false; await log.close() } }
}

t.test('behavior: acknowledged records deleted from the device: the check starts at the oldest stored record', async t => {
  const { ring, log, source } = await setup(t)
  for (let i = 0; i < 9; i++) await log.append(() => body(i))
  await log.acknowledge(5)
  const verdict = await verifyLog(source(log), { deviceId: 'dev-v', history: ring.history })
  t.match(verdict, { ok: true, firstSeq: 6, startsAtSeq: 6, lastSeq: 9, count: 4, ackedSeq: 5 })
})

t.test('behavior: unsent records dropped at the disk budget are an honest gap', async t => {
  const { ring, log, source } = await setup(t, { budgetBytes: 8 * 1024, budgetMode: 'fail-open' })
  for (let i = 0; i < 60; i++) await log.append(() => body(i))
  const verdict = await verifyLog(source(log), { deviceId: 'dev-v', history: ring.history })
  t.equal(verdict.ok, true, JSON.stringify(verdict.failure))
  t.ok(verdict.gaps.length > 0, 'gaps are listed')
  // The boot record at seq 0 is never dropped (a verifier cannot see a new boot inside a hole).
  t.equal(await log.get(1), undefined, 'the oldest records after the boot record were dropped')
})

t.test('error: unacknowledged records removed without a gap record break the chain', async t => {
  const { dir, ring, log, source, close } = await setup(t)
  for (let i = 0; i < 6; i++) await log.append(() => body(i))
  await close()
  const db = new Level<string, Uint8Array>(join(dir, 'records'), { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db.del(recordKey(3))
  await db.del(recordKey(0))
  await db.close()
  const reopened = await RecordLog.open({ dir: join(dir, 'records'), deviceId: 'dev-v', signer: ring.signer })
  t.teardown(async () => await reopened.close())
  const verdict = await verifyLog(source(reopened), { deviceId: 'dev-v', history: ring.history })
  t.equal(verdict.ok, false)
  t.match(verdict.failure, { reason: 'seq-gap', seq: 0 }, 'records before the first stored one were never acknowledged')
})

t.test('error: a key-rotation record whose key the history does not hold is named', async t => {
  const { ring, log, source } = await setup(t)
  await ring.rotate(log)
  const verdict = await verifyLog(source(log), { deviceId: 'dev-v', history: ring.history.slice(0, 1) })
  t.match(verdict.failure, { reason: 'rotation-not-in-history', seq: 1 })
})
