/**
 * Retention at the gateway (docs/GATEWAY.md §Retention): removes a device's oldest records once
 * they are both anchored and past the retention period, and signs a pruning statement for each
 * pruning (PROTOCOL.md §12.1) that the next sealed batch commits to, so that verification tells
 * pruning by policy from loss. Anything else is refused with a stable code.
 */
import { sha256, pruningExtensionLine, signPruningStatement, type Signer } from '../../protocol/index.js'
import { GatewayError } from '../errors.js'
import { storeOps, type GatewayStore, type StoreOp, type StoredBatch, type StoredPruning } from '../store/index.js'

/** Six months, the minimum of EU AI Act Art. 19(1) and 26(6), counted as 183 days of 86 400 s. */
export const MIN_RETENTION_DAYS = 183
export const DEFAULT_RETENTION_DAYS = MIN_RETENTION_DAYS
export const DAY_MS = 86_400_000
/** Most batches one statement names (STATEMENT_LIMITS.batches): a longer run is pruned over several statements. */
const MAX_STATEMENT_BATCHES = 1024
/** Checkpoint extension lines one seal carries for statements (the checkpoint parser takes 16 in all). */
export const MAX_PRUNINGS_PER_SEAL = 8

export interface PrunerOptions {
  store: GatewayStore
  /** The gateway's log key: signs the statements. */
  signer: Signer
  /** Id the log key is registered under on chain. */
  gatewayId: string
  /** Retention period in days; at least MIN_RETENTION_DAYS. */
  retentionDays: number
  /** Gateway clock, Unix ms. Default Date.now. */
  now?: () => number
  /**
   * Every record of the device up to this seq is in a confirmed batch (-1: none). Default: the
   * device state in the store (a running gateway passes its live view, which may be ahead).
   */
  anchoredSeqOf?: (deviceId: string) => Promise<number>
  /**
   * Keep signed statements in memory for {@link Pruner.takeCommitments}. Default true; false on
   * the PostgreSQL tier, whose sequencer takes the waiting statements from the database.
   */
  keepWaiting?: boolean
}

export interface PruneRequest {
  deviceId: string
  /**
   * Prune through this seq, and refuse (`PRUNE_NOT_ANCHORED`, `PRUNE_BEFORE_RETENTION`) if any
   * record up to it may not go yet. Absent: prune as far as allowed (the scheduled run).
   */
  throughSeq?: number
  /** Recorded in the statement. Default `retention`. */
  reason?: string
  /** Check and sign, but write nothing (the CLI's --dry-run). */
  dryRun?: boolean
}

export interface PruneResult {
  deviceId: string
  firstSeq: number
  lastSeq: number
  records: number
  batches: number[]
  /** sha256 of the statement envelope (hex). */
  statementHash: string
}

/**
 * Signs pruning statements and keeps those not yet committed by a sealed batch; the batcher asks
 * it for their checkpoint lines at each seal ({@link Pruner.takeCommitments}).
 */
export class Pruner {
  private readonly o: Required<PrunerOptions>
  private readonly waiting: StoredPruning[] = []

  private constructor (o: Required<PrunerOptions>, waiting: StoredPruning[]) {
    this.o = o
    this.waiting = waiting
  }

  /**
   * Opens the pruner on a store: statements signed while the gateway was stopped (the CLI) wait
   * for the next seal.
   * @throws RangeError for a retention below MIN_RETENTION_DAYS.
   */
  static async open (options: PrunerOptions): Promise<Pruner> {
    checkRetentionDays(options.retentionDays)
    const waiting = (await options.store.prunings()).filter(p => p.committedInBatch === 0)
    const anchoredSeqOf = async (deviceId: string): Promise<number> => (await options.store.getDeviceState(deviceId))?.anchoredSeq ?? -1
    const keepWaiting = options.keepWaiting ?? true
    return new Pruner({ now: Date.now, anchoredSeqOf, ...options, keepWaiting }, keepWaiting ? waiting : [])
  }

  /** Statements signed and not yet committed by a sealed batch. */
  get waitingCount (): number {
    return this.waiting.length
  }

  /**
   * The checkpoint extension lines of the batch `batchId` about to be sealed, and the writes that
   * mark those statements committed by it (written with the seal).
   */
  takeCommitments (batchId: number): { lines: string[], ops: StoreOp[] } {
    const taken = this.waiting.splice(0, MAX_PRUNINGS_PER_SEAL)
    return {
      lines: taken.map(p => pruningExtensionLine(sha256(p.envelope))),
      ops: taken.map(p => storeOps.putPruning({ ...p, committedInBatch: batchId }))
    }
  }

