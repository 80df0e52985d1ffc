/**
 * The device's durable record log on LevelDB. `append` assigns seq and prev, signs, and resolves
 * only once the record is on disk; appends that arrive while a write is in flight share the next
 * write (group commit), so many records share one sync. Every mutation (records, acks, budget
 * drops) goes through that one ordered write queue, and the head (seq, boot, hash, bytes) is
 * written in the same atomic batch as the change it describes: a crash leaves all or nothing.
 * After a failed write nothing more is written to that handle (LevelDB would append after the
 * torn write, and its recovery drops everything after it): the log closes, reopens and checks
 * its head first. docs/OPERATIONS.md ("Record log on a full disk") tells the whole story.
 * Beside it: log-store.ts (keys, head, open), write-batch.ts (one write of the queue), drop-plan.ts
 * (what a fail-open drop removes), space-reserve.ts (the reserve file).
 */
import { mkdir } from 'node:fs/promises'
import { signRecord, equalBytes, type RecordBody, type SignedRecord, type Signer } from '../../protocol/index.js'
import { AgentError } from '../errors.js'
import { SpaceReserve } from './space-reserve.js'
import { decodeStored, openDb, readMeta, recordKey, type Db, type LogHead, type Meta } from './log-store.js'
import { collectDeletions, planCommit, writeCommit, type Pending, type PruneScan } from './write-batch.js'
import { planDrop } from './drop-plan.js'

export { recordKey, type LogHead } from './log-store.js'

/** What to do when the log reaches its disk budget. */
export type BudgetMode = 'fail-closed' | 'fail-open'

export interface RecordLogOptions {
  /** LevelDB folder (created if missing). */
  dir: string
  deviceId: string
  signer: Signer
  /** Device time in Unix milliseconds. Default: Date.now. */
  clock?: () => number
  /** fsync every write batch (power-loss safe). Default true; group commit amortises it. */
  syncWrites?: boolean
  /** Most records in one write batch. */
  maxBatchRecords?: number
  /** Largest total size of the stored records, in bytes (envelopes). Default: no limit. */
  budgetBytes?: number
  /**
   * At the budget, and on a physically full disk: `fail-closed` refuses appends
   * (LOG_BUDGET_EXCEEDED, LOG_DISK_FULL) until space returns; `fail-open` drops records (the
   * oldest unsent ones at the budget, the ones it cannot store on a full disk) and writes a
   * signed gap record naming them.
   */
  budgetMode?: BudgetMode
  /** Fraction of the budget a fail-open drop frees at least, so drops stay rare. Default 0.05. */
  dropFraction?: number
  /**
   * Disk space held back in a file in `dir`, given up when the disk is full so that LevelDB can
   * reopen and the log can write its gap record, and taken again once twice as much is free.
   * 0 turns it off (then a full disk may leave the log unable to reopen). Default: twice
   * `writeBufferBytes` and 1 MiB (9 MiB), what LevelDB's recovery needs at most.
   */
  reserveBytes?: number
  /**
   * LevelDB's write buffer (memtable) size: its write-ahead log grows to this before it is
   * turned into a table, so it bounds what a reopen must write. Default 4 MiB (LevelDB's own).
   */
  writeBufferBytes?: number
}

export const DEFAULT_MAX_BATCH_RECORDS = 2048
export const DEFAULT_DROP_FRACTION = 0.05
export const DEFAULT_WRITE_BUFFER_BYTES = 4 * 1024 * 1024
/**
 * The reserve for a write buffer: LevelDB's recovery turns its write-ahead logs (the current one
 * and one being flushed, each up to a write buffer of incompressible signed records) into tables
 * before it deletes them, and starts a new log and manifest. Measured in docs/OPERATIONS.md.
 */
