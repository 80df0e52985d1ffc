/**
 * The PostgreSQL tier end to end, small: two gateway processes' worth of Gateways on one database
 * and a shared subscription; every acked record is stored once, in one batch, anchored once, and
 * provable; the sequencer's stop hands the lease and the anchoring over (kills: test-slow).
 */
import t from 'tap'
import { join } from 'node:path'
import pg from 'pg'
import { loadOrCreateLogKey } from '../../../gateway/index.js'
import { hashLeaf, parseProof, toHex, verifyProof } from '../../../protocol/index.js'
import { startGatewayEnv, httpGet } from '../../fixtures/gateway-env.js'
import { DeviceFleet, makeDevices, registerDevices } from '../../fixtures/gateway-fleet.js'
import { startPostgres } from '../../helpers/postgres.js'

async function waitFor (what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

t.test('behavior: gateways on one database store each record once, one sequencer anchors each batch once, and hands over on stop', async t => {
  // The cluster starts while the chain and broker do (initdb is the slow part).
  // Its teardown is registered first so that it runs last, after the gateways stopped.
  const starting = startPostgres()
  t.teardown(async () => await (await starting.catch(() => undefined))?.close())
  const [pgServer, env] = await Promise.all([starting, startGatewayEnv(t)])
  const url = pgServer.url
  const db = new pg.Client({ connectionString: url })
  db.on('error', () => {})
  await db.connect()
  t.teardown(async () => await db.end())
  const devices = makeDevices('tier', 6, 10)
  await registerDevices(env.chain.registryAs('deviceRegistrar'), devices)
  const keyA = toHex((await loadOrCreateLogKey(join(env.dir, 'gw-a', 'log-key.json'))).publicKey)
  const keyB = toHex((await loadOrCreateLogKey(join(env.dir, 'gw-b', 'log-key.json'))).publicKey)
  const logger = process.env.TIER_DEBUG === undefined ? undefined : { debug () {}, info: (o: object, m?: string) => console.error('I', m, JSON.stringify(o)), warn: (o: object, m?: string) => console.error('W', m, JSON.stringify(o)), error: (o: object, m?: string) => console.error('E', m, JSON.stringify(o)) }
  const common = { ...(logger === undefined ? {} : { logger }), shareGroup: 'fleet', postgresUrl: url, batchMaxRecords: 25, batchMaxAgeMs: 200, sequencerLeaseTtlMs: 1000 }
  const a = await env.gateway({ name: 'gw-a', ...common, peerGatewayKeys: [keyB] })
  const b = await env.gateway({ name: 'gw-b', ...common, peerGatewayKeys: [keyA] })
  const fleet = new DeviceFleet({ brokerUrl: env.broker.url, devices, oneInFlight: true, ackTimeoutMs: 10_000 })
  t.teardown(async () => await fleet.stop())
  await fleet.start()
  await fleet.waitAllStored(30_000)
  const total = devices.length * 10

  const count = async (sql: string): Promise<number> => Number((await db.query<{ n: string }>(sql)).rows[0]?.n)
  t.equal(await count('SELECT count(*) AS n FROM gw_records'), total, 'every acked record is in the database once')
  await waitFor('every record batched and every batch confirmed', async () =>
    await count('SELECT count(*) AS n FROM gw_records WHERE batch_id IS NULL') === 0 &&
    await count("SELECT count(*) AS n FROM gw_anchor_batches WHERE state <> 'confirmed'") === 0 &&
    await count('SELECT count(*) AS n FROM gw_anchor_batches') === await count('SELECT count(*) AS n FROM gw_batches'))
  t.equal(await count('SELECT count(*) AS n FROM gw_leaves'), total, 'one leaf per record')
  const sequencerOf = (g: typeof a): { isHolder: boolean, stop: () => Promise<void> } =>
    (g as unknown as { sequencer: { isHolder: boolean, stop: () => Promise<void> } }).sequencer
  const holders = [a, b].filter(g => sequencerOf(g).isHolder)
  t.equal(holders.length, 1, 'exactly one sequencer')

  // The holder's sequencer stops (its gateway keeps ingesting: a stopped MQTT session would keep
  // its share of the subscription queued); the other process takes the lease over and anchors.
  const holder = holders[0] ?? a
  const other = holder === a ? b : a
  await sequencerOf(holder).stop()
  await waitFor('the other gateway to take the lease', async () => sequencerOf(other).isHolder)
  const more = makeDevices('tier-late', 2, 5)
  await registerDevices(env.chain.registryAs('deviceRegistrar'), more)
  const late = new DeviceFleet({ brokerUrl: env.broker.url, devices: more, oneInFlight: true, ackTimeoutMs: 10_000 })
  t.teardown(async () => await late.stop())
  await late.start()
  await late.waitAllStored(30_000)
  await waitFor('the late records anchored by the new holder', async () =>
    await count('SELECT count(*) AS n FROM gw_records WHERE batch_id IS NULL') === 0 &&
    await count("SELECT count(*) AS n FROM gw_anchor_batches WHERE state <> 'confirmed'") === 0 &&
    await count('SELECT count(*) AS n FROM gw_anchor_batches') === await count('SELECT count(*) AS n FROM gw_batches'))

  // Each record's proof verifies (from the gateway still running); on chain, each batch once.
  const roots = new Set<string>()
  for (const d of [...devices, ...more]) {
    for (const r of d.records) {
      const res = await httpGet(`${other.httpUrl}/v1/proof/${d.id}/${r.record.seq}`)
      t.equal(res.status, 200, `${d.id}/${r.record.seq} provable`)
      const proof = parseProof(res.text)
      verifyProof(proof, hashLeaf(r.envelope))
      roots.add(toHex(proof.checkpoint.rootHash))
    }
  }
  const events = await env.chain.registryAs('outsider').listAnchors()
  t.equal(events.length, await count('SELECT count(*) AS n FROM gw_batches'), 'one anchor per batch')
  t.equal(new Set(events.map(e => e.root)).size, events.length, 'no root anchored twice')
  for (const e of events) t.ok(roots.has(e.root.slice(2)), 'every anchored root holds our records')
})
