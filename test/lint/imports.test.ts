import t from 'tap'
import { findViolations } from '../../scripts/check-imports.js'

t.test('behavior: parts import only what the layering allows', async t => {
  t.same(findViolations(), [])
})
