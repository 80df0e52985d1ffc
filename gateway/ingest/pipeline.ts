/**
 * What happens to each records message, independent of MQTT: decode, check the topic, look up the
 * device key, verify the signature, dedup on (device, seq), link to the device's chain tip (or
 * wait, durably, until the records before it arrive), store and batch, and acknowledge once the
 * write is durable. Anything that fails goes to quarantine with its reason and ingest goes on.
 * Devices are independent: each has its own queue, so one slow key lookup delays only its device.
 */
import {
  decodeEnvelope, decodeRecordBatch, deviceTopic, equalBytes, hashLeaf, parseTopic, verifyRecordSignature,
  type Ack, type SignedRecord
} from '../../protocol/index.js'
import type { AnchoredTracker, Batcher } from '../batch/index.js'
import { GatewayError } from '../errors.js'
import type { KeyAnswer, KeyDirectory } from '../keys/index.js'
import type { GatewayLogger } from '../logger.js'
import {
  encodeDeviceState, encodeQuarantine, encodeStoredRecord, storeKeys, type DeviceTip, type GatewayStore, type StoreOp
} from '../store/index.js'
import { linkRecords } from './chain-link.js'
import type { QuarantineReason } from './quarantine.js'
import type { PeerAckReader } from './ack-verify.js'

/** What the pipeline counts (the gateway's metrics implement it). */
export interface IngestCounters {
  messageReceived: () => void
  recordsReceived: (n: number) => void
  recordVerified: () => void
  recordStored: () => void
  duplicate: () => void
  quarantined: (reason: QuarantineReason) => void
  /** A record could not be checked because its key could not be read (it is not acked; the device resends). */
  keyUnavailable: () => void
  /** A record ahead of its device's tip was dropped: too many wait already (not acked; the device resends). */
  pendingDropped: () => void
}

export interface IngestPipelineOptions {
  store: GatewayStore
  batcher: Batcher
  tracker: AnchoredTracker
  keys: KeyDirectory
  /** Largest records payload accepted, in bytes. */
  maxPayloadBytes: number
  /** Bytes of offending input kept per quarantine entry. */
  quarantineMaxRawBytes: number
  /** Most records kept waiting ahead of one device's tip. */
  maxPendingPerDevice: number
  /** A gap open longer than this (ms) is reported. */
  gapReportAfterMs: number
  /** Publishes an ack; returns false when it could not be sent now (it is retried on reconnect). */
  publishAck: (deviceId: string, ack: Ack) => boolean
  /** Correct peers' acks that say less than this gateway knows (scale-out mode). */
  correctPeerAcks: boolean
  /** Reads a retained ack: only one a trusted gateway signed for that device counts (ack-verify.ts). */
  readPeerAck: PeerAckReader
  counters: IngestCounters
  logger: GatewayLogger
  /** Gateway clock, Unix ms. */
  now: () => number
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

/** What the status API says about a device. */
export interface DeviceStatus {
  device: string
  /** Highest contiguous seq stored (here or at a peer); -1 for none. */
  lastSeq: number
  lastHash: string | null
  /** True when the tip was learned from a peer gateway's ack. */
  tipFromPeer: boolean
  /** Gateway time of the last records message, Unix ms; null for never. */
  lastSeenMs: number | null
  stored: number
  quarantined: number
  anchoredSeq: number
  pending: number
  openGaps: OpenGap[]
}

type Job =
  | { kind: 'records', topic: string, records: SignedRecord[] }
  | { kind: 'drain' }

interface DeviceRuntime {
  id: string
  /** Newest known tip: own stores (durable or queued) or a peer's ack. */
  tip: DeviceTip | undefined
  /** What may be acked: own stores once durable, or a peer's tip. */
  durableTip: DeviceTip | undefined
  tipFromPeer: boolean
  pending: Map<number, SignedRecord>
  /** Waiting gap records by the first seq they declare dropped. */
  gapRecords: Map<number, number>
  gapSinceMs: number | undefined
  gapReported: boolean
  lastSeenMs: number
  stored: number
  quarantined: number
  queue: Job[]
  running: boolean
  /** Own stores advanced the tip since the last durable write. */
  ownAdvance: boolean
  lastAck: { stored: number, anchored: number } | undefined
  forceAck: boolean
}

export class IngestPipeline {
  private readonly o: IngestPipelineOptions
  private readonly devices = new Map<string, DeviceRuntime>()
  private readonly dirty = new Set<DeviceRuntime>()
  private readonly ackDirty = new Set<DeviceRuntime>()
  private persistedFolded: number
  private queuedRecords = 0
  private readonly idleWaiters: Array<() => void> = []
  private readonly drainWaiters: Array<{ below: number, resolve: () => void }> = []
  private stopped = false
  /** Quarantine entries on disk (approximately: pruning lags a little). */
  quarantineCount = 0

