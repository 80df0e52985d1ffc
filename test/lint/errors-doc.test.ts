import t from 'tap'
import { readFile } from 'node:fs/promises'
import { collectErrorCodes, renderErrorsDoc } from '../../scripts/gen-errors-doc.js'

t.test('behavior: docs/ERRORS.md lists every error code of the code, each with its meaning', async t => {
  const doc = await readFile(new URL('../../docs/ERRORS.md', import.meta.url), 'utf8')
  t.equal(doc, renderErrorsDoc(), 'docs/ERRORS.md is current (npx tsx scripts/gen-errors-doc.ts)')
  const undocumented = collectErrorCodes().flatMap(u => u.codes.filter(c => c.meaning === '').map(c => `${u.name}.${c.code}`))
  t.same(undocumented, [], 'every code has a JSDoc line saying what it means')
})

t.test('behavior: no error code is defined in two unions (one code, one meaning, one class)', async t => {
  const owners = new Map<string, string[]>()
  for (const u of collectErrorCodes()) {
    for (const c of u.codes) owners.set(c.code, [...(owners.get(c.code) ?? []), `${u.name} (${u.file})`])
  }
  const shared = [...owners].filter(([, unions]) => unions.length > 1).map(([code, unions]) => `${code}: ${unions.join(', ')}`)
  t.same(shared, [], 'a code shared by several parts lives once, in common/ or protocol/')
})
