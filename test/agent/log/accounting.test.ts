// The byte count of the record log against what is on disk, and the attacks on it: acks and
// deletions with nothing to delete, a budget that must hold in both modes, a write error on a
// live handle, and random sequences of appends, acks, deletions and reopens (fast-check).
import t from 'tap'
import fc from 'fast-check'
import { RecordLog, recordKey } from '../../../agent/log/index.js'
import { verifyLog } from '../../../agent/cli/index.js'
import { AgentError } from '../../../agent/errors.js'
import { makeTempDir } from '../../helpers/tmp.js'
import { createSigner, fixedKey, sha256, verifyChain, type RecordBody } from '../../../protocol/index.js'

const signer = createSigner(new Uint8Array(32).fill(5))
const body = (seq: number): RecordBody => ({
  kind: 'inference', modelHash: sha256(new Uint8Array([1])), inputs: [], outputs: [], latencyUs: seq, decision: 'y'.repeat(seq % 300)
})
const open = async (dir: string, extra: Partial<Parameters<typeof RecordLog.open>[0]> = {}): Promise<RecordLog> =>
  await RecordLog.open({ dir, deviceId: 'dev-acc', signer, syncWrites: false, reserveBytes: 0, ...extra })

async function scanBytes (log: RecordLog): Promise<number> {
  let n = 0
  for await (const r of log.iterate()) n += r.envelope.byteLength
  return n
}

t.test('attack: deleteAcknowledged with nothing to delete changes neither the count nor the disk', async t => {
  const dir = await makeTempDir(t)
  const log = await open(dir)
  await log.appendBoot({ agentVersion: 't', profile: 'p' })
  for (let i = 0; i < 5; i++) await log.append(body)
  await log.acknowledge(5, { deleteAcked: false })
  await log.deleteAcknowledged(5)
  const bytes = log.stats().bytes
  for (let i = 0; i < 1000; i++) await log.deleteAcknowledged(5)
  t.equal(log.stats().bytes, bytes, 'unchanged after 1,000 calls')
  t.equal(bytes, await scanBytes(log))
  t.ok(bytes > 0, 'never negative: the head record is still counted')
  await log.close()
})

t.test('attack: a fail-closed budget holds when nothing is acknowledged', async t => {
  const dir = await makeTempDir(t)
  const log = await open(dir, { budgetBytes: 49_152, budgetMode: 'fail-closed' })
  await log.appendBoot({ agentVersion: 't', profile: 'p' })
  let refused = 0
  for (let i = 0; i < 1000; i++) {
    await log.append(body).catch((e: AgentError) => { t.equal(e.code, 'LOG_BUDGET_EXCEEDED'); refused++ })
    if (i % 10 === 0) await log.deleteAcknowledged(log.acked)
  }
  const stored = await scanBytes(log)
  t.ok(refused > 0, `refused ${refused}`)
  t.ok(stored <= 49_152, `stored ${stored} bytes`)
  t.equal(log.stats().bytes, stored, 'the count is what is on disk')
  await log.close()
})

t.test('attack: a fail-open budget holds too, and every drop is declared', async t => {
  const dir = await makeTempDir(t)
  const log = await open(dir, { budgetBytes: 49_152, budgetMode: 'fail-open', dropFraction: 0.25 })
  await log.appendBoot({ agentVersion: 't', profile: 'p' })
  for (let i = 0; i < 600; i++) await log.append(body)
  const all = await log.range(0, Number.MAX_SAFE_INTEGER)
  const stored = all.reduce((n, r) => n + r.envelope.byteLength, 0)
  t.ok(stored <= 49_152, `stored ${stored} bytes`)
  t.equal(log.stats().bytes, stored)
  const v = verifyChain(all, { deviceId: 'dev-acc', keyAt: fixedKey(signer.publicKey) })
  t.equal(v.failure, undefined, v.failure?.message ?? 'chain with its gaps verifies')
  await log.close()
})

