/**
 * Per device, the highest seq such that every record up to it is in a batch whose anchor is
 * confirmed: the `anchoredSeq` of acks. A gateway knows the runs of records it stored and which
 * of its batches are confirmed; with several gateways (shared subscriptions) the runs stored by
 * the others are covered by the anchored seqs they announce in their acks.
 */

/** Consecutive records of one device in one batch: seqs afterSeq+1 .. lastSeq (honest gaps included). */
interface Run { first: number, last: number, batchId: number }

export class AnchoredTracker {
  private readonly anchored = new Map<string, number>()
  private readonly peer = new Map<string, number>()
  private readonly runs = new Map<string, Run[]>()
  private readonly devicesOfBatch = new Map<number, Set<string>>()
  private readonly openRuns = new Map<number, number>()
  private confirmed: number
  private folded: number
  private readonly enabled: boolean

  /**
   * @param confirmedThrough every batch up to this id is confirmed
   * @param foldedThrough every run of every batch up to this id is already in the persisted anchored seqs
   * @param enabled false when nothing is anchored: runs are then not kept (they would never fold)
   */
  constructor (confirmedThrough: number, foldedThrough: number, enabled = true) {
    this.confirmed = confirmedThrough
    this.folded = foldedThrough
    this.enabled = enabled
  }

  /** Highest batch id whose runs are all folded into the anchored seqs (persist it with them). */
  get foldedThrough (): number {
    return this.folded
  }

  /** Sets the anchored seq loaded from the store. */
  load (deviceId: string, anchoredSeq: number): void {
    this.anchored.set(deviceId, anchoredSeq)
  }

  /** Every record up to the returned seq is anchored; -1 for none. */
  anchoredSeq (deviceId: string): number {
    return this.anchored.get(deviceId) ?? -1
  }

  /** Notes a leaf: record `seq` linked after `afterSeq` went into batch `batchId`. */
  noteLeaf (deviceId: string, afterSeq: number, seq: number, batchId: number): void {
    if (!this.enabled) return
    let list = this.runs.get(deviceId)
    if (list === undefined) this.runs.set(deviceId, list = [])
    const last = list[list.length - 1]
    if (last !== undefined && last.batchId === batchId && last.last === afterSeq) {
      last.last = seq
      return
    }
    list.push({ first: afterSeq + 1, last: seq, batchId })
    this.openRuns.set(batchId, (this.openRuns.get(batchId) ?? 0) + 1)
    let devices = this.devicesOfBatch.get(batchId)
    if (devices === undefined) this.devicesOfBatch.set(batchId, devices = new Set())
    devices.add(deviceId)
  }

  /**
   * Every batch up to `batchId` is confirmed. Returns the devices whose anchored seq advanced.
   */
  confirmThrough (batchId: number): string[] {
    if (batchId <= this.confirmed) return []
    const from = this.confirmed + 1
    this.confirmed = batchId
    const touched = new Set<string>()
    for (let b = from; b <= batchId; b++) for (const d of this.devicesOfBatch.get(b) ?? []) touched.add(d)
    const advanced = [...touched].filter(d => this.fold(d))
    this.advanceFolded()
    return advanced
  }

  /** A peer gateway announced `anchoredSeq` for the device. Returns true when ours advanced. */
  notePeer (deviceId: string, anchoredSeq: number): boolean {
    if (anchoredSeq <= (this.peer.get(deviceId) ?? -1)) return false
    this.peer.set(deviceId, anchoredSeq)
    return this.fold(deviceId)
  }

  private fold (deviceId: string): boolean {
    const before = this.anchoredSeq(deviceId)
    let s = Math.max(before, this.peer.get(deviceId) ?? -1)
    const list = this.runs.get(deviceId) ?? []
    for (let changed = true; changed;) {
      changed = false
      for (let i = 0; i < list.length; i++) {
        const run = list[i] as Run
        const covered = run.last <= s
        if (covered || (run.first <= s + 1 && run.batchId <= this.confirmed)) {
          if (!covered) s = run.last
          list.splice(i, 1)
          this.closeRun(run.batchId, deviceId, list)
          changed = true
          break
        }
      }
    }
    if (list.length === 0) this.runs.delete(deviceId)
    if (s > before) this.anchored.set(deviceId, s)
    this.advanceFolded()
    return s > before
  }

  private closeRun (batchId: number, deviceId: string, remaining: Run[]): void {
    this.openRuns.set(batchId, (this.openRuns.get(batchId) ?? 1) - 1)
    if (!remaining.some(r => r.batchId === batchId)) this.devicesOfBatch.get(batchId)?.delete(deviceId)
  }

  private advanceFolded (): void {
    while (this.folded < this.confirmed && (this.openRuns.get(this.folded + 1) ?? 0) === 0) {
      this.openRuns.delete(this.folded + 1)
      this.devicesOfBatch.delete(this.folded + 1)
      this.folded++
    }
  }
}