export function defaultReserveBytes (writeBufferBytes: number): number {
  return 2 * writeBufferBytes + 1024 * 1024
}
export const DEFAULT_RESERVE_BYTES = defaultReserveBytes(DEFAULT_WRITE_BUFFER_BYTES)
/** Records queued in one synchronous burst from which its write starts without waiting a turn. */
const BURST_RECORDS = 64
/** Free space below which a failed log does not even try to reopen. */
const MIN_REOPEN_FREE_BYTES = 64 * 1024
/** Room kept for the gap record a drop writes. */
const GAP_RECORD_ALLOWANCE = 512

/**
 * `open`: appends are written. `disk-full`: the disk had no room and the reserve is given up;
 * fail-closed refuses appends, fail-open declares them in gap records, until the reserve can be
 * taken again. `failed`: the log could not be reopened after a write error.
 */
export type LogState = 'open' | 'disk-full' | 'failed'

export interface LogStats {
  head: LogHead
  /** Bytes of the records in the log (durable or queued): the envelopes stored under `r/`. */
  bytes: number
  budgetBytes: number | undefined
  ackedSeq: number
  /** Records dropped by fail-open (budget or full disk) since the log was created. */
  droppedRecords: number
  state: LogState
  /** The space reserve file is in place. */
  reserveHeld: boolean
}

export class RecordLog {
  private db: Db
  private readonly dir: string
  private readonly writeBufferBytes: number
  private readonly deviceId: string
  private readonly signer: Signer
  private readonly clock: () => number
  private readonly sync: boolean
  private readonly maxBatch: number
  private readonly budgetBytes: number | undefined
  private readonly budgetMode: BudgetMode
  private readonly dropFraction: number
  private readonly reserve: SpaceReserve
  /** Last record handed out (may not be durable yet). */
  private tip: LogHead
  /** What is on disk. */
  private durable: Meta
  /** Bytes of the records queued for writing. */
  private queuedBytes = 0
  private ackedSeq: number
  /** Highest seq the uplink has handed to the broker on this connection: never dropped. */
  private sentSeq = -1
  private queue: Pending[] = []
  /** Records signed but not to be written, awaiting the gap record that declares them. */
  private unsealed: Pending[] = []
  private writing: Promise<void> | undefined
  /** Starts the write loop scheduled for the next turn at once (see startDrain). */
  private startNow: (() => void) | undefined
  private dropping: Promise<void> | undefined
  private recovering: Promise<void> | undefined
  private taking: Promise<boolean> | undefined
  private state: LogState
  private failure: unknown
  private reserveHeld: boolean
  private closed = false
  private readonly listeners = new Set<(head: LogHead) => void>()
  /** Counts commits that deleted records (and reopens): a prune scan read before a change is stale. */
  private deletionEpoch = 0

  private constructor (db: Db, options: RecordLogOptions, meta: Meta, reserve: SpaceReserve, reserveHeld: boolean) {
    this.db = db
    this.dir = options.dir
    this.writeBufferBytes = options.writeBufferBytes ?? DEFAULT_WRITE_BUFFER_BYTES
    this.deviceId = options.deviceId
    this.signer = options.signer
    this.clock = options.clock ?? Date.now
    this.sync = options.syncWrites ?? true
    this.maxBatch = options.maxBatchRecords ?? DEFAULT_MAX_BATCH_RECORDS
    this.budgetBytes = options.budgetBytes
    this.budgetMode = options.budgetMode ?? 'fail-closed'
    this.dropFraction = options.dropFraction ?? DEFAULT_DROP_FRACTION
    this.reserve = reserve
    this.reserveHeld = reserveHeld
    this.state = reserveHeld ? 'open' : 'disk-full'
    this.tip = meta.head
    this.durable = meta
    this.ackedSeq = meta.ackedSeq
  }