  constructor (options: IngestPipelineOptions) {
    this.o = options
    this.persistedFolded = options.tracker.foldedThrough
    options.store.setWriteHook({ beforeWrite: () => this.beforeWrite() })
  }

  /**
   * Loads device tips and waiting records from the store.
   * @throws GatewayError `STORE_CORRUPT`.
   */
  async load (): Promise<void> {
    this.quarantineCount = await this.o.store.countQuarantined()
    for await (const s of this.o.store.devices()) {
      const d = this.device(s.deviceId)
      d.tip = s.tip
      d.durableTip = s.tip
      d.lastSeenMs = s.lastSeenMs
      d.stored = s.stored
      d.quarantined = s.quarantined
      this.o.tracker.load(s.deviceId, s.anchoredSeq)
    }
    for await (const p of this.o.store.pending()) {
      let signed: SignedRecord
      try {
        signed = decodeEnvelope(p.envelope)
      } catch (e) {
        throw new GatewayError('STORE_CORRUPT', `waiting record ${p.deviceId}/${p.seq} does not decode`, { cause: e })
      }
      const d = this.device(p.deviceId)
      d.pending.set(signed.record.seq, signed)
      if (signed.record.body.kind === 'gap') d.gapRecords.set(signed.record.body.firstSeq, signed.record.seq)
      d.gapSinceMs ??= this.o.now()
    }
    // Records may have been parked just before a crash while the records before them were stored.
    for (const d of this.devices.values()) if (d.pending.size > 0) this.schedule(d, { kind: 'drain' })
    // A crash may have come between a durable write and its ack: ack every device once more.
    for (const d of this.devices.values()) {
      if (d.stored === 0) continue
      d.forceAck = true
      this.ackDirty.add(d)
    }
  }

  /** Records queued in device queues, not yet processed. */
  get backlog (): number {
    return this.queuedRecords
  }

  /** Resolves once the backlog is below `below` (flow control of the MQTT reader). */
  async whenBacklogBelow (below: number): Promise<void> {
    if (this.queuedRecords < below) return
    await new Promise<void>(resolve => this.drainWaiters.push({ below, resolve }))
  }

  // ------------------------------------------------------------------------------ input

  /** Handles one message on `prov/v1/<device>/records`. Never throws for bad input. */
  acceptRecords (topic: string, payload: Uint8Array): void {
    if (this.stopped) return
    this.o.counters.messageReceived()
    const now = this.o.now()
    const parsed = parseTopic(topic)
    if (parsed === undefined || parsed.kind !== 'records') {
      this.quarantine(undefined, { reason: 'bad-topic', topic, detail: 'not prov/v1/<device>/records', raw: payload })
      return
    }
    const d = this.device(parsed.deviceId)
    d.lastSeenMs = now
    if (payload.byteLength > this.o.maxPayloadBytes) {
      this.quarantine(d, { reason: 'payload-too-large', topic, detail: `${payload.byteLength} bytes, limit ${this.o.maxPayloadBytes}`, raw: payload })
      return
    }
    let envelopes: Uint8Array[]
    try {
      envelopes = decodeRecordBatch(payload)
    } catch (e) {
      this.quarantine(d, { reason: 'payload-malformed', topic, detail: (e as Error).message, raw: payload })
      return
    }
    this.o.counters.recordsReceived(envelopes.length)
    const records: SignedRecord[] = []
    for (const envelope of envelopes) {
      let signed: SignedRecord
      try {
        signed = decodeEnvelope(envelope)
      } catch (e) {
        this.quarantine(d, { reason: 'record-malformed', topic, detail: (e as Error).message, raw: envelope })
        continue
      }
      if (signed.record.deviceId !== d.id) {
        this.quarantine(d, {
          reason: 'topic-mismatch',
          topic,
          seq: signed.record.seq,
          detail: `record of device "${signed.record.deviceId}" on the topic of "${d.id}"`,
          raw: envelope
        })
        continue
      }
      records.push(signed)
    }
    this.markDirty(d)
    if (records.length > 0) this.schedule(d, { kind: 'records', topic, records })
  }

