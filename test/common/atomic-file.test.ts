// The atomic writer every part shares: the new content whole, the mode asked for, and no temp
// file left behind, also when the rename fails.
import t from 'tap'
import { mkdir, readFile, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from '../../common/index.js'
import { writeFileAtomic as fromAgentKeys } from '../../agent/keys/index.js'
import { makeTempDir } from '../helpers/tmp.js'

t.test('behavior: replaces the file with the new content, mode 0600 by default, creating the folder 0700', async t => {
  const dir = await makeTempDir(t)
  const path = join(dir, 'sub', 'state.json')
  await writeFileAtomic(path, 'one')
  await writeFileAtomic(path, new Uint8Array([0x74, 0x77, 0x6f]))
  t.equal(await readFile(path, 'utf8'), 'two')
  t.equal((await stat(path)).mode & 0o777, 0o600)
  t.equal((await stat(join(dir, 'sub'))).mode & 0o777, 0o700)
  await writeFileAtomic(path, 'three', { mode: 0o644 })
  t.equal((await stat(path)).mode & 0o777, 0o644)
  t.same(await readdir(join(dir, 'sub')), ['state.json'], 'no temp file left')
  t.equal(fromAgentKeys, writeFileAtomic, 'agent/keys re-exports the same writer')
})

t.test('error: a failed rename throws the fs error and leaves no temp file', async t => {
  const dir = await makeTempDir(t)
  await mkdir(join(dir, 'taken'))
  await mkdir(join(dir, 'taken', 'x'))
  await t.rejects(writeFileAtomic(join(dir, 'taken'), 'data'), { code: /EISDIR|ENOTEMPTY|EEXIST/ })
  t.same((await readdir(dir)).sort(), ['taken'])
})
