/**
 * Merkle batching (RFC 9162, protocol/merkle.ts): stored records become leaves of the open batch,
 * which is sealed by size or by age, whichever comes first. A leaf is written in the same atomic
 * write as its record, and the seal after all of its leaves, so a crash never leaves a record
 * outside a batch nor a batch missing a leaf; on restart the open batch is rebuilt from its leaves.
 */
import { MerkleBuilder, MerkleTree, formatCheckpoint, formatTipExtension, sha256, signCheckpoint, type Signer } from '../../protocol/index.js'
import { storeKeys, type GatewayStore, type LeafEntry, type StoreOp, type StoredBatch, encodeLeaf, encodeBatch } from '../store/index.js'
import type { TipTracker } from './tips.js'

export const DEFAULT_BATCH_MAX_RECORDS = 10_000
export const DEFAULT_BATCH_MAX_AGE_MS = 60_000

export interface BatcherOptions {
  store: GatewayStore
  /** Checkpoint origin of the gateway, e.g. `edge-provenance/gw-1`; batch n gets `<origin>/batch/<n>`. */
  origin: string
  /** Seal once the open batch has this many leaves. */
  maxRecords: number
  /** Seal once the first leaf of the open batch is this old (ms). */
  maxAgeMs: number
  /** Called once a seal is durable, in batch id order, with the batch's tree (its leaves; proofs are served from it). */
  onSealed: (batch: StoredBatch, tree: MerkleTree) => void
  /** Clock for seal times, Unix ms. Default Date.now. */
  now?: () => number
  /**
   * The gateway's log key: each sealed checkpoint is stored signed as a C2SP note under the key
   * name `origin` (PROTOCOL.md §7.8). Without it checkpoints are stored unsigned (tests, old data).
   */
  signer?: Signer | undefined
  /**
   * The tip tree (PROTOCOL.md §7.10): each leaf given with its record hash moves its device's tip
   * in the same write, and each checkpoint carries the tree's root. Without it checkpoints carry no
   * tips line (tests, old data).
   */
  tips?: TipTracker | undefined
  /**
   * Asked at each seal for checkpoint extension lines (pruning statements to commit, PROTOCOL.md
   * §12.1) and the writes that go with them, written in the same atomic write as the seal.
   */
  commitments?: ((batchId: number) => { lines: string[], ops: StoreOp[] }) | undefined
}

/** What a batch is before its checkpoint: id, leaves and record times. */
export interface BatchHead {
  id: number
  size: number
  root: Uint8Array
  firstRecordTimeMs: number
  lastRecordTimeMs: number
}

/**
 * Builds the sealed batch (checkpoint, signed note, metadata hash) from its head: the one place a
 * batch's committed fields are made, for the single-node batcher and the PostgreSQL sequencer alike.
 * `extensions`: checkpoint extension lines (the tips line, pruning statements).
 */
export function sealBatch (head: BatchHead, origin: string, signer: Signer | undefined, nowMs: number, extensions: string[] = []): StoredBatch {
  const note = { origin: `${origin}/batch/${head.id}`, size: head.size, rootHash: head.root, ...(extensions.length === 0 ? {} : { extensions }) }
  const unsigned = formatCheckpoint(note)
  // The signed note begins with the unsigned bytes unchanged (§7.8): metadataHash stays the hash
  // of those bytes (§7.4), signed or not, so the anchor commits to the same thing either way.
  const checkpoint = signer === undefined ? unsigned : signCheckpoint(note, origin, signer)
  return { ...head, checkpoint, metadataHash: sha256(new TextEncoder().encode(unsigned)), sealedAtMs: nowMs }
}

/** Builds the Merkle tree of `leaves` (in leaf order) and seals it as batch `id`, with checkpoint `extensions`. */
export function sealLeaves (id: number, leaves: readonly LeafEntry[], origin: string, signer: Signer | undefined, nowMs: number, extensions: string[] = []): StoredBatch {
  const b = new MerkleBuilder()
  let first = Infinity
  let last = -Infinity
  for (const l of leaves) {
    b.append(l.leafHash)
    if (l.timeMs < first) first = l.timeMs
    if (l.timeMs > last) last = l.timeMs
  }
  return sealBatch({ id, size: b.size, root: b.root(), firstRecordTimeMs: first, lastRecordTimeMs: last }, origin, signer, nowMs, extensions)
}
/** A leaf to append; with `recordHash` (sha256 of the envelope) it also moves the device's tip. */
export type AppendLeaf = LeafEntry & { recordHash?: Uint8Array }

/** Where a leaf went. */
export interface LeafPlace { batchId: number, index: number }

export class Batcher {
  private readonly o: Required<Omit<BatcherOptions, 'signer' | 'tips' | 'commitments'>> & { signer: Signer | undefined, tips: TipTracker | undefined, commitments: BatcherOptions['commitments'] }
  private openId: number
  // The open batch's leaf hashes back to back, `leafCount` of them; its tree is built once, at the
  // seal, and handed on to serve proofs. An incremental builder hashed every interior node a second
  // time; an array of leaf hash objects kept each alive (and promoted by the GC) until the seal.
  private leafBytes = Buffer.allocUnsafe(1024 * 32)
  private leafCount = 0
  private firstTimeMs = Infinity
  private lastTimeMs = -Infinity
  private timer: NodeJS.Timeout | undefined
  private running = false

