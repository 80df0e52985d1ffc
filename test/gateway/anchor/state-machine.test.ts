// The anchorer's state machine without a chain: its chain I/O (chain-link.ts) answered from memory,
// so that mining, reorgs, foreign anchors and stolen nonces happen exactly when the test says.
// The same transitions on anvil are in anchorer.test.ts, restart.test.ts and rpc-down.test.ts.
import t, { type Test } from 'tap'
import { Wallet, hexlify, keccak256, toUtf8Bytes } from 'ethers'
import type { StoredAnchor } from '../../../contracts/index.js'
import { Anchorer, type AnchorReceipt } from '../../../gateway/anchor/index.js'
import type { AnchorCall, AnchorChain, AnchorChainConnector, ChainAnchorEvent, ChainReceipt, Fee } from '../../../gateway/anchor/chain-link.js'
import type { StoredTx } from '../../../gateway/anchor/state-store.js'
import { FAST, makeBatch, waitFor } from '../../helpers/anchor.js'
import { makeTempDir } from '../../helpers/tmp.js'

const CHAIN_ID = 31337
const REGISTRY = '0x5FbDB2315678afecb367f032d93F642f64180aa3'
const wallet = Wallet.createRandom()

interface Tx { hash: string, nonce: number, root: string | undefined, from: string }
interface Block { number: number, hash: string, txs: Tx[] }

/** A chain in memory: a pool, blocks mined on demand (or on each broadcast), reorgs. */
class MemoryChain implements AnchorChainConnector {
  readonly address = wallet.address
  autoMine = true
  /** Broadcasts the node silently drops. */
  dropBroadcasts = false
  readonly pool = new Map<string, Tx>()
  readonly blocks: Block[] = []
  readonly broadcasts: string[] = []
  readonly signed = new Map<string, Tx>()
  nonceUsed = 0
  nextBatchId = 1
  readonly batchIds = new Map<string, number>()

  async fetchChainId (): Promise<number> { return CHAIN_ID }

  open (chainId: number): AnchorChain {
    return connect(this, chainId)
  }

  /** Mines the pool's transactions whose nonce is next, in one block. */
  mine (): void {
    const txs: Tx[] = []
    for (let again = true; again;) {
      again = false
      for (const tx of this.pool.values()) {
        if (tx.from !== this.address || tx.nonce !== this.nonceUsed) continue
        this.pool.delete(tx.hash)
        // A second anchor of a root reverts: mined, but anchors nothing.
        txs.push(tx.root !== undefined && this.minedTxOfRoot(tx.root) !== undefined ? { ...tx, root: undefined } : tx)
        this.nonceUsed++
        again = true
      }
    }
    const number = this.blocks.length + 1
    this.blocks.push({ number, hash: keccak256(toUtf8Bytes(`block ${number}/${Math.random()}`)), txs })
  }

  /** Drops the last `depth` blocks; their transactions go back to the pool. */
  reorg (depth: number): void {
    for (const b of this.blocks.splice(this.blocks.length - depth, depth)) {
      for (const tx of b.txs) { this.pool.set(tx.hash, tx); this.nonceUsed-- }
    }
  }

  /** Someone else anchors `root` (a peer gateway): mined at once. */
  anchorElsewhere (root: string): void {
    const tx = { hash: keccak256(toUtf8Bytes(`foreign ${root}`)), nonce: 0, root, from: 'someone else' }
    const number = this.blocks.length + 1
    this.blocks.push({ number, hash: keccak256(toUtf8Bytes(`block ${number}`)), txs: [tx] })
  }

  /** Another signer of our account spends our next nonce. */
  stealNonce (): void {
    this.nonceUsed++
    this.mine()
  }

  sign (nonce: number, root: string | undefined): StoredTx {
    const hash = keccak256(toUtf8Bytes(`tx ${this.signed.size}`))
    this.signed.set(hash, { hash, nonce, root, from: this.address })
    // The "raw bytes" are the hash: broadcast looks the transaction up by it.
    return { hash, raw: hash, sentAtMs: Date.now(), gasPrice: '1' }
  }

