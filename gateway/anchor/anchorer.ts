/**
 * The anchorer: takes sealed batches in id order and gets each root into ProvenanceRegistry.anchor
 * exactly once, surviving crashes, RPC outages, dropped transactions and shallow reorgs. Every
 * state transition is written to its LevelDB before it is acted on (docs/ANCHORING.md). This file
 * is the state machine; its chain I/O is behind chain-link.ts (rpc-chain.ts over JSON-RPC).
 */
import { mkdir } from 'node:fs/promises'
import { Wallet, getAddress, hexlify } from 'ethers'
import { backoffDelayMs } from '../../common/backoff.js'
import { SILENT_LOGGER, type Logger } from '../../common/logger.js'
import type { StoredAnchor } from '../../contracts/index.js'
import { AnchorError } from './errors.js'
import { toAnchorError } from './chain-errors.js'
import type { AnchorChain, AnchorChainConnector, ChainReceipt } from './chain-link.js'
import { GAS_MARGIN_PERCENT, RpcChainConnector } from './rpc-chain.js'
import { StateStore, type MinedAt, type StoredBatch, type StoredConfig, type StoredTx } from './state-store.js'
import type { AnchorReceipt, AnchorState, AnchorStateStore, AnchorerOptions, SealedBatch } from './types.js'

export const DEFAULT_CONFIRMATIONS = 1
export const DEFAULT_POLL_INTERVAL_MS = 500
export const DEFAULT_RESEND_AFTER_MS = 30_000
export const DEFAULT_RETRY_INITIAL_MS = 500
export const DEFAULT_RETRY_MAX_MS = 30_000
export const DEFAULT_RPC_TIMEOUT_MS = 10_000
export const DEFAULT_FEE_BUMP_PERCENT = 25
/** Replacement versions kept per batch; older ones can only have been mined if the node saw them. */
const MAX_TXS_PER_BATCH = 16


interface Resolved {
  stateDir: string
  rpcUrl: string
  confirmations: number
  pollIntervalMs: number
  resendAfterMs: number
  retryInitialMs: number
  retryMaxMs: number
  rpcTimeoutMs: number
  feeBumpPercent: bigint
  syncWrites: boolean
  logger: Logger
  onChainError: ((code: string) => void) | undefined
  onAnchored: ((receipt: AnchorReceipt, latencyMs: number) => void) | undefined
}

export class Anchorer {
  /** Address of the signing account (checksummed). */
  readonly address: string
  /** Registry address (checksummed). */
  readonly registry: string
  private readonly o: Resolved
  private readonly store: AnchorStateStore
  private readonly connector: AnchorChainConnector
  private config: StoredConfig
  /** Every batch not yet confirmed, by id. Confirmed ones live only on disk. */
  private readonly pending = new Map<number, StoredBatch>()
  private confirmed: number
  private highestId: number
  private nextNonce: number | undefined
  private readonly listeners: Array<(receipt: AnchorReceipt) => void> = []
  private chain: AnchorChain | undefined
  private codeChecked = false
  private lastHead = -1
  /** Head at which a mined batch's receipt was last seen canonical (saves a lookup per poll). */
  private readonly verifiedAt = new Map<number, number>()
  private loop: Promise<void> | undefined
  private closing: Promise<void> | undefined
  private closed = false
  private wake: ((force?: boolean) => void) | undefined
  private failures = 0
  private enqueueTail: Promise<unknown> = Promise.resolve()
  private failure: AnchorError | undefined

  private constructor (o: Resolved, store: AnchorStateStore, connector: AnchorChainConnector, registry: string, config: StoredConfig,
    loaded: { confirmedThrough: number, highestId: number, nextNonce: number | undefined, unconfirmed: StoredBatch[] }) {
    this.o = o
    this.store = store
    this.connector = connector
    this.address = connector.address
    this.registry = registry
    this.config = config
    this.confirmed = loaded.confirmedThrough
    this.highestId = loaded.highestId
    this.nextNonce = loaded.nextNonce
    for (const b of loaded.unconfirmed) this.pending.set(b.id, b)
  }

