// Anchored batch roots: storage, the Anchored event an indexer follows, once-only roots, the
// custom errors for bad input, and the gas budget of one anchor transaction.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { ZeroHash, hexlify } from 'ethers'
import { startDevChain, type AnchorInput } from '../../contracts/index.js'
import { expectRevert } from '../helpers/registry.js'

const chain = await startDevChain()
t.teardown(chain.stop)
const anchorer = chain.registryAs('anchorer')
const reader = chain.registryAs('outsider')
const hash = (): string => hexlify(randomBytes(32))
const batch = (overrides: Partial<AnchorInput> = {}): AnchorInput => ({
  root: hash(), size: 1000, firstRecordTimeMs: 1_700_000_000_000, lastRecordTimeMs: 1_700_000_060_000, metadataHash: hash(), ...overrides
})


t.test('behavior: anchor stores the root under a new batch id and emits every field', async t => {
  const before = await reader.batchCount()
  const input = batch()
  const result = await anchorer.anchor(input)
  t.equal(result.batchId, before + 1n)
  t.equal(await reader.batchCount(), result.batchId)
  const block = await chain.provider.getBlock(result.blockNumber)
  t.same(await reader.getAnchor(input.root), {
    root: input.root, batchId: result.batchId, size: 1000n, blockNumber: result.blockNumber, anchoredAtSec: BigInt(block?.timestamp ?? -1)
  })
  const event = {
    batchId: result.batchId,
    root: input.root,
    anchorer: chain.wallets.anchorer.address,
    size: 1000n,
    firstRecordTimeMs: 1_700_000_000_000n,
    lastRecordTimeMs: 1_700_000_060_000n,
    metadataHash: input.metadataHash,
    blockNumber: result.blockNumber,
    txHash: result.txHash
  }
  t.match(await reader.getAnchorEvent(input.root), event)
  t.match(await reader.listAnchors({ fromBlock: result.blockNumber }), [event])
  t.match(await reader.listAnchors({}, { batchId: result.batchId }), [event])
  t.equal(await reader.getAnchor(hash()), undefined)
  t.equal(await reader.getAnchorEvent(hash()), undefined)
})

t.test('behavior: batch ids count up by one and an indexer sees every batch in order', async t => {
  const from = (await chain.provider.getBlockNumber()) + 1
  const ids: bigint[] = []
  for (let i = 0; i < 5; i++) ids.push((await anchorer.anchor(batch({ size: i + 1 }))).batchId)
  for (let i = 1; i < ids.length; i++) t.equal(ids[i], (ids[i - 1] as bigint) + 1n)
  const events = await reader.listAnchors({ fromBlock: from })
  t.same(events.map(e => e.batchId), ids)
  t.same(events.map(e => e.size), [1n, 2n, 3n, 4n, 5n])
})

t.test('error: a root is never overwritten nor anchored twice', async t => {
  const input = batch()
  const first = await anchorer.anchor(input)
  await expectRevert(t, anchorer.anchor(input), 'RootAlreadyAnchored', [input.root, first.batchId])
  await expectRevert(t, anchorer.anchor({ ...input, size: 7, metadataHash: hash() }), 'RootAlreadyAnchored', [input.root, first.batchId])
  t.match(await reader.getAnchor(input.root), { batchId: first.batchId, size: 1000n, blockNumber: first.blockNumber })
  t.equal((await reader.listAnchors({}, { root: input.root })).length, 1)
})

t.test('error: bad anchor input reverts with named custom errors', async t => {
  await expectRevert(t, anchorer.anchor(batch({ root: ZeroHash })), 'ZeroRoot', [])
  await expectRevert(t, anchorer.anchor(batch({ size: 0 })), 'EmptyBatch', [])
  await expectRevert(t, anchorer.anchor(batch({ firstRecordTimeMs: 2000, lastRecordTimeMs: 1999 })), 'InvalidTimeOrder', [2000n, 1999n])
  await t.rejects(anchorer.anchor(batch({ root: randomBytes(31) })), RangeError)
  await t.rejects(anchorer.anchor(batch({ size: -1 })), RangeError)
})

t.test('behavior: a single-record batch may start and end at the same time, and metadata may be empty', async t => {
  const result = await anchorer.anchor(batch({ size: 1, firstRecordTimeMs: 5, lastRecordTimeMs: 5, metadataHash: undefined }))
  t.match(await reader.listAnchors({}, { batchId: result.batchId }), [{ size: 1n, firstRecordTimeMs: 5n, lastRecordTimeMs: 5n, metadataHash: ZeroHash }])
})

t.test('behavior: one anchor transaction costs at most 60 000 gas including the 21 000 intrinsic', async t => {
  for (const size of [1, 1000, 65_536, 1_048_576, 2 ** 40]) {
    const { gasUsed } = await anchorer.anchor(batch({ size, firstRecordTimeMs: Date.now() - 60_000, lastRecordTimeMs: Date.now() }))
    t.ok(gasUsed <= 60_000n, `size ${size}: ${gasUsed} gas`)
  }
})
