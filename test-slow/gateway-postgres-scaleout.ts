// Slow suite (npm run test:slow), issue #14's must-show: three gateway processes (the real CLI) on
// one PostgreSQL database and a shared subscription, 50 devices; the sequencer holder SIGKILLed
// while a batch is being anchored, an ingest worker SIGKILLed mid-insert, the database restarted,
// the chain stopped for a while. Every acked record is stored once, in exactly one anchored batch,
// its inclusion proof verifies against a root the chain holds, and no batch is anchored twice;
// every device's tip proof (from any process) verifies against a checkpoint the chain anchors and
// names its last record, and its acks reach that record as anchored.
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import pg from 'pg'
import { startAnvil, type AnvilInstance } from '../contracts/index.js'
import { loadOrCreateLogKey } from '../gateway/index.js'
import { hashLeaf, parseCheckpoint, parseProof, parseTipProof, sha256, tipRootOfCheckpoint, toHex, verifyProof, verifyTipProof } from '../protocol/index.js'
import { startGatewayEnv, httpGet } from '../test/fixtures/gateway-env.js'
import { DeviceFleet, makeDevices, registerDevices } from '../test/fixtures/gateway-fleet.js'
import { startGatewayProcess, type GatewayProcess } from '../test/fixtures/gateway-process.js'
import { startPostgres } from '../test/helpers/postgres.js'

const DEVICES = Number(process.env.PROV_SLOW_PG_DEVICES ?? 50)
const RECORDS = Number(process.env.PROV_SLOW_PG_RECORDS ?? 60)
const NAMES = ['gw-1', 'gw-2', 'gw-3']

async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