t.test('attack: a write error on a live handle: the log reopens, checks its head, and appends after it', async t => {
  for (const mode of ['fail-closed', 'fail-open'] as const) {
    const dir = await makeTempDir(t)
    const log = await open(dir, { budgetMode: mode })
    await log.appendBoot({ agentVersion: 't', profile: 'p' })
    for (let i = 0; i < 3; i++) await log.append(body)
    // Pull the handle from under the log: its next write fails as an I/O error would.
    await (log as unknown as { db: { close: () => Promise<void> } }).db.close()
    const settled = await Promise.allSettled([log.append(body), log.append(body)])
    if (mode === 'fail-closed') {
      t.same(settled.map(s => s.status), ['rejected', 'rejected'])
      t.equal(((settled[0] as PromiseRejectedResult).reason as AgentError).code, 'LOG_WRITE_FAILED')
    } else {
      t.same(settled.map(s => s.status), ['fulfilled', 'fulfilled'], 'fail-open: declared, not thrown')
    }
    const next = await log.append(body)
    t.equal(next.record.seq, mode === 'fail-closed' ? 4 : 7, 'seq after the durable head (fail-open: after the gap)')
    const all = await log.range(0, Number.MAX_SAFE_INTEGER)
    t.equal(verifyChain(all, { deviceId: 'dev-acc', keyAt: fixedKey(signer.publicKey) }).failure, undefined, `${mode}: chain whole`)
    t.equal(log.stats().state, 'open')
    await log.close()
    const again = await open(dir)
    t.equal(again.head.seq, next.record.seq, 'the reopened log has every resolved record')
    await again.close()
  }
})

t.test('attack: a head whose record is missing or has records beyond it is refused as corrupt', async t => {
  const { Level } = await import('level')
  const dir = await makeTempDir(t)
  const log = await open(dir)
  await log.appendBoot({ agentVersion: 't', profile: 'p' })
  for (let i = 0; i < 3; i++) await log.append(body)
  await log.close()
  const db = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
  const head = await db.get(recordKey(3))
  if (head === undefined) throw new Error('record 3 is missing')
  await db.put(recordKey(4), head)
  await db.close()
  await t.rejects(open(dir), { code: 'LOG_CORRUPT' })
  const db2 = new Level<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
  await db2.del(recordKey(4))
  await db2.del(recordKey(3))
  await db2.close()
  await t.rejects(open(dir), { code: 'LOG_CORRUPT' })
})

t.test('attack: acknowledging leaks nothing: only the head record stays once all is acked', async t => {
  const dir = await makeTempDir(t)
  const log = await open(dir)
  await log.appendBoot({ agentVersion: 't', profile: 'p' })
  for (let round = 0; round < 20; round++) {
    for (let i = 0; i < 3; i++) await log.append(body)
    await log.acknowledge(log.head.seq)
  }
  t.same((await log.range(0, Number.MAX_SAFE_INTEGER)).map(r => r.record.seq), [log.head.seq])
  t.equal(log.stats().bytes, await scanBytes(log))
  await log.close()
})

type Cmd =
  | { op: 'append', n: number }
  | { op: 'ack', back: number, keep: boolean }
  | { op: 'deleteAcked', back: number }
  | { op: 'reopen' }
  | { op: 'boot' }

const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('append' as const), n: fc.integer({ min: 1, max: 12 }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('ack' as const), back: fc.integer({ min: 0, max: 6 }), keep: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('deleteAcked' as const), back: fc.integer({ min: 0, max: 6 }) }) },
  { weight: 1, arbitrary: fc.constant({ op: 'reopen' as const }) },
  { weight: 1, arbitrary: fc.constant({ op: 'boot' as const }) }
)

