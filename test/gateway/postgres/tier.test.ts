/**
 * The PostgreSQL tier end to end, small: two gateway processes' worth of Gateways on one database
 * and a shared subscription; every acked record is stored once, in one batch, anchored once, and
 * provable; acks carry the anchored tip; tip proofs from either process verify against the chain;
 * a fork raced into both processes is stored once and the loser never acked; retention prunes and
 * the next batch commits the statement; the sequencer's stop hands the lease and the anchoring over
 * (kills: test-slow).
 */
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { runCli } from '../../../gateway/cli.js'
import pg from 'pg'
import { loadOrCreateLogKey, type Gateway } from '../../../gateway/index.js'
import {
  decodeAckEnvelope, deviceTopic, encodeRecordBatch, fromHex, hashLeaf, parseCheckpoint, parseProof, parseTipProof, pruningExtensionLine, sha256, tipRootOfCheckpoint, toHex,
  verifyProof, verifyTipProof
} from '../../../protocol/index.js'
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
  // The acks say what the database says is anchored (the tip of each device in the newest confirmed batch).
  await fleet.waitAllAnchored(30_000)
  t.pass('every device was acked with anchoredSeq at its last record')

  const count = async (sql: string): Promise<number> => Number((await db.query<{ n: string }>(sql)).rows[0]?.n)
  t.equal(await count('SELECT count(*) AS n FROM gw_records'), total, 'every acked record is in the database once')
  await waitFor('every record batched and every batch confirmed', async () =>
    await count('SELECT count(*) AS n FROM gw_records WHERE batch_id IS NULL') === 0 &&
    await count("SELECT count(*) AS n FROM gw_anchor_batches WHERE state <> 'confirmed'") === 0 &&
    await count('SELECT count(*) AS n FROM gw_anchor_batches') === await count('SELECT count(*) AS n FROM gw_batches'))
  t.equal(await count('SELECT count(*) AS n FROM gw_leaves'), total, 'one leaf per record')

  // Tip proofs, from either process: the proof leads to the tips line of a checkpoint whose root
  // and unsigned bytes (metadataHash) the chain holds, and names the device's last record.
  const onChain = new Map((await env.chain.registryAs('outsider').listAnchors()).map(e => [e.root.slice(2), e]))
  for (const [i, d] of devices.entries()) {
    const res = await httpGet(`${(i % 2 === 0 ? a : b).httpUrl}/v1/tip/${d.id}`)
    t.equal(res.status, 200, `${d.id}: tip proof served`)
    const file = parseTipProof(res.text)
    const cut = file.checkpoint.indexOf('\n\n')
    const unsigned = cut < 0 ? file.checkpoint : file.checkpoint.slice(0, cut + 2)
    const cp = parseCheckpoint(unsigned)
    const tip = verifyTipProof(file.proof, tipRootOfCheckpoint(cp.extensions) ?? new Uint8Array(32))
    const last = d.records[d.records.length - 1]
    t.equal(tip?.seq, last?.record.seq, `${d.id}: the proven tip is its last record`)
    t.same(tip?.hash, last?.hash)
    const anchor = onChain.get(toHex(cp.rootHash))
    t.equal(anchor?.metadataHash.slice(2), toHex(sha256(new TextEncoder().encode(unsigned))), `${d.id}: the chain anchors that checkpoint`)
  }

  // A fork raced into both processes: two validly signed records for one (device, seq), one to
  // each. Peers' acks are held back meanwhile, so neither learns of the other before the database
  // does: the unique key lets one in, the other is rolled back, quarantined and never acked.
  const [forkA] = makeDevices('tier-fork', 1, 1, Date.now())
  const [forkB] = makeDevices('tier-fork', 1, 1, Date.now() + 1000)
  if (forkA === undefined || forkB === undefined) throw new Error('no fork devices')
  await registerDevices(env.chain.registryAs('deviceRegistrar'), [forkA])
  const acksSeen: string[] = []
  const watcher = await mqtt.connectAsync(env.broker.url, { protocolVersion: 5 })
  t.teardown(async () => await watcher.endAsync(true))
  watcher.on('message', (_topic, payload) => { acksSeen.push(toHex(decodeAckEnvelope(new Uint8Array(payload)).statement.storedHash)) })
  await watcher.subscribeAsync(deviceTopic(forkA.id, 'ack'), { qos: 1 })
  type Pipe = { acceptRecords: (topic: string, payload: Uint8Array) => void, acceptPeerAck: (topic: string, payload: Uint8Array) => void }
  const pipeOf = (g: Gateway): Pipe => (g as unknown as { pipeline: Pipe }).pipeline
  const held = [a, b].map(g => { const p = pipeOf(g); const original = p.acceptPeerAck; p.acceptPeerAck = () => {}; return () => { p.acceptPeerAck = original } })
  const recA = forkA.records[0]
  const recB = forkB.records[0]
  if (recA === undefined || recB === undefined) throw new Error('no fork records')
  pipeOf(a).acceptRecords(deviceTopic(forkA.id, 'records'), encodeRecordBatch([recA.envelope]))
  pipeOf(b).acceptRecords(deviceTopic(forkA.id, 'records'), encodeRecordBatch([recB.envelope]))
  await waitFor('the fork stored once and its loser quarantined', async () =>
    await count(`SELECT count(*) AS n FROM gw_records WHERE device_id = '${forkA.id}'`) === 1 &&
    await count(`SELECT count(*) AS n FROM gw_quarantine WHERE device_id = '${forkA.id}' AND reason = 'seq-reuse'`) === 1)
  for (const release of held) release()
  const stored = (await db.query<{ envelope: Buffer }>('SELECT envelope FROM gw_records WHERE device_id = $1', [forkA.id])).rows[0]?.envelope
  const winner = toHex(sha256(new Uint8Array(stored ?? [])))
  const loser = winner === toHex(recA.hash) ? recB : recA
  const q = (await db.query<{ raw: Buffer, detail: string }>('SELECT raw, detail FROM gw_quarantine WHERE device_id = $1', [forkA.id])).rows[0]
  t.same(new Uint8Array(q?.raw ?? []), loser.envelope, 'the loser is what was quarantined')
  t.match(q?.detail, /stored first by another gateway process/, 'caught by the database, not by a peer\'s ack')
  await waitFor('the winner acked', async () => acksSeen.includes(winner))

  // Retention on the tier: batches aged past the retention period (their seal time moved back),
  // a device's anchored prefix pruned from one process, the statement served by the other and
  // committed by the next batch the sequencer seals.
  await db.query('UPDATE gw_batches SET sealed_at_ms = sealed_at_ms - 200 * 86400000::bigint')
  const pruned = devices[0]
  if (pruned === undefined) throw new Error('no device')
  const result = await a.prune({ deviceId: pruned.id, throughSeq: 4 })
  t.same([result?.firstSeq, result?.lastSeq, result?.records], [0, 4, 5], 'seqs 0..4 pruned')
  t.equal(await count(`SELECT count(*) AS n FROM gw_records WHERE device_id = '${pruned.id}'`), 5, 'the records are gone from the database')
  const statements = (await httpGet(`${b.httpUrl}/v1/devices/${pruned.id}/prunings`)).json() as { prunings: Array<{ batchId: number | null }> }
  t.equal(statements.prunings.length, 1, 'the other process serves the statement')
  // The CLI works on the tier's database while it runs (here a dry run: nothing written).
  const cliConfig = join(env.dir, 'prune-cli.json')
  await writeFile(cliConfig, JSON.stringify({ name: 'gw-a', stateDir: join(env.dir, 'gw-a'), postgresUrl: url, rpcUrl: env.chain.anvil.rpcUrl, registry: env.chain.deployment.address }))
  let cliOut = ''
  const io = { stdout: { write: (text: string) => { cliOut += text; return true } }, stderr: { write: () => true }, env: {} }
  t.equal(await runCli(['prune', '--config', cliConfig, '--device', pruned.id, '--through-seq', '6', '--dry-run', '--json'], io as unknown as Parameters<typeof runCli>[1]), 0)
  t.match(JSON.parse(cliOut), { pruned: [{ deviceId: pruned.id, firstSeq: 5, lastSeq: 6, records: 2 }] }, 'provenance-gateway prune --dry-run on the tier: the next anchored, expired range')
  t.equal(await count(`SELECT count(*) AS n FROM gw_records WHERE device_id = '${pruned.id}'`), 5, 'a dry run removes nothing')

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

  const committedIn = Number((await db.query<{ b: string }>('SELECT committed_in_batch AS b FROM gw_prunings')).rows[0]?.b)
  t.ok(committedIn > 0, `the statement is committed by batch ${committedIn}`)
  const committing = (await db.query<{ checkpoint: string }>('SELECT checkpoint FROM gw_batches WHERE id = $1', [committedIn])).rows[0]?.checkpoint ?? ''
  t.ok(committing.includes(`\n${pruningExtensionLine(fromHex(result?.statementHash ?? ''))}\n`), 'its checkpoint carries the statement\'s line')
  t.notOk(acksSeen.includes(toHex(loser.hash)), 'the fork\'s loser was never acked')

  // Each record's proof verifies (from the gateway still running); on chain, each batch once.
  const roots = new Set<string>()
  for (const d of [...devices, ...more]) {
    for (const r of d.records) {
      if (d === pruned && r.record.seq <= 4) continue
      const res = await httpGet(`${other.httpUrl}/v1/proof/${d.id}/${r.record.seq}`)
      t.equal(res.status, 200, `${d.id}/${r.record.seq} provable`)
      const proof = parseProof(res.text)
      verifyProof(proof, hashLeaf(r.envelope))
      roots.add(toHex(proof.checkpoint.rootHash))
    }
  }
  const forkProof = await httpGet(`${other.httpUrl}/v1/proof/${forkA.id}/0`)
  t.equal(forkProof.status, 200, 'the fork\'s stored record is provable')
  roots.add(toHex(parseProof(forkProof.text).checkpoint.rootHash))
  const events = await env.chain.registryAs('outsider').listAnchors()
  t.equal(events.length, await count('SELECT count(*) AS n FROM gw_batches'), 'one anchor per batch')
  t.equal(new Set(events.map(e => e.root)).size, events.length, 'no root anchored twice')
  for (const e of events) t.ok(roots.has(e.root.slice(2)), 'every anchored root holds our records')
})