async function waitFor (what: string, check: () => Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

t.test(`behavior: 3 ingest processes, ${DEVICES} devices, sequencer SIGKILL mid-anchor, worker SIGKILL, database restart, chain outage: every acked record once, anchored once, provable`, { timeout: 10 * 60_000 }, async t => {
  const starting = startPostgres()
  t.teardown(async () => await (await starting.catch(() => undefined))?.close())
  const [pgServer, env] = await Promise.all([starting, startGatewayEnv(t, { anvilState: true, anvil: { blockTimeSeconds: 1 } })])
  const db = new pg.Client({ connectionString: pgServer.url })
  db.on('error', () => {})
  const query = async <R extends pg.QueryResultRow>(sql: string): Promise<R[]> => {
    for (;;) {
      try {
        return (await db.query<R>(sql)).rows
      } catch {
        // The database restart drops this connection too: reconnect and ask again.
        await db.end().catch(() => {})
        Object.assign(db, new pg.Client({ connectionString: pgServer.url }))
        await sleep(200)
        await db.connect().catch(() => {})
      }
    }
  }
  await db.connect()
  t.teardown(async () => await db.end().catch(() => {}))
  const count = async (sql: string): Promise<number> => Number((await query<{ n: string }>(sql))[0]?.n)

  const devices = makeDevices('pgfleet', DEVICES, RECORDS)
  await registerDevices(env.chain.registryAs('deviceRegistrar'), devices)
  const keys = await Promise.all(NAMES.map(async n => toHex((await loadOrCreateLogKey(join(env.dir, n, 'log-key.json'))).publicKey)))
  const configs = await Promise.all(NAMES.map(async (name, i) => {
    const config = env.gatewayOptions({
      name,
      shareGroup: 'fleet',
      postgresUrl: pgServer.url,
      batchMaxRecords: 100,
      batchMaxAgeMs: 300,
      sequencerLeaseTtlMs: 2000,
      keyCacheTtlMs: 600_000,
      peerGatewayKeys: keys.filter((_, j) => j !== i)
    })
    const path = join(env.dir, `${name}.json`)
    await writeFile(path, JSON.stringify({ ...config, logLevel: 'info' }))
    return path
  }))
  const procs = new Map<string, GatewayProcess>()
  for (const [i, name] of NAMES.entries()) procs.set(name, await startGatewayProcess(configs[i] as string))
  let restartedAnvil: AnvilInstance | undefined
  t.teardown(async () => {
    for (const p of procs.values()) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL')
    await restartedAnvil?.stop()
  })
  const restart = async (name: string): Promise<void> => {
    procs.set(name, await startGatewayProcess(configs[NAMES.indexOf(name)] as string))
  }
  const kill = async (name: string): Promise<void> => {
    const p = procs.get(name)
    p?.proc.kill('SIGKILL')
    await p?.exited
  }
  const holderName = async (): Promise<string | undefined> =>
    (await query<{ holder: string }>("SELECT holder FROM gw_lease WHERE name = 'sequencer' AND expires_at > now()"))[0]?.holder.split('/')[0]

  const fleet = new DeviceFleet({ brokerUrl: env.broker.url, devices, messageSizes: [1, 2, 3], oneInFlight: true, ackTimeoutMs: 3000, messageIntervalMs: 400 })
  t.teardown(async () => await fleet.stop())
  await fleet.start()
  const total = DEVICES * RECORDS
  const faultsAt: number[] = []

  // Fault 1: the sequencer holder dies while a batch's anchor transaction is out (state 'sent':
  // one block a second keeps it there long enough to be seen).
  await waitFor('a batch being anchored', async () => await count("SELECT count(*) AS n FROM gw_anchor_batches WHERE state = 'sent'") > 0)
  const holder = await holderName()
  t.ok(holder !== undefined && NAMES.includes(holder), `sequencer holder is ${holder}`)
  await kill(holder as string)
  faultsAt.push(fleet.storedRecords)
  t.comment(`sequencer ${holder} killed mid-anchor at ${fleet.storedRecords} stored`)
  await waitFor('another process to take the lease', async () => { const h = await holderName(); return h !== undefined && h !== holder }, 30_000)
  t.comment(`lease taken over by ${await holderName()}`)
  await restart(holder as string)

  // Fault 2: an ingest worker (not the holder) dies while records are flowing.
  while (fleet.storedRecords < total * 0.4) await sleep(50)
  const current = await holderName()
  const worker = NAMES.find(n => n !== current) as string
  await kill(worker)
  faultsAt.push(fleet.storedRecords)
  t.comment(`worker ${worker} killed at ${fleet.storedRecords} stored`)
  await restart(worker)

  // Fault 3: the database restarts (immediate stop: a crash as far as PostgreSQL is concerned).
  while (fleet.storedRecords < total * 0.6) await sleep(50)
  await pgServer.stop()
  faultsAt.push(fleet.storedRecords)
  t.comment(`database stopped at ${fleet.storedRecords} stored`)
  await sleep(1500)
  await pgServer.restart()

  // Fault 4: the chain stops for a while and comes back with its state on the same port.
  while (fleet.storedRecords < total * 0.75) await sleep(50)
  const port = env.chain.anvil.port
  await env.chain.anvil.stop()
  faultsAt.push(fleet.storedRecords)
  t.comment(`chain stopped at ${fleet.storedRecords} stored`)
  await sleep(3000)
  restartedAnvil = await startAnvil({ stateDir: env.anvilStateDir, port, blockTimeSeconds: 1 })

  await fleet.waitAllStored(180_000)
  t.comment(`all acked; resends ${fleet.resends}, messages ${fleet.published}`)
  await waitFor('every record batched and every batch confirmed', async () =>
    await count('SELECT count(*) AS n FROM gw_records WHERE batch_id IS NULL') === 0 &&
    await count("SELECT count(*) AS n FROM gw_anchor_batches WHERE state <> 'confirmed'") === 0 &&
    await count('SELECT count(*) AS n FROM gw_anchor_batches') === await count('SELECT count(*) AS n FROM gw_batches'), 180_000)

  t.equal(await count('SELECT count(*) AS n FROM gw_records'), total, 'every acked record stored, once (unique (device, seq))')
  t.equal(await count('SELECT count(*) AS n FROM gw_leaves'), total, 'one leaf per record: each in exactly one batch')
  t.equal(await count('SELECT count(*) AS n FROM (SELECT device_id, seq FROM gw_leaves GROUP BY 1, 2 HAVING count(*) > 1) x'), 0)

  const registry = env.chain.registryAs('outsider')
  const events = await registry.listAnchors()
  const anchored = new Map(events.map(e => [e.root.slice(2), Number(e.size)]))
  const metadataOf = new Map(events.map(e => [e.root.slice(2), e.metadataHash.toLowerCase().slice(2)]))
  t.equal(events.length, anchored.size, 'no root anchored twice')
  t.equal(events.length, await count('SELECT count(*) AS n FROM gw_batches'), 'one anchor transaction per batch')
  for (const [name, p] of procs) {
    t.equal(p.proc.exitCode ?? p.proc.signalCode, null, `${name} still running`, { log: p.log.slice(-15).join('\n') })
  }
  const urls = [...procs.values()].map(p => p.httpUrl)
  const leaves = new Map<string, Set<number>>()
  const queue = devices.flatMap(d => d.records.map(r => ({ d, r })))
  let next = 0
  const check = async (): Promise<void> => {
    for (let item = queue.pop(); item !== undefined; item = queue.pop()) {
      const { d, r } = item
      const res = await httpGet(`${urls[next++ % urls.length] as string}/v1/proof/${d.id}/${r.record.seq}`)
      if (res.status !== 200) { t.fail(`no proof of ${d.id}/${r.record.seq}: ${res.text}`); continue }
      const proof = parseProof(res.text)
      verifyProof(proof, hashLeaf(r.envelope))
      const root = toHex(proof.checkpoint.rootHash)
      if (!anchored.has(root)) t.fail(`${d.id}/${r.record.seq}: root ${root} is not on chain`)
      const set = leaves.get(root) ?? new Set<number>()
      if (set.has(proof.index)) t.fail(`leaf ${proof.index} of ${root} proves two records`)
      set.add(proof.index)
      leaves.set(root, set)
    }
  }
  await Promise.all(Array.from({ length: 8 }, check))
  for (const [root, set] of leaves) t.equal(anchored.get(root), set.size, `batch ${root.slice(0, 8)} is on chain with exactly our records`)
  t.equal([...anchored.values()].reduce((a, b) => a + b, 0), total, 'every record anchored once, nothing else anchored')

  // Tip proofs: the tip tree the sequencers (three holders over the run) kept in the database.
  await fleet.waitAllAnchored(120_000)
  t.pass('every device was acked with its last record anchored')
  let tipsChecked = 0
  for (const [i, d] of devices.entries()) {
    const res = await httpGet(`${urls[i % urls.length] as string}/v1/tip/${d.id}`)
    if (res.status !== 200) { t.fail(`no tip proof of ${d.id}: ${res.text}`); continue }
    const file = parseTipProof(res.text)
    const cut = file.checkpoint.indexOf('\n\n')
    const unsigned = cut < 0 ? file.checkpoint : file.checkpoint.slice(0, cut + 2)
    const cp = parseCheckpoint(unsigned)
    const tip = verifyTipProof(file.proof, tipRootOfCheckpoint(cp.extensions) ?? new Uint8Array(32))
    const last = d.records[d.records.length - 1]
    if (tip?.seq !== last?.record.seq || toHex(tip?.hash ?? new Uint8Array()) !== toHex(last?.hash ?? new Uint8Array(1))) t.fail(`${d.id}: tip proof names ${tip?.seq}, not its last record`)
    else if (metadataOf.get(toHex(cp.rootHash)) !== toHex(sha256(new TextEncoder().encode(unsigned)))) t.fail(`${d.id}: the tip proof's checkpoint is not the one anchored`)
    else tipsChecked++
  }
  t.equal(tipsChecked, devices.length, 'every tip proof verifies against a checkpoint the chain anchors')

  t.ok(faultsAt.every(n => n < total), `every fault landed while records were still coming (${faultsAt.join(', ')} of ${total} stored)`)
  for (const p of procs.values()) p.proc.kill('SIGTERM')
  for (const p of procs.values()) t.equal(await p.exited, 0, 'SIGTERM stops each gateway cleanly')
})