  /**
   * Opens (or creates) the state folder and loads every unconfirmed batch. Touches no network:
   * a gateway starts while the chain is down, and the loop retries once start() is called.
   * @throws TypeError/RangeError for bad options; AnchorError ANCHOR_LOCKED, ANCHOR_OPEN_FAILED,
   *   ANCHOR_STATE_CORRUPT, ANCHOR_STATE_MISMATCH (folder of another registry, or another
   *   account while a transaction is in flight)
   */
  static async open (options: AnchorerOptions): Promise<Anchorer> {
    return await Anchorer.openWith(options, undefined)
  }

  /**
   * Anchorer.open with the chain I/O given (`connector`), for tests that run the state machine on
   * a chain in memory; undefined connects over JSON-RPC to options.rpcUrl as open() does.
   * @throws as open()
   */
  static async openWith (options: AnchorerOptions, connector: AnchorChainConnector | undefined): Promise<Anchorer> {
    const o = resolveOptions(options)
    let wallet: Wallet
    try {
      wallet = new Wallet(options.privateKey)
    } catch {
      // No cause and no value: the message of a key parser must not carry the key into a log.
      throw new TypeError('privateKey is not a valid 32-byte hex secp256k1 key')
    }
    let registry: string
    try {
      registry = getAddress(options.registry)
    } catch (e) {
      throw new TypeError('registry is not an address', { cause: e })
    }
    const chain = connector ?? new RpcChainConnector({ rpcUrl: o.rpcUrl, registry, wallet, rpcTimeoutMs: o.rpcTimeoutMs, pollIntervalMs: o.pollIntervalMs })
    let store: AnchorStateStore
    if (options.stateStore !== undefined) {
      store = options.stateStore
    } else {
      await mkdir(o.stateDir, { recursive: true })
      store = await StateStore.open(o.stateDir, o.syncWrites)
    }
    try {
      const loaded = await store.load()
      let config = loaded.config
      if (config !== undefined && config.registry !== registry) {
        throw new AnchorError('ANCHOR_STATE_MISMATCH', `state folder belongs to registry ${config.registry}, not ${registry}`)
      }
      if (config !== undefined && config.account !== chain.address) {
        // Nonces belong to an account: a batch in flight under the old key cannot be reconciled with a new one.
        if (loaded.unconfirmed.some((b) => b.state === 'sent')) {
          throw new AnchorError('ANCHOR_STATE_MISMATCH', `state folder has transactions in flight from ${config.account}; finish them with that key first`)
        }
        config = { ...config, account: chain.address }
        await store.putConfig(config)
      }
      if (config === undefined) {
        config = { registry, account: chain.address }
        await store.putConfig(config)
      }
      return new Anchorer(o, store, chain, registry, config, loaded)
    } catch (e) {
      await store.close()
      throw e
    }
  }

  /**
   * Records a sealed batch durably (resolved = on disk). Ids must come consecutively from 1;
   * the same batch again is a no-op, so a gateway may re-enqueue everything after a restart.
   * @throws TypeError/RangeError for a malformed batch; AnchorError ANCHOR_CONFLICT (id known
   *   with other fields, or root already used by another id), ANCHOR_OUT_OF_ORDER, ANCHOR_CLOSED,
   *   ANCHOR_WRITE_FAILED
   */
  async enqueue (batch: SealedBatch): Promise<void> {
    const entry = toStoredBatch(batch)
    if (this.closed) throw new AnchorError('ANCHOR_CLOSED', 'the anchorer is closed')
    // Serialised so that concurrent calls are checked and written in call order.
    const run = this.enqueueTail.then(async () => { await this.enqueueNow(entry) })
    this.enqueueTail = run.catch(() => {})
    await run
  }

  private async enqueueNow (entry: StoredBatch): Promise<void> {
    if (this.closed) throw new AnchorError('ANCHOR_CLOSED', 'the anchorer is closed')
    const existing = this.pending.get(entry.id) ?? (entry.id <= this.highestId ? await this.store.getBatch(entry.id) : undefined)
    if (existing !== undefined) {
      if (sameBatch(existing, entry)) return
      throw new AnchorError('ANCHOR_CONFLICT', `batch ${entry.id} is already queued with ${existing.root === entry.root ? 'other fields' : 'another root'}`)
    }
    if (entry.id !== this.highestId + 1) {
      throw new AnchorError('ANCHOR_OUT_OF_ORDER', `batch ${entry.id} enqueued after ${this.highestId}: ids are consecutive from 1`)
    }
    const other = await this.store.idOfRoot(entry.root)
    if (other !== undefined) throw new AnchorError('ANCHOR_CONFLICT', `root of batch ${entry.id} was already enqueued as batch ${other}`)
    await this.store.putNewBatch(entry)
    this.pending.set(entry.id, entry)
    this.highestId = entry.id
    this.wakeUp()
  }

