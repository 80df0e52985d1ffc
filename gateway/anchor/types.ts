/**
 * The public shapes of anchoring: what the batcher hands over (SealedBatch), what comes back
 * once a batch is on chain (AnchorReceipt), and the Anchorer's options.
 */
import type { LoadedState, StoredBatch as StoredAnchorBatch, StoredConfig } from './state-store.js'
import type { Logger } from '../../common/logger.js'

export interface SealedBatch {
  /** Local batch number at this gateway, consecutive from 1. */
  id: number
  /** RFC 6962 Merkle root of the batch (32 bytes). */
  root: Uint8Array
  /** Number of leaves (records), >= 1. */
  size: number
  /** Device time (unix ms) of the batch's earliest record. */
  firstRecordTimeMs: number
  /** Device time (unix ms) of the batch's latest record; >= firstRecordTimeMs. */
  lastRecordTimeMs: number
  /** SHA-256 of the batch's checkpoint text (32 bytes). */
  metadataHash: Uint8Array
  /** Wall-clock time (unix ms) the batch was sealed, for the latency metric. Default: enqueue time. */
  sealedAtMs?: number
}

export interface AnchorReceipt {
  /** Local batch id. */
  batch: number
  chainId: number
  /** Registry address, checksummed. */
  contract: string
  /** The registry's batch id, decimal. */
  onChainBatchId: string
  txHash: string
  blockNumber: number
  blockHash: string
  /** Confirmations when the receipt was written (>= the required number). */
  confirmations: number
  /** True when the root was found anchored by a transaction this anchorer did not sign. */
  adopted?: boolean
}

/**
 * queued: durable, nothing signed yet · sent: a signed transaction (nonce fixed) is stored and
 * broadcast · mined: in a block, waiting for confirmations · confirmed: final receipt written.
 */
export type AnchorState = 'queued' | 'sent' | 'mined' | 'confirmed'

/** The anchorer's durable state (state-store.ts for LevelDB, pg-state-store.ts for PostgreSQL). */
export interface AnchorStateStore {
  load: () => Promise<LoadedState>
  getBatch: (id: number) => Promise<StoredAnchorBatch | undefined>
  idOfRoot: (root: string) => Promise<number | undefined>
  putConfig: (config: StoredConfig) => Promise<void>
  putNewBatch: (batch: StoredAnchorBatch) => Promise<void>
  putBatch: (batch: StoredAnchorBatch, meta?: { confirmedThrough?: number, nextNonce?: number }) => Promise<void>
  close: () => Promise<void>
}

export interface AnchorerOptions {
  /** Folder for the anchorer's own LevelDB (package `level`), created if missing; unused with `stateStore`. */
  stateDir: string
  /**
   * Where the anchoring state lives instead of the LevelDB under stateDir (the PostgreSQL tier
   * passes its fenced store, pg-state-store.ts). The anchorer closes it on close().
   */
  stateStore?: AnchorStateStore
  /** JSON-RPC endpoint of the chain. */
  rpcUrl: string
  /** Registry contract address. */
  registry: string
  /** Hex private key of an account holding ANCHORER_ROLE. Never logged. */
  privateKey: string
  /** Confirmations before a batch counts as anchored. Default 1 (set 12+ on a public chain). */
  confirmations?: number
  /** Pause between polls when nothing moved. Default 500 ms. */
  pollIntervalMs?: number
  /** Re-send (same nonce, higher fee) when a sent tx has not been mined in this time. Default 30 000 ms. */
  resendAfterMs?: number
  /** First pause after a failed step. Default 500 ms. */
  retryInitialMs?: number
  /** Longest pause between failed steps (the backoff doubles up to it). Default 30 000 ms. */
  retryMaxMs?: number
  /** Longest wait for one JSON-RPC answer before the step counts as failed. Default 10 000 ms. */
  rpcTimeoutMs?: number
  /** Fee increase of a replacement transaction, in percent (nodes require >= 10). Default 25. */
  feeBumpPercent?: number
  /** fsync every state write (crash and power-loss safe). Default true. */
  syncWrites?: boolean
  logger?: Logger
  /** Called for metrics with the code of each chain-side failure (an AnchorErrorCode). */
  onChainError?: (code: string) => void
  /** Called for metrics once per confirmed batch: its receipt and seal-to-confirmed latency (ms). */
  onAnchored?: (receipt: AnchorReceipt, latencyMs: number) => void
}
