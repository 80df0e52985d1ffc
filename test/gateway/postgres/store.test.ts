/**
 * The store contract run against both stores (LevelDB and PostgreSQL), then what only the
 * PostgreSQL store does: migrations, duplicates dying on (device, seq), writes that wait out a
 * database restart, and fencing of sequencer writes. One cluster for the whole file.
 */
import t from 'tap'
import { join } from 'node:path'
import pg from 'pg'
import { GatewayError, resolveGatewayOptions } from '../../../gateway/index.js'
import {
  LevelGatewayStore, Lease, PostgresGatewayStore, checkFence, migrate, storeKeys, storeOps, encodeLeaf, encodeBatch, type Fence, type GatewayStore, type RecordConflict, type StoreOp
} from '../../../gateway/store/index.js'
import { startPostgres, type Postgres } from '../../helpers/postgres.js'
import { makeTempDir } from '../../helpers/tmp.js'

const h = (n: number): Uint8Array => new Uint8Array(32).fill(n)
let pgServer: Postgres
let dbCount = 0

t.before(async () => { pgServer = await startPostgres() })
t.teardown(async () => { await pgServer?.close() })

async function freshDb (): Promise<string> {
  return await pgServer.createDatabase(`t${++dbCount}`)
}

type Opener = (t: { teardown: (fn: () => unknown) => void }) => Promise<GatewayStore>
const stores: Array<[string, Opener]> = [
  ['leveldb', async (t) => await LevelGatewayStore.open({ dir: join(await makeTempDir(t), 's') })],
  ['postgres', async () => await PostgresGatewayStore.open({ url: await freshDb(), node: 'gw-a' })]
]

for (const [kind, open] of stores) {
  t.test(`behavior (${kind}): records, devices, waiting records, leaves, batches and meta read back as written`, async t => {
    const store = await open(t)
    t.teardown(async () => await store.close())
    const tip = { seq: 1, hash: h(1), boot: 0 }
    store.enqueue([
      storeOps.putRecord('dev-a', 0, { batchId: 1, index: 0, envelope: Uint8Array.of(1, 2) }),
      storeOps.putRecord('dev-a', 1, { batchId: 1, index: 1, envelope: Uint8Array.of(3) }),
      storeOps.putPending('dev-a', 5, Uint8Array.of(5)),
      storeOps.putPending('dev-a', 6, Uint8Array.of(6)),
      storeOps.putDeviceState({ deviceId: 'dev-a', tip, lastSeenMs: 9, stored: 2, quarantined: 0, anchoredSeq: -1 }),
      { type: 'put', key: storeKeys.leaf(1, 0), value: encodeLeaf({ deviceId: 'dev-a', seq: 0, leafHash: h(2), timeMs: 5, afterSeq: -1 }) },
      { type: 'put', key: storeKeys.leaf(1, 1), value: encodeLeaf({ deviceId: 'dev-a', seq: 1, leafHash: h(3), timeMs: 6, afterSeq: 0 }) },
      { type: 'put', key: storeKeys.batch(1), value: encodeBatch({ id: 1, size: 2, root: h(4), firstRecordTimeMs: 5, lastRecordTimeMs: 6, checkpoint: 'c\n', metadataHash: h(5), sealedAtMs: 7 }) },
      store.putInt(storeKeys.openBatch, 2)
    ])
    store.enqueue([storeOps.delPending('dev-a', 5)])
    await store.flush()
    t.same(await store.getRecord('dev-a', 1), { batchId: 1, index: 1, envelope: Uint8Array.of(3) })
    t.equal(await store.getRecord('dev-a', 2), undefined)
    const devices = []
    for await (const d of store.devices()) devices.push(d)
    t.same(devices, [{ deviceId: 'dev-a', tip, lastSeenMs: 9, stored: 2, quarantined: 0, anchoredSeq: -1 }])
    const pending = []
    for await (const p of store.pending()) pending.push(p)
    t.same(pending, [{ deviceId: 'dev-a', seq: 6, envelope: Uint8Array.of(6) }], 'the delete after the put wins')
    t.same((await store.leaves(1)).map(l => l.seq), [0, 1])
    t.equal((await store.getBatch(1))?.size, 2)
    const batches = []
    for await (const b of store.batches()) batches.push(b.id)
    t.same(batches, [1])
    t.equal(await store.getInt(storeKeys.openBatch), 2)
    t.same((await store.recordsFrom('dev-a', 1, 10)).map(r => r.seq), [1])
    const seqs = []
    for await (const s of store.recordSeqs('dev-a')) seqs.push(s)
    t.same(seqs, [0, 1])
  })

  t.test(`behavior (${kind}): quarantine pages newest first and prunes oldest first`, async t => {
    const store = await open(t)
    t.teardown(async () => await store.close())
    for (let i = 0; i < 5; i++) {
      store.enqueue([store.quarantineOp({ timeMs: 1000 + i, reason: 'bad-signature', topic: 't', deviceId: 'dev-a', seq: i, detail: `n${i}`, raw: Uint8Array.of(i), rawBytes: 1 })])
    }
    await store.flush()
    t.equal(await store.countQuarantined(), 5)
    const p1 = await store.quarantinePage(2, 1 << 20)
    t.same(p1.items.map(q => q.seq), [4, 3])
    t.type(p1.next, 'string')
    const p2 = await store.quarantinePage(10, 1 << 20, p1.next ?? undefined)
    t.same(p2.items.map(q => q.seq), [2, 1, 0])
    t.equal(p2.next, null)
    t.equal(await store.pruneQuarantined(2), 2)
    await store.flush()
    t.same((await store.quarantined(10)).map(q => q.seq), [4, 3, 2])
  })

  t.test(`behavior (${kind}): callbacks run only once the write is durable, in order`, async t => {
    const store = await open(t)
    t.teardown(async () => await store.close())
    const done: number[] = []
    for (let i = 0; i < 200; i++) store.enqueue([{ type: 'put', key: `x/${i}`, value: Uint8Array.of(i & 0xff) }], () => done.push(i))
    t.equal(done.length, 0)
    await store.flush()
    t.same(done, Array.from({ length: 200 }, (_, i) => i))
    t.ok(store.writes <= 3, `${store.writes} writes`)
  })
}

