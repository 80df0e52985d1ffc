// The anchorer on a live anvil chain (automine): batches confirmed in id order with receipts that
// match the chain, idempotent enqueue, conflicts, adopting a root someone else anchored, and a
// missing role reported with backoff instead of a tight loop. Prints the measured throughput.
import t from 'tap'
import { Wallet, hexlify } from 'ethers'
import { startDevChain, registryInterface } from '../../../contracts/index.js'
import { AnchorError, type AnchorReceipt } from '../../../gateway/anchor/index.js'
import { assertAnchoredOnce, makeBatch, openAnchorer, pooledTxs, waitFor } from '../../helpers/anchor.js'

const chain = await startDevChain()
t.teardown(chain.stop)
const reader = chain.registryAs('outsider')
const base = {
  rpcUrl: chain.anvil.rpcUrl,
  registry: chain.deployment.address,
  privateKey: chain.wallets.anchorer.privateKey
}
const account = (i: number): { address: string, privateKey: string } => {
  const a = chain.anvil.accounts[i]
  if (a === undefined) throw new Error(`no anvil account ${i}`)
  return a
}

async function rejection (promise: Promise<unknown>): Promise<unknown> {
  return await promise.then(() => undefined, (e: unknown) => e)
}

t.test('behavior: 20 batches are confirmed in id order and the receipts match the chain', async t => {
  const confirmed: AnchorReceipt[] = []
  const latencies: number[] = []
  const anchorer = await openAnchorer(t, { ...base, onAnchored: (_r, ms) => latencies.push(ms) })
  anchorer.onConfirmed((r) => confirmed.push(r))
  const batches = Array.from({ length: 20 }, (_, i) => makeBatch(i + 1, 'happy'))
  const before = await reader.batchCount()
  const started = performance.now()
  anchorer.start()
  for (const b of batches) await anchorer.enqueue(b)
  await waitFor(() => anchorer.confirmedThrough() === 20, 'all 20 confirmed', 20_000)
  const seconds = (performance.now() - started) / 1000
  t.comment(`throughput: ${(20 / seconds).toFixed(1)} batches/s confirmed (anvil automine, 1 confirmation, fsync on)`)

  t.same(confirmed.map((r) => r.batch), batches.map((b) => b.id), 'onConfirmed in id order')
  t.equal(latencies.length, 20, 'onAnchored once per batch')
  t.ok(latencies.every((ms) => ms >= 0))
  t.equal(await reader.batchCount(), before + 20n, 'one on-chain batch per local batch')
  await assertAnchoredOnce(t, reader, batches)
  for (const b of batches) {
    const receipt = await anchorer.receipt(b.id)
    t.same(receipt, confirmed[b.id - 1], `batch ${b.id}: stored receipt = notified receipt`)
    if (receipt === undefined) continue
    t.equal(await anchorer.state(b.id), 'confirmed')
    t.equal(receipt.chainId, chain.anvil.chainId)
    t.equal(receipt.contract, chain.deployment.address)
    t.ok(receipt.confirmations >= 1)
    t.equal(receipt.adopted, undefined)
    const stored = await reader.getAnchor(b.root)
    t.equal(stored?.batchId.toString(), receipt.onChainBatchId, 'getAnchor gives the on-chain batch id')
    t.equal(stored?.blockNumber, receipt.blockNumber)
    t.equal((await chain.provider.getBlock(receipt.blockNumber))?.hash, receipt.blockHash)
    t.match(await reader.getAnchorEvent(b.root), {
      batchId: BigInt(receipt.onChainBatchId),
      root: hexlify(b.root),
      anchorer: anchorer.address,
      size: BigInt(b.size),
      firstRecordTimeMs: BigInt(b.firstRecordTimeMs),
      lastRecordTimeMs: BigInt(b.lastRecordTimeMs),
      metadataHash: hexlify(b.metadataHash),
      txHash: receipt.txHash,
      blockNumber: receipt.blockNumber
    }, `batch ${b.id}: the Anchored event carries the batch's fields`)
  }
  const ids = confirmed.map((r) => BigInt(r.onChainBatchId))
  t.ok(ids.every((id, i) => i === 0 || id === (ids[i - 1] as bigint) + 1n), 'on-chain ids consecutive, like the local ones')
})

