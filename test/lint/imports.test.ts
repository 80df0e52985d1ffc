import t from 'tap'
import { findCycles, findViolations } from '../../scripts/check-imports.js'

t.test('behavior: parts import only what the layering allows', async t => {
  t.same(findViolations(), [])
})

t.test('behavior: no circle of static imports (a dynamic import() may point back: lazy loading)', async t => {
  t.same(findCycles(), [])
})