t.test('property: after any sequence of append, ack, deleteAcknowledged and reopen the count equals a scan, within budget, and verify-log passes', async t => {
  let run = 0
  await fc.assert(fc.asyncProperty(
    fc.array(cmd, { minLength: 1, maxLength: 30 }),
    fc.constantFrom(undefined, 8192, 16384),
    fc.constantFrom('fail-closed' as const, 'fail-open' as const),
    async (cmds, budgetBytes, budgetMode) => {
      const dir = await makeTempDir(t, `prov-prop-${run++}-`)
      const options = { budgetMode, ...(budgetBytes !== undefined ? { budgetBytes } : {}) }
      let log = await open(dir, options)
      try {
        await log.appendBoot({ agentVersion: 't', profile: 'p' })
        for (const c of cmds) {
          if (c.op === 'append') {
            // Concurrent appends: group commit, and budget checks racing each other.
            await Promise.allSettled(Array.from({ length: c.n }, async () => await log.append(body)))
          } else if (c.op === 'boot') {
            await log.appendBoot({ agentVersion: 't', profile: 'p' }).catch(() => {})
          } else if (c.op === 'ack') {
            await log.acknowledge(log.head.seq - c.back, { deleteAcked: !c.keep })
          } else if (c.op === 'deleteAcked') {
            await log.deleteAcknowledged(log.acked - c.back)
          } else {
            await log.close()
            log = await open(dir, options)
          }
          const bytes = await scanBytes(log)
          if (log.stats().bytes !== bytes) throw new Error(`after ${JSON.stringify(c)}: count ${log.stats().bytes}, scan ${bytes}`)
          if (budgetBytes !== undefined && bytes > budgetBytes) throw new Error(`after ${JSON.stringify(c)}: ${bytes} bytes over the budget ${budgetBytes}`)
        }
        const verdict = await verifyLog({ via: 'log', headSeq: log.head.seq, ackedSeq: log.acked, records: (a, b) => log.iterate(a, b), close: async () => {} },
          { deviceId: 'dev-acc', history: [{ publicKey: signer.publicKey, validFromMs: 0 }] })
        if (!verdict.ok) throw new Error(`verify-log: ${JSON.stringify(verdict.failure)}`)
      } finally {
        await log.close()
      }
    }
  ), { numRuns: 60, seed: 20261130 })
  t.pass('60 random histories')
})

t.test('attack: on a full disk fail-open declares records in gap records but never drops a boot record; fail-closed refuses without a seq', async t => {
  // A reserve larger than the disk cannot be taken: the log opens in the disk-full state.
  const huge = 2 ** 50
  const dir = await makeTempDir(t)
  const log = await open(dir, { budgetMode: 'fail-open', reserveBytes: huge })
  t.equal(log.stats().state, 'disk-full')
  await log.appendBoot({ agentVersion: 't', profile: 'p' })
  const resolved = await Promise.all(Array.from({ length: 20 }, async () => await log.append(body)))
  const boot = await log.appendBoot({ agentVersion: 't', profile: 'p' })
  await Promise.all(Array.from({ length: 5 }, async () => await log.append(body)))
  const stored = await log.range(0, Number.MAX_SAFE_INTEGER)
  t.ok(stored.some(r => r.record.seq === boot.record.seq && r.record.body.kind === 'boot'), 'the boot record is stored')
  t.equal(stored.filter(r => r.record.body.kind === 'inference').length, 0, 'no inference record stored')
  const v = verifyChain(stored, { deviceId: 'dev-acc', keyAt: fixedKey(signer.publicKey) })
  t.equal(v.failure, undefined, v.failure?.message ?? 'chain with its gaps verifies')
  t.equal(v.gaps.reduce((n, g) => n + g.lastSeq - g.firstSeq + 1, 0), 25, 'every resolved record is declared')
  t.ok(resolved.every(r => v.gaps.some(g => g.firstSeq <= r.record.seq && r.record.seq <= g.lastSeq)))
  await log.close()

  const dir2 = await makeTempDir(t)
  const closed = await open(dir2, { budgetMode: 'fail-closed', reserveBytes: huge })
  const seq = closed.nextSeq
  const err = await closed.append(body).catch(e => e)
  t.type(err, AgentError)
  t.equal(err.code, 'LOG_DISK_FULL')
  t.equal(closed.nextSeq, seq, 'a refusal costs no seq')
  await closed.close()
})

t.test('attack: a second opener (verify-log while the daemon runs) is refused as locked and leaves the reserve alone', async t => {
  const { statSync } = await import('node:fs')
  const path = await import('node:path')
  const dir = await makeTempDir(t)
  const log = await open(dir, { reserveBytes: 64 * 1024 })
  t.equal(log.stats().reserveHeld, true)
  await t.rejects(open(dir, { reserveBytes: 64 * 1024 }), { code: 'LOG_LOCKED' })
  t.equal(statSync(path.join(dir, 'space.reserve')).size, 64 * 1024, 'the reserve is still there')
  await log.close()
})