  /** Handles one message on `prov/v1/<device>/ack` from a peer gateway (scale-out mode). */
  acceptPeerAck (topic: string, payload: Uint8Array): void {
    if (this.stopped) return
    const parsed = parseTopic(topic)
    if (parsed === undefined || parsed.kind !== 'ack') return
    // Signed acks (issue 9): readPeerAck verifies and logs what it refuses.
    const ack = this.o.readPeerAck(parsed.deviceId, payload)
    if (ack === undefined) return
    const d = this.device(parsed.deviceId)
    const mySeq = d.tip?.seq ?? -1
    if (ack.storedSeq > mySeq) {
      // The peer stored up to here durably: continue the chain from its tip.
      d.tip = { seq: ack.storedSeq, hash: ack.storedHash, boot: undefined }
      if (d.durableTip === undefined || d.durableTip.seq < ack.storedSeq) d.durableTip = d.tip
      d.tipFromPeer = true
      this.markDirty(d)
      if (d.pending.size > 0) this.schedule(d, { kind: 'drain' })
    } else if (ack.storedSeq === mySeq && d.tip !== undefined && !equalBytes(ack.storedHash, d.tip.hash)) {
      this.o.logger.error({ device: d.id, seq: mySeq }, 'a peer acknowledged another record at this seq')
    }
    if (this.o.tracker.notePeer(d.id, ack.anchoredSeq)) {
      this.markDirty(d)
      this.ackDirty.add(d)
    }
    if (this.o.correctPeerAcks && d.lastAck !== undefined &&
      (ack.storedSeq < (d.durableTip?.seq ?? -1) || ack.anchoredSeq < this.o.tracker.anchoredSeq(d.id))) {
      // Retained acks are last-writer-wins: put back the better one a peer overwrote.
      d.forceAck = true
      this.ackDirty.add(d)
    }
    this.flushAcks()
  }

  /** Batches up to `batchId` are confirmed on chain: anchored seqs move, acks follow. */
  confirmThrough (batchId: number): void {
    for (const id of this.o.tracker.confirmThrough(batchId)) {
      const d = this.device(id)
      this.markDirty(d)
      this.ackDirty.add(d)
    }
    this.o.store.touch()
    this.flushAcks()
  }

  /** Re-publishes every device's ack (after the broker lost its retained messages). */
  republishAcks (): void {
    for (const d of this.devices.values()) {
      if (d.lastAck === undefined && !d.ownAdvance && d.stored === 0) continue
      d.forceAck = true
      this.ackDirty.add(d)
    }
    this.flushAcks()
  }

  private ackSoon = false

  // Coalesced: many duplicates of one message (or of many devices) give one ack each.
  private requestAck (d: DeviceRuntime): void {
    if (d.durableTip === undefined) return
    d.forceAck = true
    this.ackDirty.add(d)
    if (this.ackSoon) return
    this.ackSoon = true
    setImmediate(() => {
      this.ackSoon = false
      this.flushAcks()
    })
  }

  /** Sends the acks that are due; those that cannot go now stay due. */
  flushAcks (): void {
    for (const d of this.ackDirty) {
      const tip = d.durableTip
      if (tip === undefined) { this.ackDirty.delete(d); continue }
      const ack = { storedSeq: tip.seq, storedHash: tip.hash, anchoredSeq: Math.min(this.o.tracker.anchoredSeq(d.id), tip.seq) }
      const last = d.lastAck
      if (!d.forceAck && last !== undefined && last.stored === ack.storedSeq && last.anchored === ack.anchoredSeq) {
        this.ackDirty.delete(d)
        continue
      }
      if (!this.o.publishAck(d.id, ack)) return
      d.lastAck = { stored: ack.storedSeq, anchored: ack.anchoredSeq }
      d.forceAck = false
      this.ackDirty.delete(d)
    }
  }