t.test('behavior: migrations are versioned and idempotent, also when processes start at once', async t => {
  const url = await freshDb()
  const clients = await Promise.all([0, 1, 2].map(async () => { const c = new pg.Client({ connectionString: url }); await c.connect(); return c }))
  t.teardown(async () => { for (const c of clients) await c.end() })
  const applied = await Promise.all(clients.map(async c => await migrate(c)))
  t.same(applied.flat(), [1, 2], 'one process applied every version, the others found them applied')
  t.same(await migrate(clients[0] as pg.Client), [], 'nothing left to apply')
  const rows = (await (clients[0] as pg.Client).query('SELECT version FROM gw_migrations ORDER BY version')).rows
  t.same(rows, [{ version: 1 }, { version: 2 }])
})

t.test('error: a database newer than the gateway is STORE_MIGRATION_FAILED', async t => {
  const url = await freshDb()
  const s = await PostgresGatewayStore.open({ url, node: 'gw-a' })
  await s.pool.query("INSERT INTO gw_migrations (version, name) VALUES (99, 'from the future')")
  await s.close()
  const e = await PostgresGatewayStore.open({ url, node: 'gw-a' }).catch((e: unknown) => e)
  t.ok(e instanceof GatewayError)
  t.equal((e as GatewayError).code, 'STORE_MIGRATION_FAILED')
})

t.test('error: no database at the URL is STORE_OPEN_FAILED', async t => {
  const e = await PostgresGatewayStore.open({ url: `postgres://postgres@127.0.0.1:${pgServer.port}/missing_db`, node: 'gw-a' }).catch((e: unknown) => e)
  t.ok(e instanceof GatewayError)
  t.equal((e as GatewayError).code, 'STORE_OPEN_FAILED')
})