  /**
   * Opens (or creates) the log and checks that its head matches the last stored record. When
   * LevelDB cannot open for want of space, the reserve is given up and the open tried again.
   * @throws AgentError `LOG_LOCKED` (another process has it open), `LOG_OPEN_FAILED`, `LOG_CORRUPT`;
   *   RangeError for a budget below 4 KiB or a bad reserve size.
   */
  static async open (options: RecordLogOptions): Promise<RecordLog> {
    if (options.budgetBytes !== undefined && !(Number.isSafeInteger(options.budgetBytes) && options.budgetBytes >= 4096)) {
      throw new RangeError('budgetBytes must be an integer of at least 4096')
    }
    const writeBufferBytes = options.writeBufferBytes ?? DEFAULT_WRITE_BUFFER_BYTES
    if (!Number.isSafeInteger(writeBufferBytes) || writeBufferBytes < 4096) throw new RangeError('writeBufferBytes must be an integer of at least 4096')
    const reserveBytes = options.reserveBytes ?? defaultReserveBytes(writeBufferBytes)
    if (!Number.isSafeInteger(reserveBytes) || reserveBytes < 0) throw new RangeError('reserveBytes must be a non-negative integer')
    await mkdir(options.dir, { recursive: true }).catch(() => {})
    const reserve = new SpaceReserve(options.dir, reserveBytes)
    let db: Db
    try {
      db = await openDb(options.dir, writeBufferBytes)
    } catch (e) {
      // Never touch the reserve of a log another process holds.
      if (e instanceof AgentError && e.code === 'LOG_LOCKED') throw e
      await reserve.release()
      db = await openDb(options.dir, writeBufferBytes)
    }
    try {
      const meta = await readMeta(db, options.deviceId)
      const held = await reserve.take()
      return new RecordLog(db, options, meta, reserve, held)
    } catch (e) {
      await db.close()
      throw e
    }
  }

  /** The last record written durably. */
  get head (): LogHead { return { ...this.durable.head } }

  /** Seq the next record will get. */
  get nextSeq (): number { return this.tip.seq + 1 }
  /** Boot counter the next boot record gets (what a boot key certification must name). */
  get nextBoot (): number { return this.tip.boot + 1 }

  stats (): LogStats {
    return {
      head: this.head,
      bytes: this.durable.bytes + this.queuedBytes,
      budgetBytes: this.budgetBytes,
      ackedSeq: this.ackedSeq,
      droppedRecords: this.durable.dropped,
      state: this.state,
      reserveHeld: this.reserveHeld
    }
  }

  private get bytes (): number { return this.durable.bytes + this.queuedBytes }

  /**
   * Appends a record whose body `build` makes from its seq (the seq salts tensor commitments).
   * Resolves with the signed record once it is durable or, in fail-open mode on a full disk,
   * once a durable signed gap record declares it dropped.
   * @throws AgentError `LOG_CLOSED`, `LOG_WRITE_FAILED`, `LOG_BUDGET_EXCEEDED`, `LOG_DISK_FULL`,
   *   `LOG_UNAVAILABLE`; ProtocolError `RECORD_INVALID` from a bad body.
   */
  append (build: (seq: number) => RecordBody): Promise<SignedRecord> {
    return this.appendAt(false, build)
  }

  /** Appends a boot record, which advances the boot counter. */
  async appendBoot (body: Omit<Extract<RecordBody, { kind: 'boot' }>, 'kind'>): Promise<SignedRecord> {
    return await this.appendAt(true, () => ({ kind: 'boot', ...body }))
  }

