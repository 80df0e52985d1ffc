/**
 * The gateway's tip tree (PROTOCOL.md §7.10): every device's latest record in this gateway's batches,
 * kept current as leaves are appended, frozen into the checkpoint of each batch at its seal, and
 * proven per device against the newest anchored batch.
 */
import { TipTree, formatTipProof, type TipProof } from '../../protocol/index.js'
import type { AnchorReceipt, AnchorState } from '../anchor/index.js'
import { storeOps, type GatewayStore, type StoreOp, type StoredBatch, type StoredTreeTip } from '../store/index.js'
import type { AnchorReader } from './proofs.js'

/** Sealed batches whose tip tree stays in memory until a later one is anchored. */
export const DEFAULT_TIP_SNAPSHOTS = 256

export interface TipTrackerOptions {
  store: GatewayStore
  /** Id of the batch new leaves go to (the Batcher's open batch). */
  openBatchId: number
  /** Sealed batches whose trees are kept at most; older ones are dropped first. Default DEFAULT_TIP_SNAPSHOTS. */
  maxSnapshots?: number
}

/**
 * Current tips plus a snapshot per sealed batch (structure-shared, O(1) each). After a restart only
 * the last sealed batch's tree is known again (from each tip's `before`): a proof waits for it, or
 * for a newer batch, to be anchored.
 */
export class TipTracker {
  private readonly current: TipTree
  private readonly tips = new Map<string, StoredTreeTip>()
  private readonly snapshots = new Map<number, TipTree>()
  private readonly maxSnapshots: number
  /** Devices whose tip moved since the store's last write. */
  private readonly unwritten = new Set<string>()
  /** Devices whose tip moved since it was last put into `current`. */
  private readonly untreed = new Set<string>()

  private constructor (current: TipTree, maxSnapshots: number) {
    this.current = current
    this.maxSnapshots = maxSnapshots
  }

  /**
   * Loads the tips from the store: the current tree, and the tree of batch `openBatchId - 1`.
   * @throws GatewayError `STORE_CORRUPT`.
   */
  static async open (options: TipTrackerOptions): Promise<TipTracker> {
    const t = new TipTracker(new TipTree(), options.maxSnapshots ?? DEFAULT_TIP_SNAPSHOTS)
    const lastSealed = new TipTree()
    const stored: StoredTreeTip[] = []
    for await (const tip of options.store.treeTips()) stored.push(tip)
    if (stored.length === 0) stored.push(...await backfill(options.store))
    for (const tip of stored) {
      t.tips.set(tip.deviceId, tip)
      t.current.set(tip.deviceId, tip.seq, tip.hash)
      // A tip moved in the open batch: the sealed tree had what came before it.
      const sealed = tip.batchId < options.openBatchId ? tip : tip.before
      if (sealed !== undefined) lastSealed.set(tip.deviceId, sealed.seq, sealed.hash)
    }
    if (options.openBatchId > 1) t.snapshots.set(options.openBatchId - 1, lastSealed)
    options.store.addWriteHook({ beforeWrite: () => ({ ops: t.takeUnwritten() }) })
    return t
  }

  /** Devices in the current tree. */
  get size (): number {
    this.syncTree()
    return this.current.size
  }

  /**
   * A record of `deviceId` becomes a leaf of batch `batchId`: the tip moves now, and is stored by
   * the store's next write (a write hook, registered by open()), which is the write that carries
   * the leaf: one tip per device per write, however many of its records the write holds.
   */
  noteStored (deviceId: string, seq: number, recordHash: Uint8Array, batchId: number): void {
    const old = this.tips.get(deviceId)
    this.unwritten.add(deviceId)
    // Records enter batches in chain order; a lower seq (a bug upstream) must never move a tip back.
    if (old !== undefined && seq <= old.seq) return
    this.untreed.add(deviceId)
    if (old === undefined) {
      this.tips.set(deviceId, { deviceId, seq, hash: recordHash, batchId, before: undefined })
      return
    }
    // Moved in place, not a new tip (and hash copy) per record: each tip is read only by the write
    // hook, which encodes it at once, and by the tree, which copies it. The record hash is the
    // digest the batcher was given with the leaf, never written to afterwards.
    if (old.batchId < batchId) old.before = { seq: old.seq, hash: old.hash }
    old.seq = seq
    old.hash = recordHash
    old.batchId = batchId
  }