  /** Starts the background loop (idempotent). @throws AnchorError ANCHOR_CLOSED */
  start (): void {
    if (this.closed) throw new AnchorError('ANCHOR_CLOSED', 'the anchorer is closed')
    this.loop ??= this.run()
  }

  /** Where batch `id` stands; undefined when it was never enqueued. @throws AnchorError ANCHOR_CLOSED */
  async state (id: number): Promise<AnchorState | undefined> {
    return (await this.entry(id))?.state
  }

  /** The receipt of a confirmed batch; undefined before confirmation. @throws AnchorError ANCHOR_CLOSED */
  async receipt (id: number): Promise<AnchorReceipt | undefined> {
    const r = (await this.entry(id))?.receipt
    return r === undefined ? undefined : { ...r }
  }

  /** Highest local id such that every batch 1..id is confirmed (0 when none). */
  confirmedThrough (): number {
    return this.confirmed
  }

  /** Listener for each confirmation, in batch id order (after the receipt is on disk). */
  onConfirmed (listener: (receipt: AnchorReceipt) => void): void {
    this.listeners.push(listener)
  }

  /** The failure of the last loop step, until a step succeeds again (e.g. ANCHOR_UNAUTHORIZED). */
  get lastError (): AnchorError | undefined {
    return this.failure
  }

