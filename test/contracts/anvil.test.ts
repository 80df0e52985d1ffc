// The local anvil chain: accounts, options, state kept across a restart, port retries, stopping.
import t from 'tap'
import { createServer } from 'node:net'
import { randomBytes } from 'node:crypto'
import { Wallet, hexlify } from 'ethers'
import { startAnvil, createRpcProvider, deployRegistry, RegistryClient, RegistryError, ANVIL_MNEMONIC } from '../../contracts/index.js'
import { makeTempDir } from '../helpers/tmp.js'

async function rpc (url: string, method: string, params: unknown[] = []): Promise<unknown> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) })
  return ((await res.json()) as { result: unknown }).result
}

t.test('behavior: starts on loopback with the chain id asked for and the dev mnemonic accounts', async t => {
  const anvil = await startAnvil({ chainId: 4242, accountCount: 3 })
  t.teardown(anvil.stop)
  t.match(anvil.rpcUrl, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.equal(await rpc(anvil.rpcUrl, 'eth_chainId'), '0x1092')
  t.equal(anvil.chainId, 4242)
  t.same((await rpc(anvil.rpcUrl, 'eth_accounts') as string[]).map(a => a.toLowerCase()), anvil.accounts.map(a => a.address.toLowerCase()))
  // The keys are the mnemonic's m/44'/60'/0'/0/i keys, so they sign for the funded accounts.
  t.equal(anvil.accounts[0]?.address, Wallet.fromPhrase(ANVIL_MNEMONIC).address)
  t.equal(new Wallet(anvil.accounts[2]?.privateKey ?? '').address, anvil.accounts[2]?.address)
  t.not(await rpc(anvil.rpcUrl, 'eth_getBalance', [anvil.accounts[2]?.address, 'latest']), '0x0')
})

t.test('behavior: a state dir keeps contracts, storage and logs across stop and restart on the same port', async t => {
  const stateDir = await makeTempDir(t, 'prov-anvil-')
  const first = await startAnvil({ stateDir })
  let provider = createRpcProvider(first.rpcUrl, { chainId: first.chainId, pollingIntervalMs: 50 })
  const wallet = new Wallet(first.accounts[0]?.privateKey ?? '', provider)
  const { registry, address } = await deployRegistry(wallet)
  await registry.grantRole('anchorer', wallet.address)
  const root = hexlify(randomBytes(32))
  const anchored = await registry.anchor({ root, size: 3, firstRecordTimeMs: 1, lastRecordTimeMs: 2 })
  provider.destroy()
  await first.stop()

  const second = await startAnvil({ stateDir, port: first.port })
  t.teardown(second.stop)
  t.equal(second.rpcUrl, first.rpcUrl)
  provider = createRpcProvider(second.rpcUrl, { chainId: second.chainId })
  t.teardown(() => { provider.destroy() })
  const reader = new RegistryClient(address, provider)
  t.equal(await reader.batchCount(), 1n)
  t.match(await reader.getAnchorEvent(root), { batchId: anchored.batchId, size: 3n, txHash: anchored.txHash })
  // The chain goes on where it stopped: a new transaction from the same account is accepted.
  const again = await reader.connect(new Wallet(second.accounts[0]?.privateKey ?? '', provider)).anchor({ root: hexlify(randomBytes(32)), size: 1, firstRecordTimeMs: 1, lastRecordTimeMs: 1 })
  t.equal(again.batchId, 2n)
})

t.test('behavior: with a block time, blocks are mined without transactions', async t => {
  const anvil = await startAnvil({ blockTimeSeconds: 1 })
  t.teardown(anvil.stop)
  const deadline = Date.now() + 5000
  let block = 0
  while (block < 1 && Date.now() < deadline) {
    await new Promise(resolve => setTimeout(resolve, 100))
    block = Number(await rpc(anvil.rpcUrl, 'eth_blockNumber'))
  }
  t.ok(block >= 1, `block ${block}`)
})

t.test('behavior: a fixed port still held by someone else is retried until it is free', async t => {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  setTimeout(() => server.close(), 500)
  const anvil = await startAnvil({ port, startTimeoutMs: 10_000 })
  t.teardown(anvil.stop)
  t.equal(anvil.port, port)
})

t.test('error: a port that stays busy fails with ANVIL_START_FAILED', async t => {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.close() })
  const port = (server.address() as { port: number }).port
  await t.rejects(startAnvil({ port, startTimeoutMs: 800 }), { code: 'ANVIL_START_FAILED' })
})

t.test('error: a missing binary fails with ANVIL_NOT_FOUND', async t => {
  const error = await startAnvil({ binaryPath: '/nonexistent/anvil' }).then(() => undefined, (e: unknown) => e)
  t.ok(error instanceof RegistryError)
  t.equal((error as RegistryError).code, 'ANVIL_NOT_FOUND')
})

t.test('behavior: stop ends the node, frees the port and may be called twice', async t => {
  const anvil = await startAnvil()
  await anvil.stop()
  await anvil.stop()
  await t.rejects(fetch(anvil.rpcUrl, { method: 'POST', body: '{}' }))
})