  blockOfRoot (root: string): Block | undefined {
    return this.blocks.find((b) => b.txs.some((x) => x.root === root))
  }

  minedTxOfRoot (root: string): Tx | undefined {
    return this.blockOfRoot(root)?.txs.find((x) => x.root === root)
  }

  batchIdOf (root: string): number {
    let id = this.batchIds.get(root)
    if (id === undefined) { id = this.nextBatchId++; this.batchIds.set(root, id) }
    return id
  }
}

/** The AnchorChain the anchorer sees: every answer read from `c`. */
function connect (c: MemoryChain, chainId: number): AnchorChain {
  const receiptOf = (hash: string): ChainReceipt | undefined => {
    for (const b of c.blocks) {
      const tx = b.txs.find((x) => x.hash === hash)
      if (tx === undefined) continue
      const anchored = new Map<string, string>()
      if (tx.root !== undefined && c.minedTxOfRoot(tx.root) === tx) anchored.set(tx.root, String(c.batchIdOf(tx.root)))
      return { hash, status: 1, blockNumber: b.number, blockHash: b.hash, anchored }
    }
    return undefined
  }
  return {
    chainId,
    hasRegistryCode: async () => true,
    simulateAnchor: async (call: AnchorCall) => c.minedTxOfRoot(call.root) !== undefined ? 'already-anchored' : 50_000n,
    pendingNonce: async () => Math.max(c.nonceUsed, ...[...c.pool.values()].filter((x) => x.from === c.address).map((x) => x.nonce + 1)),
    minedNonce: async () => c.nonceUsed,
    currentFee: async (): Promise<Fee> => ({ gasPrice: 1n }),
    signAnchor: async (call, o) => c.sign(o.nonce, call.root),
    signReplacement: async (current, o) => c.sign(o.nonce, o.cancel ? undefined : (c.signed.get(current.hash) as Tx).root),
    broadcast: async (raw: string) => {
      c.broadcasts.push(raw)
      const tx = c.signed.get(raw) as Tx
      if (c.dropBroadcasts || tx.nonce < c.nonceUsed) return
      c.pool.set(tx.hash, tx)
      if (c.autoMine) c.mine()
    },
    findReceipt: async (hashes) => {
      for (let i = hashes.length - 1; i >= 0; i--) {
        const r = receiptOf(hashes[i] as string)
        if (r !== undefined) return r
      }
      return undefined
    },
    receipt: async (hash) => receiptOf(hash),
    knowsTransaction: async (hash) => c.pool.has(hash) || receiptOf(hash) !== undefined,
    blockNumber: async () => c.blocks.length,
    getAnchor: async (root): Promise<StoredAnchor | undefined> => {
      const at = c.blockOfRoot(root)
      return at === undefined ? undefined : { root, batchId: BigInt(c.batchIdOf(root)), size: 1n, blockNumber: at.number, anchoredAtSec: 0n }
    },
    getAnchorEvent: async (root): Promise<ChainAnchorEvent | undefined> => {
      const at = c.blockOfRoot(root)
      const tx = c.minedTxOfRoot(root)
      return at === undefined || tx === undefined ? undefined : { txHash: tx.hash, blockNumber: at.number, blockHash: at.hash, batchId: String(c.batchIdOf(root)) }
    },
    close: () => {}
  }
}

async function open (t: Test, chain: MemoryChain, options: { confirmations?: number, onChainError?: (code: string) => void } = {}): Promise<Anchorer> {
  const stateDir = await makeTempDir(t, 'anchor-sm-')
  const anchorer = await Anchorer.openWith({ ...FAST, ...options, stateDir, rpcUrl: 'http://unused.invalid', registry: REGISTRY, privateKey: wallet.privateKey, syncWrites: false }, chain)
  t.teardown(async () => await anchorer.close())
  return anchorer
}

