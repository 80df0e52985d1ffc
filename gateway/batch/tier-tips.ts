/**
 * The tip tree as any process of the PostgreSQL tier serves it (PROTOCOL.md §7.10): rebuilt from
 * the sequencer's gw_tip_history rows for the newest confirmed batch, kept in memory and moved
 * forward by the rows of later batches only; and each device's anchored seq for acks, read there.
 */
import { TIP_CHECKPOINT_TAG, TipTree, formatTipExtension } from '../../protocol/index.js'
import { GatewayError } from '../errors.js'
import type { PostgresGatewayStore } from '../store/index.js'
import type { AnchorReader } from './proofs.js'
import type { TipLookup } from './tips.js'

export interface TierTipsOptions {
  store: PostgresGatewayStore
  /** The anchoring state (the Sequencer: any process may read it). */
  anchors: AnchorReader & { confirmedThrough: () => Promise<number> }
  /** False without an anchor key: proofs are then against the newest sealed batch. */
  anchoring: boolean
}

export class TierTips {
  private readonly o: TierTipsOptions
  private tree = new TipTree()
  private through = 0
  private moving: Promise<unknown> = Promise.resolve()

  constructor (o: TierTipsOptions) {
    this.o = o
  }

  /** The batch tips are proven against now: the newest confirmed one (or sealed, without anchoring). */
  async targetBatch (): Promise<number> {
    return this.o.anchoring ? await this.o.anchors.confirmedThrough() : await this.o.store.newestBatchId()
  }

  /**
   * A device's tip proof in the newest confirmed batch, `not-anchored` before there is one (or
   * when that batch was sealed before the tier kept tips).
   * @throws GatewayError `STORE_UNAVAILABLE`; `STORE_CORRUPT` when the rebuilt tree does not give the root its checkpoint commits to.
   */
  async lookup (deviceId: string): Promise<TipLookup> {
    const id = await this.targetBatch()
    if (id === 0) return { status: 'not-anchored' }
    const batch = await this.o.store.getBatch(id)
    if (batch === undefined || !batch.checkpoint.includes(`\n${TIP_CHECKPOINT_TAG} `)) return { status: 'not-anchored' }
    const tree = await this.treeAt(id)
    // The rows are the database's word; the checkpoint is what the chain anchors. They must agree.
    if (!batch.checkpoint.includes(`\n${formatTipExtension(tree.root())}\n`)) {
      throw new GatewayError('STORE_CORRUPT', `the tip history does not rebuild the tip root of batch ${id}`)
    }
    const [anchorState, receipt] = this.o.anchoring ? await Promise.all([this.o.anchors.state(id), this.o.anchors.receipt(id)]) : [undefined, undefined]
    return { status: 'ok', batch, proof: tree.prove(deviceId), anchorState, receipt }
  }

  /** The tree of batch `id`: the cached one moved forward, or (for an older batch) one built for it. */
  private async treeAt (id: number): Promise<TipTree> {
    const run = this.moving.then(async () => {
      if (id < this.through) return await this.build(0, id, new TipTree())
      if (id > this.through) {
        // Set on a copy: a tree handed out earlier never changes under its reader.
        this.tree = await this.build(this.through, id, this.tree.snapshot())
        this.through = id
      }
      return this.tree
    })
    this.moving = run.catch(() => {})
    return await run
  }

  private async build (after: number, through: number, tree: TipTree): Promise<TipTree> {
    for (const t of await this.o.store.tipChanges(after, through)) tree.set(t.deviceId, t.seq, t.hash)
    return tree
  }
}