  /** Stops the loop, waits for the step in progress, closes the db. Safe to call twice. */
  async close (): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true
      this.wakeUp(true)
      await this.loop
      await this.enqueueTail
      this.dropChain()
      await this.store.close()
    })()
    await this.closing
  }

  // ------------------------------------------------------------------------ loop

  private async run (): Promise<void> {
    while (!this.closed) {
      let progressed: boolean
      try {
        progressed = await this.step()
        if (this.failures > 0) this.o.logger.info({ afterFailures: this.failures }, 'anchorer: chain steps succeed again')
        this.failures = 0
        this.failure = undefined
      } catch (e) {
        const err = e instanceof AnchorError ? e : toAnchorError(e, 'anchor step')
        this.failures++
        this.failure = err
        // After an outage the node may have been replaced (another chain, no contract): look again.
        if (err.code === 'ANCHOR_RPC_UNREACHABLE') this.dropChain()
        const delayMs = this.backoffMs()
        this.report(err, { retryInMs: delayMs, failures: this.failures })
        if (!this.closed) await this.sleep(delayMs, false)
        continue
      }
      if (!progressed && !this.closed) await this.sleep(this.o.pollIntervalMs, true)
    }
  }

  /** One pass: settle sent transactions, send the next batch when none is in flight, count confirmations. */
  private async step (): Promise<boolean> {
    if (this.pending.size === 0) return false
    const chain = await this.connect()
    let progressed = false
    for (const b of this.sorted('sent')) {
      if (this.closed) return progressed
      if (await this.pollSent(chain, b)) progressed = true
    }
    if (!this.closed && await this.checkMined(chain)) progressed = true
    // One transaction in flight at a time: nonces then follow batch ids and a restart has one tx to reconcile.
    if (this.sorted('sent').length === 0 && !this.closed) {
      const next = this.sorted('queued')[0]
      if (next !== undefined && await this.send(chain, next)) progressed = true
    }
    return progressed
  }

  private async connect (): Promise<AnchorChain> {
    if (this.chain === undefined) {
      const chainId = await this.connector.fetchChainId()
      if (this.config.chainId !== undefined && this.config.chainId !== chainId) {
        throw new AnchorError('ANCHOR_STATE_MISMATCH', `state folder belongs to chain ${this.config.chainId}, the RPC serves chain ${chainId}`)
      }
      if (this.config.chainId === undefined) {
        this.config = { ...this.config, chainId }
        await this.store.putConfig(this.config)
      }
      this.chain = this.connector.open(chainId)
      this.codeChecked = false
    }
    if (!this.codeChecked) {
      // A node restarted without state answers calls to the old address with empty success.
      if (!await this.chain.hasRegistryCode()) throw new AnchorError('ANCHOR_NO_CONTRACT', `no contract at ${this.registry} on chain ${this.chain.chainId}`)
      this.codeChecked = true
    }
    return this.chain
  }

  // ------------------------------------------------------------------------ queued → sent

  /** Signs the anchor transaction of a queued batch, stores it, then broadcasts it. */
  private async send (chain: AnchorChain, b: StoredBatch): Promise<boolean> {
    // The simulation is the on-chain check before sending: an anchored root reverts RootAlreadyAnchored
    // and a missing role AccessControlUnauthorizedAccount (thrown), both before any nonce is spent.
    const gas = await chain.simulateAnchor(b)
    if (gas === 'already-anchored') {
      const stored = await chain.getAnchor(b.root)
      if (stored !== undefined) return await this.adopt(chain, b, stored)
      // Anchored by a pending transaction (the node simulates on its pending block): look again next poll.
      this.o.logger.info({ batch: b.id }, 'anchorer: root anchored by a transaction not yet mined; waiting')
      return false
    }
    const nonce = await chain.pendingNonce()
    if (this.nextNonce !== undefined && nonce < this.nextNonce) {
      // The chain's count wins: a gap would block every later transaction, a reused nonce only fails.
      this.o.logger.warn({ batch: b.id, chainNonce: nonce, recordedNextNonce: this.nextNonce },
        'anchorer: chain nonce is below the nonce already used (lagging node or reset chain); using the chain\'s')
    }
    const fee = await chain.currentFee()
    const tx = await chain.signAnchor(b, { nonce, gasLimit: gas + gas * GAS_MARGIN_PERCENT / 100n, fee })
    await this.transition({ ...b, state: 'sent', nonce, txs: [tx] }, { nextNonce: nonce + 1 })
    this.nextNonce = nonce + 1
    this.o.logger.info({ batch: b.id, nonce, txHash: tx.hash }, 'anchorer: anchor transaction stored, broadcasting')
    await chain.broadcast(tx.raw)
    return true
  }

  // ------------------------------------------------------------------------ sent → mined

  /** Reconciles a sent batch with the chain: mined, still pending, dropped, or nonce taken. */
  private async pollSent (chain: AnchorChain, b: StoredBatch): Promise<boolean> {
    const nonce = b.nonce as number
    const txs = b.txs as StoredTx[]
    const hashes = txs.map((t) => t.hash)
    const found = await chain.findReceipt(hashes)
    if (found !== undefined) return await this.onReceipt(chain, b, found)
    const latest = await chain.minedNonce()
    if (latest > nonce) {
      // The nonce is spent. Ours may have been mined between the two lookups: look once more.
      const again = await chain.findReceipt(hashes)
      if (again !== undefined) return await this.onReceipt(chain, b, again)
      const stored = await chain.getAnchor(b.root)
      if (stored !== undefined) return await this.adopt(chain, b, stored)
      this.report(new AnchorError('ANCHOR_NONCE_CONFLICT', `batch ${b.id}: nonce ${nonce} was used by a transaction this anchorer did not sign`))
      await this.transition(requeue(b))
      return true
    }
    const current = txs[txs.length - 1] as StoredTx
    if (!await chain.knowsTransaction(current.hash)) {
      // Dropped (evicted, node restarted) or never broadcast (crash right after the write).
      const stored = await chain.getAnchor(b.root)
      if (stored !== undefined) return await this.adopt(chain, b, stored)
      this.o.logger.warn({ batch: b.id, nonce, txHash: current.hash }, 'anchorer: transaction unknown to the node; re-broadcasting the stored bytes')
      await chain.broadcast(current.raw)
      // Not progress: if the node drops it again, wait a poll interval rather than spin.
      return false
    }
    if (Date.now() - current.sentAtMs >= this.o.resendAfterMs) {
      await this.replace(chain, b, current)
      return true
    }
    return false
  }

  /**
   * Re-sends a slow transaction with the same nonce and a higher fee. When the root got anchored
   * by someone else meanwhile, the replacement is a zero-value transfer to ourselves: it frees the
   * nonce at 21 000 gas instead of paying for an anchor that would revert.
   */
  private async replace (chain: AnchorChain, b: StoredBatch, current: StoredTx): Promise<void> {
    const stored = await chain.getAnchor(b.root)
    const cancel = stored !== undefined
    const tx = await chain.signReplacement(current, { nonce: b.nonce as number, cancel, feeBumpPercent: this.o.feeBumpPercent })
    const txs = [...(b.txs ?? []), tx].slice(-MAX_TXS_PER_BATCH)
    await this.transition({ ...b, txs })
    this.o.logger.warn({ batch: b.id, nonce: b.nonce, txHash: tx.hash, replaces: current.hash, cancel },
      cancel ? 'anchorer: root anchored elsewhere; cancelling our pending transaction' : 'anchorer: not mined in time; re-sending with a higher fee')
    await chain.broadcast(tx.raw)
  }

  private async onReceipt (chain: AnchorChain, b: StoredBatch, r: ChainReceipt): Promise<boolean> {
    const batchId = r.status === 1 ? r.anchored.get(b.root) : undefined
    if (batchId !== undefined) {
      const mined: MinedAt = { txHash: r.hash, blockNumber: r.blockNumber, blockHash: r.blockHash, onChainBatchId: batchId, adopted: false }
      await this.transition({ ...b, state: 'mined', mined })
      this.verifiedAt.set(b.id, r.blockNumber)
      this.o.logger.info({ batch: b.id, txHash: r.hash, blockNumber: r.blockNumber, onChainBatchId: batchId }, 'anchorer: anchor mined')
      return true
    }
    // Reverted (e.g. RootAlreadyAnchored after a race) or our cancel transfer: adopt an anchor if there is one.
    const stored = await chain.getAnchor(b.root)
    if (stored !== undefined) return await this.adopt(chain, b, stored)
    await this.transition(requeue(b))
    if (r.status === 1) throw new AnchorError('ANCHOR_BAD_RECEIPT', `batch ${b.id}: transaction ${r.hash} succeeded without anchoring the root`)
    throw new AnchorError('ANCHOR_REVERTED', `batch ${b.id}: transaction ${r.hash} reverted on chain; simulating again`)
  }

  /** Takes over an anchor already on chain (someone else's, or ours found by root). */
  private async adopt (chain: AnchorChain, b: StoredBatch, stored: StoredAnchor): Promise<boolean> {
    const event = await chain.getAnchorEvent(b.root)
    if (event === undefined) return false // moved by a reorg: next poll
    const own = b.txs?.some((t) => t.hash === event.txHash) ?? false
    if (stored.size !== BigInt(b.size)) {
      this.o.logger.warn({ batch: b.id, localSize: b.size, chainSize: stored.size.toString() }, 'anchorer: root anchored with another size')
    }
    const mined: MinedAt = { txHash: event.txHash, blockNumber: event.blockNumber, blockHash: event.blockHash, onChainBatchId: event.batchId, adopted: !own }
    await this.transition({ ...b, state: 'mined', mined })
    this.o.logger.info({ batch: b.id, txHash: event.txHash, onChainBatchId: mined.onChainBatchId, adopted: !own }, 'anchorer: root found anchored on chain')
    return true
  }

  // ------------------------------------------------------------------------ mined → confirmed

  private async checkMined (chain: AnchorChain): Promise<boolean> {
    const mined = this.sorted('mined')
    if (mined.length === 0) return false
    const head = await chain.blockNumber()
    const headMoved = head !== this.lastHead
    this.lastHead = head
    let progressed = false
    for (const b of mined) {
      let m = b.mined as MinedAt
      const due = head - m.blockNumber + 1 >= this.o.confirmations
      // Reorgs matter only before confirmation: look on each new head, and right before confirming.
      if ((due || (headMoved && this.o.confirmations > 1)) && this.verifiedAt.get(b.id) !== head) {
        const r = await chain.receipt(m.txHash)
        if (r === undefined || r.status !== 1) {
          // Own transaction: back to 'sent' (re-broadcast or re-mined); an adopted anchor: look again from scratch.
          const back: StoredBatch = m.adopted ? requeue(b) : { ...b, state: 'sent', mined: undefined }
          await this.transition(back)
          this.verifiedAt.delete(b.id)
          this.o.logger.warn({ batch: b.id, txHash: m.txHash, blockNumber: m.blockNumber, state: back.state }, 'anchorer: block no longer canonical')
          progressed = true
          continue
        }
        if (r.blockHash !== m.blockHash) {
          m = { ...m, blockNumber: r.blockNumber, blockHash: r.blockHash }
          await this.transition({ ...b, mined: m })
          progressed = true
        }
        this.verifiedAt.set(b.id, head)
      }
      const confirmations = head - m.blockNumber + 1
      if (confirmations >= this.o.confirmations && b.id === this.confirmed + 1) {
        await this.confirm(chain, { ...b, mined: m }, confirmations)
        progressed = true
      }
    }
    return progressed
  }

  private async confirm (chain: AnchorChain, b: StoredBatch, confirmations: number): Promise<void> {
    const m = b.mined as MinedAt
    const receipt: AnchorReceipt = {
      batch: b.id,
      chainId: chain.chainId,
      contract: this.registry,
      onChainBatchId: m.onChainBatchId,
      txHash: m.txHash,
      blockNumber: m.blockNumber,
      blockHash: m.blockHash,
      confirmations,
      ...(m.adopted ? { adopted: true } : {})
    }
    // The signed bytes are no longer needed once final.
    const txs = b.txs?.map((t) => ({ ...t, raw: '0x' }))
    await this.store.putBatch({ ...b, state: 'confirmed', txs, receipt }, { confirmedThrough: b.id })
    this.pending.delete(b.id)
    this.verifiedAt.delete(b.id)
    this.confirmed = b.id
    const latencyMs = Date.now() - b.sealedAtMs
    this.o.logger.info({ batch: b.id, txHash: m.txHash, onChainBatchId: m.onChainBatchId, confirmations, latencyMs }, 'anchorer: batch confirmed')
    // Hooks run after the durable write; one that throws must not undo or repeat a confirmation.
    const hooks: Array<() => void> = [() => this.o.onAnchored?.({ ...receipt }, latencyMs), ...this.listeners.map((l) => () => l({ ...receipt }))]
    for (const hook of hooks) {
      try {
        hook()
      } catch (e) {
        this.o.logger.error({ batch: b.id, err: (e as Error).message }, 'anchorer: a confirmation listener threw')
      }
    }
  }

  private dropChain (): void {
    this.chain?.close()
    this.chain = undefined
  }

  // ------------------------------------------------------------------------ internals

  /** Writes the batch's next state, then (only then) makes it the in-memory state. */
  private async transition (next: StoredBatch, meta: { nextNonce?: number } = {}): Promise<void> {
    await this.store.putBatch(next, meta)
    this.pending.set(next.id, next)
  }

  private sorted (state: AnchorState): StoredBatch[] {
    return [...this.pending.values()].filter((b) => b.state === state).sort((a, b) => a.id - b.id)
  }

  private async entry (id: number): Promise<StoredBatch | undefined> {
    if (this.closed) throw new AnchorError('ANCHOR_CLOSED', 'the anchorer is closed')
    const cached = this.pending.get(id)
    if (cached !== undefined) return cached
    if (!Number.isSafeInteger(id) || id < 1 || id > this.highestId) return undefined
    return await this.store.getBatch(id)
  }

  private report (err: AnchorError, extra: object = {}): void {
    const level = err.code === 'ANCHOR_RPC_UNREACHABLE' || err.code === 'ANCHOR_NONCE_CONFLICT' ? 'warn' : 'error'
    this.o.logger[level]({ code: err.code, err: err.message, ...extra }, 'anchorer: chain step failed')
    try {
      this.o.onChainError?.(err.code)
    } catch {
      // A metrics hook must not stop anchoring.
    }
  }

  private backoffMs (): number {
    // ±20 % jitter: gateways that lost the same node do not come back in lockstep.
    return backoffDelayMs(this.failures - 1, { initialMs: this.o.retryInitialMs, maxMs: this.o.retryMaxMs, jitter: 0.2 })
  }

  /** Sleeps; a poll sleep ends early on enqueue, a backoff sleep only on close. */
  private async sleep (ms: number, wakeable: boolean): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms)
      function done (): void {
        clearTimeout(timer)
        resolve()
      }
      this.wake = (force?: boolean) => { if (wakeable || force === true) done() }
    })
    this.wake = undefined
  }

  private wakeUp (force = false): void {
    this.wake?.(force)
  }
}

