// Waiting for a receipt on a chain where nothing else is mined: the node first reports the receipt
// missing, then the transaction's block is the newest. ethers' own tx.wait() stays blocked then
// (its block poller counts that block as seen); waitForReceipt asks again and gets it.
import t, { type Test } from 'tap'
import { createServer, type Server } from 'node:http'
import { Wallet, type JsonRpcProvider } from 'ethers'
import { startAnvil, createRpcProvider, deployRegistry } from '../../contracts/index.js'
import { waitForReceipt } from '../../contracts/receipt.js'

const anvil = await startAnvil({ accountCount: 2 })
t.teardown(anvil.stop)

interface Proxy { url: string, hideReceipts: number, receiptAsks: number, blockAsks: number, provider: JsonRpcProvider }

/**
 * A JSON-RPC proxy to anvil that answers the first `hideReceipts` receipt requests with null, and a
 * provider through it; at the end the provider stops before the proxy does.
 */
async function startProxy (t: Test, hideReceipts: number): Promise<Proxy> {
  const proxy = { url: '', hideReceipts, receiptAsks: 0, blockAsks: 0 } as Proxy
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      void (async () => {
        const body = Buffer.concat(chunks).toString('utf8')
        const call = JSON.parse(body) as { id: number, method: string }
        if (call.method === 'eth_blockNumber') proxy.blockAsks++
        if (call.method === 'eth_getTransactionReceipt' && proxy.receiptAsks++ < proxy.hideReceipts) {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: call.id, result: null }))
          return
        }
        const answer = await fetch(anvil.rpcUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
        res.writeHead(answer.status, { 'content-type': 'application/json' }).end(await answer.text())
      })().catch((e: unknown) => { res.destroy(e as Error) })
    })
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  proxy.url = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
  proxy.provider = createRpcProvider(proxy.url, { chainId: anvil.chainId, pollingIntervalMs: 20 })
  t.teardown(async () => {
    proxy.provider.destroy()
    // Requests already sent finish through the proxy (close() waits for them), none is cut.
    await new Promise(resolve => server.close(resolve))
  })
  return proxy
}

async function until (what: () => boolean): Promise<void> {
  while (!what()) await new Promise(resolve => setTimeout(resolve, 10))
}

async function mine (): Promise<void> {
  await fetch(anvil.rpcUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'evm_mine', params: [] }) })
}

t.test('behavior: a receipt first reported missing is found with no later block', async t => {
  const proxy = await startProxy(t, 2)
  const wallet = new Wallet(anvil.accounts[0]?.privateKey ?? '', proxy.provider)
  const tx = await wallet.sendTransaction({ to: anvil.accounts[1]?.address, value: 1n })
  const receipt = await waitForReceipt(tx)
  t.equal(receipt.hash, tx.hash)
  t.equal(receipt.status, 1)
  t.ok(proxy.receiptAsks >= 3, 'asked past the hidden answers')
})

t.test('behavior: the same node leaves ethers\' own wait() blocked until another block', async t => {
  const proxy = await startProxy(t, 2)
  const wallet = new Wallet(anvil.accounts[0]?.privateKey ?? '', proxy.provider)
  const tx = await wallet.sendTransaction({ to: anvil.accounts[1]?.address, value: 1n })
  let settled = false
  const waited = tx.wait().finally(() => { settled = true })
  // Both hidden answers given, then ten block polls that find no new block: nothing will wake it.
  await until(() => proxy.receiptAsks >= 2)
  const after = proxy.blockAsks
  await until(() => proxy.blockAsks >= after + 10)
  t.equal(settled, false, 'ethers\' wait() is still waiting')
  await mine()
  t.equal((await waited)?.hash, tx.hash, 'a new block wakes it')
})

t.test('behavior: deployments and contract calls wait the same way', async t => {
  const proxy = await startProxy(t, 2)
  const wallet = new Wallet(anvil.accounts[0]?.privateKey ?? '', proxy.provider)
  const { registry } = await deployRegistry(wallet)
  proxy.receiptAsks = 0
  const granted = await registry.grantRole('anchorer', wallet.address)
  t.ok(granted.txHash.startsWith('0x'))
  t.ok(proxy.receiptAsks >= 3)
})

t.test('error: a reverted transaction still rejects with ethers\' CALL_EXCEPTION', async t => {
  const provider = createRpcProvider(anvil.rpcUrl, { chainId: anvil.chainId, pollingIntervalMs: 20 })
  t.teardown(() => { provider.destroy() })
  const wallet = new Wallet(anvil.accounts[0]?.privateKey ?? '', provider)
  // A contract whose constructor reverts: PUSH1 0 PUSH1 0 REVERT, with a fixed gas limit (no estimate).
  const tx = await wallet.sendTransaction({ data: '0x60006000fd', gasLimit: 100_000n })
  await t.rejects(waitForReceipt(tx), { code: 'CALL_EXCEPTION' })
})

t.test('error: a transaction replaced by another of the same nonce rejects with TRANSACTION_REPLACED', async t => {
  const own = await startAnvil({ accountCount: 2 })
  t.teardown(own.stop)
  const provider = createRpcProvider(own.rpcUrl, { chainId: own.chainId, pollingIntervalMs: 20 })
  t.teardown(() => { provider.destroy() })
  const call = async (method: string, params: unknown[]): Promise<void> => {
    await fetch(own.rpcUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) })
  }
  const wallet = new Wallet(own.accounts[0]?.privateKey ?? '', provider)
  await call('evm_setAutomine', [false])
  const nonce = await provider.getTransactionCount(wallet.address, 'latest')
  const first = await wallet.sendTransaction({ to: own.accounts[1]?.address, value: 1n, nonce, maxFeePerGas: 10_000_000_000n, maxPriorityFeePerGas: 1_000_000_000n })
  const second = await wallet.sendTransaction({ to: own.accounts[1]?.address, value: 2n, nonce, maxFeePerGas: 20_000_000_000n, maxPriorityFeePerGas: 2_000_000_000n })
  await call('evm_mine', [])
  await t.rejects(waitForReceipt(first), { code: 'TRANSACTION_REPLACED', reason: 'replaced' })
  t.equal((await waitForReceipt(second)).status, 1)
})
