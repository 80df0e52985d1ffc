/**
 * The PostgreSQL tier's batching (docs/GATEWAY.md §PostgreSQL tier): ingest processes store
 * records unbatched (DeferredBatcher); the one process holding the sequencer lease seals them into
 * batches and anchors those, its writes fenced by the lease token. Losing the lease stops both;
 * the next holder reloads every anchoring state from the database and resumes it.
 */
import { Anchorer, type AnchorerOptions } from '../anchor/index.js'
import type { AnchorReceipt, AnchorState } from '../anchor/types.js'
import type { Logger } from '../../common/logger.js'
import type { Signer } from '../../protocol/index.js'
import { Lease, PgAnchorStateStore, type PostgresGatewayStore, type Fence } from '../store/index.js'
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
  append (_leaf: AppendLeaf, recordOps: (place: LeafPlace) => StoreOp[]): LeafPlace {
    const place = { batchId: 0, index: 0 }
    this.store.enqueue(recordOps(place))
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
    return this.anchorer?.confirmedThrough() ?? (await this.reader.load().catch(() => ({ confirmedThrough: 0 }))).confirmedThrough
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
    if (this.stepping || this.stopped) return undefined
    const fence = this.lease.fence()
    if (fence === undefined || (this.o.anchorer !== undefined && this.anchorer === undefined)) return undefined
    this.stepping = true
    try {
      if (this.resync && this.anchorer !== undefined) {
        for await (const b of this.o.store.batches(this.anchorer.confirmedThrough() + 1)) await this.anchorer.enqueue(toSealed(b))
        this.resync = false
      }
      const sealed = await this.o.store.sealUnbatched({
        maxRecords: this.o.maxRecords,
        maxAgeMs: force ? 0 : this.o.maxAgeMs,
        fence,
        seal: (id, leaves) => sealLeaves(id, leaves, this.o.origin, this.o.signer, Date.now())
      })
      if (sealed === undefined) return undefined
      this.sealed++
      this.o.onSealed(sealed.batch, sealed.leafHashes)
      await this.anchorer?.enqueue(toSealed(sealed.batch))
      return sealed.batch
    } catch (e) {
      // A sealed batch whose hand-over failed is handed over again by the next step.
      this.resync = true
      this.o.logger.warn({ code: (e as { code?: string }).code, error: (e as Error).message }, 'sequencer step failed (retried)')
      return undefined
    } finally {
      this.stepping = false
    }
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
    if (a !== undefined) {
      this.o.logger.warn({}, 'sequencer lease lost or given up: batching and anchoring stop here')
      await a.close().catch(() => {})
    }
  }
}

function toSealed (b: StoredBatch): Parameters<Anchorer['enqueue']>[0] {
  return { id: b.id, root: b.root, size: b.size, firstRecordTimeMs: b.firstRecordTimeMs, lastRecordTimeMs: b.lastRecordTimeMs, metadataHash: b.metadataHash, sealedAtMs: b.sealedAtMs }
}
