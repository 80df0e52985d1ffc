// Anchorer processes killed with SIGKILL mid-stream (test/fixtures/anchor-child.ts), three in turn
// on one state folder, then an in-process Anchorer on it: every batch confirmed, every root
// anchored exactly once, and everything a child reported confirmed is still confirmed.
import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { startDevChain } from '../../../contracts/index.js'
import { makeTempDir } from '../../helpers/tmp.js'
import { assertAnchoredOnce, makeBatch, openAnchorer, waitFor } from '../../helpers/anchor.js'

const CHILD = fileURLToPath(new URL('../../fixtures/anchor-child.ts', import.meta.url))
const COUNT = 30

t.test('behavior: after SIGKILLs mid-stream a new anchorer completes without anchoring twice', async t => {
  const chain = await startDevChain()
  t.teardown(chain.stop)
  const reader = chain.registryAs('outsider')
  const stateDir = await makeTempDir(t)
  const seed = 'sigkill'

  const confirmedByChild = new Set<number>()
  // Three children in turn on the same state, each killed once it has confirmed a few more batches.
  for (let round = 1; round <= 3; round++) {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, stateDir, chain.anvil.rpcUrl, chain.deployment.address, String(COUNT), seed], {
      env: { ...process.env, ANCHOR_CHILD_KEY: chain.wallets.anchorer.privateKey },
      stdio: ['ignore', 'pipe', 'inherit']
    })
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    t.teardown(() => { child.kill('SIGKILL') })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8')
      for (const m of output.matchAll(/^confirmed (\d+)$/gm)) confirmedByChild.add(Number(m[1]))
    })
    await waitFor(() => confirmedByChild.size >= 5 * round, `child ${round} confirms up to ${5 * round}`, 30_000)
    child.kill('SIGKILL')
    await exited
  }
  t.comment(`children killed after ${confirmedByChild.size} confirmations`)

  const anchorer = await openAnchorer(t, {
    stateDir,
    rpcUrl: chain.anvil.rpcUrl,
    registry: chain.deployment.address,
    privateKey: chain.wallets.anchorer.privateKey
  })
  for (const id of confirmedByChild) t.equal(await anchorer.state(id), 'confirmed', `batch ${id} reported confirmed stays confirmed`)
  t.ok(anchorer.confirmedThrough() >= Math.max(...confirmedByChild), 'watermark covers every reported confirmation')
  anchorer.start()
  const batches = Array.from({ length: COUNT }, (_, i) => makeBatch(i + 1, seed))
  // The gateway re-enqueues its sealed batches after a restart; known ones are no-ops.
  for (const b of batches) await anchorer.enqueue(b)
  await waitFor(() => anchorer.confirmedThrough() === COUNT, 'all batches confirmed', 20_000)
  t.equal(await reader.batchCount(), BigInt(COUNT), 'one on-chain batch per local batch')
  await assertAnchoredOnce(t, reader, batches)
  for (const b of batches) {
    t.equal((await anchorer.receipt(b.id))?.onChainBatchId, (await reader.getAnchor(b.root))?.batchId.toString(), `batch ${b.id}: receipt`)
  }
})
