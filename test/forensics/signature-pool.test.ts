// The signature pool with the calling thread as a helper (helpOnce): a batch it answers itself
// gets exactly the answer a worker gives the same batch, it takes the batch it is waiting for when
// that one is still queued, else the last queued (the workers take from the front), and it has
// nothing to take once every batch is posted or the pool is closed.
import t from 'tap'
import { SignatureBatchBuilder, SignaturePool, type BatchAnswer } from '../../forensics/verify/signature-pool.js'
import { ChainBuilder } from '../helpers/records.js'

/** A batch of `n` records of a real chain, record `bad` (if any) with one bit of its signature flipped. */
function builderOf (chain: ChainBuilder, from: number, n: number, bad?: number): SignatureBatchBuilder {
  const b = new SignatureBatchBuilder(chain.deviceId)
  for (let i = from; i < from + n; i++) {
    const r = chain.records[i]
    if (r === undefined) throw new Error('short chain')
    const signature = r.signature.slice()
    if (i === bad) signature[10] = (signature[10] as number) ^ 1
    b.add(signature, r.recordBytes, chain.signer.publicKey)
  }
  return b
}

function flags (a: BatchAnswer): number[] {
  return [...a.valid]
}

t.test('behavior: the calling thread answers a queued batch as a worker does, the one it waits for first', async t => {
  const chain = new ChainBuilder({ deviceId: 'pool-device', seed: 'signature pool' })
  while (chain.records.length < 240) chain.appendInference()
  const pool = new SignaturePool(1)
  t.teardown(async () => { await pool.close() })
  // One worker takes two batches; the rest stay queued for the calling thread.
  const batches = [0, 1, 2, 3].map(k => pool.submit(builderOf(chain, k * 60, 60, k * 60 + 7 + k), 'node'))
  t.notOk(pool.settled(batches[0]?.id as number), 'the worker has not answered yet')
  t.ok(pool.helpOnce(batches[2]?.id as number), 'the batch waited for is still queued: taken')
  t.ok(pool.settled(batches[2]?.id as number), 'answered synchronously')
  t.notOk(pool.settled(batches[3]?.id as number), 'the other queued batch is left')
  t.ok(pool.helpOnce(batches[0]?.id as number), 'the batch waited for is posted: the last queued is taken instead')
  t.ok(pool.settled(batches[3]?.id as number))
  t.notOk(pool.helpOnce(batches[0]?.id as number), 'nothing left in the queue')
  const answers = await Promise.all(batches.map(async b => flags(await b.answer)))
  answers.forEach((a, k) => {
    t.equal(a.length, 60)
    t.same(a.map((v, i) => v === 0 ? i : -1).filter(i => i >= 0), [7 + k], `batch ${k}: only the broken signature fails`)
  })
  // The same batches through the worker alone: the same flags.
  const again = await Promise.all([2, 3].map(async k => flags(await pool.verify(builderOf(chain, k * 60, 60, k * 60 + 7 + k), 'node'))))
  t.same(again, answers.slice(2), 'a worker gives the batches the calling thread answered the same flags')
})

t.test('behavior: noble batches answered on the calling thread agree with node:crypto', async t => {
  const chain = new ChainBuilder({ deviceId: 'pool-device', seed: 'signature pool' })
  while (chain.records.length < 30) chain.appendInference()
  const pool = new SignaturePool(1)
  t.teardown(async () => { await pool.close() })
  const posted = [pool.submit(builderOf(chain, 0, 10), 'noble'), pool.submit(builderOf(chain, 10, 10), 'noble')]
  const queued = pool.submit(builderOf(chain, 20, 10, 25), 'noble')
  t.ok(pool.helpOnce(queued.id))
  t.same(flags(await queued.answer), [1, 1, 1, 1, 1, 0, 1, 1, 1, 1])
  for (const p of posted) t.same(flags(await p.answer), Array(10).fill(1))
})

t.test('error: a closed pool has nothing for the calling thread and refuses new batches', async t => {
  const chain = new ChainBuilder({ deviceId: 'pool-device', seed: 'signature pool' })
  while (chain.records.length < 10) chain.appendInference()
  const pool = new SignaturePool(1)
  await pool.close()
  const late = pool.submit(builderOf(chain, 0, 10), 'node')
  await t.rejects(late.answer, /closed/)
  t.ok(pool.settled(late.id), 'a refused batch counts as settled: nobody waits for it')
  t.notOk(pool.helpOnce(late.id))
  t.throws(() => new SignaturePool(0), RangeError)
})
