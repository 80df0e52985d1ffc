// Retention at the gateway (docs/GATEWAY.md §Retention): only records both anchored and in batches
// sealed before the retention period go, each pruning is a signed statement that the next sealed
// checkpoint commits to, and everything else is refused with a stable code.
import t from 'tap'
import { join } from 'node:path'
import { writeFile } from 'node:fs/promises'
import { createSigner, sha256, toHex, verifyPruningStatement } from '../../protocol/index.js'
import { Batcher } from '../../gateway/batch/index.js'
import { GatewayError } from '../../gateway/errors.js'
import { runCli } from '../../gateway/cli.js'
import { resolveGatewayOptions } from '../../gateway/options.js'
import { DAY_MS, MIN_RETENTION_DAYS, Pruner } from '../../gateway/retention/index.js'
import { GatewayStore, encodeBatch, storeOps } from '../../gateway/store/index.js'
import { storeKeys } from '../../gateway/store/index.js'
import { makeTempDir } from '../helpers/tmp.js'

const NOW = 1_800_000_000_000
const gatewayKey = createSigner(new Uint8Array(32).fill(8))
const env = (seq: number, d = 'dev-1'): Uint8Array => new TextEncoder().encode(`${d} record ${seq}`)

/** dev-1: seqs 0..2 in batch 1 (sealed 200 days ago), 3..4 in batch 2 (10 days ago), 5 in open batch 3; anchored through 4. dev-2: seq 0 in batch 1, nothing anchored. */
async function fixture (t: Parameters<typeof makeTempDir>[0]): Promise<GatewayStore> {
  const store = await GatewayStore.open({ dir: join(await makeTempDir(t), 'store'), syncWrites: false })
  t.teardown(async () => await store.close())
  const batch = (id: number, sealedAtMs: number) => ({ type: 'put' as const, key: storeKeys.batch(id), value: encodeBatch({ id, size: 3, root: sha256(Uint8Array.of(id)), firstRecordTimeMs: 0, lastRecordTimeMs: 0, checkpoint: 'x\n1\ny\n\n', metadataHash: sha256(Uint8Array.of(id, 0)), sealedAtMs }) })
  const state = (deviceId: string, anchoredSeq: number) => storeOps.putDeviceState({ deviceId, tip: undefined, lastSeenMs: 0, stored: 0, quarantined: 0, anchoredSeq })
  const batchOf = [1, 1, 1, 2, 2, 3]
  store.enqueue([
    batch(1, NOW - 200 * DAY_MS), batch(2, NOW - 10 * DAY_MS),
    ...batchOf.map((b, seq) => storeOps.putRecord('dev-1', seq, { batchId: b, index: seq, envelope: env(seq) })),
    storeOps.putRecord('dev-2', 0, { batchId: 1, index: 9, envelope: env(0, 'dev-2') }),
    state('dev-1', 4), state('dev-2', -1)
  ])
  await store.flush()
  return store
}

async function codeOf (p: Promise<unknown>): Promise<string | undefined> {
  try { await p; return undefined } catch (e) {
    if (!(e instanceof GatewayError)) throw e
    return e.code
  }
}

async function seqs (store: GatewayStore, d: string): Promise<number[]> {
  const out: number[] = []
  for await (const s of store.recordSeqs(d)) out.push(s)
  return out
}

t.test('error: pruning before retention or before anchoring is refused, and nothing is removed', async t => {
  const store = await fixture(t)
  const pruner = await Pruner.open({ store, signer: gatewayKey, gatewayId: 'gateway.gw-1', retentionDays: MIN_RETENTION_DAYS, now: () => NOW })
  t.equal(await codeOf(pruner.prune({ deviceId: 'dev-1', throughSeq: 3 })), 'PRUNE_BEFORE_RETENTION', 'seq 3 is in a batch sealed 10 days ago')
  t.equal(await codeOf(pruner.prune({ deviceId: 'dev-1', throughSeq: 5 })), 'PRUNE_BEFORE_RETENTION', 'the first refusal in seq order')
  t.equal(await codeOf(pruner.prune({ deviceId: 'dev-2', throughSeq: 0 })), 'PRUNE_NOT_ANCHORED', 'old, but its batch is not confirmed')
  t.equal(await codeOf(pruner.prune({ deviceId: 'dev-3', throughSeq: 0 })), 'PRUNE_NOTHING')
  const longer = await Pruner.open({ store, signer: gatewayKey, gatewayId: 'gateway.gw-1', retentionDays: 365, now: () => NOW })
  t.equal(await codeOf(longer.prune({ deviceId: 'dev-1', throughSeq: 0 })), 'PRUNE_BEFORE_RETENTION', 'a longer retention by option keeps the 200-day-old batch')
  t.same(await seqs(store, 'dev-1'), [0, 1, 2, 3, 4, 5])
  t.same(await seqs(store, 'dev-2'), [0])
  t.same(await store.prunings(), [], 'no statement for a refusal')
})