t.test('behavior: a record stored by two processes is stored once; the first one stays', async t => {
  const url = await freshDb()
  const a = await PostgresGatewayStore.open({ url, node: 'gw-a' })
  const b = await PostgresGatewayStore.open({ url, node: 'gw-b' })
  t.teardown(async () => { await a.close(); await b.close() })
  a.enqueue([storeOps.putRecord('dev-a', 0, { batchId: 0, index: 0, envelope: Uint8Array.of(1) })])
  b.enqueue([storeOps.putRecord('dev-a', 0, { batchId: 0, index: 0, envelope: Uint8Array.of(1) }), storeOps.putRecord('dev-a', 1, { batchId: 0, index: 0, envelope: Uint8Array.of(2) })])
  await Promise.all([a.flush(), b.flush()])
  const n = await a.pool.query('SELECT device_id, seq, batch_id FROM gw_records ORDER BY seq')
  t.same(n.rows, [{ device_id: 'dev-a', seq: '0', batch_id: null }, { device_id: 'dev-a', seq: '1', batch_id: null }], 'unbatched, once each')
  // A leaf for a record already in a batch cannot be written again: (device, seq) is unique among leaves.
  await a.pool.query("INSERT INTO gw_leaves VALUES (1, 0, 'dev-a', 0, '\\x00', 0, -1)")
  const dup = await a.pool.query("INSERT INTO gw_leaves VALUES (2, 0, 'dev-a', 0, '\\x00', 0, -1)").catch((e: unknown) => e)
  t.equal((dup as { code?: string }).code, '23505', 'unique violation')
})

t.test('behavior: a different record at a stored (device, seq) is not written, is reported, and takes what linked after it along', async t => {
  const url = await freshDb()
  const a = await PostgresGatewayStore.open({ url, node: 'gw-a' })
  const b = await PostgresGatewayStore.open({ url, node: 'gw-b' })
  t.teardown(async () => { await a.close(); await b.close() })
  a.enqueue([storeOps.putRecord('dev-a', 0, { batchId: 0, index: 0, envelope: Uint8Array.of(1) })])
  await a.flush()
  const reported: RecordConflict[] = []
  b.onRecordConflict = (c) => { reported.push(...c) }
  let committed = false
  const state = storeOps.putDeviceState({ deviceId: 'dev-a', tip: { seq: 1, hash: h(9), boot: 0 }, lastSeenMs: 1, stored: 2, quarantined: 0, anchoredSeq: -1 })
  b.enqueue([
    storeOps.putRecord('dev-a', 0, { batchId: 0, index: 0, envelope: Uint8Array.of(9) }),
    storeOps.putRecord('dev-a', 1, { batchId: 0, index: 0, envelope: Uint8Array.of(10) }),
    state,
    storeOps.putRecord('dev-b', 0, { batchId: 0, index: 0, envelope: Uint8Array.of(3) })
  ], () => { committed = true })
  await b.flush()
  t.same(reported, [{ deviceId: 'dev-a', seq: 0, envelope: Uint8Array.of(9), storedEnvelope: Uint8Array.of(1) }], 'the loser is reported with what is stored')
  t.same((await a.getRecord('dev-a', 0))?.envelope, Uint8Array.of(1), 'the first record stays')
  t.equal(await a.getRecord('dev-a', 1), undefined, 'what linked after the loser is not written')
  t.equal(await b.getDeviceState('dev-a'), undefined, 'nor the device state naming the loser as tip')
  t.same((await a.getRecord('dev-b', 0))?.envelope, Uint8Array.of(3), 'other devices\' records in the write commit')
  t.ok(committed, 'the write completes')
  b.enqueue([storeOps.putRecord('dev-a', 0, { batchId: 0, index: 0, envelope: Uint8Array.of(1) })])
  await b.flush()
  t.equal(reported.length, 1, 'the same bytes again are a resend, not a conflict')
})

t.test('behavior: writes wait out a database restart and their callbacks run once committed', async t => {
  const url = await freshDb()
  const outages: Array<string | undefined> = []
  const store = await PostgresGatewayStore.open({ url, node: 'gw-a', retryMaxMs: 200, onOutage: (e) => outages.push(e?.code) })
  t.teardown(async () => await store.close())
  store.enqueue([storeOps.putRecord('dev-a', 0, { batchId: 0, index: 0, envelope: Uint8Array.of(1) })])
  await store.flush()
  await pgServer.stop()
  let committed = false
  store.enqueue([storeOps.putRecord('dev-a', 1, { batchId: 0, index: 0, envelope: Uint8Array.of(2) })], () => { committed = true })
  const readError = await store.getRecord('dev-a', 0).catch((e: unknown) => e)
  t.equal((readError as GatewayError).code, 'STORE_UNAVAILABLE', 'a read says the database is unavailable')
  // Wait until the writer has seen the outage (it reports it once) before bringing the server back.
  while (outages.length === 0) await new Promise(resolve => setTimeout(resolve, 20))
  t.equal(committed, false, 'no callback while nothing is committed')
  t.equal(store.isOpen, false, 'health says the store is not usable')
  await pgServer.restart()
  await store.flush()
  t.equal(committed, true)
  t.same(outages, ['STORE_UNAVAILABLE', undefined], 'outage reported once, and its end')
  t.same((await store.getRecord('dev-a', 1))?.envelope, Uint8Array.of(2))
})

