/**
 * The gateway's in-memory state per device: chain tip, records waiting ahead of the tip (with
 * their bytes counted against per-device and total budgets), open gaps. Only devices the registry
 * knows are kept for good; a device id first seen on a topic is provisional until then, and is
 * forgotten once its queued work is done (an attacker's made-up ids cost no lasting state).
 */
import { decodeEnvelope, type CertifiedKey, type EnvelopeHead, type SignedRecord } from '../../protocol/index.js'
import { GatewayError } from '../errors.js'
import { storeOps, type DeviceTip, type StoreOp } from '../store/index.js'

/**
 * Bytes counted for a waiting record besides its envelope: the map entry, the small object with
 * its seq, hash and gap bounds (measured at ≈ 200-300 bytes on Node 20; rounded up).
 */
export const WAITING_RECORD_OVERHEAD_BYTES = 512

/** A record parked ahead of its device's tip: the envelope and what linking needs to find it. */
export interface WaitingRecord {
  seq: number
  /** sha256 of the envelope. */
  hash: Uint8Array
  envelope: Uint8Array
  /** The hole it declares, when it is a gap record. */
  gap: { firstSeq: number, lastSeq: number } | undefined
  /** What it costs in memory, as counted against the budgets. */
  heldBytes: number
}

/** An open gap of a device: records firstSeq..lastSeq are missing while later ones wait. */
export interface OpenGap {
  firstSeq: number
  lastSeq: number
  /** Gateway time since when the gap is open, Unix ms. */
  sinceMs: number
  /** Open longer than `gapReportAfterMs`. */
  overdue: boolean
}

/** A verification sent ahead of its record's turn (the pipeline's): the key it is under, and its answer once it came. */
export interface AheadAnswer {
  readonly key: Uint8Array
  /** Undefined until the verifier answered. */
  readonly settled: boolean | undefined
  valid: () => Promise<boolean>
}

/**
 * A received record queued for its turn, as bytes: decoded only at its turn, so what waits in the
 * backlog (thousands of records while the verify pool catches up) is an envelope and its peeked
 * head, not a decoded record that lives long enough to be promoted and collected by a full GC.
 */
export interface QueuedRecord {
  /** The envelope as received: a view of the one copy made of its records payload. */
  readonly envelope: Uint8Array
  /** Device, seq, time and signed parts by peekEnvelope; undefined when it does not parse (decoding at its turn quarantines it). Used to verify ahead, and by decodePeekedEnvelope at its turn. */
  readonly head: EnvelopeHead | undefined
  ahead: AheadAnswer | undefined
}

export type DeviceJob =
  | { kind: 'records', topic: string, records: QueuedRecord[], heldBytes: number }
  | { kind: 'drain' }

export interface DeviceRuntime {
  id: string
  /** Seen on a topic but not (yet) known to the registry: not persisted, forgotten when idle. */
  provisional: boolean
  /** Newest known tip: own stores (durable or queued) or a peer's ack. */
  tip: DeviceTip | undefined
  /** What may be acked: own stores once durable, or a peer's tip. */
  durableTip: DeviceTip | undefined
  tipFromPeer: boolean
  pending: Map<number, WaitingRecord>
  /** Bytes of `pending`, as counted. */
  pendingBytes: number
  /** Waiting gap records by the first seq they declare dropped. */
  gapRecords: Map<number, number>
  gapSinceMs: number | undefined
  gapReported: boolean
  lastSeenMs: number
  stored: number
  quarantined: number
  queue: DeviceJob[]
  running: boolean
  /** Own stores advanced the tip since the last durable write. */
  ownAdvance: boolean
  lastAck: { stored: number, anchored: number } | undefined
  forceAck: boolean
  /**
   * Raised when the store refused a record of this device because another process stored a
   * different one at its seq (the PostgreSQL tier): writes snapshotted before must not ack.
   */
  forkEpoch: number
  /** TPM-rooted device: the record key its latest certified boot record established (persisted with the state). */
  certified?: CertifiedKey
}

/** Why a record could not wait. */
export type ParkRefusal = 'device-records' | 'device-bytes' | 'total-bytes'