t.test('behavior: a pruning removes the anchored, expired prefix and signs a statement the next seal commits', async t => {
  const store = await fixture(t)
  const pruner = await Pruner.open({ store, signer: gatewayKey, gatewayId: 'gateway.gw-1', retentionDays: MIN_RETENTION_DAYS, now: () => NOW })
  t.equal(await pruner.prune({ deviceId: 'dev-2' }), undefined, 'scheduled run: nothing allowed, no error')
  const r = await pruner.prune({ deviceId: 'dev-1' })
  t.match(r, { deviceId: 'dev-1', firstSeq: 0, lastSeq: 2, records: 3, batches: [1] })
  t.same(await seqs(store, 'dev-1'), [3, 4, 5], 'only the prefix went')
  const [stored] = await store.prunings('dev-1')
  t.equal(stored?.committedInBatch, 0, 'waiting for the next seal')
  const signed = verifyPruningStatement(stored?.envelope ?? new Uint8Array(), [gatewayKey.publicKey])
  t.equal(toHex(signed.hash), r?.statementHash)
  t.match(signed.statement, { gatewayId: 'gateway.gw-1', deviceId: 'dev-1', firstSeq: 0, lastSeq: 2, retentionDays: 183, prunedAtMs: NOW, cutoffMs: NOW - 183 * DAY_MS, reason: 'retention' })
  t.equal(toHex(signed.statement.lastHash), toHex(sha256(env(2))), 'lastHash is the prev of the first record kept')
  t.same(signed.statement.batches.map(b => b.id), [1])

  // A pruner opened later (a restart) finds the statement still waiting; the seal commits it.
  const again = await Pruner.open({ store, signer: gatewayKey, gatewayId: 'gateway.gw-1', retentionDays: MIN_RETENTION_DAYS, now: () => NOW })
  t.equal(again.waitingCount, 1)
  let sealed: string | undefined
  const batcher = await Batcher.open({ store, origin: 'edge-provenance/gw-1', maxRecords: 100, maxAgeMs: 60_000, signer: gatewayKey, commitments: (id) => again.takeCommitments(id), onSealed: (b) => { sealed = b.checkpoint } })
  batcher.append({ deviceId: 'dev-9', seq: 0, leafHash: sha256(Uint8Array.of(9)), timeMs: 1, afterSeq: -1 }, () => [])
  const batch = batcher.seal()
  await store.flush()
  t.ok(batch?.checkpoint.includes(`\npruning ${r?.statementHash ?? ''}\n`), 'the checkpoint carries the statement hash')
  t.equal(sealed, batch?.checkpoint)
  t.equal((await store.prunings('dev-1'))[0]?.committedInBatch, batch?.id, 'marked committed by that batch')
  t.equal(again.waitingCount, 0)
})

t.test('error: a retention shorter than 183 days is refused at config load (CONFIG_INVALID, exit 78)', async t => {
  t.throws(() => resolveGatewayOptions({ name: 'gw-1', stateDir: '/tmp/x', rpcUrl: 'http://127.0.0.1:1', registry: '0x' + '0'.repeat(40), retentionDays: 182 }), /at least 183/)
  t.doesNotThrow(() => resolveGatewayOptions({ name: 'gw-1', stateDir: '/tmp/x', rpcUrl: 'http://127.0.0.1:1', registry: '0x' + '0'.repeat(40), retentionDays: 400 }), 'longer by option')
  const dir = await makeTempDir(t)
  const config = join(dir, 'gateway.json')
  await writeFile(config, JSON.stringify({ name: 'gw-1', stateDir: join(dir, 'state'), rpcUrl: 'http://127.0.0.1:1', registry: '0x' + '0'.repeat(40), retentionDays: 90 }))
  let err = ''
  const io = { stdout: { write: () => true }, stderr: { write: (s: string) => { err += s; return true } }, env: {} }
  t.equal(await runCli(['prune', '--config', config], io as unknown as Parameters<typeof runCli>[1]), 78)
  t.match(err, /CONFIG_INVALID: retentionDays must be a whole number of days, at least 183/)
})

t.test('behavior: `provenance-gateway prune` refuses a range within retention with its code (exit 1)', async t => {
  const dir = await makeTempDir(t)
  const config = join(dir, 'gateway.json')
  await writeFile(config, JSON.stringify({ name: 'gw-1', stateDir: dir, rpcUrl: 'http://127.0.0.1:1', registry: '0x' + '0'.repeat(40) }))
  const store = await GatewayStore.open({ dir: join(dir, 'store'), syncWrites: false })
  store.enqueue([storeOps.putRecord('dev-1', 0, { batchId: 1, index: 0, envelope: env(0) }), storeOps.putDeviceState({ deviceId: 'dev-1', tip: undefined, lastSeenMs: 0, stored: 1, quarantined: 0, anchoredSeq: 0 }),
    { type: 'put', key: storeKeys.batch(1), value: encodeBatch({ id: 1, size: 1, root: sha256(Uint8Array.of(1)), firstRecordTimeMs: 0, lastRecordTimeMs: 0, checkpoint: 'x\n1\ny\n\n', metadataHash: sha256(Uint8Array.of(2)), sealedAtMs: Date.now() }) }])
  await store.close()
  let err = ''
  let out = ''
  const io = { stdout: { write: (s: string) => { out += s; return true } }, stderr: { write: (s: string) => { err += s; return true } }, env: {} }
  t.equal(await runCli(['prune', '--config', config, '--device', 'dev-1', '--through-seq', '0'], io as unknown as Parameters<typeof runCli>[1]), 1)
  t.match(err, /^PRUNE_BEFORE_RETENTION: record 0 of dev-1 is in batch 1/)
  t.equal(await runCli(['prune', '--config', config, '--json'], io as unknown as Parameters<typeof runCli>[1]), 0)
  t.same(JSON.parse(out), { pruned: [] }, 'pruning all: nothing allowed yet, no error')
})