t.test('behavior: enqueueing the same batch twice anchors it once', async t => {
  const anchorer = await openAnchorer(t, base)
  const batch = makeBatch(1, 'twice')
  const before = await reader.batchCount()
  // Concurrent and sequential repeats, before and after start.
  await Promise.all([anchorer.enqueue(batch), anchorer.enqueue(makeBatch(1, 'twice'))])
  anchorer.start()
  await anchorer.enqueue(batch)
  await waitFor(() => anchorer.confirmedThrough() === 1, 'batch confirmed')
  await anchorer.enqueue(batch)
  // A re-enqueue after confirmation stays a no-op, whatever its seal time.
  await anchorer.enqueue({ ...batch, sealedAtMs: Date.now() + 1000 })
  t.equal(await anchorer.state(1), 'confirmed')
  t.equal(await reader.batchCount(), before + 1n)
  await assertAnchoredOnce(t, reader, [batch])
})

t.test('error: same id with another root, a reused root, a skipped id, a closed anchorer', async t => {
  const anchorer = await openAnchorer(t, base)
  await anchorer.enqueue(makeBatch(1, 'conflict'))
  const otherRoot = await rejection(anchorer.enqueue(makeBatch(1, 'conflict-other')))
  t.ok(otherRoot instanceof AnchorError, 'AnchorError')
  t.equal((otherRoot as AnchorError).code, 'ANCHOR_CONFLICT')
  const otherSize = await rejection(anchorer.enqueue({ ...makeBatch(1, 'conflict'), size: 999 }))
  t.equal((otherSize as AnchorError).code, 'ANCHOR_CONFLICT', 'same root, other fields')
  const reusedRoot = await rejection(anchorer.enqueue({ ...makeBatch(2, 'conflict'), root: makeBatch(1, 'conflict').root }))
  t.equal((reusedRoot as AnchorError).code, 'ANCHOR_CONFLICT', 'a root belongs to one batch')
  const skipped = await rejection(anchorer.enqueue(makeBatch(3, 'conflict')))
  t.ok(skipped instanceof AnchorError)
  t.equal((skipped as AnchorError).code, 'ANCHOR_OUT_OF_ORDER')
  t.equal(await anchorer.state(2), undefined, 'nothing stored for refused batches')
  t.equal(await anchorer.state(3), undefined)

  await t.rejects(anchorer.enqueue({ ...makeBatch(2, 'conflict'), root: new Uint8Array(31) }), TypeError)
  await t.rejects(anchorer.enqueue({ ...makeBatch(2, 'conflict'), root: new Uint8Array(32) }), RangeError, 'zero root')
  await t.rejects(anchorer.enqueue({ ...makeBatch(2, 'conflict'), size: 0 }), RangeError)
  await t.rejects(anchorer.enqueue({ ...makeBatch(2, 'conflict'), lastRecordTimeMs: 1 }), RangeError, 'last before first')
  await t.rejects(anchorer.enqueue({ ...makeBatch(2, 'conflict'), id: 0 }), RangeError)

  await anchorer.close()
  const closed = await rejection(anchorer.enqueue(makeBatch(2, 'conflict')))
  t.equal((closed as AnchorError).code, 'ANCHOR_CLOSED')
  t.throws(() => anchorer.start(), { code: 'ANCHOR_CLOSED' })
})

t.test('error: bad options are refused without echoing the key', async t => {
  const secret = '0x' + 'ab'.repeat(31) // 31 bytes: not a key
  const e = await rejection(openAnchorer(t, { ...base, privateKey: secret }))
  t.ok(e instanceof TypeError)
  t.notMatch((e as Error).message, 'abab', 'message does not carry the key')
  await t.rejects(openAnchorer(t, { ...base, registry: 'not an address' }), TypeError)
  await t.rejects(openAnchorer(t, { ...base, confirmations: 0 }), RangeError)
})

