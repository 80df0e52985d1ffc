/**
 * What happens to each records message, independent of MQTT: decode, check the topic, look up the
 * device key, verify the signature, dedup on (device, seq), link to the device's chain tip (or
 * wait, durably, until the records before it arrive), store and batch, and acknowledge once the
 * write is durable. Anything that fails goes to quarantine with its reason and ingest goes on.
 * Devices are independent: each has its own queue, so one slow key lookup delays only its device.
 * Device state lives in device-state.ts, linking in chain-linker.ts, acks in ack-scheduler.ts;
 * memory is counted in bytes.
 */
import {
  RECORD_SIGNING_PREFIX, checkKeyCertification, concat, decodeEnvelope, decodePeekedEnvelope, decodeRecordBatch, deviceTopic, equalBytes, parseTopic, peekEnvelope, verifyRecordSignature, verifySignature,
  type Ack, type SignedRecord
} from '../../protocol/index.js'
import type { AnchoredTracker, LeafSink } from '../batch/index.js'
import { GatewayError } from '../errors.js'
import type { KeyAnswer, KeyDirectory } from '../keys/index.js'
import type { Logger } from '../../common/logger.js'
import { storeOps, type DeviceTip, type GatewayStore, type RecordConflict, type StoreOp, type TipRow } from '../store/index.js'
import { AckScheduler } from './ack-scheduler.js'
import { ChainLinker, type Quarantine } from './chain-linker.js'
import { DeviceTable, waitingRecordOf, type AheadAnswer, type DeviceJob, type DeviceRuntime, type OpenGap, type ParkRefusal, type QueuedRecord } from './device-state.js'
import type { QuarantineReason } from './quarantine.js'
import type { PeerAckReader } from './ack-verify.js'
import { WarnLimiter } from './warn-limiter.js'
import type { VerifyJob } from './verify-pool.js'

export type { OpenGap, ParkRefusal } from './device-state.js'

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
  /** A record was not checked because key look-ups are rate limited now (not acked; the device resends). */
  keyLookupLimited: () => void
  /** A record ahead of its device's tip was dropped: a budget is full (not acked; the device resends). */
  pendingDropped: (reason: ParkRefusal) => void
}

export interface IngestPipelineOptions {
  store: GatewayStore
  batcher: LeafSink
  tracker: AnchoredTracker
  keys: KeyDirectory
  /** Largest records payload accepted, in bytes. */
  maxPayloadBytes: number
  /** Bytes of offending input kept per quarantine entry. */
  quarantineMaxRawBytes: number
  /** Most records kept waiting ahead of one device's tip. */
  maxPendingPerDevice: number
  /** Most bytes of records kept waiting ahead of one device's tip. */
  maxPendingBytesPerDevice: number
  /** Most bytes of records kept waiting over all devices. */
  maxPendingBytesTotal: number
  /**
   * Linking waiting records stops to let the store write once this many bytes are queued for it,
   * so a long run that links at once never becomes one huge write (and one huge memtable).
   */
  drainChunkBytes: number
  /** A gap open longer than this (ms) is reported. */
  gapReportAfterMs: number
  /** Publishes an ack; returns false when it could not be sent now (it is retried on reconnect). */
  publishAck: (deviceId: string, ack: Ack) => boolean
  /** Correct peers' acks that say less than this gateway knows (scale-out mode). */
  correctPeerAcks: boolean
  /** Reads a retained ack: only one a trusted gateway signed for that device counts (ack-verify.ts). */
  readPeerAck: PeerAckReader
  counters: IngestCounters
  logger: Logger
  /** Gateway clock, Unix ms. */
  now: () => number
  /**
   * Where record signatures are verified (a VerifyPool: worker threads, verify-pool.ts). Default:
   * on this thread. With one, the signatures of a received message are sent ahead as soon as it
   * is queued, under the keys cached for them; records are still judged one by one in seq order.
   */
  verifier?: SignatureVerifier
}

/** Ed25519 verification as the pipeline asks for it (VerifyPool implements it). */
export interface SignatureVerifier {
  /** Whether `signature` is valid for `prefix ‖ message` (prefix: none when left out). */
  verify: (signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array, prefix?: Uint8Array) => Promise<boolean>
  /** The same, answered by a call on the job (VerifyPool.submit): no promise per record. */
  submit?: (job: VerifyJob) => void
}

/**
 * A signature sent to the verifier ahead of its record's turn: the key it was sent under, and the
 * answer once it came. It is the verifier's job itself (no promise, resolver or `.then` per
 * record); a promise is made only for a record whose turn comes before its answer.
 */