  /** Puts the tips moved since the last call into the tree: once per device per write or seal, not per record. */
  private syncTree (): void {
    for (const id of this.untreed) {
      const tip = this.tips.get(id)
      if (tip !== undefined) this.current.set(id, tip.seq, tip.hash)
    }
    this.untreed.clear()
  }

  /** The puts of the tips moved since the last write (the write hook). */
  private takeUnwritten (): StoreOp[] {
    if (this.unwritten.size === 0) return []
    this.syncTree()
    const ops: StoreOp[] = []
    for (const id of this.unwritten) {
      const tip = this.tips.get(id)
      if (tip !== undefined) ops.push(storeOps.putTreeTip(tip))
    }
    this.unwritten.clear()
    return ops
  }

  /** Freezes the tree as batch `batchId` is sealed and returns its root (the checkpoint's tips line). */
  seal (batchId: number): Uint8Array {
    this.syncTree()
    const snap = this.current.snapshot()
    this.snapshots.set(batchId, snap)
    while (this.snapshots.size > this.maxSnapshots) {
      const oldest = this.snapshots.keys().next().value
      if (oldest === undefined) break
      this.snapshots.delete(oldest)
    }
    return snap.root()
  }

  /** Drops the trees of batches before `batchId` (once `batchId` is anchored, older ones are never served). */
  anchored (batchId: number): void {
    for (const id of [...this.snapshots.keys()]) if (id < batchId) this.snapshots.delete(id)
  }

  /** Sealed batches with a tree in memory, newest first. */
  batchIds (): number[] {
    return [...this.snapshots.keys()].sort((a, b) => b - a)
  }

  /** The proof of a device's tip (or absence) in batch `batchId`'s tree; undefined when that tree is not kept. */
  prove (deviceId: string, batchId: number): TipProof | undefined {
    return this.snapshots.get(batchId)?.prove(deviceId)
  }
}

// A store written before tip trees has records but no tips: take each device's tip from its state
// when this gateway stored that record (a tip learned from a peer's ack has no record here; the
// device's next stored record sets it). Written once; the next start reads them back.
async function backfill (store: GatewayStore): Promise<StoredTreeTip[]> {
  const out: StoredTreeTip[] = []
  for await (const d of store.devices()) {
    if (d.tip === undefined) continue
    const r = await store.getRecord(d.deviceId, d.tip.seq)
    if (r === undefined) continue
    out.push({ deviceId: d.deviceId, seq: d.tip.seq, hash: d.tip.hash, batchId: r.batchId, before: undefined })
  }
  if (out.length > 0) {
    store.enqueue(out.map(t => storeOps.putTreeTip(t)))
    await store.flush()
  }
  return out
}

/** What the API answers for a device's tip. */
export type TipLookup =
  | { status: 'ok', batch: StoredBatch, proof: TipProof, anchorState: AnchorState | undefined, receipt: AnchorReceipt | undefined }
  | { status: 'not-anchored' }

/**
 * The proof of a device's tip in the newest batch whose tree is kept and whose anchor is confirmed
 * (without an anchorer: the newest sealed batch). `not-anchored` until there is one.
 */
export async function lookupTip (tips: TipTracker, store: GatewayStore, anchors: AnchorReader | undefined, deviceId: string): Promise<TipLookup> {
  for (const id of tips.batchIds()) {
    const receipt = anchors === undefined ? undefined : await anchors.receipt(id)
    if (anchors !== undefined && receipt === undefined) continue
    const batch = await store.getBatch(id)
    const proof = tips.prove(deviceId, id)
    if (batch === undefined || proof === undefined) continue
    return { status: 'ok', batch, proof, anchorState: anchors === undefined ? undefined : await anchors.state(id), receipt }
  }
  return { status: 'not-anchored' }
}

/** The tip proof file (PROTOCOL.md §7.10) of a device in a sealed batch: proof, then the stored checkpoint verbatim. */
export function formatBatchTipProof (proof: TipProof, batch: StoredBatch): string {
  return formatTipProof({ proof, checkpoint: batch.checkpoint })
}