t.test('behavior: a write PostgreSQL aborts to break a deadlock with another process is run again, not fatal', async t => {
  // Seen in the three-process chaos test: "deadlock detected" made a gateway stop. Here another
  // session holds the device's row, the store's transaction takes the waiting record's row and
  // waits for the device's, then the other session asks for that record's row: a cycle, which the
  // store's backend (deadlock_timeout 1 s, the other's 20 s) breaks by aborting the store's write.
  const url = await freshDb()
  const outages: Array<string | undefined> = []
  const store = await PostgresGatewayStore.open({ url, node: 'gw-a', onOutage: (e) => outages.push(e?.code) })
  t.teardown(async () => await store.close())
  const state = (stored: number): StoreOp => storeOps.putDeviceState({ deviceId: 'dev-a', tip: { seq: 1, hash: h(1), boot: 0 }, lastSeenMs: 9, stored, quarantined: 0, anchoredSeq: -1 })
  store.enqueue([storeOps.putPending('dev-a', 5, Uint8Array.of(1)), state(1)])
  await store.flush()
  const other = new pg.Client({ connectionString: url })
  await other.connect()
  // Teardowns run last added first: should the test fail while this session holds a lock, it
  // ends before the store's close, which then does not wait for that lock.
  t.teardown(async () => await other.end())
  await other.query("SET deadlock_timeout = '20s'")
  await other.query('BEGIN')
  await other.query("SELECT 1 FROM gw_devices WHERE node = 'gw-a' AND device_id = 'dev-a' FOR UPDATE")
  let committed = false
  store.enqueue([storeOps.putPending('dev-a', 5, Uint8Array.of(2)), state(2)], () => { committed = true })
  const flushed = store.flush()
  // The store's transaction holds the record's row and waits for the device's.
  for (let i = 0; ; i++) {
    const waiting = await other.query("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database() AND pid <> pg_backend_pid()")
    if (waiting.rows.length > 0) break
    if (i > 500) throw new Error('the store never waited for the device row')
    await new Promise(resolve => setTimeout(resolve, 2))
  }
  await other.query("SELECT 1 FROM gw_pending WHERE node = 'gw-a' AND device_id = 'dev-a' AND seq = 5 FOR UPDATE")
  await other.query('COMMIT')
  await flushed
  t.equal(committed, true, 'the write committed, on its second run')
  t.equal(store.isOpen, true, 'the store goes on')
  t.same(outages, [], 'no outage: the database was there all along')
  const pending = []
  for await (const p of store.pending()) pending.push(p)
  t.same(pending, [{ deviceId: 'dev-a', seq: 5, envelope: Uint8Array.of(2) }])
  const devices = []
  for await (const d of store.devices()) devices.push(d.stored)
  t.same(devices, [2])
})