class Ahead implements VerifyJob, AheadAnswer {
  settled: boolean | undefined = undefined
  private waiters: Array<(valid: boolean) => void> | undefined

  constructor (readonly signature: Uint8Array, readonly message: Uint8Array, readonly publicKey: Uint8Array) {}

  get prefix (): Uint8Array {
    return RECORD_SIGNING_PREFIX
  }

  /** The key it was sent under. */
  get key (): Uint8Array {
    return this.publicKey
  }

  answered (valid: boolean): void {
    this.settled = valid
    const waiters = this.waiters
    this.waiters = undefined
    if (waiters !== undefined) for (const w of waiters) w(valid)
  }

  async valid (): Promise<boolean> {
    if (this.settled !== undefined) return this.settled
    return await new Promise<boolean>(resolve => { (this.waiters ??= []).push(resolve) })
  }
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

/** What the pipeline holds in memory, as it counts it (exported as metrics). */
export interface IngestMemory {
  /** Records waiting ahead of their tip, and their bytes. */
  pendingRecords: number
  pendingBytes: number
  /** Records received and queued for processing, and their bytes. */
  backlogRecords: number
  backlogBytes: number
  /** Devices known for good, and ids seen with work queued that the registry has not confirmed. */
  knownDevices: number
  provisionalDevices: number
}

/**
 * Bytes counted per queued record besides its envelope. A queued record is its envelope and peeked
 * head now (decoded at its turn); the count stays the bound it was for a decoded record — its
 * envelope, a copy of the record bytes and the decoded body fields, each at most the envelope's size.
 */
const QUEUED_RECORD_COPIES = 3
const QUEUED_RECORD_OVERHEAD_BYTES = 512


export class IngestPipeline {
  private readonly o: IngestPipelineOptions
  private readonly devices: DeviceTable
  private readonly acks: AckScheduler
  private readonly chains: ChainLinker
  private readonly dirty = new Set<DeviceRuntime>()
  private persistedFolded: number
  private queuedRecords = 0
  private queuedBytes = 0
  private runningDevices = 0
  private readonly idleWaiters: Array<() => void> = []
  private readonly drainWaiters: Array<{ belowRecords: number, belowBytes: number, resolve: () => void }> = []
  private stopped = false
  private readonly warnings: WarnLimiter
  /** Quarantine entries on disk (approximately: pruning lags a little). */
  quarantineCount = 0

  constructor (options: IngestPipelineOptions) {
    this.o = options
    this.devices = new DeviceTable(options)
    this.warnings = new WarnLimiter(options.logger, options.now)
    this.acks = new AckScheduler({
      devices: this.devices,
      tracker: options.tracker,
      publishAck: options.publishAck,
      correctPeerAcks: options.correctPeerAcks,
      markDirty: (d) => this.markDirty(d),
      scheduleDrain: (d) => this.schedule(d, { kind: 'drain' }),
      logger: options.logger,
      readPeerAck: options.readPeerAck
    })
    this.chains = new ChainLinker({
      store: options.store,
      batcher: options.batcher,
      tracker: options.tracker,
      devices: this.devices,
      drainChunkBytes: options.drainChunkBytes,
      counters: options.counters,
      quarantine: (d, q) => this.quarantine(d, q),
      markDirty: (d) => this.markDirty(d),
      scheduleDrain: (d) => this.schedule(d, { kind: 'drain' }),
      warnings: this.warnings,
      now: options.now
    })
    this.persistedFolded = options.tracker.foldedThrough
    options.store.addWriteHook({ beforeWrite: () => this.beforeWrite() })
  }

  /**
   * Loads device tips and waiting records from the store.
   * @throws GatewayError `STORE_CORRUPT`.
   */
  async load (): Promise<void> {
    this.quarantineCount = await this.o.store.countQuarantined()
    for await (const s of this.o.store.devices()) {
      const d = this.devices.getOrCreate(s.deviceId)
      d.tip = s.tip
      d.durableTip = s.tip
      d.lastSeenMs = s.lastSeenMs
      d.stored = s.stored
      d.quarantined = s.quarantined
      if (s.certified !== undefined) d.certified = s.certified
      this.o.tracker.load(s.deviceId, s.anchoredSeq)
    }
    for await (const p of this.o.store.pending()) {
      let signed: SignedRecord
      try {
        signed = decodeEnvelope(p.envelope)
      } catch (e) {
        throw new GatewayError('STORE_CORRUPT', `waiting record ${p.deviceId}/${p.seq} does not decode`, { cause: e })
      }
      this.devices.restore(this.devices.getOrCreate(p.deviceId), waitingRecordOf(signed), this.o.now())
    }
    // Records may have been parked just before a crash while the records before them were stored.
    for (const d of this.devices.withWaiting()) this.schedule(d, { kind: 'drain' })
    // A crash may have come between a durable write and its ack: ack every device once more.
    for (const d of this.devices.all()) if (d.stored > 0) this.acks.markDue(d, true)
  }

