// The gateway's tip tree (PROTOCOL.md §7.10) across seals and restarts: each checkpoint carries the
// root of the tips of its batch and the ones before, a restart rebuilds the last sealed batch's
// tree from the stored tips, and a store from before tip trees is backfilled from device states.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { TipTree, parseCheckpoint, sha256, tipRootOfCheckpoint, verifyTipProof } from '../../protocol/index.js'
import { Batcher, TipTracker } from '../../gateway/batch/index.js'
import { GatewayStore, storeOps, storeKeys, type StoredBatch, type StoreOp } from '../../gateway/store/index.js'

const hashOf = (d: string, seq: number): Uint8Array => sha256(new TextEncoder().encode(`${d}/${seq}`))

async function open (dir: string, sealed: StoredBatch[]): Promise<{ store: GatewayStore, tips: TipTracker, batcher: Batcher }> {
  const store = await GatewayStore.open({ dir, syncWrites: false })
  const tips = await TipTracker.open({ store, openBatchId: (await store.getInt(storeKeys.openBatch)) ?? 1 })
  const batcher = await Batcher.open({ store, tips, origin: 'edge-provenance/gw-t', maxRecords: 1000, maxAgeMs: 60_000, onSealed: (b) => { sealed.push(b) } })
  return { store, tips, batcher }
}

function append (batcher: Batcher, device: string, seq: number): void {
  batcher.append({ deviceId: device, seq, leafHash: sha256(Uint8Array.of(seq)), timeMs: 1000 + seq, afterSeq: seq - 1, recordHash: hashOf(device, seq) }, () => [])
}

t.test('behavior: checkpoints carry the tips of batches 1..n; after a restart the last sealed batch is proven as it was sealed', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'prov-tips-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const sealed: StoredBatch[] = []
  let { store, tips, batcher } = await open(dir, sealed)
  for (let s = 0; s < 3; s++) { append(batcher, 'a', s); append(batcher, 'b', s) }
  batcher.seal()
  append(batcher, 'a', 3)
  batcher.seal()
  append(batcher, 'a', 4)
  append(batcher, 'c', 0) // left in the open batch 3
  await store.flush()

  const expected = new TipTree()
  expected.set('a', 3, hashOf('a', 3))
  expected.set('b', 2, hashOf('b', 2))
  const cp2 = parseCheckpoint(sealed[1]?.checkpoint as string)
  t.same(tipRootOfCheckpoint(cp2.extensions), expected.root(), 'batch 2 commits to a@3 and b@2')
  t.same(sealed[1]?.metadataHash, sha256(new TextEncoder().encode(sealed[1]?.checkpoint)), 'metadataHash covers the tips line')
  t.same(verifyTipProof(tips.prove('a', 2) as never, expected.root()), { seq: 3, hash: hashOf('a', 3) })
  await store.close()

  ;({ store, tips, batcher } = await open(dir, sealed))
  t.same(tips.batchIds(), [2], 'the last sealed batch\'s tree is rebuilt, not older ones')
  t.same(verifyTipProof(tips.prove('a', 2) as never, expected.root())?.seq, 3, 'a@4 of the open batch is not in batch 2\'s tree')
  t.equal(verifyTipProof(tips.prove('c', 2) as never, expected.root()), undefined, 'c is proven absent at batch 2')
  const b3 = batcher.seal() as StoredBatch
  t.equal(b3.id, 3)
  expected.set('a', 4, hashOf('a', 4))
  expected.set('c', 0, hashOf('c', 0))
  t.same(tipRootOfCheckpoint(parseCheckpoint(b3.checkpoint).extensions), expected.root(), 'the open batch\'s leaves, recovered, move the tips at its seal')
  tips.anchored(3)
  t.same(tips.batchIds(), [3], 'trees before an anchored batch are dropped')
  await store.close()
})

t.test('behavior: a write carries one tip per device, the latest, with the leaves that move it, however many records of the device it holds', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'prov-tips-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const { store: first, batcher } = await open(dir, [])
  let store = first
  const writes: Array<{ leaves: number, tips: string[] }> = []
  const spied = store as unknown as { writeOps: (ops: StoreOp[]) => Promise<void> }
  const writeOps = spied.writeOps.bind(store)
  spied.writeOps = async (ops) => {
    writes.push({ leaves: ops.filter(o => o.key.startsWith('l/')).length, tips: ops.filter(o => o.key.startsWith('t/')).map(o => o.key) })
    await writeOps(ops)
  }
  for (let s = 0; s < 40; s++) { append(batcher, 'a', s); if (s < 5) append(batcher, 'b', s) }
  await store.flush()
  t.same(writes, [{ leaves: 45, tips: [storeKeys.treeTip('a'), storeKeys.treeTip('b')] }], 'one write: 45 leaves, two tips')
  append(batcher, 'a', 40)
  await store.flush()
  t.same(writes[1], { leaves: 1, tips: [storeKeys.treeTip('a')] }, 'the next write: only the tip that moved')
  await store.close()
  store = (await open(dir, [])).store
  const stored = new Map<string, number>()
  for await (const tip of store.treeTips()) stored.set(tip.deviceId, tip.seq)
  t.same([...stored], [['a', 40], ['b', 4]], 'reopened: each device\'s tip is its last record')
  await store.close()
})

t.test('behavior: a store from before tip trees gets its tips from the device states of records stored here', async t => {
  const dir = await mkdtemp(join(tmpdir(), 'prov-tips-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const store = await GatewayStore.open({ dir, syncWrites: false })
  const state = (d: string, seq: number): ReturnType<typeof storeOps.putDeviceState> => storeOps.putDeviceState({ deviceId: d, tip: { seq, hash: hashOf(d, seq), boot: 0 }, lastSeenMs: 0, stored: seq + 1, quarantined: 0, anchoredSeq: -1 })
  store.enqueue([
    state('old', 7), storeOps.putRecord('old', 7, { batchId: 1, index: 0, envelope: Uint8Array.of(7) }),
    state('peer-only', 3) // its tip came from a peer's ack: no record here
  ])
  await store.flush()
  const tips = await TipTracker.open({ store, openBatchId: 2 })
  t.equal(tips.size, 1)
  const tree = new TipTree()
  tree.set('old', 7, hashOf('old', 7))
  t.same(verifyTipProof(tips.prove('old', 1) as never, tree.root())?.seq, 7)
  let stored = 0
  for await (const _ of store.treeTips()) stored++
  t.equal(stored, 1, 'written back once')
  await store.close()
})