export interface DeviceTableOptions {
  /** Most records waiting ahead of one device's tip. */
  maxPendingPerDevice: number
  /** Most bytes waiting ahead of one device's tip. */
  maxPendingBytesPerDevice: number
  /** Most bytes waiting over all devices. */
  maxPendingBytesTotal: number
}

/** What a record held in memory costs: its envelope plus the fixed overhead. */
export function waitingRecordOf (s: SignedRecord): WaitingRecord {
  const body = s.record.body
  return {
    seq: s.record.seq,
    hash: s.hash,
    envelope: s.envelope,
    gap: body.kind === 'gap' ? { firstSeq: body.firstSeq, lastSeq: body.lastSeq } : undefined,
    heldBytes: s.envelope.byteLength + WAITING_RECORD_OVERHEAD_BYTES
  }
}

/**
 * The record again from its envelope (it was decoded and verified on arrival; only its envelope
 * waited, to keep the memory counted exact).
 * @throws GatewayError `STORE_CORRUPT` when it no longer decodes (a waiting record read from disk).
 */
export function signedOf (w: WaitingRecord, deviceId: string): SignedRecord {
  try {
    return decodeEnvelope(w.envelope)
  } catch (e) {
    throw new GatewayError('STORE_CORRUPT', `waiting record ${deviceId}/${w.seq} does not decode`, { cause: e })
  }
}

/** The devices, their waiting records and the byte accounting of those. */
export class DeviceTable {
  private readonly o: DeviceTableOptions
  private readonly devices = new Map<string, DeviceRuntime>()
  /** Devices with records waiting: the gap check visits these, not every device. */
  private readonly waiting = new Set<DeviceRuntime>()
  private provisionalCount = 0
  /** Bytes of waiting records over all devices. */
  pendingBytes = 0
  /** Waiting records over all devices. */
  pendingRecords = 0

  constructor (options: DeviceTableOptions) {
    this.o = options
  }

  /** The device, or undefined when it is not in the table. */
  get (id: string): DeviceRuntime | undefined {
    return this.devices.get(id)
  }

  /** The device, created when missing (`provisional` for an id only seen on a topic). */
  getOrCreate (id: string, provisional = false): DeviceRuntime {
    let d = this.devices.get(id)
    if (d === undefined) {
      d = newDevice(id, provisional)
      this.devices.set(id, d)
      if (provisional) this.provisionalCount++
    }
    return d
  }

  /** The registry knows the device: it stays. Returns true when it was provisional. */
  promote (d: DeviceRuntime): boolean {
    if (!d.provisional) return false
    d.provisional = false
    this.provisionalCount--
    return true
  }

  /** Forgets a provisional device with no work and nothing waiting. */
  forgetIfProvisional (d: DeviceRuntime): void {
    if (!d.provisional || d.running || d.queue.length > 0 || d.pending.size > 0) return
    if (this.devices.get(d.id) === d) this.devices.delete(d.id)
    this.provisionalCount--
  }

  /** Devices known for good. */
  get knownCount (): number {
    return this.devices.size - this.provisionalCount
  }

  /** Provisional devices (ids with queued work the registry has not confirmed yet). */
  get provisionalDevices (): number {
    return this.provisionalCount
  }

  /** Every device, provisional ones included. */
  all (): IterableIterator<DeviceRuntime> {
    return this.devices.values()
  }

  /** Ids of the devices known for good, sorted. */
  knownIds (): string[] {
    const ids: string[] = []
    for (const d of this.devices.values()) if (!d.provisional) ids.push(d.id)
    return ids.sort()
  }

  /**
   * Puts `w` in `d`'s waiting records within the budgets; returns the store op that makes it
   * durable, or why it cannot wait (the caller drops it unacknowledged: the device resends).
   */
  park (d: DeviceRuntime, w: WaitingRecord, nowMs: number): StoreOp | ParkRefusal {
    if (d.pending.size >= this.o.maxPendingPerDevice) return 'device-records'
    if (d.pendingBytes + w.heldBytes > this.o.maxPendingBytesPerDevice) return 'device-bytes'
    if (this.pendingBytes + w.heldBytes > this.o.maxPendingBytesTotal) return 'total-bytes'
    this.add(d, w)
    d.gapSinceMs ??= nowMs
    return storeOps.putPending(d.id, w.seq, w.envelope)
  }