  /** Records queued in device queues, not yet processed. */
  get backlog (): number {
    return this.queuedRecords
  }

  /** Bytes of the records queued in device queues, as counted. */
  get backlogBytes (): number {
    return this.queuedBytes
  }

  /** What the pipeline holds in memory, as it counts it. */
  memory (): IngestMemory {
    return {
      pendingRecords: this.devices.pendingRecords,
      pendingBytes: this.devices.pendingBytes,
      backlogRecords: this.queuedRecords,
      backlogBytes: this.queuedBytes,
      knownDevices: this.devices.knownCount,
      provisionalDevices: this.devices.provisionalDevices
    }
  }

  /** Resolves once the backlog is below both bounds (flow control of the MQTT reader). */
  async whenBacklogBelow (belowRecords: number, belowBytes = Infinity): Promise<void> {
    if (this.queuedRecords < belowRecords && this.queuedBytes < belowBytes) return
    await new Promise<void>(resolve => this.drainWaiters.push({ belowRecords, belowBytes, resolve }))
  }

  // ------------------------------------------------------------------------------ input

  /** Handles one message on `prov/v1/<device>/records`. Never throws for bad input. */
  acceptRecords (topic: string, payload: Uint8Array): void {
    if (this.stopped) return
    this.o.counters.messageReceived()
    const parsed = parseTopic(topic)
    if (parsed === undefined || parsed.kind !== 'records') {
      this.quarantine(undefined, { reason: 'bad-topic', topic, detail: 'not prov/v1/<device>/records', raw: payload })
      return
    }
    // An id the gateway does not know yet is provisional until the registry confirms it.
    const d = this.devices.getOrCreate(parsed.deviceId, true)
    d.lastSeenMs = this.o.now()
    const records = this.receiveRecords(d, topic, payload)
    this.markDirty(d)
    if (records.length > 0) {
      let heldBytes = 0
      for (const s of records) heldBytes += QUEUED_RECORD_COPIES * s.envelope.byteLength + QUEUED_RECORD_OVERHEAD_BYTES
      this.verifyAhead(d, records)
      this.schedule(d, { kind: 'records', topic, records, heldBytes })
    } else {
      this.devices.forgetIfProvisional(d)
    }
  }

  // The envelopes of one payload, queued as bytes with their peeked heads; a payload that is not a
  // records batch is quarantined. Each record is decoded (and quarantined if bad) at its turn.
  private receiveRecords (d: DeviceRuntime, topic: string, payload: Uint8Array): QueuedRecord[] {
    if (payload.byteLength > this.o.maxPayloadBytes) {
      this.quarantine(d, { reason: 'payload-too-large', topic, detail: `${payload.byteLength} bytes, limit ${this.o.maxPayloadBytes}`, raw: payload })
      return []
    }
    let envelopes: Uint8Array[]
    try {
      // One copy of the message (MQTT's buffer is not ours to keep), the envelopes views of it: a
      // copy per envelope was an ArrayBuffer per record, alive in the backlog until its turn.
      envelopes = decodeRecordBatch(new Uint8Array(payload), { viewsOfPayload: true })
    } catch (e) {
      this.quarantine(d, { reason: 'payload-malformed', topic, detail: (e as Error).message, raw: payload })
      return []
    }
    this.o.counters.recordsReceived(envelopes.length)
    const records = new Array<QueuedRecord>(envelopes.length)
    for (let i = 0; i < envelopes.length; i++) {
      const envelope = envelopes[i] as Uint8Array
      records[i] = { envelope, head: peekEnvelope(envelope), ahead: undefined }
    }
    return records
  }