  /**
   * The hot path, synchronous up to the queue (group commit needs every concurrent append queued
   * at once) and with no async frame of its own: an append waiting for its write holds only its
   * record, its queue entry and one promise. Every appended record is alive until its write
   * returns, so each object it holds is copied by each young-generation GC meanwhile (~4.3 KB
   * per in-flight record before, measured with heap snapshots; bench/agent.ts's records part).
   * Anything out of the ordinary (not open, a recovery, the budget) takes {@link appendSlow}.
   * Never throws: a bad body rejects.
   */
  private appendAt (newBoot: boolean, build: (seq: number) => RecordBody): Promise<SignedRecord> {
    if (this.state !== 'open' || this.recovering !== undefined || this.closed) return this.appendSlow(newBoot, build)
    let signed: SignedRecord
    try {
      this.sealDrops()
      signed = this.sign(this.tip.boot + (newBoot ? 1 : 0), build)
    } catch (e) {
      return Promise.reject(e)
    }
    if (this.budgetBytes !== undefined && this.bytes + signed.envelope.byteLength + GAP_RECORD_ALLOWANCE > this.budgetBytes) {
      return this.appendOverBudget(newBoot, build, signed)
    }
    return this.enqueue(this.advance(signed)) as Promise<SignedRecord>
  }

  /** An append when the log is not simply open: waits for it, then appends as {@link appendAt}. */
  private async appendSlow (newBoot: boolean, build: (seq: number) => RecordBody): Promise<SignedRecord> {
    await this.ready()
    if (this.state === 'disk-full' && !(newBoot && this.budgetMode === 'fail-open')) return await this.appendDropped(newBoot, build)
    // A boot record is never dropped (a verifier cannot tell a new boot inside a hole): on a
    // full disk, fail-open writes it on the reserve's space, after sealing the drops before it.
    this.sealDrops()
    const signed = this.sign(this.tip.boot + (newBoot ? 1 : 0), build)
    if (this.budgetBytes !== undefined && this.bytes + signed.envelope.byteLength + GAP_RECORD_ALLOWANCE > this.budgetBytes) {
      return await this.appendOverBudget(newBoot, build, signed)
    }
    return await (this.enqueue(this.advance(signed)) as Promise<SignedRecord>)
  }

  /** `signed` (not yet queued) would pass the budget: makes room, then signs again after the tip. */
  private async appendOverBudget (newBoot: boolean, build: (seq: number) => RecordBody, signed: SignedRecord): Promise<SignedRecord> {
    const budget = this.budgetBytes as number
    await this.makeRoom(signed.envelope.byteLength)
    await this.ready()
    // makeRoom awaited: a write may have failed meanwhile and left the disk full.
    if (this.state === 'disk-full' && !newBoot) return await this.appendDropped(newBoot, build)
    this.sealDrops()
    // Others may have appended (or a gap record was written) meanwhile: sign again after the tip.
    const again = this.sign(this.tip.boot + (newBoot ? 1 : 0), build)
    if (this.bytes + again.envelope.byteLength > budget) {
      // The tip has not moved: refusing costs no seq.
      throw new AgentError('LOG_BUDGET_EXCEEDED', `record log is at its budget of ${budget} bytes (${this.bytes} used)`)
    }
    return await (this.enqueue(this.advance(again)) as Promise<SignedRecord>)
  }

  /**
   * Waits out a recovery, and on a full disk takes the reserve again if there is room now.
   * @throws AgentError `LOG_CLOSED`, `LOG_UNAVAILABLE`
   */
  private async ready (): Promise<void> {
    for (;;) {
      while (this.recovering !== undefined) await this.recovering
      if (this.closed) throw new AgentError('LOG_CLOSED', 'the record log is closed')
      if (this.state === 'open') return
      if (this.state === 'failed') {
        const free = await this.reserve.freeBytes()
        if (this.recovering !== undefined || this.state !== 'failed') continue
        // A reopen needs at most the reserve (LevelDB's recovery); without a reserve, some room.
        if (free < Math.max(this.reserve.bytes, MIN_REOPEN_FREE_BYTES)) {
          throw new AgentError('LOG_UNAVAILABLE', `the record log could not be reopened after a write error: ${(this.failure as Error).message}`, { cause: this.failure })
        }
        // The disk has room again: one more reopen, shared by every caller waiting here.
        this.recovering = this.reopen(this.failure).finally(() => { this.recovering = undefined })
        continue
      }
      this.taking ??= this.reserve.take().finally(() => { this.taking = undefined })
      const held = await this.taking
      if (this.recovering !== undefined) continue
      if (held && this.state === 'disk-full') {
        // No await between the check and the change: drops signed meanwhile are sealed first.
        this.reserveHeld = true
        this.sealDrops()
        this.state = 'open'
      }
      return
    }
  }