  // ------------------------------------------------------------------------------ status

  /** Status of one device, or undefined when the gateway never heard of it. */
  status (deviceId: string): DeviceStatus | undefined {
    const d = this.devices.get(deviceId)
    if (d === undefined) return undefined
    return {
      device: d.id,
      lastSeq: d.tip?.seq ?? -1,
      lastHash: d.tip === undefined ? null : Buffer.from(d.tip.hash).toString('hex'),
      tipFromPeer: d.tipFromPeer,
      lastSeenMs: d.lastSeenMs === 0 ? null : d.lastSeenMs,
      stored: d.stored,
      quarantined: d.quarantined,
      anchoredSeq: Math.min(this.o.tracker.anchoredSeq(d.id), d.tip?.seq ?? -1),
      pending: d.pending.size,
      openGaps: this.openGaps(d)
    }
  }

  /** Ids of the devices known, sorted. */
  deviceIds (): string[] {
    return [...this.devices.keys()].sort()
  }

  /** Open gaps over all devices, and how many are overdue; logs each overdue gap once. */
  checkGaps (): { open: number, overdue: number } {
    let open = 0
    let overdue = 0
    for (const d of this.devices.values()) {
      for (const g of this.openGaps(d)) {
        open++
        if (!g.overdue) continue
        overdue++
        if (!d.gapReported) {
          d.gapReported = true
          this.o.logger.warn({ device: d.id, firstSeq: g.firstSeq, lastSeq: g.lastSeq, openMs: this.o.now() - g.sinceMs }, 'records missing: gap still open')
        }
      }
    }
    return { open, overdue }
  }

  private openGaps (d: DeviceRuntime): OpenGap[] {
    if (d.pending.size === 0 || d.gapSinceMs === undefined) return []
    const firstSeq = (d.tip?.seq ?? -1) + 1
    let min = Infinity
    for (const seq of d.pending.keys()) if (seq < min) min = seq
    const sinceMs = d.gapSinceMs
    return [{ firstSeq, lastSeq: min - 1, sinceMs, overdue: this.o.now() - sinceMs >= this.o.gapReportAfterMs }]
  }

  // ------------------------------------------------------------------------------ stop

  /** Stops accepting input and resolves once every queued record is processed. */
  async stop (): Promise<void> {
    this.stopped = true
    await this.idle()
  }

  /** Resolves once no device has queued work. */
  async idle (): Promise<void> {
    if (![...this.devices.values()].some(d => d.running)) return
    await new Promise<void>(resolve => this.idleWaiters.push(resolve))
  }

  // ------------------------------------------------------------------------------ processing

  private device (id: string): DeviceRuntime {
    let d = this.devices.get(id)
    if (d === undefined) {
      d = {
        id,
        tip: undefined,
        durableTip: undefined,
        tipFromPeer: false,
        pending: new Map(),
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
        forceAck: false
      }
      this.devices.set(id, d)
    }
    return d
  }

  private schedule (d: DeviceRuntime, job: Job): void {
    d.queue.push(job)
    if (job.kind === 'records') this.queuedRecords += job.records.length
    if (!d.running) {
      d.running = true
      void this.run(d)
    }
  }

  private async run (d: DeviceRuntime): Promise<void> {
    try {
      for (let job = d.queue.shift(); job !== undefined; job = d.queue.shift()) {
        if (job.kind === 'drain') {
          this.pruneAndDrain(d)
          continue
        }
        for (const signed of job.records) {
          try {
            await this.processRecord(d, signed, job.topic)
          } catch (e) {
            // Only the store can fail here (bad input is quarantined): the gateway stops on it.
            this.o.logger.error({ device: d.id, seq: signed.record.seq, error: (e as Error).message }, 'record processing failed')
          } finally {
            this.queuedRecords--
          }
        }
        this.releaseDrainWaiters()
      }
    } finally {
      d.running = false
      if (![...this.devices.values()].some(x => x.running)) for (const w of this.idleWaiters.splice(0)) w()
    }
  }