t.test('behavior: a root someone else anchored first is adopted, no transaction sent', async t => {
  const other = new Wallet(account(5).privateKey, chain.provider)
  await chain.registryAs('admin').grantRole('anchorer', other.address)
  const batch = makeBatch(1, 'foreign-first')
  const theirs = await (reader.connect(other)).anchor({ ...batch })
  const anchorer = await openAnchorer(t, base)
  const nonceBefore = await chain.provider.getTransactionCount(anchorer.address, 'latest')
  anchorer.start()
  await anchorer.enqueue(batch)
  await waitFor(() => anchorer.confirmedThrough() === 1, 'adopted batch confirmed')
  const receipt = await anchorer.receipt(1)
  t.equal(receipt?.adopted, true)
  t.equal(receipt?.txHash, theirs.txHash)
  t.equal(receipt?.onChainBatchId, theirs.batchId.toString())
  t.equal(receipt?.blockNumber, theirs.blockNumber)
  t.equal(await chain.provider.getTransactionCount(anchorer.address, 'latest'), nonceBefore, 'our account sent nothing')
  await assertAnchoredOnce(t, reader, [batch])
})

t.test('behavior: losing the race to another anchorer ends in adoption, not a revert loop', async t => {
  const other = new Wallet(account(5).privateKey, chain.provider)
  const errors: string[] = []
  const anchorer = await openAnchorer(t, { ...base, onChainError: (c) => errors.push(c) })
  const batch = makeBatch(1, 'foreign-race')
  await chain.provider.send('evm_setAutomine', [false])
  t.teardown(async () => await chain.provider.send('evm_setAutomine', [true]))
  anchorer.start()
  await anchorer.enqueue(batch)
  await waitFor(async () => (await pooledTxs(chain.provider, anchorer.address)).length > 0, 'our transaction in the pool')
  const ours = await pooledTxs(chain.provider, anchorer.address)
  t.equal(ours.length, 1)
  // Same root from another anchorer, with a far higher tip so the block orders it first.
  const data = registryInterface.encodeFunctionData('anchor', [batch.root, batch.size, batch.firstRecordTimeMs, batch.lastRecordTimeMs, batch.metadataHash])
  const theirs = await other.sendTransaction({ to: chain.deployment.address, data, gasLimit: 100_000, maxPriorityFeePerGas: 50_000_000_000n, maxFeePerGas: 100_000_000_000n })
  await chain.provider.send('evm_mine', [])
  await waitFor(() => anchorer.confirmedThrough() === 1, 'batch confirmed by adoption')
  const ourReceipt = await chain.provider.getTransactionReceipt((ours[0] as { hash: string }).hash)
  t.equal(ourReceipt?.status, 0, 'our transaction reverted (RootAlreadyAnchored)')
  const receipt = await anchorer.receipt(1)
  t.equal(receipt?.txHash, theirs.hash)
  t.equal(receipt?.adopted, true)
  t.same(errors, [], 'adoption is not an error')
  await assertAnchoredOnce(t, reader, [batch])
})

t.test('error: a missing ANCHORER_ROLE is ANCHOR_UNAUTHORIZED, retried with backoff, then recovers', async t => {
  const roleless = account(6)
  const times: number[] = []
  const codes: string[] = []
  const anchorer = await openAnchorer(t, {
    ...base,
    privateKey: roleless.privateKey,
    onChainError: (code) => { codes.push(code); times.push(Date.now()) }
  })
  anchorer.start()
  await anchorer.enqueue(makeBatch(1, 'no-role'))
  const started = Date.now()
  await waitFor(() => codes.length >= 5, 'five failed attempts', 10_000)
  const window = Date.now() - started
  t.ok(codes.every((c) => c === 'ANCHOR_UNAUTHORIZED'), 'every failure is ANCHOR_UNAUTHORIZED')
  t.ok(anchorer.lastError instanceof AnchorError)
  t.equal(anchorer.lastError?.code, 'ANCHOR_UNAUTHORIZED')
  t.equal(await anchorer.state(1), 'queued', 'nothing signed')
  t.equal(await chain.provider.getTransactionCount(roleless.address, 'pending'), 0, 'no transaction sent')
  // 50, 100, 200, 400 ms (±20 %) between attempts: no tight loop.
  t.ok(window >= 450, `five attempts took ${window} ms`)
  const gaps = times.slice(1).map((x, i) => x - (times[i] as number))
  t.ok((gaps[3] as number) > (gaps[0] as number), `gaps grow: ${gaps.join(', ')}`)

  await chain.registryAs('admin').grantRole('anchorer', roleless.address)
  await waitFor(() => anchorer.confirmedThrough() === 1, 'confirmed once the role is granted', 10_000)
  t.equal(anchorer.lastError, undefined, 'lastError cleared')
  await assertAnchoredOnce(t, reader, [makeBatch(1, 'no-role')])
})
