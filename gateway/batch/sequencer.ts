/**
 * The PostgreSQL tier's batching (docs/GATEWAY.md §PostgreSQL tier): ingest processes store
 * records unbatched (DeferredBatcher); the one process holding the sequencer lease seals them into
 * batches and anchors those, its writes fenced by the lease token. Losing the lease stops both;
 * the next holder reloads every anchoring state from the database and resumes it.
 */
import { Anchorer, type AnchorerOptions } from '../anchor/index.js'
import type { AnchorReceipt, AnchorState } from '../anchor/types.js'
import type { Logger } from '../../common/logger.js'
import { TipTree, formatTipExtension, pruningExtensionLine, sha256, type Signer } from '../../protocol/index.js'
import { Lease, PgAnchorStateStore, storeKeys, type PostgresGatewayStore, type Fence, type SealInput, type SealOutput, type TipRow } from '../store/index.js'
import type { StoreOp, StoredBatch } from '../store/index.js'
import { sealLeaves, type AppendLeaf, type LeafPlace } from './batcher.js'
import type { AnchorReader } from './proofs.js'

/** What the ingest pipeline needs of a batcher (the Batcher, or the tier's DeferredBatcher). */
export interface LeafSink {
  append: (leaf: AppendLeaf, recordOps: (place: LeafPlace) => StoreOp[]) => LeafPlace
  seal: () => StoredBatch | undefined
  readonly openBatchId: number
  readonly openSize: number
  start: () => void
  stop: () => void
}

/** Ingest side of the tier: records are written unbatched (batch 0); the sequencer places them. */
export class DeferredBatcher implements LeafSink {
  constructor (private readonly store: { enqueue: (ops: StoreOp[]) => void }) {}
  append (leaf: AppendLeaf, recordOps: (place: LeafPlace) => StoreOp[]): LeafPlace {
    const place = { batchId: 0, index: 0 }
    const ops = recordOps(place)
    const recordHash = leaf.recordHash
    // The record's hashes and time ride with its put (kept in its row): the sequencer reads them
    // instead of decoding and hashing every envelope again.
    if (recordHash !== undefined) {
      const key = storeKeys.record(leaf.deviceId, leaf.seq)
      for (const op of ops) if (op.type === 'put' && op.key === key) op.leaf = { leafHash: leaf.leafHash, recordHash, timeMs: leaf.timeMs }
    }
    this.store.enqueue(ops)
    return place
  }

  seal (): undefined { return undefined }
  get openBatchId (): number { return 0 }
  get openSize (): number { return 0 }
  start (): void {}
  stop (): void {}
}

export interface SequencerOptions {
  store: PostgresGatewayStore
  /** This process's name (the lease holder id starts with it). */
  node: string
  origin: string
  signer: Signer | undefined
  maxRecords: number
  maxAgeMs: number
  /** Lease time to live, ms (takeover after a holder dies takes up to this). */
  leaseTtlMs: number
  /** Options of the anchorer opened while this process holds the lease; undefined: seal only. */
  anchorer: Omit<AnchorerOptions, 'stateDir' | 'stateStore'> | undefined
  onSealed: (batch: StoredBatch, leafHashes: readonly Uint8Array[]) => void
  logger: Logger
}

export class Sequencer implements AnchorReader {
  readonly lease: Lease
  private readonly o: SequencerOptions
  private readonly reader: PgAnchorStateStore
  private anchorer: Anchorer | undefined
  private transitions: Promise<void> = Promise.resolve()
  private timer: NodeJS.Timeout | undefined
  private stepping = false
  private stopped = false
  private resync = false
  /**
   * The tip tree as of the newest sealed batch (PROTOCOL.md §7.10), loaded from gw_tip_history
   * when the lease is taken; undefined until then, and after a seal whose outcome is unknown.
   */
  private tips: { tree: TipTree, seqs: Map<string, number> } | undefined
  /** Batches this process sealed (for tests and metrics). */
  sealed = 0

  constructor (o: SequencerOptions) {
    this.o = o
    this.lease = new Lease({
      pool: o.store.pool,
      node: o.node,
      ttlMs: o.leaseTtlMs,
      onChange: (held) => { this.transitions = this.transitions.then(async () => await (held === undefined ? this.demote() : this.promote(held))) },
      onError: (e) => o.logger.warn({ error: (e as Error).message }, 'sequencer lease: database unreachable')
    })
    this.reader = new PgAnchorStateStore(o.store.pool, () => this.lease.fence())
  }

  get isHolder (): boolean {
    return this.lease.isHolder
  }

  /** Highest batch id confirmed through, as the database says (any process may read it). */
  async confirmedThrough (): Promise<number> {
    return this.anchorer?.confirmedThrough() ?? await this.reader.confirmedThrough().catch(() => 0)
  }

  async state (id: number): Promise<AnchorState | undefined> {
    return (await this.reader.getBatch(id))?.state
  }

  async receipt (id: number): Promise<AnchorReceipt | undefined> {
    return (await this.reader.getBatch(id))?.receipt
  }

  start (): void {
    this.lease.start()
    const every = Math.max(20, Math.min(250, Math.floor(this.o.maxAgeMs / 4)))
    this.timer = setInterval(() => { void this.step() }, every)
    this.timer.unref()
  }

  /** Stops sequencing and gives the lease up (another process takes over at once). */
  async stop (): Promise<void> {
    this.stopped = true
    if (this.timer !== undefined) clearInterval(this.timer)
    while (this.stepping) await new Promise(resolve => setTimeout(resolve, 10))
    await this.lease.stop(true)
    await this.transitions
    await this.demote()
  }

