// The shared LevelDB handle (common/level.ts): a failed write stops the handle for good, because
// LevelDB would take later writes and a crash could keep them while losing the failed one.
import t from 'tap'
import { join } from 'node:path'
import { FatalWriteLevel, openLevel } from '../../common/level.js'
import { makeTempDir } from '../helpers/tmp.js'

t.test('error: after one failed write every later write throws that failure and writes nothing', async t => {
  const dir = await makeTempDir(t)
  const db = await openLevel<string>(join(dir, 'db'), { keyEncoding: 'utf8', valueEncoding: 'utf8' }, e => e as Error)
  t.teardown(async () => await db.close())
  const level = new FatalWriteLevel(db, cause => Object.assign(new Error('write failed'), { code: 'TEST_WRITE_FAILED', cause }))
  await level.batch([{ type: 'put', key: 'a', value: '1' }], { sync: false })
  const real = db.batch.bind(db)
  let calls = 0
  // One injected failure (as ENOSPC would be), then the database works again.
  ;(db as unknown as { batch: unknown }).batch = (...args: unknown[]) => {
    calls++
    if (calls === 1) return Promise.reject(new Error('ENOSPC'))
    return (real as (...a: unknown[]) => unknown)(...args)
  }
  await t.rejects(level.batch([{ type: 'put', key: 'b', value: '2' }], { sync: false }), { code: 'TEST_WRITE_FAILED' })
  await t.rejects(level.batch([{ type: 'put', key: 'c', value: '3' }], { sync: false }), { code: 'TEST_WRITE_FAILED' }, 'the next write is refused')
  await t.rejects(level.chained(b => { b.put('d', '4') }, { sync: false }), { code: 'TEST_WRITE_FAILED' }, 'in both forms')
  t.equal(calls, 1, 'the database was not asked again')
  t.equal(await db.get('c'), undefined)
  t.equal(await db.get('a'), '1', 'what was written before stays readable')
  t.match(level.failed, { code: 'TEST_WRITE_FAILED' })
})

t.test('error: opening a folder another handle holds says it is locked', async t => {
  const dir = await makeTempDir(t)
  const first = await openLevel<string>(join(dir, 'db'), { keyEncoding: 'utf8', valueEncoding: 'utf8' }, e => e as Error)
  t.teardown(async () => await first.close())
  const refused = await openLevel<string>(join(dir, 'db'), { keyEncoding: 'utf8', valueEncoding: 'utf8' }, (cause, locked) => Object.assign(new Error('no'), { code: locked ? 'LOCKED' : 'OPEN_FAILED', cause })).then(() => undefined, (e: unknown) => e)
  t.match(refused, { code: 'LOCKED' })
})
