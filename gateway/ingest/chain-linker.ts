/**
 * A device's chain as the gateway builds it: a verified record links at the tip, or waits (within
 * the byte budgets) until the records before it arrive; linked records are stored and batched, and
 * what then follows the tip links too, a store write every `drainChunkBytes`.
 */
import { deviceTopic, hashLeaf, type SignedRecord } from '../../protocol/index.js'
import type { AnchoredTracker, LeafSink } from '../batch/index.js'
import { storeOps, type GatewayStore, type StoreOp } from '../store/index.js'
import { linkRecords } from './chain-link.js'
import { signedOf, waitingRecordOf, type DeviceRuntime, type DeviceTable, type ParkRefusal, type WaitingRecord } from './device-state.js'
import type { QuarantineReason } from './quarantine.js'
import type { WarnLimiter } from './warn-limiter.js'

/** Input to quarantine, with its reason. */
export interface Quarantine { reason: QuarantineReason, topic: string, seq?: number, detail: string, raw: Uint8Array }

export interface ChainLinkerOptions {
  store: GatewayStore
  batcher: LeafSink
  tracker: AnchoredTracker
  devices: DeviceTable
  /** Linking pauses for a store write once this many bytes are queued for it. */
  drainChunkBytes: number
  counters: { recordStored: () => void, duplicate: () => void, pendingDropped: (reason: ParkRefusal) => void }
  quarantine: (d: DeviceRuntime, q: Quarantine) => void
  /** The device state changed and must be persisted with the next write. */
  markDirty: (d: DeviceRuntime) => void
  /** Go on linking in a later job of the device's queue (after the store wrote). */
  scheduleDrain: (d: DeviceRuntime) => void
  warnings: WarnLimiter
  now: () => number
}

export class ChainLinker {
  private readonly o: ChainLinkerOptions

  constructor (options: ChainLinkerOptions) {
    this.o = options
  }

  /** A verified record above the tip: link it now, or wait for the records before it. */
  place (d: DeviceRuntime, s: SignedRecord, topic: string): void {
    const r = s.record
    const expected = (d.tip?.seq ?? -1) + 1
    if (d.pending.has(r.seq)) {
      // Two validly signed records for one seq: the device equivocates. Keep the first.
      this.o.quarantine(d, { reason: 'seq-reuse', topic, seq: r.seq, detail: `another validly signed record for seq ${r.seq} is waiting`, raw: s.envelope })
      return
    }
    if (r.seq === expected) {
      // The tip moved by one: nothing waiting can be at or below it, no prune scan.
      if (this.link(d, [s], topic)) this.pruneAndDrain(d, false)
      return
    }
    this.park(d, s)
    // A gap record may complete the records that a declared hole keeps waiting.
    if (r.body.kind === 'gap') this.linkDeclared(d, topic)
  }

  linkDeclared (d: DeviceRuntime, topic: string): void {
    const run = this.o.devices.declaredRun(d)
    if (run !== undefined && this.link(d, this.decodeRun(d, run), topic)) this.pruneAndDrain(d)
  }

  private decodeRun (d: DeviceRuntime, run: WaitingRecord[]): SignedRecord[] {
    return run.map(w => signedOf(w, d.id))
  }

  private park (d: DeviceRuntime, s: SignedRecord): void {
    const parked = this.o.devices.park(d, waitingRecordOf(s), this.o.now())
    if (typeof parked === 'string') {
      this.o.counters.pendingDropped(parked)
      this.o.warnings.warn({ device: d.id, seq: s.record.seq, waiting: d.pending.size, waitingBytes: d.pendingBytes, budget: parked },
        'records waiting for a gap are at their budget: dropped (the device resends)')
      return
    }
    this.o.store.enqueue([parked])
  }