  /**
   * On a full disk: fail-closed refuses (no seq spent); fail-open signs the record and leaves it
   * out, to be declared by the next gap record (one gap for all drops of a write).
   */
  private async appendDropped (newBoot: boolean, build: (seq: number) => RecordBody): Promise<SignedRecord> {
    if (this.budgetMode === 'fail-closed') {
      throw new AgentError('LOG_DISK_FULL', `the disk of the record log ${this.dir} is full: records are refused until space is freed`)
    }
    const signed = this.sign(this.tip.boot + (newBoot ? 1 : 0), build)
    this.advance(signed)
    return await new Promise((resolve, reject) => {
      this.unsealed.push({ signed, resolve: resolve as (s: SignedRecord | undefined) => void, reject })
      this.startDrain()
    })
  }

  /** Signs the record after the tip, without moving it: a record that is refused costs no seq. */
  private sign (boot: number, build: (seq: number) => RecordBody): SignedRecord {
    const seq = this.tip.seq + 1
    return signRecord({ deviceId: this.deviceId, boot, seq, timeMs: this.clock(), prev: this.tip.hash, body: build(seq) }, this.signer)
  }

  /** Moves the tip to a record signed by {@link sign}, synchronously after it. */
  private advance (signed: SignedRecord): SignedRecord {
    this.tip = { seq: signed.record.seq, boot: signed.record.boot, hash: signed.hash }
    return signed
  }

  /**
   * Queues one gap record declaring every unsealed drop. They end at the tip (nothing else is
   * signed while there are any), so the gap is signed right after them.
   */
  private sealDrops (): void {
    if (this.unsealed.length === 0) return
    const covers = this.unsealed
    this.unsealed = []
    const first = (covers[0] as Pending).signed as SignedRecord
    const last = (covers.at(-1) as Pending).signed as SignedRecord
    const gap = signRecord({
      deviceId: this.deviceId,
      boot: this.tip.boot,
      seq: this.tip.seq + 1,
      timeMs: this.clock(),
      prev: this.tip.hash,
      body: {
        kind: 'gap', firstSeq: first.record.seq, lastSeq: last.record.seq, beforeHash: first.record.prev, lastHash: last.hash,
        reason: `disk full: ${covers.length} records not stored`
      }
    }, this.signer)
    this.advance(gap)
    this.queuedBytes += gap.envelope.byteLength
    this.queue.push({ signed: gap, dropped: covers.length, covers, resolve: () => {}, reject: () => {} })
  }

  private enqueue (signed: SignedRecord | undefined, extra: Omit<Pending, 'signed' | 'resolve' | 'reject'> = {}): Promise<SignedRecord | undefined> {
    this.queuedBytes += signed?.envelope.byteLength ?? 0
    return new Promise((resolve, reject) => {
      this.queue.push({ signed, ...extra, resolve, reject })
      this.startDrain()
    })
  }

  /**
   * Starts the write loop one turn of the event loop after the first append of a burst, not at
   * it: runs that finish in the same turn (several sessions, a capture and its record, an ack)
   * then share the first write and its sync instead of the first going alone and the rest
   * waiting a whole sync for the second (what halved batches before). A turn costs microseconds
   * beside a sync; the loop keeps taking everything queued while each write was in flight.
   * Once {@link BURST_RECORDS} are queued for that first write it starts as soon as the code that
   * appended them returns, not a turn later: what the turn waited for is there already, and the
   * turn would first run whatever the event loop has pending, the young-generation GC that a
   * burst's live records make expensive among them (most of the time between a burst's last
   * append and its write, measured on bench/agent.ts's records part), which then runs beside
   * the write and its sync instead of before them.
   */
  private startDrain (): void {
    if (this.writing === undefined) {
      this.writing = new Promise<void>(resolve => {
        this.startNow = resolve
        setImmediate(resolve)
      }).then(async () => {
        this.startNow = undefined
        await this.drain()
      })
    } else if (this.startNow !== undefined && this.queue.length >= BURST_RECORDS) {
      this.startNow()
      this.startNow = undefined
    }
  }

