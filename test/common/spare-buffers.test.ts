// The pool of spare buffers (common/spare-buffers.ts) that the agent's snapshots and capture ring
// reuse: bounded per length and in bytes across lengths, so a flood of ever other tensor sizes
// cannot make it hold more, and a buffer given back is the one taken next.
import t from 'tap'
import fc from 'fast-check'
import { SpareBuffers } from '../../common/spare-buffers.js'

const buf = (n: number): Uint8Array => new Uint8Array(n)

t.test('behavior: a buffer given is the one taken for its length, once', async t => {
  const pool = new SpareBuffers<Uint8Array>(2, 1024)
  const a = buf(100)
  t.ok(pool.give(a))
  t.equal(pool.heldBytes, 100)
  t.ok(pool.has(100))
  t.equal(pool.heldBytes, 100, 'has takes nothing')
  t.notOk(pool.has(99))
  t.equal(pool.take(99), undefined, 'no spare of another length')
  t.equal(pool.take(100), a)
  t.notOk(pool.has(100))
  t.equal(pool.take(100), undefined, 'taken once')
  t.equal(pool.heldBytes, 0)
})

t.test('behavior: at most perLength spares of one length; a buffer over maxBytes is never kept', async t => {
  const pool = new SpareBuffers<Uint8Array>(2, 1024)
  t.ok(pool.give(buf(10)))
  t.ok(pool.give(buf(10)))
  t.notOk(pool.give(buf(10)), 'the third of a length is refused')
  t.notOk(pool.give(buf(1025)), 'larger than the whole bound')
  t.equal(pool.heldBytes, 20)
})

t.test('attack: ever other lengths keep the pool within maxBytes, the least recently used lengths dropped first', async t => {
  const pool = new SpareBuffers<Uint8Array>(4, 1000)
  for (let n = 100; n < 400; n++) {
    pool.give(buf(n))
    t.ok(pool.heldBytes <= 1000, `after length ${n}: ${pool.heldBytes} bytes held`)
  }
  t.type(pool.take(399), Uint8Array, 'the latest length is kept')
  t.equal(pool.take(100), undefined, 'the first lengths went')
  // Taking a length makes it the most recent: it survives the next evictions.
  const p = new SpareBuffers<Uint8Array>(4, 300)
  p.give(buf(100))
  p.give(buf(100))
  p.give(buf(90))
  t.type(p.take(100), Uint8Array)
  p.give(buf(150))
  t.type(p.take(100), Uint8Array, 'the length taken last stayed')
  t.equal(p.take(90), undefined, 'the older one made room')
})

t.test('property: whatever the sequence, held bytes match what can be taken and stay within the bounds', async () => {
  fc.assert(fc.property(
    fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 2000 }),
    fc.array(fc.record({ give: fc.boolean(), n: fc.integer({ min: 1, max: 600 }) }), { maxLength: 200 }),
    (perLength, maxBytes, steps) => {
      const pool = new SpareBuffers<Uint8Array>(perLength, maxBytes)
      const counts = new Map<number, number>()
      for (const s of steps) {
        if (s.give) pool.give(buf(s.n))
        else pool.take(s.n)
        if (pool.heldBytes > maxBytes || pool.heldBytes < 0) return false
      }
      // Drain: every byte counted is a buffer that comes out, none of a length beyond its share.
      let drained = 0
      for (let n = 1; n <= 600; n++) {
        for (let b = pool.take(n); b !== undefined; b = pool.take(n)) {
          if (b.byteLength !== n) return false
          counts.set(n, (counts.get(n) ?? 0) + 1)
          drained += n
        }
      }
      return pool.heldBytes === 0 && [...counts.values()].every(c => c <= perLength) && drained <= maxBytes
    }), { numRuns: 300 })
})

t.test('input: bounds must be non-negative integers', async t => {
  t.throws(() => new SpareBuffers(-1, 10), RangeError)
  t.throws(() => new SpareBuffers(1, 1.5), RangeError)
  t.throws(() => new SpareBuffers(1, Number.NaN), RangeError)
})