  private releaseDrainWaiters (): void {
    for (let i = this.drainWaiters.length - 1; i >= 0; i--) {
      const w = this.drainWaiters[i] as { below: number, resolve: () => void }
      if (this.queuedRecords < w.below) {
        this.drainWaiters.splice(i, 1)
        w.resolve()
      }
    }
  }

  private async processRecord (d: DeviceRuntime, s: SignedRecord, topic: string): Promise<void> {
    const seq = s.record.seq
    if (seq <= (d.tip?.seq ?? -1)) return await this.handleOld(d, s, topic)
    if (this.handleWaiting(d, s) === 'done') return
    const key = await this.keyFor(d, s, topic)
    if (key === undefined) return
    if (this.handleWaiting(d, s) === 'done') return
    if (seq <= (d.tip?.seq ?? -1)) {
      // The tip moved while the key was looked up (a peer stored it): a duplicate now.
      this.o.counters.duplicate()
      return
    }
    this.place(d, s, topic)
  }

  /** A record at or below the tip: a resend (duplicate) or a different record for a used seq. */
  private async handleOld (d: DeviceRuntime, s: SignedRecord, topic: string): Promise<void> {
    const seq = s.record.seq
    let same: boolean
    if (d.tip !== undefined && seq === d.tip.seq) {
      same = equalBytes(s.hash, d.tip.hash)
    } else {
      const stored = await this.o.store.getRecord(d.id, seq)
      // Not here: stored by a peer, dropped by the device (honest gap), or not yet on disk. No
      // way to compare: count it as the resend it almost always is.
      same = stored === undefined || equalBytes(stored.envelope, s.envelope)
    }
    if (same) {
      this.o.counters.duplicate()
      // A device resends what it has no ack for: it may have missed the ack, so send it again.
      this.requestAck(d)
      return
    }
    if (await this.keyFor(d, s, topic) === undefined) return
    this.quarantine(d, { reason: 'seq-reuse', topic, seq, detail: `another validly signed record for seq ${seq}, already stored`, raw: s.envelope })
  }

  /** Returns 'done' when `s` is a duplicate of, or conflicts with, a record already waiting. */
  private handleWaiting (d: DeviceRuntime, s: SignedRecord): 'done' | 'new' {
    const waiting = d.pending.get(s.record.seq)
    if (waiting === undefined) return 'new'
    if (equalBytes(waiting.hash, s.hash)) {
      this.o.counters.duplicate()
      // A resent gap record retries the declared holes it may complete.
      if (s.record.body.kind === 'gap') this.linkDeclared(d, deviceTopic(d.id, 'records'))
      this.requestAck(d)
      return 'done'
    }
    return 'new'
  }

  /**
   * The device key for `s`, with the signature of `s` verified under it; undefined when `s` was
   * quarantined or cannot be checked now.
   */
  private async keyFor (d: DeviceRuntime, s: SignedRecord, topic: string): Promise<Uint8Array | undefined> {
    const keys = this.o.keys
    const t = s.record.timeMs
    let answer: KeyAnswer | undefined = keys.peek?.(d.id, t)
    let fresh = false
    if (answer === undefined) {
      try {
        answer = await keys.keyAt(d.id, t)
        fresh = true
      } catch (e) {
        this.o.counters.keyUnavailable()
        this.o.logger.warn({ device: d.id, seq: s.record.seq, error: (e as Error).message }, 'device key unavailable: record left for the device to resend')
        return undefined
      }
    }
    const q = (reason: QuarantineReason, detail: string): undefined => {
      this.quarantine(d, { reason, topic, seq: s.record.seq, detail, raw: s.envelope })
      return undefined
    }
    if (answer.unknown === true) return q('unknown-device', 'the registry does not know this device')
    if (answer.revoked) return q('device-revoked', `device revoked at or before ${t}`)
    if (answer.publicKey === undefined) return q('no-key', `no key valid at ${t}`)
    if (verifyRecordSignature(s, answer.publicKey)) {
      this.o.counters.recordVerified()
      return answer.publicKey
    }
    if (!fresh && keys.refresh !== undefined) {
      // The key may have rotated since it was cached: ask the registry again, once.
      keys.refresh(d.id)
      try {
        const again = await keys.keyAt(d.id, t)
        if (again.publicKey !== undefined && !again.revoked && verifyRecordSignature(s, again.publicKey)) {
          this.o.counters.recordVerified()
          return again.publicKey
        }
      } catch {
        // Fall through: the cached key is what we have.
      }
    }
    return q('bad-signature', 'signature does not verify under the device key')
  }