  private constructor (o: Required<Omit<BatcherOptions, 'signer' | 'tips' | 'commitments'>> & { signer: Signer | undefined, tips: TipTracker | undefined, commitments: BatcherOptions['commitments'] }, openId: number, leaves: LeafEntry[]) {
    this.o = o
    this.openId = openId
    for (const l of leaves) this.addToTree(l)
  }

  /**
   * Opens the batcher on a store: finds the open batch and rebuilds its tree from the stored leaves.
   * @throws GatewayError `STORE_CORRUPT` for unreadable leaves.
   */
  static async open (options: BatcherOptions): Promise<Batcher> {
    if (!Number.isSafeInteger(options.maxRecords) || options.maxRecords < 1) throw new RangeError('maxRecords must be a positive integer')
    if (!Number.isFinite(options.maxAgeMs) || options.maxAgeMs <= 0) throw new RangeError('maxAgeMs must be a positive number')
    formatCheckpoint({ origin: `${options.origin}/batch/1`, size: 0, rootHash: new Uint8Array(32) })
    const o = { now: Date.now, signer: undefined, tips: undefined, commitments: undefined, ...options }
    const openId = (await o.store.getInt(storeKeys.openBatch)) ?? 1
    const leaves = await o.store.leaves(openId)
    return new Batcher(o, openId, leaves)
  }

  /** Id of the batch new leaves go to. */
  get openBatchId (): number {
    return this.openId
  }

  /** Leaves in the open batch. */
  get openSize (): number {
    return this.leafCount
  }

  /** Arms the age timer (for leaves recovered at open, too). */
  start (): void {
    this.running = true
    this.arm()
  }

  /** Disarms the age timer. */
  stop (): void {
    this.running = false
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
  }

  /**
   * Appends a leaf to the open batch. `recordOps` gives the operations that must be written in the
   * same atomic write as the leaf (the record itself, knowing its place). Seals when full.
   */
  append (leaf: AppendLeaf, recordOps: (place: LeafPlace) => StoreOp[]): LeafPlace {
    const place = { batchId: this.openId, index: this.leafCount }
    const ops = recordOps(place)
    ops.push({ type: 'put', key: storeKeys.leaf(place.batchId, place.index), value: encodeLeaf(leaf) })
    this.o.store.enqueue(ops)
    // After the enqueue: the tip's put joins the write that takes the leaf (TipTracker's write hook).
    if (this.o.tips !== undefined && leaf.recordHash !== undefined) this.o.tips.noteStored(leaf.deviceId, leaf.seq, leaf.recordHash, place.batchId)
    this.addToTree(leaf)
    if (this.leafCount >= this.o.maxRecords) this.seal()
    else this.arm()
    return place
  }

  /**
   * Seals the open batch when it has leaves: root, record times and checkpoint are written after
   * its leaves; `onSealed` runs once that is durable. Returns the batch, or undefined when empty.
   */
  seal (): StoredBatch | undefined {
    if (this.leafCount === 0) return undefined
    const id = this.openId
    // The tree copies the bytes: the buffer is reused for the next batch.
    const tree = new MerkleTree(this.leafBytes.subarray(0, this.leafCount * 32))
    // The tips as they stand are those of batches 1..id: every leaf appended so far is in them.
    const committed = this.o.commitments?.(id) ?? { lines: [], ops: [] }
    const extensions = [...(this.o.tips === undefined ? [] : [formatTipExtension(this.o.tips.seal(id))]), ...committed.lines]
    const batch = sealBatch({ id, size: tree.size, root: tree.root(), firstRecordTimeMs: this.firstTimeMs, lastRecordTimeMs: this.lastTimeMs },
      this.o.origin, this.o.signer, this.o.now(), extensions)
    this.openId = id + 1
    this.leafCount = 0
    this.firstTimeMs = Infinity
    this.lastTimeMs = -Infinity
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    this.o.store.enqueue([
      { type: 'put', key: storeKeys.batch(id), value: encodeBatch(batch) },
      this.o.store.putInt(storeKeys.openBatch, id + 1),
      ...committed.ops
    ], () => this.o.onSealed(batch, tree))
    return batch
  }

  private addToTree (leaf: LeafEntry): void {
    requireLeafHash(leaf.leafHash)
    if ((this.leafCount + 1) * 32 > this.leafBytes.byteLength) {
      const grown = Buffer.allocUnsafe(this.leafBytes.byteLength * 2)
      this.leafBytes.copy(grown, 0, 0, this.leafCount * 32)
      this.leafBytes = grown
    }
    this.leafBytes.set(leaf.leafHash, this.leafCount * 32)
    this.leafCount++
    if (leaf.timeMs < this.firstTimeMs) this.firstTimeMs = leaf.timeMs
    if (leaf.timeMs > this.lastTimeMs) this.lastTimeMs = leaf.timeMs
  }

  private arm (): void {
    if (!this.running || this.timer !== undefined || this.leafCount === 0) return
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.seal()
    }, this.o.maxAgeMs)
    this.timer.unref()
  }
}

// What MerkleBuilder.append checked on each append: a bad leaf must fail its append, not the seal.
function requireLeafHash (h: Uint8Array): void {
  if (!(h instanceof Uint8Array)) throw new TypeError('leafHash must be a Uint8Array')
  if (h.byteLength !== 32) throw new RangeError('leafHash must be 32 bytes')
}
