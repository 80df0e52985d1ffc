import t from 'tap'
import { readFile } from 'node:fs/promises'
import { collectErrorCodes, renderErrorsDoc } from '../../scripts/gen-errors-doc.js'

t.test('behavior: docs/ERRORS.md lists every error code of the code, each with its meaning', async t => {
  const doc = await readFile(new URL('../../docs/ERRORS.md', import.meta.url), 'utf8')
  t.equal(doc, renderErrorsDoc(), 'docs/ERRORS.md is current (npx tsx scripts/gen-errors-doc.ts)')
  const undocumented = collectErrorCodes().flatMap(u => u.codes.filter(c => c.meaning === '').map(c => `${u.name}.${c.code}`))
  t.same(undocumented, [], 'every code has a JSDoc line saying what it means')
})
