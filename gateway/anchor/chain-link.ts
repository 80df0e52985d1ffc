/**
 * The anchorer's chain I/O as an interface: the questions its state machine asks the chain and
 * the transactions it has built, signed and sent. rpc-chain.ts answers them over JSON-RPC with
 * ethers; a test answers them from memory, so the state machine runs without a chain.
 */
import type { StoredAnchor } from '../../contracts/index.js'
import type { StoredTx } from './state-store.js'

/** A transaction fee: EIP-1559 or legacy. */
export type Fee = { maxFeePerGas: bigint, maxPriorityFeePerGas: bigint } | { gasPrice: bigint }

/** The fields of ProvenanceRegistry.anchor(), as the anchorer stores them (0x-hex, lower case). */
export interface AnchorCall {
  root: string
  size: number
  firstRecordTimeMs: number
  lastRecordTimeMs: number
  metadataHash: string
}

/** A mined transaction's receipt, reduced to what the anchorer reads. */
export interface ChainReceipt {
  hash: string
  /** 1 success, 0 reverted. */
  status: number
  blockNumber: number
  blockHash: string
  /** The registry's batch id of each root this transaction anchored (its Anchored events), by 0x-hex root in lower case. */
  anchored: ReadonlyMap<string, string>
}

/** Where an anchor already on chain was written (for adopting it). */
export interface ChainAnchorEvent {
  txHash: string
  blockNumber: number
  blockHash: string
  /** The registry's batch id, decimal. */
  batchId: string
}

/**
 * One connection to the chain for one anchoring account. Every call is bounded in time and
 * fails with an AnchorError code (chain-errors.ts), ANCHOR_RPC_UNREACHABLE when the node does not answer.
 */
export interface AnchorChain {
  readonly chainId: number
  /** Whether the registry address holds code (a node restarted without state answers calls to it with empty success). */
  hasRegistryCode: () => Promise<boolean>
  /**
   * Simulates anchor() from the account: the gas it needs, or 'already-anchored' when the registry
   * reverts RootAlreadyAnchored. Other reverts (a missing role) throw: no nonce is spent before it.
   */
  simulateAnchor: (call: AnchorCall) => Promise<bigint | 'already-anchored'>
  /** The account's next nonce, counting transactions still pending. */
  pendingNonce: () => Promise<number>
  /** The account's next nonce, counting mined transactions only. */
  minedNonce: () => Promise<number>
  /** The fee of a new transaction (a quote may be reused for a moment). */
  currentFee: () => Promise<Fee>
  /** Signs anchor(call) at `nonce`; nothing is sent. */
  signAnchor: (call: AnchorCall, t: { nonce: number, gasLimit: bigint, fee: Fee }) => Promise<StoredTx>
  /**
   * Signs a replacement of `current` (same nonce, fee bumped by `feeBumpPercent` and never below
   * today's): the same anchor call, or with `cancel` a zero-value transfer to the account itself.
   */
  signReplacement: (current: StoredTx, t: { nonce: number, cancel: boolean, feeBumpPercent: bigint }) => Promise<StoredTx>
  /** Sends signed bytes; "already known" and "nonce used" are outcomes the next poll sorts out, not errors. */
  broadcast: (raw: string) => Promise<void>
  /** The receipt of the first of `hashes` (newest first) that was mined. */
  findReceipt: (hashes: readonly string[]) => Promise<ChainReceipt | undefined>
  /** The receipt of one transaction, undefined when it is not (or no longer) mined. */
  receipt: (hash: string) => Promise<ChainReceipt | undefined>
  /** Whether the node knows the transaction (in its pool or mined). */
  knowsTransaction: (hash: string) => Promise<boolean>
  blockNumber: () => Promise<number>
  /** The registry's anchor of `root`, if any. */
  getAnchor: (root: string) => Promise<StoredAnchor | undefined>
  /** The transaction and block that anchored `root`; undefined when absent or moved by a reorg. */
  getAnchorEvent: (root: string) => Promise<ChainAnchorEvent | undefined>
  /** Releases the connection; the anchorer opens a new one after an outage. */
  close: () => void
}

/** Opens AnchorChains for one account and endpoint. */
export interface AnchorChainConnector {
  /** Address of the signing account (checksummed). */
  readonly address: string
  /** The chain id the endpoint serves (asked without opening a connection). */
  fetchChainId: () => Promise<number>
  /** A connection to that chain; makes no request yet. */
  open: (chainId: number) => AnchorChain
}
