// The shared backoff (common/backoff.ts): doubles from the first pause up to the cap, and its two
// jitter shapes stay inside their bounds, so retries neither hammer nor stall.
import t from 'tap'
import { backoffDelayMs } from '../../common/backoff.js'

t.test('the pause doubles per attempt up to the cap (no jitter spread)', async t => {
  const o = { initialMs: 100, maxMs: 1000, jitter: 0 }
  t.same([0, 1, 2, 3, 4, 50, 10_000].map(a => backoffDelayMs(a, o)), [100, 200, 400, 800, 1000, 1000, 1000])
})

t.test('proportional jitter stays within ±spread of the schedule', async t => {
  const o = { initialMs: 1000, maxMs: 30_000, jitter: 0.2 }
  t.equal(backoffDelayMs(2, o, () => 0), 3200)
  t.equal(backoffDelayMs(2, o, () => 0.999999), 4800)
})

t.test('full jitter draws from [initial/2, initial/2 + cap]', async t => {
  const o = { initialMs: 500, maxMs: 30_000, jitter: 'full' as const }
  t.equal(backoffDelayMs(0, o, () => 0), 250)
  t.equal(backoffDelayMs(0, o, () => 1), 750)
  t.equal(backoffDelayMs(40, o, () => 1), 30_250)
})

t.test('a negative attempt counts as the first', async t => {
  t.equal(backoffDelayMs(-1, { initialMs: 100, maxMs: 1000, jitter: 0 }), 100)
})