  /** A verified record above the tip: link it now, or wait for the records before it. */
  private place (d: DeviceRuntime, s: SignedRecord, topic: string): void {
    const r = s.record
    const expected = (d.tip?.seq ?? -1) + 1
    const waiting = d.pending.get(r.seq)
    if (waiting !== undefined) {
      // Two validly signed records for one seq: the device equivocates. Keep the first.
      this.quarantine(d, { reason: 'seq-reuse', topic, seq: r.seq, detail: `another validly signed record for seq ${r.seq} is waiting`, raw: s.envelope })
      return
    }
    if (r.seq === expected) {
      if (this.link(d, [s], topic)) this.pruneAndDrain(d)
      return
    }
    this.park(d, s)
    // A gap record may complete the records that a declared hole keeps waiting.
    if (r.body.kind === 'gap') this.linkDeclared(d, topic)
  }

  /**
   * The waiting records that follow the tip across declared holes. Every missing range must be
   * declared by a waiting gap record (several drops in a row chain them, and holes may open
   * again between them); the run ends with the last gap record it needed. Undefined when there
   * is no hole at the tip or something undeclared is still missing.
   */
  private declaredRun (d: DeviceRuntime): SignedRecord[] | undefined {
    const run: SignedRecord[] = []
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
      if (gap === undefined || gap.record.body.kind !== 'gap' || gap.record.body.lastSeq < seq) return undefined
      lastGap = Math.max(lastGap, gap.record.seq)
      seq = gap.record.body.lastSeq + 1
    }
    return undefined
  }

  private linkDeclared (d: DeviceRuntime, topic: string): void {
    const run = this.declaredRun(d)
    if (run !== undefined && this.link(d, run, topic)) this.pruneAndDrain(d)
  }

  /** Waiting records from..to-1, or undefined when one is missing. */
  private runAfterHole (d: DeviceRuntime, from: number, to: number): SignedRecord[] | undefined {
    const run: SignedRecord[] = []
    for (let seq = from; seq < to; seq++) {
      const w = d.pending.get(seq)
      if (w === undefined) return undefined
      run.push(w)
    }
    return run
  }

  private park (d: DeviceRuntime, s: SignedRecord): void {
    if (d.pending.size >= this.o.maxPendingPerDevice) {
      this.o.counters.pendingDropped()
      this.o.logger.warn({ device: d.id, seq: s.record.seq, waiting: d.pending.size }, 'too many records waiting for a gap: dropped (the device resends)')
      return
    }
    d.pending.set(s.record.seq, s)
    if (s.record.body.kind === 'gap') d.gapRecords.set(s.record.body.firstSeq, s.record.seq)
    d.gapSinceMs ??= this.o.now()
    this.o.store.enqueue([{ type: 'put', key: storeKeys.pending(d.id, s.record.seq), value: s.envelope }])
  }

