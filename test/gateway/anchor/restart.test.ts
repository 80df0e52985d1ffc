// Restarts in every state (queued, sent, mined, confirmed), a transaction the node lost or
// dropped, a slow transaction replaced with a higher fee, and a mined block rolled back.
// Mining is manual here (evm_setAutomine false + evm_mine) so each state can be caught.
import t, { type Test } from 'tap'
import { startDevChain } from '../../../contracts/index.js'
import type { Anchorer } from '../../../gateway/anchor/index.js'
import { makeTempDir } from '../../helpers/tmp.js'
import { assertAnchoredOnce, makeBatch, openAnchorer, pooledTxs, waitFor } from '../../helpers/anchor.js'

const chain = await startDevChain()
t.teardown(chain.stop)
const provider = chain.provider
const reader = chain.registryAs('outsider')
const base = {
  rpcUrl: chain.anvil.rpcUrl,
  registry: chain.deployment.address,
  privateKey: chain.wallets.anchorer.privateKey
}
const me = chain.wallets.anchorer.address

async function setAutomine (t: Test, on: boolean): Promise<void> {
  await provider.send('evm_setAutomine', [on])
  if (!on) t.teardown(async () => await provider.send('evm_setAutomine', [true]))
}
async function mine (blocks = 1): Promise<void> {
  for (let i = 0; i < blocks; i++) await provider.send('evm_mine', [])
}
async function waitState (a: Anchorer, id: number, state: string): Promise<void> {
  await waitFor(async () => await a.state(id) === state, `batch ${id} ${state}`)
}
/** Waits for the anchorer's transaction to reach the pool ('sent' is stored just before the broadcast). */
async function pooledHash (t: Test): Promise<string> {
  await waitFor(async () => (await pooledTxs(provider, me)).length > 0, 'transaction in the pool')
  const txs = await pooledTxs(provider, me)
  t.equal(txs.length, 1, 'one transaction in the pool')
  return txs[0]?.hash ?? ''
}
/** Gives the loop a few polls to do something it should not (sign a second transaction). */
async function idle (): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 150))
}

t.test('behavior: a batch closed while queued is anchored after reopen', async t => {
  const stateDir = await makeTempDir(t)
  const batch = makeBatch(1, 'restart-queued')
  const first = await openAnchorer(t, { ...base, stateDir })
  await first.enqueue(batch)
  await first.close()
  const second = await openAnchorer(t, { ...base, stateDir })
  t.equal(await second.state(1), 'queued')
  second.start()
  await waitFor(() => second.confirmedThrough() === 1, 'confirmed')
  await assertAnchoredOnce(t, reader, [batch])
})

t.test('behavior: a batch closed while sent is reconciled after reopen, not signed again', async t => {
  await setAutomine(t, false)
  const stateDir = await makeTempDir(t)
  const batch = makeBatch(1, 'restart-sent')
  const first = await openAnchorer(t, { ...base, stateDir })
  first.start()
  await first.enqueue(batch)
  await waitState(first, 1, 'sent')
  const hash = await pooledHash(t)
  await first.close()

  const second = await openAnchorer(t, { ...base, stateDir })
  t.equal(await second.state(1), 'sent')
  second.start()
  await idle()
  t.same((await pooledTxs(provider, me)).map((x) => x.hash), [hash], 'still the one stored transaction')
  await mine()
  await waitFor(() => second.confirmedThrough() === 1, 'confirmed')
  t.equal((await second.receipt(1))?.txHash, hash)
  await assertAnchoredOnce(t, reader, [batch])
})

t.test('behavior: after a crash between storing and broadcasting, the same bytes are broadcast', async t => {
  await setAutomine(t, false)
  const stateDir = await makeTempDir(t)
  const batch = makeBatch(1, 'restart-lost')
  const first = await openAnchorer(t, { ...base, stateDir })
  first.start()
  await first.enqueue(batch)
  await waitState(first, 1, 'sent')
  const hash = await pooledHash(t)
  await first.close()
  // From the chain's side this is a transaction that was stored but never broadcast.
  await provider.send('anvil_dropAllTransactions', [])
  t.same(await pooledTxs(provider, me), [])

  const second = await openAnchorer(t, { ...base, stateDir })
  second.start()
  await waitFor(async () => (await pooledTxs(provider, me)).length === 1, 're-broadcast')
  t.same((await pooledTxs(provider, me)).map((x) => x.hash), [hash], 'same transaction hash: same signed bytes')
  await mine()
  await waitFor(() => second.confirmedThrough() === 1, 'confirmed')
  t.equal((await second.receipt(1))?.txHash, hash)
  await assertAnchoredOnce(t, reader, [batch])
})