  /** Seals what is due now; with `force`, whatever waits (tests, sealNow). Undefined when nothing was sealed. */
  async step (force = false): Promise<StoredBatch | undefined> {
    let next: { tree: TipTree, seqs: Map<string, number> } | undefined
    if (this.stepping || this.stopped) return undefined
    const fence = this.lease.fence()
    if (fence === undefined || (this.o.anchorer !== undefined && this.anchorer === undefined)) return undefined
    this.stepping = true
    try {
      // Read under the lease: every history row was written by a fenced seal, so this is the tree
      // of the newest sealed batch.
      const tips = this.tips ?? (this.tips = await this.loadTips())
      if (this.resync && this.anchorer !== undefined) {
        for await (const b of this.o.store.batches(this.anchorer.confirmedThrough() + 1)) await this.anchorer.enqueue(toSealed(b))
        this.resync = false
      }
      const sealed = await this.o.store.sealUnbatched({
        maxRecords: this.o.maxRecords,
        maxAgeMs: force ? 0 : this.o.maxAgeMs,
        fence,
        seal: (input) => {
          const out = this.sealWithTips(input, tips.tree, tips.seqs)
          next = out.next
          return out.sealed
        }
      })
      if (sealed === undefined) return undefined
      if (next !== undefined) this.tips = next
      this.sealed++
      this.o.onSealed(sealed.batch, sealed.leafHashes)
      await this.anchorer?.enqueue(toSealed(sealed.batch))
      return sealed.batch
    } catch (e) {
      // A sealed batch whose hand-over failed is handed over again by the next step; a seal whose
      // commit may or may not have happened leaves the tree unknown: read it again.
      this.resync = true
      this.tips = undefined
      this.o.logger.warn({ code: (e as { code?: string }).code, error: (e as Error).message }, 'sequencer step failed (retried)')
      return undefined
    } finally {
      this.stepping = false
    }
  }

  private async loadTips (): Promise<{ tree: TipTree, seqs: Map<string, number> }> {
    const tree = new TipTree()
    const seqs = new Map<string, number>()
    for (const t of await this.o.store.tipChanges(0, Number.MAX_SAFE_INTEGER)) {
      tree.set(t.deviceId, t.seq, t.hash)
      seqs.set(t.deviceId, t.seq)
    }
    return { tree, seqs }
  }

  /**
   * The batch's checkpoint commits to the tip tree after its leaves (moved on a copy: the tree
   * the sequencer holds changes only once the seal is committed) and to the waiting pruning
   * statements (PROTOCOL.md §12.1), as the single-node batcher's does.
   */
  private sealWithTips (input: SealInput, tree: TipTree, seqs: Map<string, number>): { sealed: SealOutput, next: { tree: TipTree, seqs: Map<string, number> } } {
    const moved = new Map<string, TipRow>()
    for (const l of input.leaves) {
      // Records enter batches in chain order; a lower seq must never move a tip back.
      if (l.seq <= (moved.get(l.deviceId)?.seq ?? seqs.get(l.deviceId) ?? -1)) continue
      moved.set(l.deviceId, { deviceId: l.deviceId, seq: l.seq, hash: l.recordHash })
    }
    const nextTree = tree.snapshot()
    const nextSeqs = new Map(seqs)
    for (const t of moved.values()) {
      nextTree.set(t.deviceId, t.seq, t.hash)
      nextSeqs.set(t.deviceId, t.seq)
    }
    const extensions = [formatTipExtension(nextTree.root()), ...input.prunings.map(p => pruningExtensionLine(sha256(p.envelope)))]
    const batch = sealLeaves(input.id, input.leaves, this.o.origin, this.o.signer, Date.now(), extensions)
    return { sealed: { batch, tips: [...moved.values()] }, next: { tree: nextTree, seqs: nextSeqs } }
  }

  private async promote (held: Fence): Promise<void> {
    const log = this.o.logger
    log.info({ holder: held.holder, token: held.token }, 'sequencer lease taken: batching and anchoring here')
    if (this.o.anchorer === undefined) { this.anchorer = undefined; return }
    try {
      const anchorer = await Anchorer.open({ ...this.o.anchorer, stateDir: 'postgres (unused: stateStore)', stateStore: new PgAnchorStateStore(this.o.store.pool, () => this.lease.fence()) })
      // Batches sealed by an earlier holder that never reached its anchorer: enqueue is idempotent.
      for await (const b of this.o.store.batches(anchorer.confirmedThrough() + 1)) await anchorer.enqueue(toSealed(b))
      anchorer.start()
      this.anchorer = anchorer
    } catch (e) {
      log.error({ error: (e as Error).message }, 'sequencer could not resume anchoring; giving the lease up')
      await this.lease.stop(true)
      if (!this.stopped) this.lease.start()
    }
  }

  private async demote (): Promise<void> {
    const a = this.anchorer
    this.anchorer = undefined
    // A later holder may seal batches this process never sees: read the tree again on promotion.
    this.tips = undefined
    if (a !== undefined) {
      this.o.logger.warn({}, 'sequencer lease lost or given up: batching and anchoring stop here')
      await a.close().catch(() => {})
    }
  }
}

function toSealed (b: StoredBatch): Parameters<Anchorer['enqueue']>[0] {
  return { id: b.id, root: b.root, size: b.size, firstRecordTimeMs: b.firstRecordTimeMs, lastRecordTimeMs: b.lastRecordTimeMs, metadataHash: b.metadataHash, sealedAtMs: b.sealedAtMs }
}