  /** Puts back a record that waited before a restart (no budget check: it is on disk already). */
  restore (d: DeviceRuntime, w: WaitingRecord, nowMs: number): void {
    this.add(d, w)
    d.gapSinceMs ??= nowMs
  }

  /** Takes record `seq` out of `d`'s waiting records, adding the delete of its durable copy to `ops`. */
  unpark (d: DeviceRuntime, seq: number, ops: StoreOp[]): void {
    const w = d.pending.get(seq)
    if (w === undefined) return
    d.pending.delete(seq)
    d.pendingBytes -= w.heldBytes
    this.pendingBytes -= w.heldBytes
    this.pendingRecords--
    if (d.pending.size === 0) this.waiting.delete(d)
    if (w.gap !== undefined && d.gapRecords.get(w.gap.firstSeq) === seq) d.gapRecords.delete(w.gap.firstSeq)
    ops.push(storeOps.delPending(d.id, seq))
  }

  /**
   * The waiting records that follow the tip across declared holes. Every missing range must be
   * declared by a waiting gap record (several drops in a row chain them, and holes may open
   * again between them); the run ends with the last gap record it needed. Undefined when there
   * is no hole at the tip or something undeclared is still missing.
   */
  declaredRun (d: DeviceRuntime): WaitingRecord[] | undefined {
    const run: WaitingRecord[] = []
    let seq = (d.tip?.seq ?? -1) + 1
    let lastGap = -1
    for (let steps = 0; steps <= d.pending.size * 2 + 2; steps++) {
      const present = d.pending.get(seq)
      if (present !== undefined) {
        if (lastGap < 0) return undefined
        run.push(present)
        if (seq === lastGap) return run
        seq++
        continue
      }
      const gapSeq = d.gapRecords.get(seq)
      const gap = gapSeq === undefined ? undefined : d.pending.get(gapSeq)
      if (gap?.gap === undefined || gap.gap.lastSeq < seq) return undefined
      lastGap = Math.max(lastGap, gap.seq)
      seq = gap.gap.lastSeq + 1
    }
    return undefined
  }

  /** The open gap of `d` (at most one: from the tip to the first waiting record). */
  openGaps (d: DeviceRuntime, nowMs: number, reportAfterMs: number): OpenGap[] {
    if (d.pending.size === 0 || d.gapSinceMs === undefined) return []
    const firstSeq = (d.tip?.seq ?? -1) + 1
    let min = Infinity
    for (const seq of d.pending.keys()) if (seq < min) min = seq
    const sinceMs = d.gapSinceMs
    return [{ firstSeq, lastSeq: min - 1, sinceMs, overdue: nowMs - sinceMs >= reportAfterMs }]
  }

  /** Devices with records waiting (each has an open gap). */
  withWaiting (): IterableIterator<DeviceRuntime> {
    return this.waiting.values()
  }

  private add (d: DeviceRuntime, w: WaitingRecord): void {
    d.pending.set(w.seq, w)
    d.pendingBytes += w.heldBytes
    this.pendingBytes += w.heldBytes
    this.pendingRecords++
    this.waiting.add(d)
    if (w.gap !== undefined) d.gapRecords.set(w.gap.firstSeq, w.seq)
  }
}

function newDevice (id: string, provisional: boolean): DeviceRuntime {
  return {
    id,
    provisional,
    tip: undefined,
    durableTip: undefined,
    tipFromPeer: false,
    pending: new Map(),
    pendingBytes: 0,
    gapRecords: new Map(),
    gapSinceMs: undefined,
    gapReported: false,
    lastSeenMs: 0,
    stored: 0,
    quarantined: 0,
    queue: [],
    running: false,
    ownAdvance: false,
    lastAck: undefined,
    forceAck: false,
    forkEpoch: 0
  }
}