  private unpark (d: DeviceRuntime, seq: number, ops: StoreOp[]): void {
    const w = d.pending.get(seq)
    if (w === undefined) return
    d.pending.delete(seq)
    if (w.record.body.kind === 'gap' && d.gapRecords.get(w.record.body.firstSeq) === seq) d.gapRecords.delete(w.record.body.firstSeq)
    ops.push({ type: 'del', key: storeKeys.pending(d.id, seq) })
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
    this.unpark(d, bad.record.seq, ops)
    if (ops.length > 0) this.o.store.enqueue(ops)
    this.quarantine(d, { reason: result.failure.reason, topic, seq: bad.record.seq, detail: result.failure.message, raw: bad.envelope })
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
      { deviceId: d.id, seq: r.seq, leafHash: hashLeaf(s.envelope), timeMs: r.timeMs, afterSeq },
      (p) => {
        const ops: StoreOp[] = [{ type: 'put', key: storeKeys.record(d.id, r.seq), value: encodeStoredRecord({ batchId: p.batchId, index: p.index, envelope: s.envelope }) }]
        this.unpark(d, r.seq, ops)
        return ops
      })
    this.o.tracker.noteLeaf(d.id, afterSeq, r.seq, place.batchId)
    d.tip = { seq: r.seq, hash: s.hash, boot: r.boot }
    d.tipFromPeer = false
    d.stored++
    d.ownAdvance = true
    this.o.counters.recordStored()
    this.markDirty(d)
  }

  /** Drops waiting records the tip has passed, then links whatever now follows the tip. */
  private pruneAndDrain (d: DeviceRuntime): void {
    const tipBefore = d.tip?.seq
    const tipSeq = tipBefore ?? -1
    const ops: StoreOp[] = []
    for (const seq of [...d.pending.keys()]) {
      if (seq <= tipSeq) {
        this.unpark(d, seq, ops)
        this.o.counters.duplicate()
      }
    }
    if (ops.length > 0) this.o.store.enqueue(ops)
    for (;;) {
      const expected = (d.tip?.seq ?? -1) + 1
      const next = d.pending.get(expected)
      if (next !== undefined) {
        if (!this.link(d, [next], deviceTopic(d.id, 'records'))) break
        continue
      }
      const run = this.declaredRun(d)
      if (run === undefined) break
      if (!this.link(d, run, deviceTopic(d.id, 'records'))) break
    }
    if (d.pending.size === 0) {
      d.gapSinceMs = undefined
      d.gapReported = false
    } else if (d.tip?.seq !== tipBefore) {
      d.gapSinceMs = this.o.now()
      d.gapReported = false
    }
  }

  private quarantine (d: DeviceRuntime | undefined, q: { reason: QuarantineReason, topic: string, seq?: number, detail: string, raw: Uint8Array }): void {
    const timeMs = this.o.now()
    const raw = q.raw.subarray(0, this.o.quarantineMaxRawBytes)
    this.o.store.enqueue([{
      type: 'put',
      key: this.o.store.quarantineKey(timeMs),
      value: encodeQuarantine({ timeMs, reason: q.reason, topic: q.topic, deviceId: d?.id, seq: q.seq, detail: q.detail.slice(0, 1024), raw, rawBytes: q.raw.byteLength })
    }])
    this.o.counters.quarantined(q.reason)
    this.quarantineCount++
    if (d !== undefined) {
      d.quarantined++
      this.markDirty(d)
    }
    this.o.logger.warn({ device: d?.id, topic: q.topic.slice(0, 256), seq: q.seq, reason: q.reason, detail: q.detail.slice(0, 256) }, 'input quarantined')
  }

  private markDirty (d: DeviceRuntime): void {
    this.dirty.add(d)
    this.o.store.touch()
  }

  // Right before each write: device states as they stand now, consistent with every record
  // queued before (tips move only together with the ops that store their records).
  private beforeWrite (): { ops: StoreOp[], afterDurable?: () => void } {
    const folded = this.o.tracker.foldedThrough
    if (this.dirty.size === 0 && folded === this.persistedFolded) return { ops: [] }
    const snapshot: Array<{ d: DeviceRuntime, tip: DeviceTip | undefined, own: boolean }> = []
    const ops: StoreOp[] = []
    for (const d of this.dirty) {
      ops.push({
        type: 'put',
        key: storeKeys.device(d.id),
        value: encodeDeviceState({ deviceId: d.id, tip: d.tip, lastSeenMs: d.lastSeenMs, stored: d.stored, quarantined: d.quarantined, anchoredSeq: this.o.tracker.anchoredSeq(d.id) })
      })
      snapshot.push({ d, tip: d.tip, own: d.ownAdvance })
      d.ownAdvance = false
    }
    this.dirty.clear()
    if (folded !== this.persistedFolded) ops.push(this.o.store.putInt(storeKeys.foldedThrough, folded))
    return {
      ops,
      afterDurable: () => {
        this.persistedFolded = Math.max(this.persistedFolded, folded)
        for (const { d, tip, own } of snapshot) {
          if (tip !== undefined && (d.durableTip === undefined || d.durableTip.seq < tip.seq)) d.durableTip = tip
          if (own) this.ackDirty.add(d)
        }
        this.flushAcks()
      }
    }
  }
}