  private async drain (): Promise<void> {
    for (;;) {
      this.sealDrops()
      if (this.queue.length === 0) break
      const batch = this.queue.splice(0, this.maxBatch)
      const { next, puts, putBytes } = planCommit(this.durable, batch)
      let deleted = false
      try {
        const dels = await collectDeletions(this.db, batch, this.durable, next, this.deletionEpoch)
        deleted = dels.keys.length > 0
        next.bytes += putBytes - dels.bytes
        await writeCommit(this.db, dels.keys, puts, next, this.sync)
      } catch (cause) {
        await this.recover(cause, batch)
        continue
      }
      this.durable = next
      if (deleted) this.deletionEpoch++
      this.queuedBytes -= putBytes
      for (const p of batch) {
        p.resolve(p.signed)
        for (const c of p.covers ?? []) c.resolve(c.signed)
      }
      if (batch.some(p => p.signed !== undefined)) for (const l of this.listeners) l(next.head)
    }
    this.writing = undefined
  }

  /**
   * A write failed: LevelDB may hold a torn record in its write-ahead log, and anything written
   * after it would be lost at the next recovery. So: close, give up the reserve, reopen, check the
   * head. Fail-open then declares the records of the failed write in a gap record; fail-closed
   * rejects them. Nothing is signed meanwhile (appends wait for `recovering`).
   */
  private async recover (cause: unknown, batch: Pending[]): Promise<void> {
    const failed = [...batch, ...this.queue.splice(0), ...this.unsealed.splice(0)]
    this.queuedBytes = 0
    let done!: () => void
    this.recovering = new Promise(resolve => { done = resolve })
    try {
      await this.reopen(cause)
      const records = failed.flatMap(p => p.covers !== undefined ? p.covers : p.signed !== undefined ? [p] : [])
      // A gap record that failed is not declared by another: a disk that refuses even that is
      // full beyond the reserve, and the records are refused.
      // Nor is a boot record declared dropped: a verifier cannot see a new boot inside a hole.
      const declare = this.state !== 'failed' && this.budgetMode === 'fail-open' && records.length > 0 &&
        !failed.some(p => p.covers !== undefined) && !records.some(p => p.signed?.record.body.kind === 'boot')
      const error = this.state === 'failed'
        ? new AgentError('LOG_UNAVAILABLE', `record log write failed and it could not be reopened: ${(this.failure as Error).message}`, { cause: this.failure })
        : this.state === 'disk-full' || /no space left/i.test(String((cause as Error).message))
          ? new AgentError('LOG_DISK_FULL', `record log write failed on a full disk: ${(cause as Error).message}`, { cause })
          : new AgentError('LOG_WRITE_FAILED', `record log write failed: ${(cause as Error).message}`, { cause })
      if (declare) {
        // The failed records chain from the durable head to the tip: one gap record after them.
        for (const p of failed) if (!records.includes(p)) p.reject(error)
        this.unsealed = records.map(p => ({ signed: p.signed, resolve: p.resolve, reject: p.reject }))
        this.sealDrops()
      } else {
        this.tip = this.durable.head
        for (const p of failed) {
          p.reject(error)
          for (const c of p.covers ?? []) c.reject(error)
        }
      }
    } finally {
      this.recovering = undefined
      done()
    }
  }