  /**
   * Prunes one device's oldest records. Returns undefined when nothing may go (scheduled runs).
   * @throws GatewayError `PRUNE_NOT_ANCHORED` (a record up to throughSeq is not in a confirmed
   *   batch), `PRUNE_BEFORE_RETENTION` (one is in a batch sealed within the retention period),
   *   `PRUNE_NOTHING` (throughSeq below the oldest stored record, or nothing stored).
   */
  async prune (request: PruneRequest): Promise<PruneResult | undefined> {
    const { store, retentionDays } = this.o
    const { deviceId, throughSeq } = request
    if (throughSeq !== undefined && (!Number.isSafeInteger(throughSeq) || throughSeq < 0)) throw new RangeError('throughSeq must be a non-negative safe integer')
    const nowMs = this.o.now()
    const cutoffMs = nowMs - retentionDays * DAY_MS
    const anchoredSeq = await this.o.anchoredSeqOf(deviceId)
    const batchCache = new Map<number, StoredBatch | undefined>()
    const seqs: number[] = []
    const batches: Array<{ id: number, root: Uint8Array }> = []
    let lastEnvelope: Uint8Array | undefined
    for await (const seq of store.recordSeqs(deviceId)) {
      if (throughSeq !== undefined && seq > throughSeq) break
      const stored = await store.getRecord(deviceId, seq)
      if (stored === undefined) continue
      let refusal: GatewayError | undefined
      if (seq > anchoredSeq) {
        refusal = new GatewayError('PRUNE_NOT_ANCHORED', `record ${seq} of ${deviceId} is not in a confirmed batch yet (anchored through ${anchoredSeq}): only anchored records may be pruned`)
      } else {
        if (!batchCache.has(stored.batchId)) batchCache.set(stored.batchId, await store.getBatch(stored.batchId))
        const batch = batchCache.get(stored.batchId)
        if (batch === undefined || batch.sealedAtMs > cutoffMs) {
          const sealed = batch === undefined ? 'an unsealed batch' : `batch ${batch.id}, sealed ${new Date(batch.sealedAtMs).toISOString()}`
          refusal = new GatewayError('PRUNE_BEFORE_RETENTION', `record ${seq} of ${deviceId} is in ${sealed}, within the retention period of ${retentionDays} days (kept until ${batch === undefined ? 'later' : new Date(batch.sealedAtMs + retentionDays * DAY_MS).toISOString()})`)
        }
      }
      const isNewBatch = batches.at(-1)?.id !== stored.batchId
      if (refusal === undefined && isNewBatch && batches.length >= MAX_STATEMENT_BATCHES) break
      if (refusal !== undefined) {
        if (throughSeq !== undefined) throw refusal
        break
      }
      if (isNewBatch) batches.push({ id: stored.batchId, root: (batchCache.get(stored.batchId) as StoredBatch).root })
      seqs.push(seq)
      lastEnvelope = stored.envelope
    }
    if (seqs.length === 0 || lastEnvelope === undefined) {
      if (throughSeq !== undefined) throw new GatewayError('PRUNE_NOTHING', `no stored record of ${deviceId} at or below seq ${throughSeq}`)
      return undefined
    }
    // Batches in ascending id order: a device's records go to batches in seq order, so this is already so.
    const firstSeq = seqs[0] as number
    const lastSeq = seqs[seqs.length - 1] as number
    const signed = signPruningStatement({
      gatewayId: this.o.gatewayId, deviceId, firstSeq, lastSeq, lastHash: sha256(lastEnvelope), batches,
      retentionDays, cutoffMs, prunedAtMs: nowMs, reason: request.reason ?? 'retention'
    }, this.o.signer)
    const result = { deviceId, firstSeq, lastSeq, records: seqs.length, batches: batches.map(b => b.id), statementHash: Buffer.from(signed.hash).toString('hex') }
    if (request.dryRun === true) return result
    const pruning: StoredPruning = { deviceId, lastSeq, envelope: signed.envelope, committedInBatch: 0 }
    // The statement and the deletions in one atomic write: never records gone without a statement.
    const ops: StoreOp[] = [storeOps.putPruning(pruning), ...seqs.map(s => storeOps.delRecord(deviceId, s))]
    store.enqueue(ops)
    await store.flush()
    if (this.o.keepWaiting) this.waiting.push(pruning)
    return result
  }

  /** Prunes every device as far as allowed (the scheduled run). */
  async pruneAll (options: { reason?: string, dryRun?: boolean } = {}): Promise<PruneResult[]> {
    const ids: string[] = []
    for await (const d of this.o.store.devices()) ids.push(d.deviceId)
    const out: PruneResult[] = []
    for (const deviceId of ids) {
      const r = await this.prune({ deviceId, ...options })
      if (r !== undefined) out.push(r)
    }
    return out
  }
}

/** @throws RangeError for a retention that is not a whole number of days ≥ MIN_RETENTION_DAYS. */
export function checkRetentionDays (days: unknown): void {
  if (typeof days !== 'number' || !Number.isSafeInteger(days) || days < MIN_RETENTION_DAYS) {
    throw new RangeError(`retentionDays must be a whole number of days, at least ${MIN_RETENTION_DAYS} (six months: EU AI Act Art. 19(1), 26(6)); got ${String(days)}`)
  }
}