  // A queued record decoded at its turn: undefined when it was quarantined (malformed, or another
  // device's record on this device's topic), checked in the order they were on arrival.
  private decodeQueued (d: DeviceRuntime, topic: string, q: QueuedRecord): SignedRecord | undefined {
    let signed: SignedRecord
    try {
      // The head peeked on arrival already read the envelope's outer array (the same refusals).
      signed = q.head === undefined ? decodeEnvelope(q.envelope) : decodePeekedEnvelope(q.envelope, q.head)
    } catch (e) {
      this.quarantine(d, { reason: 'record-malformed', topic, detail: (e as Error).message, raw: q.envelope })
      return undefined
    }
    if (signed.record.deviceId !== d.id) {
      this.quarantine(d, {
        reason: 'topic-mismatch',
        topic,
        seq: signed.record.seq,
        detail: `record of device "${signed.record.deviceId}" on the topic of "${d.id}"`,
        raw: q.envelope
      })
      return undefined
    }
    return signed
  }

  /**
   * With a verifier on other threads, sends the signatures of new records (above the tip, not
   * already waiting) whose key is cached, so that the workers verify while this thread links.
   * Resends and unknown keys are left to their turn: they cost the workers nothing.
   */
  private verifyAhead (d: DeviceRuntime, records: readonly QueuedRecord[]): void {
    const verifier = this.o.verifier
    const peek = this.o.keys.peek
    if (verifier === undefined || peek === undefined) return
    const tipSeq = d.tip?.seq ?? -1
    for (const q of records) {
      // What the peek read is used only for records that then decode (which give the same values):
      // anything else costs the workers one verification whose answer is never asked for.
      const h = q.head
      if (h === undefined || q.ahead !== undefined || h.deviceId !== d.id || h.seq <= tipSeq || d.pending.has(h.seq)) continue
      const answer = peek.call(this.o.keys, d.id, h.timeMs)
      const key = answer?.publicKey
      if (key === undefined || answer?.revoked === true || answer?.unknown === true) continue
      const entry = new Ahead(h.signature, h.recordBytes, key)
      q.ahead = entry
      if (verifier.submit !== undefined) verifier.submit(entry)
      else void verifier.verify(h.signature, h.recordBytes, key, RECORD_SIGNING_PREFIX).then(v => { entry.answered(v) })
    }
  }

  /** Whether the signature of `s` verifies under `key`: the answer sent ahead when it was for this key, else asked now. */
  private async signatureValid (s: SignedRecord, key: Uint8Array, q: QueuedRecord | undefined): Promise<boolean> {
    // The answer sent ahead is used once: asked again (a refreshed key), the signature is verified anew.
    const ahead = q?.ahead
    if (q !== undefined && ahead !== undefined) {
      q.ahead = undefined
      if (ahead.key === key || equalBytes(ahead.key, key)) return await ahead.valid()
    }
    const verifier = this.o.verifier
    return verifier === undefined
      ? verifySignature(s.signature, concat(RECORD_SIGNING_PREFIX, s.recordBytes), key)
      : await verifier.verify(s.signature, s.recordBytes, key, RECORD_SIGNING_PREFIX)
  }

  /** Handles one message on `prov/v1/<device>/ack` from a peer gateway (scale-out mode). */
  acceptPeerAck (topic: string, payload: Uint8Array): void {
    if (this.stopped) return
    this.acks.acceptPeerAck(topic, payload)
  }

  /** Batches up to `batchId` are confirmed on chain: anchored seqs move, acks follow. */
  confirmThrough (batchId: number): void {
    for (const id of this.o.tracker.confirmThrough(batchId)) {
      const d = this.devices.getOrCreate(id)
      this.markDirty(d)
      this.acks.markDue(d)
    }
    this.o.store.touch()
    this.acks.flushAcks()
  }

  /**
   * The PostgreSQL tier: every record of each device up to `seq` is in a confirmed batch (its tip
   * in the newest confirmed batch's tree). The process that stored a device's tip acks the move.
   */
  noteAnchored (tips: readonly TipRow[]): void {
    for (const t of tips) {
      // The same fold as a peer's announced anchored seq: it only ever moves up.
      if (!this.o.tracker.notePeer(t.deviceId, t.seq)) continue
      const d = this.devices.get(t.deviceId)
      if (d === undefined || d.provisional) continue
      this.markDirty(d)
      if (!d.tipFromPeer && d.durableTip !== undefined) this.acks.markDue(d)
    }
    this.acks.flushAcks()
  }

