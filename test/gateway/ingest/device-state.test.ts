import t from 'tap'
import { DeviceTable, WAITING_RECORD_OVERHEAD_BYTES, signedOf, waitingRecordOf } from '../../../gateway/ingest/device-state.js'
import { WarnLimiter } from '../../../gateway/ingest/warn-limiter.js'
import type { StoreOp } from '../../../gateway/store/index.js'
import { ChainBuilder, sampleBody } from '../../helpers/records.js'

function chain (id: string, n: number): ChainBuilder {
  const b = new ChainBuilder({ deviceId: id, seed: id })
  b.append(sampleBody('boot'))
  for (let i = 1; i < n; i++) b.appendInference()
  return b
}

t.test('behavior: waiting records are counted in bytes and refused at the first full budget: device records, device bytes, total bytes', async t => {
  const b = chain('cam', 8)
  const size = (b.records[1]?.envelope.byteLength ?? 0) + WAITING_RECORD_OVERHEAD_BYTES
  const table = new DeviceTable({ maxPendingPerDevice: 3, maxPendingBytesPerDevice: 2 * size, maxPendingBytesTotal: 3 * size })
  const d = table.getOrCreate('cam')
  const w = b.records.map(waitingRecordOf)
  t.match(table.park(d, w[1] as never, 0), { type: 'put' })
  t.match(table.park(d, w[2] as never, 0), { type: 'put' })
  t.equal(table.park(d, w[3] as never, 0), 'device-bytes', 'the device byte budget is full before its record count')
  t.equal(d.pendingBytes, 2 * size)
  const other = table.getOrCreate('cat')
  const o = chain('cat', 3).records.map(waitingRecordOf)
  t.match(table.park(other, o[1] as never, 0), { type: 'put' })
  t.equal(table.park(other, o[2] as never, 0), 'total-bytes', 'the total budget counts every device')
  t.equal(table.pendingBytes, table.pendingRecords * size, 'the total is the sum of envelopes and overheads')
  const ops: StoreOp[] = []
  table.unpark(d, 1, ops)
  t.same(ops.map(op => op.type), ['del'], 'taking a record out deletes its durable copy')
  t.equal(table.pendingBytes, 2 * size)
  t.equal(d.pendingBytes, size)
  const many = new DeviceTable({ maxPendingPerDevice: 1, maxPendingBytesPerDevice: 1e9, maxPendingBytesTotal: 1e9 })
  const m = many.getOrCreate('cam')
  many.park(m, w[1] as never, 0)
  t.equal(many.park(m, w[2] as never, 0), 'device-records')
})

t.test('behavior: a waiting record keeps only its envelope and decodes back to the record it was', async t => {
  const s = chain('cam', 2).records[1]
  if (s === undefined) throw new Error('no record')
  const w = waitingRecordOf(s)
  t.equal(w.heldBytes, s.envelope.byteLength + WAITING_RECORD_OVERHEAD_BYTES)
  t.same(signedOf(w, 'cam').hash, s.hash)
  t.throws(() => signedOf({ ...w, envelope: Uint8Array.of(1, 2, 3) }, 'cam'), { code: 'STORE_CORRUPT' })
})

t.test('behavior: an id only seen on a topic is provisional: not listed, forgotten when idle, kept once promoted', async t => {
  const table = new DeviceTable({ maxPendingPerDevice: 10, maxPendingBytesPerDevice: 1e6, maxPendingBytesTotal: 1e6 })
  const ghost = table.getOrCreate('ghost', true)
  const cam = table.getOrCreate('cam', true)
  t.same(table.knownIds(), [])
  t.equal(table.provisionalDevices, 2)
  ghost.running = true
  table.forgetIfProvisional(ghost)
  t.equal(table.get('ghost'), ghost, 'not while it has work')
  ghost.running = false
  table.forgetIfProvisional(ghost)
  t.equal(table.get('ghost'), undefined)
  t.ok(table.promote(cam))
  t.notOk(table.promote(cam), 'promoted once')
  table.forgetIfProvisional(cam)
  t.same(table.knownIds(), ['cam'])
  t.equal(table.knownCount, 1)
  t.equal(table.provisionalDevices, 0)
})

t.test('behavior: warnings beyond the rate are left out of the log and summarised', async t => {
  const lines: Array<[object, string | undefined]> = []
  const log = (fields: object, message?: string): void => { lines.push([fields, message]) }
  let now = 0
  const w = new WarnLimiter({ debug: log, info: log, warn: log, error: log }, () => now, 3)
  for (let i = 0; i < 10; i++) w.warn({ i }, 'quarantined')
  t.equal(lines.length, 3)
  now = 1000
  w.warn({ i: 10 }, 'quarantined')
  t.match(lines[3], [{ suppressed: 7 }])
  t.match(lines[4], [{ i: 10 }, 'quarantined'])
})