  /** Closes the handle, gives up the reserve, reopens and checks that the head is what was durable. */
  private async reopen (cause: unknown): Promise<void> {
    this.ackedSeq = this.durable.ackedSeq
    this.reserveHeld = false
    await this.db.close().catch(() => {})
    // A take in progress would write the file again after it was given up.
    await this.taking?.catch(() => {})
    await this.reserve.release().catch(() => {})
    try {
      const db = await openDb(this.dir, this.writeBufferBytes)
      let meta: Meta
      try {
        meta = await readMeta(db, this.deviceId)
        if (meta.head.seq !== this.durable.head.seq || !equalBytes(meta.head.hash, this.durable.head.hash)) {
          throw new AgentError('LOG_CORRUPT', `record log head after reopening is seq ${meta.head.seq}, not the durable seq ${this.durable.head.seq}`)
        }
      } catch (e) {
        await db.close().catch(() => {})
        throw e
      }
      this.db = db
      this.deletionEpoch++
      this.durable = meta
      this.ackedSeq = meta.ackedSeq
    } catch (e) {
      this.state = 'failed'
      this.failure = e
      return
    }
    this.reserveHeld = await this.reserve.take()
    this.state = this.reserveHeld ? 'open' : 'disk-full'
    this.failure = cause
  }

