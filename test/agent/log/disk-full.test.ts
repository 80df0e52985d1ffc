// A real full disk under a process that holds the record log: a tmpfs of 4 MiB filled by another
// file, freed, filled again, the process SIGKILLed and the log reopened on a nearly full disk.
// Every append that resolved must be there (fail-open: there, or declared by a signed gap record).
import t from 'tap'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { RecordLog } from '../../../agent/log/index.js'
import { createSigner, fixedKey, toHex, verifyChain, type SignedRecord } from '../../../protocol/index.js'
import { fill, freeBytes, mountTmpfs, startLogChild, unmount } from '../../helpers/tiny-disk.js'

const DISK_BYTES = 4 * 1024 * 1024
const WRITE_BUFFER_BYTES = 64 * 1024
const RESERVE_BYTES = 1024 * 1024
const signer = createSigner(new Uint8Array(32).fill(7))

/** Every resolved append is stored with its hash, or (fail-open) lies in a gap a stored gap record declares. */
export function lostRecords (resolved: Map<number, string>, stored: SignedRecord[]): number[] {
  const bySeq = new Map(stored.map(r => [r.record.seq, toHex(r.hash)]))
  const gaps = stored.flatMap(r => r.record.body.kind === 'gap' ? [[r.record.body.firstSeq, r.record.body.lastSeq] as const] : [])
  const lost: number[] = []
  for (const [seq, hash] of resolved) {
    if (bySeq.get(seq) === hash) continue
    if (!bySeq.has(seq) && gaps.some(([a, b]) => a <= seq && seq <= b)) continue
    lost.push(seq)
  }
  return lost
}

for (const mode of ['fail-closed', 'fail-open'] as const) {
  const disk = mountTmpfs(DISK_BYTES)
  t.test(`behavior: ${mode}: fill, free, SIGKILL, restart on a nearly full disk: no resolved append lost`, { skip: 'skip' in disk ? disk.skip : false }, async t => {
    const mnt = (disk as { dir: string }).dir
    t.teardown(() => { unmount(mnt) })
    const dir = join(mnt, 'log')
    const filler = join(mnt, 'filler')
    const child = startLogChild(dir, mode, RESERVE_BYTES, WRITE_BUFFER_BYTES)
    t.teardown(child.kill)
    await child.waitResolved(300)
    const beforeFull = child.resolved.size
    // The log gives its reserve back as soon as it meets the full disk, so a statfs after the fill
    // can see free space again (CI did): the fill's own ENOSPC is the witness that the disk was full.
    t.equal(fill(filler), 'full', 'the disk is full')
    // Keep appending on the full disk: fail-closed refuses, fail-open declares and goes on.
    await child.waitLines(2000)
    if (mode === 'fail-closed') {
      t.ok((child.errors.get('LOG_DISK_FULL') ?? 0) > 0, `refused with LOG_DISK_FULL (${JSON.stringify([...child.errors])})`)
    } else {
      t.equal(child.errors.size, 0, `no append failed (${JSON.stringify([...child.errors])})`)
      t.ok(child.resolved.size > beforeFull + 500, 'appends went on resolving on the full disk')
    }
    t.ok(child.states.includes('disk-full'), 'the log knew the disk was full')
    rmSync(filler)
    const afterFree = child.resolved.size
    await child.waitResolved(300)
    t.ok(child.resolved.size >= afterFree + 300, 'appends resolve again once space is freed')
    t.equal(child.states.at(-1), 'open', 'the reserve is taken again')
    await child.kill()
    // Restart on a nearly full disk: less free than the reserve.
    fill(filler, 64 * 1024)
    const log = await RecordLog.open({ dir, deviceId: 'dev-full', signer, budgetMode: mode, reserveBytes: RESERVE_BYTES, writeBufferBytes: WRITE_BUFFER_BYTES })
    t.teardown(async () => await log.close())
    const stored = await log.range(0, Number.MAX_SAFE_INTEGER)
    t.same(lostRecords(child.resolved, stored), [], `all ${child.resolved.size} resolved appends are there`)
    const v = verifyChain(stored, { deviceId: 'dev-full', keyAt: fixedKey(signer.publicKey) })
    t.equal(v.failure, undefined, v.failure?.message ?? 'the chain verifies')
    const diskGaps = stored.filter(r => r.record.body.kind === 'gap' && r.record.body.reason.startsWith('disk full'))
    if (mode === 'fail-open') t.ok(diskGaps.length > 0, `fail-open wrote ${diskGaps.length} gap records on the full disk`)
    else t.equal(diskGaps.length, 0, 'fail-closed drops nothing')
    const next = await log.append(() => ({ kind: 'shutdown', reason: 'after restart' })).catch((e: { code?: string }) => e)
    t.ok('record' in next || next.code === 'LOG_DISK_FULL', `after the restart the log appends, or refuses for want of space (${'record' in next ? 'appended' : String(next.code)})`)
  })
}

const restartDisk = mountTmpfs(DISK_BYTES)
t.test('behavior: a restart on a disk with no free byte opens on the reserve (it used to fail with LOG_OPEN_FAILED)', { skip: 'skip' in restartDisk ? restartDisk.skip : false }, async t => {
  const mnt = (restartDisk as { dir: string }).dir
  t.teardown(() => { unmount(mnt) })
  const dir = join(mnt, 'log')
  const child = startLogChild(dir, 'fail-closed', RESERVE_BYTES, WRITE_BUFFER_BYTES)
  t.teardown(child.kill)
  // Killed with records in LevelDB's write-ahead log, which the next open must turn into a table.
  await child.waitResolved(600)
  await child.kill()
  fill(join(mnt, 'filler'))
  t.equal(freeBytes(mnt), 0, 'not one byte free')
  const log = await RecordLog.open({ dir, deviceId: 'dev-full', signer, reserveBytes: RESERVE_BYTES, writeBufferBytes: WRITE_BUFFER_BYTES })
  t.teardown(async () => await log.close())
  t.equal(log.stats().state, 'disk-full', 'open, on the reserve, and says the disk is full')
  t.same(lostRecords(child.resolved, await log.range(0, Number.MAX_SAFE_INTEGER)), [], `all ${child.resolved.size} resolved appends are there`)
  await t.rejects(log.append(() => ({ kind: 'shutdown', reason: 'x' })), { code: 'LOG_DISK_FULL' }, 'fail-closed refuses until space returns')
})