t.test('behavior: a write PostgreSQL aborts as a deadlock every time fails for good after 50 more tries, not forever, and says why', async t => {
  // Real aborts with the deadlock code (a trigger raises SQLSTATE 40P01 on every row it sees):
  // the retry of a deadlock victim is bounded, and what ends it is the fatal write failure the
  // gateway stops on, not an outage it would wait out.
  const url = await freshDb()
  const fatal: GatewayError[] = []
  const outages: Array<string | undefined> = []
  const store = await PostgresGatewayStore.open({ url, node: 'gw-a', onFatal: (e) => fatal.push(e), onOutage: (e) => outages.push(e?.code) })
  t.teardown(async () => await store.close())
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  t.teardown(async () => await admin.end())
  await admin.query(`CREATE SEQUENCE tries;
    CREATE FUNCTION deadlock_always () RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM nextval('tries'); RAISE EXCEPTION 'deadlock detected (injected)' USING ERRCODE = '40P01'; END $$;
    CREATE TRIGGER deadlock_always BEFORE INSERT OR UPDATE ON gw_pending FOR EACH ROW EXECUTE FUNCTION deadlock_always ()`)
  let committed = false
  store.enqueue([storeOps.putPending('dev-a', 5, Uint8Array.of(1))], () => { committed = true })
  const e = await store.flush().catch((e: unknown) => e)
  t.ok(e instanceof GatewayError)
  t.equal((e as GatewayError).code, 'STORE_WRITE_FAILED')
  t.match((e as GatewayError).message, /deadlock detected \(injected\)/, 'the database\'s own reason')
  t.same(fatal.map(f => f.code), ['STORE_WRITE_FAILED'], 'reported fatal once')
  t.same(outages, [], 'not taken for an outage')
  t.equal(committed, false, 'no callback for a write that never committed')
  const tries = await admin.query<{ last_value: string }>('SELECT last_value FROM tries')
  t.equal(Number(tries.rows[0]?.last_value), 51, 'the first try and 50 more')
  const later = await store.flush().catch((e: unknown) => e)
  t.equal((later as GatewayError).code, 'STORE_WRITE_FAILED', 'the store stays failed')
})

t.test('behavior: the sequencer lease moves only after it expires, with a higher token; the old holder is fenced out', async t => {
  const url = await freshDb()
  const store = await PostgresGatewayStore.open({ url, node: 'gw-a' })
  t.teardown(async () => await store.close())
  const a = new Lease({ pool: store.pool, node: 'gw-a', ttlMs: 600 })
  const b = new Lease({ pool: store.pool, node: 'gw-b', ttlMs: 600 })
  const fa = await a.tryOnce()
  t.equal(fa?.token, 1)
  t.equal(await b.tryOnce(), undefined, 'held and not expired: not taken')
  // a stalls (no renewal); once its lease expired b takes it over.
  let fb: Fence | undefined
  while ((fb = await b.tryOnce()) === undefined) await new Promise(resolve => setTimeout(resolve, 50))
  t.equal(fb.token, 2, 'takeover raises the token')
  t.equal(a.fence(), undefined, 'a knows its lease ran out')
  t.equal(await a.tryOnce(), undefined, 'a cannot renew a lease that moved')
  // A write a still had in flight with its old token is refused inside the transaction.
  store.enqueue([{ type: 'put', key: 'x/1', value: Uint8Array.of(1) }])
  store.enqueue([storeOps.putRecord('dev-a', 0, { batchId: 0, index: 0, envelope: Uint8Array.of(1) })])
  await store.flush()
  const stale = await store.sealUnbatched({ maxRecords: 10, maxAgeMs: 0, fence: fa, seal: () => { throw new Error('must not seal') } }).catch((e: unknown) => e)
  t.ok(stale instanceof GatewayError)
  t.equal((stale as GatewayError).code, 'LEASE_LOST')
  const c = await store.pool.connect()
  t.teardown(() => c.release())
  await c.query('BEGIN')
  const e = await checkFence(c, fa).catch((e: unknown) => e)
  await c.query('ROLLBACK')
  t.equal((e as GatewayError).code, 'LEASE_LOST')
  await checkFence(c, fb)
  await b.stop(true)
  t.equal((await new Lease({ pool: store.pool, node: 'gw-c', ttlMs: 600 }).tryOnce())?.token, 3, 'a released lease is taken at once')
})

t.test('error: postgresUrl must be a postgres:// URL; the tier options have bounds', async t => {
  const base = { name: 'gw', stateDir: '/tmp/x', rpcUrl: 'http://127.0.0.1:1', registry: '0x0000000000000000000000000000000000000001' }
  t.throws(() => resolveGatewayOptions({ ...base, postgresUrl: 'mysql://x' }), RangeError)
  t.throws(() => resolveGatewayOptions({ ...base, postgresUrl: 'postgres://x', sequencerLeaseTtlMs: 10 }), RangeError)
  t.equal(resolveGatewayOptions({ ...base, postgresUrl: 'postgres://u@h/db' }).sequencerLeaseTtlMs, 5000)
  t.equal(resolveGatewayOptions(base).postgresUrl, undefined, 'LevelDB stays the default')
})