  /**
   * The PostgreSQL tier: another process stored a different record at (device, seq) first (a
   * fork, or a replay with another body). Ours was not written, nor what linked after it, and is
   * never acked; it is quarantined as `seq-reuse` (as a single gateway does with a different
   * record for a stored seq) and the device continues from the stored record.
   */
  recordConflicts (conflicts: readonly RecordConflict[]): void {
    const topic = (id: string): string => deviceTopic(id, 'records')
    const lowest = new Map<string, RecordConflict>()
    for (const c of conflicts) if (c.seq < (lowest.get(c.deviceId)?.seq ?? Infinity)) lowest.set(c.deviceId, c)
    for (const c of conflicts) {
      const d = this.devices.get(c.deviceId)
      if (d === undefined) continue
      this.quarantine(d, { reason: 'seq-reuse', topic: topic(d.id), seq: c.seq, detail: `another validly signed record for seq ${c.seq} was stored first by another gateway process`, raw: c.envelope })
    }
    for (const c of lowest.values()) {
      const d = this.devices.get(c.deviceId)
      if (d === undefined) continue
      // The writes snapshotted with the losing tip must not ack it (pipeline.beforeWrite).
      d.forkEpoch++
      let winner: SignedRecord | undefined
      try {
        winner = decodeEnvelope(c.storedEnvelope)
      } catch {
        winner = undefined
      }
      const tip = winner === undefined ? undefined : { seq: c.seq, hash: winner.hash, boot: winner.record.boot }
      d.tip = tip ?? (d.durableTip !== undefined && d.durableTip.seq < c.seq ? d.durableTip : undefined)
      // The stored record is durable (another process committed it): what a peer's ack would say.
      if (tip !== undefined) d.durableTip = tip
      d.tipFromPeer = true
      d.ownAdvance = false
      this.o.logger.error({ device: d.id, seq: c.seq }, 'a different record for this seq was stored first by another gateway process: ours quarantined, not acked')
      this.markDirty(d)
      if (d.pending.size > 0) this.schedule(d, { kind: 'drain' })
    }
  }

  /** Re-publishes every device's ack (after the broker lost its retained messages). */
  republishAcks (): void {
    this.acks.republishAcks()
  }

  /** Sends the acks that are due; those that cannot go now stay due. */
  flushAcks (): void {
    this.acks.flushAcks()
  }

  // ------------------------------------------------------------------------------ status

  /** Status of one device, or undefined when the gateway does not know it. */
  status (deviceId: string): DeviceStatus | undefined {
    const d = this.devices.get(deviceId)
    if (d === undefined || d.provisional) return undefined
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
      openGaps: this.devices.openGaps(d, this.o.now(), this.o.gapReportAfterMs)
    }
  }

  /** Ids of the devices known, sorted. */
  deviceIds (): string[] {
    return this.devices.knownIds()
  }

  /** Open gaps over all devices, and how many are overdue; logs each overdue gap once. */
  checkGaps (): { open: number, overdue: number } {
    let open = 0
    let overdue = 0
    const now = this.o.now()
    // Only devices with waiting records can have a gap: no scan over every device.
    for (const d of this.devices.withWaiting()) {
      for (const g of this.devices.openGaps(d, now, this.o.gapReportAfterMs)) {
        open++
        if (!g.overdue) continue
        overdue++
        if (!d.gapReported) {
          d.gapReported = true
          this.o.logger.warn({ device: d.id, firstSeq: g.firstSeq, lastSeq: g.lastSeq, openMs: now - g.sinceMs }, 'records missing: gap still open')
        }
      }
    }
    return { open, overdue }
  }

  // ------------------------------------------------------------------------------ stop

  /** Stops accepting input and resolves once every queued record is processed. */
  async stop (): Promise<void> {
    this.stopped = true
    await this.idle()
  }

  /** Resolves once no device has queued work. */
  async idle (): Promise<void> {
    if (this.runningDevices === 0) return
    await new Promise<void>(resolve => this.idleWaiters.push(resolve))
  }

  // ------------------------------------------------------------------------------ processing

  private schedule (d: DeviceRuntime, job: DeviceJob): void {
    d.queue.push(job)
    if (job.kind === 'records') {
      this.queuedRecords += job.records.length
      this.queuedBytes += job.heldBytes
    }
    if (!d.running) {
      d.running = true
      this.runningDevices++
      void this.run(d)
    }
  }

  private async run (d: DeviceRuntime): Promise<void> {
    try {
      for (let job = d.queue.shift(); job !== undefined; job = d.queue.shift()) {
        if (job.kind === 'drain') {
          // Let the store write what earlier drain steps queued before linking more.
          if (this.o.store.queuedBytes >= this.o.drainChunkBytes) await this.o.store.flush().catch(() => {})
          this.chains.pruneAndDrain(d)
          continue
        }
        await this.runRecords(d, job)
      }
    } finally {
      d.running = false
      this.runningDevices--
      this.devices.forgetIfProvisional(d)
      if (this.runningDevices === 0) for (const w of this.idleWaiters.splice(0)) w()
    }
  }

