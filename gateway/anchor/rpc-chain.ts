/**
 * The anchorer's chain I/O over JSON-RPC with ethers: transaction building and signing, sending,
 * receipt and anchor lookups, each call bounded by the RPC timeout and its failures sorted into
 * AnchorError codes (chain-errors.ts). The state machine (anchorer.ts) sees only chain-link.ts.
 */
import { Transaction, Wallet, keccak256, type JsonRpcProvider, type TransactionReceipt } from 'ethers'
import { RegistryClient, createRpcProvider, registryInterface, type StoredAnchor } from '../../contracts/index.js'
import { AnchorError } from './errors.js'
import { fetchChainId, findRevert, isAlreadyKnown, isNonceUsed, toBroadcastError, withTimeout } from './chain-errors.js'
import type { AnchorCall, AnchorChain, AnchorChainConnector, ChainAnchorEvent, ChainReceipt, Fee } from './chain-link.js'
import type { StoredTx } from './state-store.js'

/** Gas limit = estimate + this share: the estimate is exact for anchor(), the margin covers state drift. */
export const GAS_MARGIN_PERCENT = 20n
const CANCEL_GAS_LIMIT = 21_000n
/** How long a fee quote is reused for new transactions. */
const FEE_CACHE_MS = 1_000

export interface RpcChainOptions {
  rpcUrl: string
  /** Registry address (checksummed). */
  registry: string
  wallet: Wallet
  /** Longest wait for one JSON-RPC answer. */
  rpcTimeoutMs: number
  /** ethers' polling interval. */
  pollIntervalMs: number
}

/** Connects to the chain over JSON-RPC; the fee quote is shared by its connections. */
export class RpcChainConnector implements AnchorChainConnector {
  readonly address: string
  private readonly feeCache: { quote?: { fee: Fee, atMs: number } } = {}

  constructor (private readonly o: RpcChainOptions) {
    this.address = o.wallet.address
  }

  async fetchChainId (): Promise<number> {
    return await fetchChainId(this.o.rpcUrl, this.o.rpcTimeoutMs)
  }

  open (chainId: number): AnchorChain {
    return new RpcChain(this.o, chainId, this.feeCache)
  }
}

class RpcChain implements AnchorChain {
  private readonly provider: JsonRpcProvider
  private readonly client: RegistryClient
  private readonly address: string

  constructor (private readonly o: RpcChainOptions, readonly chainId: number, private readonly feeCache: { quote?: { fee: Fee, atMs: number } }) {
    this.provider = createRpcProvider(o.rpcUrl, { chainId, pollingIntervalMs: o.pollIntervalMs })
    this.client = new RegistryClient(o.registry, this.provider)
    this.address = o.wallet.address
  }

  async hasRegistryCode (): Promise<boolean> {
    return await this.rpc(this.provider.getCode(this.o.registry), 'getCode') !== '0x'
  }

  async simulateAnchor (call: AnchorCall): Promise<bigint | 'already-anchored'> {
    try {
      return await this.rpc(this.provider.estimateGas({ from: this.address, to: this.o.registry, data: anchorData(call) }), 'simulate anchor')
    } catch (e) {
      if (findRevert(e)?.name === 'RootAlreadyAnchored') return 'already-anchored'
      throw e
    }
  }

  async pendingNonce (): Promise<number> {
    return await this.rpc(this.provider.getTransactionCount(this.address, 'pending'), 'getTransactionCount')
  }

  async minedNonce (): Promise<number> {
    return await this.rpc(this.provider.getTransactionCount(this.address, 'latest'), 'getTransactionCount')
  }

  async currentFee (): Promise<Fee> {
    // Three requests per call: reuse for a moment; an underpriced send is caught by the fee bump anyway.
    const quote = this.feeCache.quote
    if (quote !== undefined && Date.now() - quote.atMs < FEE_CACHE_MS) return quote.fee
    const fee = await this.fetchFee()
    this.feeCache.quote = { fee, atMs: Date.now() }
    return fee
  }

  async signAnchor (call: AnchorCall, t: { nonce: number, gasLimit: bigint, fee: Fee }): Promise<StoredTx> {
    return await this.sign({ ...t, to: this.o.registry, data: anchorData(call) })
  }

  async signReplacement (current: StoredTx, t: { nonce: number, cancel: boolean, feeBumpPercent: bigint }): Promise<StoredTx> {
    const old = Transaction.from(current.raw)
    const fee = bumpFee(feeOf(old), await this.fetchFee(), t.feeBumpPercent)
    return await this.sign({
      nonce: t.nonce,
      to: t.cancel ? this.address : this.o.registry,
      data: t.cancel ? '0x' : old.data,
      gasLimit: t.cancel ? CANCEL_GAS_LIMIT : old.gasLimit,
      fee
    })
  }

  async broadcast (raw: string): Promise<void> {
    try {
      await this.rpc(this.provider.send('eth_sendRawTransaction', [raw]), 'eth_sendRawTransaction')
    } catch (e) {
      if (isAlreadyKnown(e) || isNonceUsed(e)) return
      if (e instanceof AnchorError && e.code === 'ANCHOR_RPC_UNREACHABLE') throw e
      throw toBroadcastError(e)
    }
  }

