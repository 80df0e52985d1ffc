// The test helper that bounds child processes (test/helpers/semaphore.ts): it must never run more
// than its slots, never lose a slot to a failing task, and start waiters in order.
import t from 'tap'
import { Semaphore } from '../helpers/semaphore.js'

t.test('behavior: at most `slots` tasks run at once, in order, and a failing task gives its slot back', async t => {
  const s = new Semaphore(3)
  let running = 0
  let peak = 0
  const started: number[] = []
  const results = await Promise.allSettled(Array.from({ length: 10 }, async (_, i) => await s.run(async () => {
    started.push(i)
    running++
    peak = Math.max(peak, running)
    await new Promise(resolve => setTimeout(resolve, 5))
    running--
    if (i % 4 === 0) throw new Error(`task ${i} fails`)
    return i
  })))
  t.equal(peak, 3, 'never more than 3 at once')
  t.same(started, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'waiters start in order')
  t.same(results.map(r => r.status === 'fulfilled' ? r.value : 'failed'), ['failed', 1, 2, 3, 'failed', 5, 6, 7, 'failed', 9])
  t.equal(await s.run(async () => 'free'), 'free', 'every slot came back')
})

t.test('error: slots must be a positive integer', async t => {
  for (const bad of [0, -1, 1.5, Number.NaN]) t.throws(() => new Semaphore(bad), RangeError, String(bad))
})