  private async runRecords (d: DeviceRuntime, job: DeviceJob & { kind: 'records' }): Promise<void> {
    const perRecord = job.heldBytes / job.records.length
    const records = job.records
    for (let i = 0; i < records.length; i++) {
      const q = records[i] as QueuedRecord
      // The device's key was not cached when the message came (its first message, or a key
      // refreshed since): the first record's look-up cached it, so send the rest ahead now rather
      // than verify them one by one (one at a time would also keep the pool from starting).
      if (i === 1 && this.o.verifier !== undefined && q.ahead === undefined) this.verifyAhead(d, records.slice(1))
      try {
        const signed = this.decodeQueued(d, job.topic, q)
        if (signed !== undefined) {
          if (!this.processVerifiedNow(d, signed, job.topic, q)) await this.processRecord(d, signed, job.topic, q)
        }
      } catch (e) {
        // Only the store can fail here (bad input is quarantined): the gateway stops on it.
        this.o.logger.error({ device: d.id, seq: q.head?.seq, error: (e as Error).message }, 'record processing failed')
      } finally {
        this.queuedRecords--
        this.queuedBytes -= perRecord
      }
    }
    if (this.queuedRecords === 0) this.queuedBytes = 0 // no float drift from the division above
    this.releaseDrainWaiters()
  }

  private releaseDrainWaiters (): void {
    for (let i = this.drainWaiters.length - 1; i >= 0; i--) {
      const w = this.drainWaiters[i] as { belowRecords: number, belowBytes: number, resolve: () => void }
      if (this.queuedRecords < w.belowRecords && this.queuedBytes < w.belowBytes) {
        this.drainWaiters.splice(i, 1)
        w.resolve()
      }
    }
  }

  /**
   * The common case without a turn of the event loop: a new record (above the tip, not waiting)
   * under a cached plain key, whose signature the pool has already found valid under that very
   * key. Exactly what processRecord and keyFor do for it, and nothing when any of that does not
   * hold (false: processRecord decides). Awaiting each record cost more than the rest of its
   * handling: an async frame and promises per record, for answers that came in batches of 256.
   */
  private processVerifiedNow (d: DeviceRuntime, s: SignedRecord, topic: string, q: QueuedRecord): boolean {
    const r = s.record
    if (r.seq <= (d.tip?.seq ?? -1) || d.pending.has(r.seq)) return false
    const ahead = q.ahead
    if (ahead?.settled !== true) return false
    // A TPM-rooted device's records go through certifiedKeyFor: not here.
    if (d.certified !== undefined || (r.body.kind === 'boot' && r.body.certification !== undefined)) return false
    const answer = this.o.keys.peek?.(d.id, r.timeMs)
    if (answer === undefined || answer.unknown === true || answer.revoked || answer.publicKey === undefined) return false
    if (answer.publicKey !== ahead.key && !equalBytes(answer.publicKey, ahead.key)) return false
    q.ahead = undefined
    if (this.devices.promote(d)) this.markDirty(d)
    this.o.counters.recordVerified()
    this.chains.place(d, s, topic)
    return true
  }

  // `q`: the record as queued, with the verification sent ahead for it (none for a record decoded
  // from the waiting records). The ahead answer is passed along, not kept in a map by record: a
  // WeakMap entry per record was an ephemeron the young-generation GC had to process.
  private async processRecord (d: DeviceRuntime, s: SignedRecord, topic: string, q?: QueuedRecord): Promise<void> {
    const seq = s.record.seq
    if (seq <= (d.tip?.seq ?? -1)) return await this.handleOld(d, s, topic, q)
    if (this.handleWaiting(d, s) === 'done') return
    const key = await this.keyFor(d, s, topic, q)
    if (key === undefined) return
    if (this.handleWaiting(d, s) === 'done') return
    if (seq <= (d.tip?.seq ?? -1)) {
      // The tip moved while the key was looked up (a peer stored it): a duplicate now, or a
      // different record for a seq the peer stored (quarantined, never acked).
      return await this.handleOld(d, s, topic, q)
    }
    this.chains.place(d, s, topic)
  }