  /**
   * Links `run` (ascending, verified) after the tip and stores what links. Returns true when all
   * of it was stored; the record that breaks the chain is quarantined, later ones keep waiting.
   */
  private link (d: DeviceRuntime, run: SignedRecord[], topic: string): boolean {
    const result = linkRecords(d.tip, run)
    for (let i = 0; i < result.accepted; i++) this.storeLinked(d, run[i] as SignedRecord)
    if (result.failure === undefined) {
      if (result.accepted < run.length) for (let i = result.accepted; i < run.length; i++) this.parkIfNew(d, run[i] as SignedRecord)
      return result.accepted === run.length
    }
    const bad = run[result.failure.index] as SignedRecord
    const ops: StoreOp[] = []
    this.o.devices.unpark(d, bad.record.seq, ops)
    if (ops.length > 0) this.o.store.enqueue(ops)
    this.o.quarantine(d, { reason: result.failure.reason, topic, seq: bad.record.seq, detail: result.failure.message, raw: bad.envelope })
    for (let i = result.accepted; i < run.length; i++) if (i !== result.failure.index) this.parkIfNew(d, run[i] as SignedRecord)
    return false
  }

  private parkIfNew (d: DeviceRuntime, s: SignedRecord): void {
    if (!d.pending.has(s.record.seq) && s.record.seq > (d.tip?.seq ?? -1)) this.park(d, s)
  }

  private storeLinked (d: DeviceRuntime, s: SignedRecord): void {
    const r = s.record
    const afterSeq = d.tip?.seq ?? -1
    const place = this.o.batcher.append(
      { deviceId: d.id, seq: r.seq, leafHash: hashLeaf(s.envelope), timeMs: r.timeMs, afterSeq, recordHash: s.hash },
      (p) => {
        const ops: StoreOp[] = [storeOps.putRecord(d.id, r.seq, { batchId: p.batchId, index: p.index, envelope: s.envelope })]
        this.o.devices.unpark(d, r.seq, ops)
        return ops
      })
    this.o.tracker.noteLeaf(d.id, afterSeq, r.seq, place.batchId)
    d.tip = { seq: r.seq, hash: s.hash, boot: r.boot }
    d.tipFromPeer = false
    d.stored++
    d.ownAdvance = true
    this.o.counters.recordStored()
    this.o.markDirty(d)
  }

  /**
   * Drops waiting records the tip has passed (when `prune`), then links whatever now follows the tip. Stops
   * once `drainChunkBytes` are queued for the store and goes on in a later drain job, after the
   * write: waiting records linked at once would otherwise be one write of all their bytes.
   */
  pruneAndDrain (d: DeviceRuntime, prune = true): void {
    const tipBefore = d.tip?.seq
    if (prune) this.prunePassed(d)
    // Only a record that waited needs it: built on demand, not once per record linked.
    let topic: string | undefined
    for (;;) {
      if (d.pending.size > 0 && this.o.store.queuedBytes >= this.o.drainChunkBytes) {
        this.o.scheduleDrain(d)
        break
      }
      const expected = (d.tip?.seq ?? -1) + 1
      const next = d.pending.get(expected)
      if (next !== undefined) {
        if (!this.link(d, [signedOf(next, d.id)], topic ??= deviceTopic(d.id, 'records'))) break
        continue
      }
      const run = this.o.devices.declaredRun(d)
      if (run === undefined) break
      if (!this.link(d, this.decodeRun(d, run), topic ??= deviceTopic(d.id, 'records'))) break
      // A declared hole may have jumped over records that wait inside it.
      this.prunePassed(d)
    }
    if (d.pending.size === 0) {
      d.gapSinceMs = undefined
      d.gapReported = false
    } else if (d.tip?.seq !== tipBefore) {
      d.gapSinceMs = this.o.now()
      d.gapReported = false
    }
  }

  /**
   * Drops waiting records the tip has passed (a peer's ack or a declared hole moved it): a scan
   * of the device's waiting records, so only done when the tip jumped, never per linked record.
   */
  private prunePassed (d: DeviceRuntime): void {
    const tipSeq = d.tip?.seq ?? -1
    const ops: StoreOp[] = []
    for (const seq of [...d.pending.keys()]) {
      if (seq <= tipSeq) {
        this.o.devices.unpark(d, seq, ops)
        this.o.counters.duplicate()
      }
    }
    if (ops.length > 0) this.o.store.enqueue(ops)
  }
}
