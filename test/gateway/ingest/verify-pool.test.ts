// The gateway's signature pool (gateway/ingest/verify-pool.ts): the same answers as verifying on
// the calling thread, hostile input answered (never a crash), a killed worker replaced with no
// request lost, and a bounded queue.
import t from 'tap'
import { RECORD_SIGNING_PREFIX, concat, createSigner, sha256, verifySignature } from '../../../protocol/index.js'
import { VerifyPool } from '../../../gateway/ingest/verify-pool.js'

const signer = createSigner(sha256(new TextEncoder().encode('verify-pool test')))
const other = createSigner(sha256(new TextEncoder().encode('verify-pool other')))
const IDENTITY = Uint8Array.from(Buffer.from('01' + '00'.repeat(31), 'hex'))

interface Case { signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array }

/** Valid signatures, each of them broken, and hostile shapes: wrong lengths, small-order key, empty. */
function cases (n: number): Case[] {
  const out: Case[] = []
  for (let i = 0; i < n; i++) {
    const message = concat(RECORD_SIGNING_PREFIX, new TextEncoder().encode(`record ${i}`))
    const signature = signer.sign(message)
    out.push({ signature, message, publicKey: signer.publicKey })
    const bad = signature.slice()
    bad[i % 64] = (bad[i % 64] as number) ^ 1
    out.push({ signature: bad, message, publicKey: signer.publicKey })
    out.push({ signature, message, publicKey: other.publicKey })
  }
  const m = new Uint8Array(10)
  out.push({ signature: new Uint8Array(0), message: m, publicKey: signer.publicKey })
  out.push({ signature: new Uint8Array(65), message: m, publicKey: signer.publicKey })
  out.push({ signature: signer.sign(m), message: m, publicKey: new Uint8Array(31) })
  out.push({ signature: concat(IDENTITY, new Uint8Array(32)), message: m, publicKey: IDENTITY })
  out.push({ signature: signer.sign(new Uint8Array(0)), message: new Uint8Array(0), publicKey: signer.publicKey })
  return out
}

const expected = (cs: Case[]): boolean[] => cs.map(c => verifySignature(c.signature, c.message, c.publicKey))

// One pool for the first tests (a worker's start-up under tsx is the costly part): two workers,
// small batches and a small queue bound, so that several batches and the bound are exercised.
const pool = new VerifyPool({ workers: 2, batchMax: 16, maxQueued: 64, startAtQueued: 0, onWorkerLost: e => losses.push(e) })
const losses: Array<{ inline: boolean }> = []
t.teardown(async () => await pool.close())

/** Asks the pool for every case at once, noting the most signatures it held queued. */
async function verifyAll (p: VerifyPool, cs: Case[]): Promise<{ answers: boolean[], mostQueued: number }> {
  let mostQueued = 0
  const answers = await Promise.all(cs.map(async c => {
    const a = p.verify(c.signature, c.message, c.publicKey)
    mostQueued = Math.max(mostQueued, p.stats.queued)
    return await a
  }))
  return { answers, mostQueued }
}

t.test('behavior: workers and the calling thread give verifySignature\'s answers, hostile input included; the queue stays within maxQueued (backpressure)', async t => {
  const cs = cases(200)
  const want = expected(cs)
  t.equal(want.filter(Boolean).length, 201, 'the valid ones and the empty message')
  const pooled = await verifyAll(pool, cs)
  t.same(pooled.answers, want, 'two workers')
  t.ok(pooled.mostQueued <= 64, `at most 64 queued (saw ${pooled.mostQueued})`)
  t.equal(pool.stats.queued, 0)
  const inline = new VerifyPool({ workers: 0 })
  t.same((await verifyAll(inline, cs)).answers, want, 'calling thread')
  t.equal(inline.stats.inline, true)
})

t.test('behavior: thousands of callers waiting for room are each answered, with their own answer, within maxQueued', async t => {
  // More waiters than the room queue's compaction step (1024), so it compacts several times.
  const [good, bad] = cases(1) as [Case, Case]
  const cs = Array.from({ length: 2500 }, (_, i) => (i % 2 === 0 ? good : bad))
  const pooled = await verifyAll(pool, cs)
  t.same(pooled.answers, cs.map((_, i) => i % 2 === 0), 'valid, invalid, valid, … in the order asked')
  t.ok(pooled.mostQueued <= 64, `at most 64 queued (saw ${pooled.mostQueued})`)
  t.equal(pool.stats.queued, 0)
})

t.test('attack: a worker killed with batches in flight is replaced; every request is answered, none lost', async t => {
  const cs = cases(300)
  const answers = cs.map(async c => await pool.verify(c.signature, c.message, c.publicKey))
  // Let the batches reach the workers, then kill one of them.
  await new Promise(resolve => setImmediate(resolve))
  await pool.threads[0]?.terminate()
  t.same(await Promise.all(answers), expected(cs))
  t.ok(pool.stats.restarts >= 1, 'the worker was replaced')
  t.equal(pool.stats.inline, false, 'still on workers')
  t.ok(losses.length >= 1 && losses.every(l => !l.inline))
  // The replacement works.
  const after = cases(20)
  t.same((await verifyAll(pool, after)).answers, expected(after))
})

t.test('behavior: a trickle is verified on the calling thread; the workers start once startAtQueued signatures wait at once', async t => {
  const pool = new VerifyPool({ workers: 1, startAtQueued: 16 })
  t.teardown(async () => await pool.close())
  const few = cases(2)
  t.same(await Promise.all(few.map(async c => await pool.verify(c.signature, c.message, c.publicKey))), expected(few))
  t.equal(pool.stats.started, false, '11 at once: no worker')
  const many = cases(10)
  t.same(await Promise.all(many.map(async c => await pool.verify(c.signature, c.message, c.publicKey))), expected(many))
  t.equal(pool.stats.started, true, '35 at once: workers started')
})

t.test('behavior: close() answers what is still queued and later calls verify inline', async t => {
  const pool = new VerifyPool({ workers: 1, batchMax: 1000, startAtQueued: 0 })
  const cs = cases(50)
  const answers = cs.map(async c => await pool.verify(c.signature, c.message, c.publicKey))
  await pool.close()
  t.same(await Promise.all(answers), expected(cs))
  const c = cases(1)[0] as Case
  t.equal(await pool.verify(c.signature, c.message, c.publicKey), true)
})

t.test('error: bad sizes are refused', async t => {
  t.throws(() => new VerifyPool({ workers: -1 }), RangeError)
  t.throws(() => new VerifyPool({ workers: 0, maxQueued: 0 }), RangeError)
  t.throws(() => new VerifyPool({ workers: 0, batchMax: 1.5 }), RangeError)
})
