/**
 * When and what the gateway acknowledges to devices: an ack goes out once a device's stores are
 * durable, coalesced per device, re-sent on resends and reconnects; in scale-out mode it also
 * follows the peers' retained acks (their tips) and puts back better acks a peer overwrote.
 */
import { equalBytes, parseTopic, type Ack } from '../../protocol/index.js'
import type { AnchoredTracker } from '../batch/index.js'
import type { Logger } from '../../common/logger.js'
import type { PeerAckReader } from './ack-verify.js'
import type { DeviceRuntime, DeviceTable } from './device-state.js'

export interface AckSchedulerOptions {
  devices: DeviceTable
  tracker: AnchoredTracker
  /** Publishes an ack; returns false when it could not be sent now (it is retried on reconnect). */
  publishAck: (deviceId: string, ack: Ack) => boolean
  /** Correct peers' acks that say less than this gateway knows (scale-out mode). */
  correctPeerAcks: boolean
  /** The device state changed and must be persisted with the next write. */
  markDirty: (d: DeviceRuntime) => void
  /** The device's waiting records may link now (its tip moved). */
  scheduleDrain: (d: DeviceRuntime) => void
  logger: Logger
  /** Verifies a peer's retained ack (signed acks, issue 9): undefined for anything a trusted gateway did not sign. */
  readPeerAck: PeerAckReader
}

export class AckScheduler {
  private readonly o: AckSchedulerOptions
  private readonly due = new Set<DeviceRuntime>()
  private soon = false

  constructor (options: AckSchedulerOptions) {
    this.o = options
  }

  /** Devices whose ack is due (waiting for a connection or the next flush). */
  get dueCount (): number {
    return this.due.size
  }

  /** Marks the device's ack due; `force` sends it even when it says what the last one said. */
  markDue (d: DeviceRuntime, force = false): void {
    if (force) d.forceAck = true
    this.due.add(d)
  }

  /** Coalesced: many duplicates of one message (or of many devices) give one ack each. */
  requestAck (d: DeviceRuntime): void {
    if (d.durableTip === undefined) return
    this.markDue(d, true)
    if (this.soon) return
    this.soon = true
    setImmediate(() => {
      this.soon = false
      this.flushAcks()
    })
  }

  /** Sends the acks that are due; those that cannot go now stay due. */
  flushAcks (): void {
    for (const d of this.due) {
      const tip = d.durableTip
      if (tip === undefined) { this.due.delete(d); continue }
      const ack = { storedSeq: tip.seq, storedHash: tip.hash, anchoredSeq: Math.min(this.o.tracker.anchoredSeq(d.id), tip.seq) }
      const last = d.lastAck
      if (!d.forceAck && last !== undefined && last.stored === ack.storedSeq && last.anchored === ack.anchoredSeq) {
        this.due.delete(d)
        continue
      }
      if (!this.o.publishAck(d.id, ack)) return
      d.lastAck = { stored: ack.storedSeq, anchored: ack.anchoredSeq }
      d.forceAck = false
      this.due.delete(d)
    }
  }

  /** Re-publishes every device's ack (after the broker lost its retained messages). */
  republishAcks (): void {
    for (const d of this.o.devices.all()) {
      if (d.lastAck === undefined && !d.ownAdvance && d.stored === 0) continue
      this.markDue(d, true)
    }
    this.flushAcks()
  }

  /** Handles one message on `prov/v1/<device>/ack` from a peer gateway (scale-out mode). */
  acceptPeerAck (topic: string, payload: Uint8Array): void {
    const parsed = parseTopic(topic)
    if (parsed === undefined || parsed.kind !== 'ack') return
    // Signed acks (issue 9): readPeerAck verifies and logs what it refuses; a refused ack creates
    // no device state.
    const ack = this.o.readPeerAck(parsed.deviceId, payload)
    if (ack === undefined) return
    const d = this.o.devices.getOrCreate(parsed.deviceId)
    this.followPeer(d, ack)
    this.flushAcks()
  }

  private followPeer (d: DeviceRuntime, ack: Ack): void {
    const mySeq = d.tip?.seq ?? -1
    if (ack.storedSeq > mySeq) {
      // The peer stored up to here durably: continue the chain from its tip.
      d.tip = { seq: ack.storedSeq, hash: ack.storedHash, boot: undefined }
      if (d.durableTip === undefined || d.durableTip.seq < ack.storedSeq) d.durableTip = d.tip
      d.tipFromPeer = true
      this.o.markDirty(d)
      if (d.pending.size > 0) this.o.scheduleDrain(d)
    } else if (ack.storedSeq === mySeq && d.tip !== undefined && !equalBytes(ack.storedHash, d.tip.hash)) {
      this.o.logger.error({ device: d.id, seq: mySeq }, 'a peer acknowledged another record at this seq')
    }
    if (this.o.tracker.notePeer(d.id, ack.anchoredSeq)) {
      this.o.markDirty(d)
      this.due.add(d)
    }
    if (this.o.correctPeerAcks && d.lastAck !== undefined &&
      (ack.storedSeq < (d.durableTip?.seq ?? -1) || ack.anchoredSeq < this.o.tracker.anchoredSeq(d.id))) {
      // Retained acks are last-writer-wins: put back the better one a peer overwrote.
      this.markDue(d, true)
    }
  }
}