  /** A record at or below the tip: a resend (duplicate) or a different record for a used seq. */
  private async handleOld (d: DeviceRuntime, s: SignedRecord, topic: string, q?: QueuedRecord): Promise<void> {
    const seq = s.record.seq
    let same: boolean
    if (d.tip !== undefined && seq === d.tip.seq) {
      same = equalBytes(s.hash, d.tip.hash)
    } else {
      let stored = await this.o.store.getRecord(d.id, seq)
      if (stored === undefined && !d.tipFromPeer && seq > (d.durableTip?.seq ?? -1)) {
        // Our own store of that seq is queued, not yet on disk: compare once it is, or a
        // different record for it would pass as a resend.
        await this.o.store.flush()
        stored = await this.o.store.getRecord(d.id, seq)
      }
      // Not here: stored by a peer, or dropped by the device (honest gap). No way to compare:
      // count it as the resend it almost always is.
      same = stored === undefined || equalBytes(stored.envelope, s.envelope)
    }
    if (same) {
      this.o.counters.duplicate()
      // A device resends what it has no ack for: it may have missed the ack, so send it again.
      this.acks.requestAck(d)
      return
    }
    if (await this.keyFor(d, s, topic, q) === undefined) return
    this.quarantine(d, { reason: 'seq-reuse', topic, seq, detail: `another validly signed record for seq ${seq}, already stored`, raw: s.envelope })
  }

  /** Returns 'done' when `s` is a duplicate of, or conflicts with, a record already waiting. */
  private handleWaiting (d: DeviceRuntime, s: SignedRecord): 'done' | 'new' {
    const waiting = d.pending.get(s.record.seq)
    if (waiting === undefined) return 'new'
    if (equalBytes(waiting.hash, s.hash)) {
      this.o.counters.duplicate()
      // A resent gap record retries the declared holes it may complete.
      if (s.record.body.kind === 'gap') this.chains.linkDeclared(d, deviceTopic(d.id, 'records'))
      this.acks.requestAck(d)
      return 'done'
    }
    return 'new'
  }

  /**
   * The device key for `s`, with the signature of `s` verified under it; undefined when `s` was
   * quarantined or cannot be checked now. A provisional device the registry knows is kept.
   */
  private async keyFor (d: DeviceRuntime, s: SignedRecord, topic: string, queued?: QueuedRecord): Promise<Uint8Array | undefined> {
    const keys = this.o.keys
    const t = s.record.timeMs
    let answer: KeyAnswer | undefined = keys.peek?.(d.id, t)
    let fresh = false
    if (answer === undefined) {
      try {
        answer = await keys.keyAt(d.id, t)
        fresh = true
      } catch (e) {
        this.keyUnavailable(d, s, e)
        return undefined
      }
    }
    const q = (reason: QuarantineReason, detail: string): undefined => {
      this.quarantine(d, { reason, topic, seq: s.record.seq, detail, raw: s.envelope })
      return undefined
    }
    if (answer.unknown === true) return q('unknown-device', 'the registry does not know this device')
    if (this.devices.promote(d)) this.markDirty(d)
    if (answer.revoked) return q('device-revoked', `device revoked at or before ${t}`)
    if (answer.publicKey === undefined) return q('no-key', `no key valid at ${t}`)
    const certified = this.certifiedKeyFor(d, s, answer.publicKey)
    if (certified !== undefined) {
      if ('reason' in certified) return q(certified.reason, certified.detail)
      this.o.counters.recordVerified()
      return certified.key
    }
    if (await this.signatureValid(s, answer.publicKey, queued)) {
      this.o.counters.recordVerified()
      return answer.publicKey
    }
    if (!fresh && keys.refresh !== undefined) {
      // The key may have rotated since it was cached: ask the registry again, once.
      keys.refresh(d.id)
      try {
        const again = await keys.keyAt(d.id, t)
        if (again.publicKey !== undefined && !again.revoked && await this.signatureValid(s, again.publicKey, queued)) {
          this.o.counters.recordVerified()
          return again.publicKey
        }
      } catch {
        // Fall through: the cached key is what we have.
      }
    }
    if (d.certified !== undefined) return q('uncertified-key', `no certification covers the record key of boot ${s.record.boot}`)
    return q('bad-signature', 'signature does not verify under the device key')
  }