  async findReceipt (hashes: readonly string[]): Promise<ChainReceipt | undefined> {
    // Newest first: after a fee bump the replacement is the likely one.
    for (let i = hashes.length - 1; i >= 0; i--) {
      const r = await this.receipt(hashes[i] as string)
      if (r !== undefined) return r
    }
    return undefined
  }

  async receipt (hash: string): Promise<ChainReceipt | undefined> {
    const r = await this.rpc(this.provider.getTransactionReceipt(hash), 'getTransactionReceipt')
    return r === null ? undefined : this.toReceipt(r)
  }

  async knowsTransaction (hash: string): Promise<boolean> {
    return await this.rpc(this.provider.getTransaction(hash), 'getTransaction') !== null
  }

  async blockNumber (): Promise<number> {
    return await this.rpc(this.provider.getBlockNumber(), 'getBlockNumber')
  }

  async getAnchor (root: string): Promise<StoredAnchor | undefined> {
    return await this.rpc(this.client.getAnchor(root), 'getAnchor')
  }

  async getAnchorEvent (root: string): Promise<ChainAnchorEvent | undefined> {
    const event = await this.rpc(this.client.getAnchorEvent(root), 'getAnchorEvent')
    const block = event === undefined ? null : await this.rpc(this.provider.getBlock(event.blockNumber), 'getBlock')
    if (event === undefined || block === null || block.hash === null) return undefined
    return { txHash: event.txHash, blockNumber: event.blockNumber, blockHash: block.hash, batchId: event.batchId.toString() }
  }

  close (): void {
    this.provider.destroy()
  }

  /** The receipt's Anchored events of the registry, by root. */
  private toReceipt (r: TransactionReceipt): ChainReceipt {
    const anchored = new Map<string, string>()
    for (const log of r.logs) {
      if (log.address.toLowerCase() !== this.o.registry.toLowerCase()) continue
      const parsed = registryInterface.parseLog(log)
      if (parsed?.name === 'Anchored') {
        anchored.set((parsed.args.getValue('root') as string).toLowerCase(), (parsed.args.getValue('batchId') as bigint).toString())
      }
    }
    return { hash: r.hash, status: r.status ?? 0, blockNumber: r.blockNumber, blockHash: r.blockHash, anchored }
  }

  private async fetchFee (): Promise<Fee> {
    const f = await this.rpc(this.provider.getFeeData(), 'getFeeData')
    if (f.maxFeePerGas !== null && f.maxPriorityFeePerGas !== null) {
      return { maxFeePerGas: f.maxFeePerGas, maxPriorityFeePerGas: f.maxPriorityFeePerGas }
    }
    if (f.gasPrice === null) throw new AnchorError('ANCHOR_RPC_FAILED', 'the node reports no gas price')
    return { gasPrice: f.gasPrice }
  }

  private async sign (t: { nonce: number, to: string, data: string, gasLimit: bigint, fee: Fee }): Promise<StoredTx> {
    const raw = await this.o.wallet.signTransaction({
      type: 'gasPrice' in t.fee ? 0 : 2,
      chainId: this.chainId,
      nonce: t.nonce,
      to: t.to,
      data: t.data,
      value: 0n,
      gasLimit: t.gasLimit,
      ...t.fee
    })
    const fee = 'gasPrice' in t.fee
      ? { gasPrice: t.fee.gasPrice.toString() }
      : { maxFeePerGas: t.fee.maxFeePerGas.toString(), maxPriorityFeePerGas: t.fee.maxPriorityFeePerGas.toString() }
    return { hash: keccak256(raw), raw, sentAtMs: Date.now(), ...fee }
  }

  private async rpc<T> (promise: Promise<T>, what: string): Promise<T> {
    return await withTimeout(promise, this.o.rpcTimeoutMs, what)
  }
}

function anchorData (call: AnchorCall): string {
  return registryInterface.encodeFunctionData('anchor', [call.root, call.size, call.firstRecordTimeMs, call.lastRecordTimeMs, call.metadataHash])
}

function feeOf (tx: Transaction): Fee {
  if (tx.type === 2 && tx.maxFeePerGas !== null && tx.maxPriorityFeePerGas !== null) {
    return { maxFeePerGas: tx.maxFeePerGas, maxPriorityFeePerGas: tx.maxPriorityFeePerGas }
  }
  return { gasPrice: tx.gasPrice ?? 0n }
}

/** A replacement must beat the old fee by the node's minimum bump, and never undercut today's fee. */
function bumpFee (old: Fee, now: Fee, percent: bigint): Fee {
  const up = (x: bigint): bigint => x + (x * percent + 99n) / 100n
  const max = (a: bigint, b: bigint): bigint => a > b ? a : b
  if ('gasPrice' in old) {
    const current = 'gasPrice' in now ? now.gasPrice : now.maxFeePerGas
    return { gasPrice: max(up(old.gasPrice), current) }
  }
  const nowMax = 'gasPrice' in now ? now.gasPrice : now.maxFeePerGas
  const nowTip = 'gasPrice' in now ? now.gasPrice : now.maxPriorityFeePerGas
  const tip = max(up(old.maxPriorityFeePerGas), nowTip)
  return { maxPriorityFeePerGas: tip, maxFeePerGas: max(max(up(old.maxFeePerGas), nowMax), tip) }
}