// ---------------------------------------------------------------------------- pure helpers

function resolveOptions (options: AnchorerOptions): Resolved {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object')
  for (const k of ['stateDir', 'rpcUrl', 'registry', 'privateKey'] as const) {
    if (typeof options[k] !== 'string' || options[k].length === 0) throw new TypeError(`${k} must be a non-empty string`)
  }
  const positive = (v: number | undefined, d: number, name: string, min = 1): number => {
    const x = v ?? d
    if (!Number.isSafeInteger(x) || x < min) throw new RangeError(`${name} must be an integer >= ${min}`)
    return x
  }
  const retryInitialMs = positive(options.retryInitialMs, DEFAULT_RETRY_INITIAL_MS, 'retryInitialMs')
  const retryMaxMs = positive(options.retryMaxMs, Math.max(DEFAULT_RETRY_MAX_MS, retryInitialMs), 'retryMaxMs')
  if (retryMaxMs < retryInitialMs) throw new RangeError('retryMaxMs must be >= retryInitialMs')
  return {
    stateDir: options.stateDir,
    rpcUrl: options.rpcUrl,
    confirmations: positive(options.confirmations, DEFAULT_CONFIRMATIONS, 'confirmations'),
    pollIntervalMs: positive(options.pollIntervalMs, DEFAULT_POLL_INTERVAL_MS, 'pollIntervalMs'),
    resendAfterMs: positive(options.resendAfterMs, DEFAULT_RESEND_AFTER_MS, 'resendAfterMs'),
    retryInitialMs,
    retryMaxMs,
    rpcTimeoutMs: positive(options.rpcTimeoutMs, DEFAULT_RPC_TIMEOUT_MS, 'rpcTimeoutMs'),
    feeBumpPercent: BigInt(positive(options.feeBumpPercent, DEFAULT_FEE_BUMP_PERCENT, 'feeBumpPercent', 10)),
    syncWrites: options.syncWrites ?? true,
    logger: options.logger ?? SILENT_LOGGER,
    onChainError: options.onChainError,
    onAnchored: options.onAnchored
  }
}