  /**
   * A TPM-rooted device (docs/PROTOCOL.md §13): a boot record's certification is checked against
   * the registry key slot (the identity key id) and establishes the boot's record key; the records
   * of that boot are verified under it. Undefined: not a certified record (plain key path).
   */
  private certifiedKeyFor (d: DeviceRuntime, s: SignedRecord, registryKey: Uint8Array): { key: Uint8Array } | { reason: QuarantineReason, detail: string } | undefined {
    const r = s.record
    if (r.body.kind === 'boot' && r.body.certification !== undefined) {
      const checked = checkKeyCertification(r.body.certification.bytes, r.body.certification.signature, { registryKey, deviceId: d.id, boot: r.boot, timeMs: r.timeMs })
      if ('problem' in checked) return { reason: checked.problem, detail: checked.message }
      const c = checked.certification
      if (!verifyRecordSignature(s, c.recordKey)) return { reason: 'bad-signature', detail: 'boot record not signed by the key its certification names' }
      // Only a later boot replaces the boot key held (an old boot record resent changes nothing).
      if (d.certified === undefined || d.certified.boot < r.boot) {
        d.certified = { boot: r.boot, recordKey: c.recordKey, registryKey, validFromMs: c.validFromMs, validUntilMs: c.validUntilMs }
        this.markDirty(d)
      }
      return { key: c.recordKey }
    }
    const c = d.certified
    if (c === undefined || c.boot !== r.boot || !equalBytes(c.registryKey, registryKey)) return undefined
    if (r.timeMs < c.validFromMs || r.timeMs >= c.validUntilMs) return { reason: 'certification-expired', detail: `device time ${r.timeMs} outside the boot key's certified [${c.validFromMs}, ${c.validUntilMs})` }
    if (!verifyRecordSignature(s, c.recordKey)) return { reason: 'bad-signature', detail: 'signature does not verify under the boot\'s certified key' }
    return { key: c.recordKey }
  }

  private keyUnavailable (d: DeviceRuntime, s: SignedRecord, e: unknown): void {
    if (e instanceof GatewayError && e.code === 'KEY_LOOKUP_LIMITED') {
      // A flood of new ids must not become a flood of log lines either: counted only.
      this.o.counters.keyLookupLimited()
      return
    }
    this.o.counters.keyUnavailable()
    this.warnings.warn({ device: d.id, seq: s.record.seq, error: (e as Error).message }, 'device key unavailable: record left for the device to resend')
  }

  private quarantine (d: DeviceRuntime | undefined, q: Quarantine): void {
    const timeMs = this.o.now()
    const raw = q.raw.subarray(0, this.o.quarantineMaxRawBytes)
    this.o.store.enqueue([this.o.store.quarantineOp({
      timeMs, reason: q.reason, topic: q.topic, deviceId: d?.id, seq: q.seq, detail: q.detail.slice(0, 1024), raw, rawBytes: q.raw.byteLength
    })])
    this.o.counters.quarantined(q.reason)
    this.quarantineCount++
    if (d !== undefined) {
      d.quarantined++
      this.markDirty(d)
    }
    this.warnings.warn({ device: d?.id, topic: q.topic.slice(0, 256), seq: q.seq, reason: q.reason, detail: q.detail.slice(0, 256) }, 'input quarantined')
  }

  // A provisional device is not persisted: it may never be more than an attacker's made-up id.
  private markDirty (d: DeviceRuntime): void {
    if (d.provisional) return
    this.dirty.add(d)
    this.o.store.touch()
  }

  // Right before each write: device states as they stand now, consistent with every record
  // queued before (tips move only together with the ops that store their records).
  private beforeWrite (): { ops: StoreOp[], afterDurable?: () => void } {
    const folded = this.o.tracker.foldedThrough
    if (this.dirty.size === 0 && folded === this.persistedFolded) return { ops: [] }
    const snapshot: Array<{ d: DeviceRuntime, tip: DeviceTip | undefined, own: boolean, epoch: number }> = []
    const ops: StoreOp[] = []
    for (const d of this.dirty) {
      ops.push(storeOps.putDeviceState({
        deviceId: d.id, tip: d.tip, lastSeenMs: d.lastSeenMs, stored: d.stored, quarantined: d.quarantined, anchoredSeq: this.o.tracker.anchoredSeq(d.id),
        ...(d.certified !== undefined ? { certified: d.certified } : {})
      }))
      snapshot.push({ d, tip: d.tip, own: d.ownAdvance, epoch: d.forkEpoch })
      d.ownAdvance = false
    }
    this.dirty.clear()
    if (folded !== this.persistedFolded) ops.push(storeOps.putFoldedThrough(folded))
    return {
      ops,
      afterDurable: () => {
        this.persistedFolded = Math.max(this.persistedFolded, folded)
        for (const { d, tip, own, epoch } of snapshot) {
          // A record of this write lost its seq to another process's: nothing of it is acked.
          if (epoch !== d.forkEpoch) continue
          if (tip !== undefined && (d.durableTip === undefined || d.durableTip.seq < tip.seq)) d.durableTip = tip
          if (own) this.acks.markDue(d)
        }
        this.acks.flushAcks()
      }
    }
  }
}