t.test('behavior: a batch closed while mined reaches its confirmations after reopen', async t => {
  await setAutomine(t, false)
  const stateDir = await makeTempDir(t)
  const batch = makeBatch(1, 'restart-mined')
  const first = await openAnchorer(t, { ...base, stateDir, confirmations: 3 })
  first.start()
  await first.enqueue(batch)
  await waitState(first, 1, 'sent')
  await pooledHash(t)
  await mine()
  await waitState(first, 1, 'mined')
  await first.close()

  const second = await openAnchorer(t, { ...base, stateDir, confirmations: 3 })
  t.equal(await second.state(1), 'mined')
  second.start()
  await mine()
  await idle()
  t.equal(await second.state(1), 'mined', 'two confirmations are not enough')
  await mine()
  await waitFor(() => second.confirmedThrough() === 1, 'confirmed at three')
  const receipt = await second.receipt(1)
  t.ok((receipt?.confirmations ?? 0) >= 3)
  t.equal(receipt?.blockNumber, (await reader.getAnchor(batch.root))?.blockNumber)
  await assertAnchoredOnce(t, reader, [batch])
})

t.test('behavior: a confirmed batch stays confirmed after reopen and nothing is sent again', async t => {
  const stateDir = await makeTempDir(t)
  const batches = [makeBatch(1, 'restart-confirmed'), makeBatch(2, 'restart-confirmed')]
  const first = await openAnchorer(t, { ...base, stateDir })
  first.start()
  for (const b of batches) await first.enqueue(b)
  await waitFor(() => first.confirmedThrough() === 2, 'confirmed')
  const receipts = [await first.receipt(1), await first.receipt(2)]
  await first.close()
  const nonce = await provider.getTransactionCount(me, 'pending')

  const second = await openAnchorer(t, { ...base, stateDir })
  t.equal(second.confirmedThrough(), 2)
  second.start()
  for (const b of batches) await second.enqueue(b) // a gateway re-enqueues after its own restart
  await idle()
  t.same([await second.receipt(1), await second.receipt(2)], receipts)
  t.equal(await provider.getTransactionCount(me, 'pending'), nonce, 'no transaction sent')
  await assertAnchoredOnce(t, reader, batches)
})

t.test('behavior: a transaction dropped from the mempool is re-sent and confirms once', async t => {
  await setAutomine(t, false)
  const anchorer = await openAnchorer(t, base)
  const batch = makeBatch(1, 'dropped')
  anchorer.start()
  await anchorer.enqueue(batch)
  await waitState(anchorer, 1, 'sent')
  const hash = await pooledHash(t)
  await provider.send('anvil_dropTransaction', [hash])
  await waitFor(async () => (await pooledTxs(provider, me)).some((x) => x.hash === hash), 'transaction back in the pool')
  await mine()
  await waitFor(() => anchorer.confirmedThrough() === 1, 'confirmed')
  t.equal((await anchorer.receipt(1))?.txHash, hash)
  await assertAnchoredOnce(t, reader, [batch])
})

t.test('behavior: a transaction not mined within resendAfterMs is replaced with a higher fee', async t => {
  await setAutomine(t, false)
  const anchorer = await openAnchorer(t, { ...base, resendAfterMs: 200 })
  const batch = makeBatch(1, 'bump')
  anchorer.start()
  await anchorer.enqueue(batch)
  await waitState(anchorer, 1, 'sent')
  await pooledHash(t)
  const [original] = await pooledTxs(provider, me)
  await waitFor(async () => (await pooledTxs(provider, me))[0]?.hash !== original?.hash, 'replacement in the pool')
  const [replacement] = await pooledTxs(provider, me)
  t.equal(replacement?.nonce, original?.nonce, 'same nonce')
  t.ok((replacement?.maxPriorityFeePerGas ?? 0n) > (original?.maxPriorityFeePerGas ?? 0n), 'higher tip')
  await mine()
  await waitFor(() => anchorer.confirmedThrough() === 1, 'confirmed')
  const receipt = await anchorer.receipt(1)
  t.not(receipt?.txHash, original?.hash)
  await assertAnchoredOnce(t, reader, [batch])
})

t.test('behavior: a mined transaction whose block is rolled back goes back to sent and confirms', async t => {
  await setAutomine(t, false)
  const anchorer = await openAnchorer(t, { ...base, confirmations: 3 })
  const batch = makeBatch(1, 'reorg')
  anchorer.start()
  await anchorer.enqueue(batch)
  await waitState(anchorer, 1, 'sent')
  await pooledHash(t)
  await mine()
  await waitState(anchorer, 1, 'mined')
  const minedIn = (await reader.getAnchor(batch.root))?.blockNumber
  await provider.send('anvil_rollback', [1])
  t.equal(await reader.getAnchor(batch.root), undefined, 'the anchor is gone with its block')
  await waitState(anchorer, 1, 'sent')
  await waitFor(async () => (await pooledTxs(provider, me)).length === 1, 're-broadcast after the rollback')
  await mine(3)
  await waitFor(() => anchorer.confirmedThrough() === 1, 'confirmed')
  const receipt = await anchorer.receipt(1)
  t.equal(receipt?.blockNumber, (await reader.getAnchor(batch.root))?.blockNumber)
  t.equal((await provider.getBlock(receipt?.blockNumber ?? -1))?.hash, receipt?.blockHash, 'receipt names the canonical block')
  t.ok(minedIn !== undefined)
  await assertAnchoredOnce(t, reader, [batch])
})
