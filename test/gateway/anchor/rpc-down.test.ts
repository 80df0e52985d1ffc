// The chain's RPC goes away mid-stream: anvil (with a state folder) is stopped while batches are
// queued and in flight, then restarted on the same port. No crash, failures reported with
// backoff, and afterwards every batch confirmed with each root anchored exactly once.
import t from 'tap'
import { startAnvil, startDevChain, createRpcProvider, RegistryClient } from '../../../contracts/index.js'
import { makeTempDir } from '../../helpers/tmp.js'
import { assertAnchoredOnce, makeBatch, openAnchorer, waitFor } from '../../helpers/anchor.js'

t.test('behavior: batches survive an RPC outage and are anchored once after it', async t => {
  const chainState = await makeTempDir(t, 'anvil-state-')
  const chain = await startDevChain({ stateDir: chainState })
  t.teardown(chain.stop)
  const codes: string[] = []
  const times: number[] = []
  const anchorer = await openAnchorer(t, {
    rpcUrl: chain.anvil.rpcUrl,
    registry: chain.deployment.address,
    privateKey: chain.wallets.anchorer.privateKey,
    retryInitialMs: 50,
    retryMaxMs: 400,
    onChainError: (code) => { codes.push(code); times.push(Date.now()) }
  })
  const batches = Array.from({ length: 12 }, (_, i) => makeBatch(i + 1, 'outage'))
  anchorer.start()
  for (const b of batches.slice(0, 10)) await anchorer.enqueue(b)
  // Stop the node while the stream is moving: the loop is somewhere between simulate and receipt.
  await waitFor(() => anchorer.confirmedThrough() >= 2, 'first batches confirmed')
  await chain.anvil.stop()
  t.comment(`node stopped with ${anchorer.confirmedThrough()} of 10 confirmed`)
  for (const b of batches.slice(10)) await anchorer.enqueue(b) // durable while the chain is down

  await waitFor(() => codes.length >= 5, 'failures reported', 10_000)
  t.ok(codes.every((c) => c === 'ANCHOR_RPC_UNREACHABLE'), `unreachable only: ${[...new Set(codes)].join(', ')}`)
  t.equal(anchorer.lastError?.code, 'ANCHOR_RPC_UNREACHABLE')
  const gaps = times.slice(1).map((x, i) => x - (times[i] as number))
  t.ok((gaps[3] as number) > (gaps[0] as number), `backoff grows: ${gaps.join(', ')} ms`)
  const before = anchorer.confirmedThrough()
  t.ok(before < 12, `stuck at ${before} while down`)

  const restarted = await startAnvil({ stateDir: chainState, port: chain.anvil.port })
  t.teardown(restarted.stop)
  await waitFor(() => anchorer.confirmedThrough() === 12, 'all confirmed after the restart', 15_000)
  t.equal(anchorer.lastError, undefined)

  const provider = createRpcProvider(restarted.rpcUrl, { chainId: restarted.chainId })
  t.teardown(() => provider.destroy())
  const reader = new RegistryClient(chain.deployment.address, provider)
  t.equal(await reader.batchCount(), 12n, 'twelve batches on chain, none twice')
  await assertAnchoredOnce(t, reader, batches)
  for (const b of batches) {
    const receipt = await anchorer.receipt(b.id)
    t.equal(receipt?.onChainBatchId, (await reader.getAnchor(b.root))?.batchId.toString(), `batch ${b.id}: receipt matches the chain`)
  }
})