  /** Calls `listener` after each write that made new records durable; returns an unsubscribe. */
  onDurable (listener: (head: LogHead) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  /** Resolves once every write issued so far has settled. */
  async flush (): Promise<void> {
    while (this.writing !== undefined || this.recovering !== undefined) {
      await this.writing
      await this.recovering
    }
  }

  /**
   * Records with seq in [fromSeq, toSeq], oldest first.
   * @throws AgentError `LOG_UNAVAILABLE` when the log could not be reopened after a write error.
   */
  async * iterate (fromSeq = 0, toSeq = Number.MAX_SAFE_INTEGER): AsyncGenerator<SignedRecord> {
    await this.readable()
    for await (const value of this.db.values({ gte: recordKey(Math.max(0, fromSeq)), lte: recordKey(Math.min(toSeq, 0xff_ffff_ffff_ffff)) })) {
      yield decodeStored(value)
    }
  }

  private async readable (): Promise<void> {
    while (this.recovering !== undefined) await this.recovering
    if (this.state === 'failed') throw new AgentError('LOG_UNAVAILABLE', 'the record log could not be reopened after a write error', { cause: this.failure })
  }

  /** Records with seq in [fromSeq, toSeq], at most `limit`. */
  async range (fromSeq: number, toSeq: number, limit = Infinity): Promise<SignedRecord[]> {
    const out: SignedRecord[] = []
    if (limit <= 0) return out
    for await (const r of this.iterate(fromSeq, toSeq)) {
      out.push(r)
      if (out.length >= limit) break
    }
    return out
  }

  /** The record with this seq, or undefined. */
  async get (seq: number): Promise<SignedRecord | undefined> {
    await this.readable()
    const value = await this.db.get(recordKey(seq))
    return value === undefined ? undefined : decodeStored(value)
  }

  /** Highest seq acknowledged as stored by the gateway (-1 when none). */
  get acked (): number { return this.ackedSeq }

  /** The uplink has handed records up to `seq` to the broker: fail-open never drops those. */
  markSent (seq: number): void { this.sentSeq = Math.max(this.sentSeq, seq) }

  /** The connection is gone: unacknowledged records count as unsent again. */
  resetSent (): void { this.sentSeq = this.ackedSeq }

  /**
   * Records an acknowledgement and, unless `deleteAcked` is false, deletes every acknowledged
   * record still stored (older ones left by an earlier ack included), keeping the head record so
   * the chain can always continue from it.
   * @throws AgentError `LOG_CLOSED`, `LOG_WRITE_FAILED`, `LOG_UNAVAILABLE`
   */
  async acknowledge (seq: number, options: { deleteAcked?: boolean } = {}): Promise<void> {
    if (this.state !== 'open' || this.recovering !== undefined || this.closed) await this.ready()
    if (seq <= this.ackedSeq) return
    const upTo = Math.min(seq, this.tip.seq)
    this.ackedSeq = upTo
    this.sentSeq = Math.max(this.sentSeq, upTo)
    if (!(options.deleteAcked ?? true)) {
      await this.enqueue(undefined, { ackedSeq: upTo })
      return
    }
    // Read what the prune deletes here, beside the writes, not in the write path that every
    // append waits for; the queue uses it only if nothing was deleted meanwhile.
    const scan = await this.scanPrune(upTo)
    await this.enqueue(undefined, { ackedSeq: upTo, pruneThrough: upTo, ...(scan !== undefined ? { scan } : {}) })
  }

  private async scanPrune (upTo: number): Promise<PruneScan | undefined> {
    const epoch = this.deletionEpoch
    const from = this.durable.low
    const through = Math.min(upTo, this.durable.head.seq)
    if (through < from || this.recovering !== undefined) return undefined
    try {
      const entries = await this.db.iterator({ gte: recordKey(from), lte: recordKey(through) }).all()
      return { epoch, from, through, entries: entries.map(([key, value]) => [key, value.byteLength]) }
    } catch {
      // The handle was closed by a recovery meanwhile: the queue reads it itself.
      return undefined
    }
  }

  /**
   * Deletes acknowledged records still kept (retention until anchored) up to `throughSeq`.
   * @throws AgentError `LOG_CLOSED`, `LOG_WRITE_FAILED`, `LOG_UNAVAILABLE`
   */
  async deleteAcknowledged (throughSeq: number): Promise<void> {
    const through = Math.min(throughSeq, this.ackedSeq)
    // Nothing stored at or below `through` but the head: no write at all.
    if (through < this.durable.low || (through >= this.durable.head.seq && this.durable.low === this.durable.head.seq)) return
    if (this.state !== 'open' || this.recovering !== undefined || this.closed) await this.ready()
    await this.enqueue(undefined, { pruneThrough: through })
  }

  /**
   * Frees space at the budget. Fail-closed: acknowledged records only. Fail-open: then the
   * oldest unsent records, never a gap record, declared by one signed gap record written in the
   * same atomic batch as their deletion.
   */
  private async makeRoom (recordBytes: number): Promise<void> {
    while (this.dropping !== undefined) await this.dropping
    const budget = this.budgetBytes as number
    const needed = recordBytes + GAP_RECORD_ALLOWANCE
    if (this.bytes + needed <= budget) return
    this.dropping = (async () => {
      const target = Math.max(Math.ceil(budget * this.dropFraction), needed * 2)
      await this.deleteAcknowledged(this.ackedSeq)
      if (this.budgetMode === 'fail-closed' || this.bytes + needed <= budget) return
      await this.ready()
      if (this.state !== 'open') return
      const start = Math.max(this.ackedSeq, this.sentSeq) + 1
      const plan = await planDrop(this.iterate(start, this.durable.head.seq - 1), start, target)
      if (plan === undefined || this.recovering !== undefined || this.state !== 'open') return
      const { drop, firstSeq, beforeHash, redeclared } = plan
      const last = drop.at(-1) as SignedRecord
      const count = last.record.seq - firstSeq + 1
      const gap = this.sign(this.tip.boot, () => ({
        kind: 'gap', firstSeq, lastSeq: last.record.seq, beforeHash, lastHash: last.hash,
        reason: `disk budget ${budget} bytes: dropped ${count} unsent records`
      }))
      await this.enqueue(this.advance(gap), { dropRanges: [[drop[0]?.record.seq as number, last.record.seq]], dropped: count - redeclared })
    })()
    try { await this.dropping } finally { this.dropping = undefined }
  }

  /** Waits for pending writes and closes the database. The reserve file stays for the next open. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    while (this.dropping !== undefined) await this.dropping.catch(() => {})
    await this.flush()
    if (this.state !== 'failed') await this.db.close()
  }
}