t.test('behavior: without a chain, batches go queued → sent → mined → confirmed in id order', async t => {
  const chain = new MemoryChain()
  const anchorer = await open(t, chain)
  const confirmed: AnchorReceipt[] = []
  anchorer.onConfirmed((r) => confirmed.push(r))
  const batches = [1, 2, 3].map((id) => makeBatch(id, 'memory'))
  for (const b of batches) await anchorer.enqueue(b)
  t.equal(await anchorer.state(1), 'queued', 'queued before the loop runs')
  anchorer.start()
  await waitFor(() => anchorer.confirmedThrough() === 3, 'all 3 confirmed')
  t.same(confirmed.map((r) => r.batch), [1, 2, 3])
  t.equal(chain.broadcasts.length, 3, 'one transaction per batch')
  for (const b of batches) {
    const r = await anchorer.receipt(b.id)
    t.equal(await anchorer.state(b.id), 'confirmed')
    t.equal(r?.chainId, CHAIN_ID)
    t.equal(r?.txHash, chain.minedTxOfRoot(hexlify(b.root))?.hash, `batch ${b.id}: the receipt names the mined transaction`)
    t.equal(r?.adopted, undefined)
  }
})

t.test('behavior: a root someone else anchored is adopted without sending a transaction', async t => {
  const chain = new MemoryChain()
  const anchorer = await open(t, chain)
  const b = makeBatch(1, 'foreign')
  chain.anchorElsewhere(hexlify(b.root))
  await anchorer.enqueue(b)
  anchorer.start()
  await waitFor(() => anchorer.confirmedThrough() === 1, 'batch 1 confirmed')
  t.equal((await anchorer.receipt(1))?.adopted, true)
  t.equal(chain.broadcasts.length, 0, 'nothing broadcast')
})

t.test('behavior: a reorg before the confirmations are reached sends the batch back, and it confirms once re-mined', async t => {
  const chain = new MemoryChain()
  chain.autoMine = false
  const anchorer = await open(t, chain, { confirmations: 2 })
  await anchorer.enqueue(makeBatch(1, 'reorg'))
  anchorer.start()
  await waitFor(() => chain.pool.size === 1, 'the anchor transaction in the pool')
  chain.mine()
  await waitFor(async () => await anchorer.state(1) === 'mined', 'batch 1 mined')
  chain.reorg(1)
  await waitFor(async () => await anchorer.state(1) === 'sent', 'batch 1 back to sent')
  t.equal(anchorer.confirmedThrough(), 0, 'not confirmed on an orphaned block')
  chain.mine()
  chain.mine()
  await waitFor(() => anchorer.confirmedThrough() === 1, 'batch 1 confirmed after re-mining')
  t.equal((await anchorer.receipt(1))?.blockHash, chain.blocks[0]?.hash, 'the receipt names the canonical block')
})

t.test('error: a nonce spent by a transaction the anchorer did not sign reports ANCHOR_NONCE_CONFLICT and re-sends the batch', async t => {
  const chain = new MemoryChain()
  chain.dropBroadcasts = true
  const codes: string[] = []
  const anchorer = await open(t, chain, { onChainError: (code) => codes.push(code) })
  await anchorer.enqueue(makeBatch(1, 'nonce'))
  anchorer.start()
  await waitFor(async () => await anchorer.state(1) === 'sent', 'batch 1 sent')
  chain.dropBroadcasts = false
  chain.stealNonce()
  await waitFor(() => anchorer.confirmedThrough() === 1, 'batch 1 confirmed with the next nonce')
  t.ok(codes.includes('ANCHOR_NONCE_CONFLICT'), 'the conflict reported')
  t.equal(chain.minedTxOfRoot(hexlify(makeBatch(1, 'nonce').root))?.nonce, 1, 'anchored under nonce 1')
})
