import t from 'tap'
import fc from 'fast-check'
import { join } from 'node:path'
import { AnchoredTracker, GatewayError, LevelGatewayStore } from '../../gateway/index.js'
import {
  decodeBatch, decodeDeviceState, decodeLeaf, decodeQuarantine, decodeStoredRecord, encodeBatch, encodeDeviceState, encodeLeaf,
  encodeQuarantine, encodeStoredRecord, storeKeys
} from '../../gateway/store/index.js'
import { makeTempDir } from '../helpers/tmp.js'
import { encodeCanonicalDirect, toHex } from '../../protocol/index.js'

const h = (n: number): Uint8Array => new Uint8Array(32).fill(n)

t.test('behavior: a record\'s stored value and its leaf, written by hand, are the bytes encodeCanonicalDirect gives (or its error)', async t => {
  const outcome = (encode: () => Uint8Array): string => {
    try { return toHex(encode()) } catch (e) { return `${(e as Error).constructor.name}: ${(e as Error).message}` }
  }
  // Around every head size's boundaries, up to 2^53 (refused), and negative or fractional values (refused).
  const edges = [0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, 2 ** 53, -1, 0.5]
  const int = fc.oneof(fc.constantFrom(...edges), fc.nat(), fc.maxSafeNat())
  const id = fc.oneof(fc.constantFrom('d', 'bench-001', 'x'.repeat(23), 'y'.repeat(24), 'z'.repeat(300), 'ü-device', '\ud800', ''), fc.string(), fc.string({ unit: 'grapheme' }))
  const bytes = fc.oneof(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 300 }))
  let plain = 0
  fc.assert(fc.property(id, int, bytes, int, fc.oneof(int, fc.constant(-1)), (deviceId, seq, leafHash, timeMs, afterSeq) => {
    const leaf = { deviceId, seq, leafHash, timeMs, afterSeq }
    const want = outcome(() => encodeCanonicalDirect([1, deviceId, seq, leafHash, timeMs, afterSeq + 1]))
    if (!want.includes(':')) plain++
    return outcome(() => encodeLeaf(leaf)) === want
  }), { seed: 3, numRuns: 3000 })
  fc.assert(fc.property(int, int, bytes, (batchId, index, envelope) => {
    return outcome(() => encodeStoredRecord({ batchId, index, envelope })) === outcome(() => encodeCanonicalDirect([1, batchId, index, envelope]))
  }), { seed: 4, numRuns: 3000 })
  t.ok(plain > 1000, `${plain} leaves encoded by hand as encodeCanonicalDirect does`)
})

t.test('behavior: stored values round-trip', async t => {
  const state = { deviceId: 'd-1', tip: { seq: 7, hash: h(1), boot: 2 }, lastSeenMs: 5, stored: 8, quarantined: 1, anchoredSeq: 3 }
  t.same(decodeDeviceState(encodeDeviceState(state)), state)
  const peerTip = { ...state, tip: { seq: 9, hash: h(2), boot: undefined }, anchoredSeq: -1 }
  t.same(decodeDeviceState(encodeDeviceState(peerTip)), peerTip)
  const none = { ...state, tip: undefined }
  t.same(decodeDeviceState(encodeDeviceState(none)), none)
  const rec = { batchId: 3, index: 9, envelope: Uint8Array.of(1, 2, 3) }
  t.same(decodeStoredRecord(encodeStoredRecord(rec)), rec)
  const leaf = { deviceId: 'd-1', seq: 4, leafHash: h(3), timeMs: 10, afterSeq: -1 }
  t.same(decodeLeaf(encodeLeaf(leaf)), leaf)
  const batch = { id: 1, size: 2, root: h(4), firstRecordTimeMs: 1, lastRecordTimeMs: 2, checkpoint: 'o\n2\nx\n\n', metadataHash: h(5), sealedAtMs: 6 }
  t.same(decodeBatch(encodeBatch(batch)), batch)
  const q = { timeMs: 1, reason: 'bad-signature', topic: 't', deviceId: undefined, seq: undefined, detail: 'd', raw: Uint8Array.of(9), rawBytes: 1 }
  t.same(decodeQuarantine(encodeQuarantine(q)), q)
})

t.test('error: a malformed stored value is STORE_CORRUPT, never a crash', async t => {
  const dir = await makeTempDir(t)
  const store = await LevelGatewayStore.open({ dir: join(dir, 's') })
  t.teardown(async () => await store.close())
  store.enqueue([{ type: 'put', key: storeKeys.device('x'), value: Uint8Array.of(0x83, 1, 2) }])
  await store.flush()
  const e = await (async () => { for await (const _ of store.devices()) { /* read */ } })().catch((e: unknown) => e)
  t.ok(e instanceof GatewayError)
  t.equal((e as GatewayError).code, 'STORE_CORRUPT')
})

t.test('behavior: group commit writes many enqueues in few batches, callbacks only once durable', async t => {
  const dir = await makeTempDir(t)
  const store = await LevelGatewayStore.open({ dir: join(dir, 's') })
  t.teardown(async () => await store.close())
  const done: number[] = []
  for (let i = 0; i < 500; i++) store.enqueue([{ type: 'put', key: `x/${i}`, value: Uint8Array.of(i & 0xff) }], () => done.push(i))
  t.equal(done.length, 0, 'nothing acknowledged before the write')
  await store.flush()
  t.equal(done.length, 500)
  t.same(done, [...done].sort((a, b) => a - b), 'in enqueue order')
  t.ok(store.writes <= 2, `${store.writes} writes`)
})

t.test('error: a second process on the same folder gets STORE_LOCKED', async t => {
  const dir = await makeTempDir(t)
  const a = await LevelGatewayStore.open({ dir: join(dir, 's') })
  t.teardown(async () => await a.close())
  const e = await LevelGatewayStore.open({ dir: join(dir, 's') }).catch((e: unknown) => e)
  t.ok(e instanceof GatewayError)
  t.equal((e as GatewayError).code, 'STORE_LOCKED')
})

t.test('behavior: anchored seq follows own confirmed runs, across honest gaps, and peers\' claims', async t => {
  const tr = new AnchoredTracker(0, 0)
  // Device a: 0..4 in batch 1, 5..9 stored by a peer, 10..12 in batch 2 (12 linked after 10: 11 dropped honestly).
  for (let s = 0; s <= 4; s++) tr.noteLeaf('a', s - 1, s, 1)
  tr.noteLeaf('a', 9, 10, 2)
  tr.noteLeaf('a', 10, 12, 2)
  t.same(tr.confirmThrough(1), ['a'])
  t.equal(tr.anchoredSeq('a'), 4)
  t.same(tr.confirmThrough(2), [], 'blocked on the peer\'s records')
  t.equal(tr.foldedThrough, 1, 'batch 2 still has a run to fold')
  t.equal(tr.notePeer('a', 9), true)
  t.equal(tr.anchoredSeq('a'), 12)
  t.equal(tr.foldedThrough, 2)
  t.equal(tr.notePeer('a', 8), false, 'older claims change nothing')
})