/** Validates a batch from the batcher and turns it into its stored form. @throws TypeError, RangeError */
function toStoredBatch (batch: SealedBatch): StoredBatch {
  if (typeof batch !== 'object' || batch === null) throw new TypeError('batch must be an object')
  const { id, root, size, firstRecordTimeMs: first, lastRecordTimeMs: last, metadataHash } = batch
  if (!Number.isSafeInteger(id) || id < 1) throw new RangeError('batch.id must be an integer >= 1')
  if (!(root instanceof Uint8Array) || root.length !== 32) throw new TypeError('batch.root must be 32 bytes')
  if (root.every((x) => x === 0)) throw new RangeError('batch.root must not be zero (the registry refuses it)')
  if (!Number.isSafeInteger(size) || size < 1) throw new RangeError('batch.size must be an integer >= 1')
  if (!Number.isSafeInteger(first) || first < 0) throw new RangeError('batch.firstRecordTimeMs must be an integer >= 0')
  if (!Number.isSafeInteger(last) || last < first) throw new RangeError('batch.lastRecordTimeMs must be an integer >= firstRecordTimeMs')
  if (!(metadataHash instanceof Uint8Array) || metadataHash.length !== 32) throw new TypeError('batch.metadataHash must be 32 bytes')
  const sealedAtMs = batch.sealedAtMs ?? Date.now()
  if (!Number.isFinite(sealedAtMs)) throw new RangeError('batch.sealedAtMs must be a finite number')
  return {
    id,
    root: hexlify(root),
    size,
    firstRecordTimeMs: first,
    lastRecordTimeMs: last,
    metadataHash: hexlify(metadataHash),
    sealedAtMs,
    state: 'queued'
  }
}

/** Same batch = same content; sealedAtMs is bookkeeping and may differ on a re-enqueue. */
function sameBatch (a: StoredBatch, b: StoredBatch): boolean {
  return a.root === b.root && a.size === b.size && a.firstRecordTimeMs === b.firstRecordTimeMs &&
    a.lastRecordTimeMs === b.lastRecordTimeMs && a.metadataHash === b.metadataHash
}

function requeue (b: StoredBatch): StoredBatch {
  const { nonce: _n, txs: _t, mined: _m, ...rest } = b
  return { ...rest, state: 'queued' }
}
