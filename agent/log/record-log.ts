/**
 * The device's durable record log on LevelDB. `append` assigns seq and prev, signs, and resolves
 * only once the record is on disk; appends that arrive while a write is in flight share the next
 * write (group commit), so many records share one sync. Every mutation (records, acks, budget
 * drops) goes through that one ordered write queue, and the head (seq, boot, hash, bytes) is
 * written in the same atomic batch as the change it describes: a crash leaves all or nothing.
 */
import { Level } from 'level'
import { decodeEnvelope, signRecord, toHex, fromHex, equalBytes, ZERO_HASH, type RecordBody, type SignedRecord, type Signer } from '../../protocol/index.js'
import { AgentError } from '../errors.js'

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
   * At the budget: `fail-closed` refuses appends (LOG_BUDGET_EXCEEDED) until acks free space;
   * `fail-open` drops the oldest unsent records and writes a signed gap record naming them.
   */
  budgetMode?: BudgetMode
  /** Fraction of the budget a fail-open drop frees at least, so drops stay rare. Default 0.05. */
  dropFraction?: number
}

export const DEFAULT_MAX_BATCH_RECORDS = 2048
export const DEFAULT_DROP_FRACTION = 0.05
/** Room kept for the gap record a drop writes. */
const GAP_RECORD_ALLOWANCE = 512

/** Where the log stands: the last record written. `seq` is -1 for an empty log. */
export interface LogHead { seq: number, boot: number, hash: Uint8Array }

export interface LogStats {
  head: LogHead
  /** Bytes of the records in the log (durable or queued). */
  bytes: number
  budgetBytes: number | undefined
  ackedSeq: number
  /** Records dropped by fail-open since the log was created. */
  droppedRecords: number
}

type Op = { type: 'put', key: string, value: Uint8Array } | { type: 'del', key: string }

interface Pending {
  signed: SignedRecord | undefined
  /** Extra operations written in the same batch (deletions of a drop or an ack). */
  ops: Op[]
  /** Change in stored bytes once written. */
  bytesDelta: number
  ackedSeq?: number
  dropped?: number
  resolve: (s: SignedRecord | undefined) => void
  reject: (e: unknown) => void
}

const RECORD_PREFIX = 'r/'
const HEAD_KEY = 'm/head'

/** LevelDB key of a record: fixed-width hex keeps lexicographic order equal to seq order. */
export function recordKey (seq: number): string {
  return RECORD_PREFIX + seq.toString(16).padStart(14, '0')
}

interface Meta { head: LogHead, bytes: number, ackedSeq: number, dropped: number }

export class RecordLog {
  private readonly db: Level<string, Uint8Array>
  private readonly deviceId: string
  private readonly signer: Signer
  private readonly clock: () => number
  private readonly sync: boolean
  private readonly maxBatch: number
  private readonly budgetBytes: number | undefined
  private readonly budgetMode: BudgetMode
  private readonly dropFraction: number
  /** Last record handed out (may not be durable yet). */
  private tip: LogHead
  /** What is on disk. */
  private durable: Meta
  /** Bytes including queued records and queued deletions. */
  private bytes: number
  private ackedSeq: number
  /** Highest seq the uplink has handed to the broker on this connection: never dropped. */
  private sentSeq = -1
  private queue: Pending[] = []
  private writing: Promise<void> | undefined
  private dropping: Promise<void> | undefined
  private closed = false
  private readonly listeners = new Set<(head: LogHead) => void>()

  private constructor (db: Level<string, Uint8Array>, options: RecordLogOptions, meta: Meta) {
    this.db = db
    this.deviceId = options.deviceId
    this.signer = options.signer
    this.clock = options.clock ?? Date.now
    this.sync = options.syncWrites ?? true
    this.maxBatch = options.maxBatchRecords ?? DEFAULT_MAX_BATCH_RECORDS
    this.budgetBytes = options.budgetBytes
    this.budgetMode = options.budgetMode ?? 'fail-closed'
    this.dropFraction = options.dropFraction ?? DEFAULT_DROP_FRACTION
    this.tip = meta.head
    this.durable = meta
    this.bytes = meta.bytes
    this.ackedSeq = meta.ackedSeq
  }

  /**
   * Opens (or creates) the log and checks that its head matches the last stored record.
   * @throws AgentError `LOG_LOCKED` (another process has it open), `LOG_OPEN_FAILED`, `LOG_CORRUPT`;
   *   RangeError for a budget below 4 KiB.
   */
  static async open (options: RecordLogOptions): Promise<RecordLog> {
    if (options.budgetBytes !== undefined && !(Number.isSafeInteger(options.budgetBytes) && options.budgetBytes >= 4096)) {
      throw new RangeError('budgetBytes must be an integer of at least 4096')
    }
    const db = new Level<string, Uint8Array>(options.dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
    try {
      await db.open()
    } catch (e) {
      const locked = (e as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED'
      throw new AgentError(locked ? 'LOG_LOCKED' : 'LOG_OPEN_FAILED', `cannot open record log ${options.dir}: ${(e as Error).message}`, { cause: e })
    }
    try {
      return new RecordLog(db, options, await readMeta(db, options.deviceId))
    } catch (e) {
      await db.close()
      throw e
    }
  }

  /** The last record written durably. */
  get head (): LogHead { return { ...this.durable.head } }

  /** Seq the next record will get. */
  get nextSeq (): number { return this.tip.seq + 1 }

  stats (): LogStats {
    return { head: this.head, bytes: this.bytes, budgetBytes: this.budgetBytes, ackedSeq: this.ackedSeq, droppedRecords: this.durable.dropped }
  }

  /**
   * Appends a record whose body `build` makes from its seq (the seq salts tensor commitments).
   * Resolves with the signed record once it is durable.
   * @throws AgentError `LOG_CLOSED`, `LOG_WRITE_FAILED`, `LOG_BUDGET_EXCEEDED`; ProtocolError
   *   `RECORD_INVALID` from a bad body.
   */
  async append (build: (seq: number) => RecordBody): Promise<SignedRecord> {
    return await this.appendAt(false, build)
  }

  /** Appends a boot record, which advances the boot counter. */
  async appendBoot (body: Omit<Extract<RecordBody, { kind: 'boot' }>, 'kind'>): Promise<SignedRecord> {
    return await this.appendAt(true, () => ({ kind: 'boot', ...body }))
  }

  private async appendAt (newBoot: boolean, build: (seq: number) => RecordBody): Promise<SignedRecord> {
    if (this.closed) throw new AgentError('LOG_CLOSED', 'the record log is closed')
    let signed = this.sign(this.tip.boot + (newBoot ? 1 : 0), build)
    if (this.budgetBytes !== undefined && this.bytes + signed.envelope.byteLength + GAP_RECORD_ALLOWANCE > this.budgetBytes) {
      await this.makeRoom(signed.envelope.byteLength)
      if (this.closed) throw new AgentError('LOG_CLOSED', 'the record log is closed')
      // Others may have appended (or a gap record was written) meanwhile: sign again after the tip.
      signed = this.sign(this.tip.boot + (newBoot ? 1 : 0), build)
      if (this.bytes + signed.envelope.byteLength > this.budgetBytes) {
        // The tip has not moved: refusing costs no seq.
        throw new AgentError('LOG_BUDGET_EXCEEDED', `record log is at its budget of ${this.budgetBytes} bytes (${this.bytes} used)`)
      }
    }
    return await (this.enqueue(this.advance(signed), [], 0) as Promise<SignedRecord>)
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

  private enqueue (signed: SignedRecord | undefined, ops: Op[], bytesDelta: number, extra: { ackedSeq?: number, dropped?: number } = {}): Promise<SignedRecord | undefined> {
    const size = signed?.envelope.byteLength ?? 0
    this.bytes += size + bytesDelta
    return new Promise((resolve, reject) => {
      this.queue.push({ signed, ops, bytesDelta: bytesDelta + size, ackedSeq: extra.ackedSeq, dropped: extra.dropped, resolve, reject })
      if (this.writing === undefined) this.writing = this.drain()
    })
  }

  private async drain (): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch)
      const next: Meta = { ...this.durable }
      const ops: Op[] = []
      for (const p of batch) {
        for (const op of p.ops) ops.push(op)
        if (p.signed !== undefined) {
          ops.push({ type: 'put', key: recordKey(p.signed.record.seq), value: p.signed.envelope })
          next.head = { seq: p.signed.record.seq, boot: p.signed.record.boot, hash: p.signed.hash }
        }
        next.bytes += p.bytesDelta
        if (p.ackedSeq !== undefined) next.ackedSeq = Math.max(next.ackedSeq, p.ackedSeq)
        if (p.dropped !== undefined) next.dropped += p.dropped
      }
      try {
        // A chained batch: abstract-level's array form costs several times more per operation,
        // and every record is one operation.
        const batch = this.db.batch()
        for (const op of ops) {
          if (op.type === 'put') batch.put(op.key, op.value)
          else batch.del(op.key)
        }
        batch.put(HEAD_KEY, encodeMeta(next))
        await batch.write({ sync: this.sync })
      } catch (cause) {
        // Records queued behind this batch chain onto it: none of them can be kept. Rewind to
        // what is on disk so the chain stays whole, and fail them all.
        const failed = [...batch, ...this.queue.splice(0)]
        this.tip = this.durable.head
        this.bytes = this.durable.bytes
        this.ackedSeq = this.durable.ackedSeq
        const error = new AgentError('LOG_WRITE_FAILED', `record log write failed: ${(cause as Error).message}`, { cause })
        for (const p of failed) p.reject(error)
        continue
      }
      this.durable = next
      for (const p of batch) p.resolve(p.signed)
      if (batch.some(p => p.signed !== undefined)) for (const l of this.listeners) l(next.head)
    }
    this.writing = undefined
  }

  /** Calls `listener` after each write that made new records durable; returns an unsubscribe. */
  onDurable (listener: (head: LogHead) => void): () => void {
    this.listeners.add(listener)
    return () => { this.listeners.delete(listener) }
  }

  /** Resolves once every write issued so far has settled. */
  async flush (): Promise<void> {
    while (this.writing !== undefined) await this.writing
  }

  /** Records with seq in [fromSeq, toSeq], oldest first. */
  async * iterate (fromSeq = 0, toSeq = Number.MAX_SAFE_INTEGER): AsyncGenerator<SignedRecord> {
    for await (const value of this.db.values({ gte: recordKey(Math.max(0, fromSeq)), lte: recordKey(Math.min(toSeq, 0xff_ffff_ffff_ffff)) })) {
      yield decodeStored(value)
    }
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
   * Records an acknowledgement and, unless `deleteAcked` is false, deletes the acknowledged
   * records, keeping the head record so the chain can always continue from it.
   */
  async acknowledge (seq: number, options: { deleteAcked?: boolean } = {}): Promise<void> {
    if (this.closed) throw new AgentError('LOG_CLOSED', 'the record log is closed')
    if (seq <= this.ackedSeq) return
    const upTo = Math.min(seq, this.tip.seq)
    const from = this.ackedSeq + 1
    this.ackedSeq = upTo
    this.sentSeq = Math.max(this.sentSeq, upTo)
    const ops: Op[] = []
    let freed = 0
    if (options.deleteAcked ?? true) {
      // The tip record stays: the next record's prev must be checkable after a restart.
      for await (const [key, value] of this.db.iterator({ gte: recordKey(Math.max(from, 0)), lte: recordKey(upTo) })) {
        if (key === recordKey(this.tip.seq)) continue
        ops.push({ type: 'del', key })
        freed += value.byteLength
      }
    }
    await this.enqueue(undefined, ops, -freed, { ackedSeq: upTo })
  }

  /** Deletes acknowledged records still kept (retention until anchored), oldest first. */
  async deleteAcknowledged (throughSeq: number): Promise<void> {
    const ops: Op[] = []
    let freed = 0
    for await (const [key, value] of this.db.iterator({ lte: recordKey(Math.min(throughSeq, this.ackedSeq)) })) {
      if (key === recordKey(this.tip.seq)) continue
      ops.push({ type: 'del', key })
      freed += value.byteLength
    }
    if (ops.length > 0) await this.enqueue(undefined, ops, -freed)
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
      const drop: SignedRecord[] = []
      let freed = 0
      const durableSeq = this.durable.head.seq
      for await (const r of this.iterate(Math.max(this.ackedSeq, this.sentSeq) + 1, durableSeq - 1)) {
        if (r.record.body.kind === 'gap') {
          if (drop.length > 0) break
          continue
        }
        if (drop.length > 0 && r.record.seq !== (drop.at(-1) as SignedRecord).record.seq + 1) break
        drop.push(r)
        freed += r.envelope.byteLength
        if (freed >= target) break
      }
      if (drop.length === 0) return
      const first = drop[0] as SignedRecord
      const last = drop.at(-1) as SignedRecord
      const gap = this.sign(this.tip.boot, () => ({
        kind: 'gap', firstSeq: first.record.seq, lastSeq: last.record.seq, beforeHash: first.record.prev, lastHash: last.hash,
        reason: `disk budget ${budget} bytes: dropped ${drop.length} unsent records`
      }))
      const ops: Op[] = drop.map(r => ({ type: 'del', key: recordKey(r.record.seq) }))
      await this.enqueue(this.advance(gap), ops, -freed, { dropped: drop.length })
    })()
    try { await this.dropping } finally { this.dropping = undefined }
  }

  /** Waits for pending writes and closes the database. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    while (this.dropping !== undefined) await this.dropping.catch(() => {})
    await this.flush()
    await this.db.close()
  }
}

function encodeMeta (m: Meta): Uint8Array {
  return Buffer.from(JSON.stringify({ seq: m.head.seq, boot: m.head.boot, hash: toHex(m.head.hash), bytes: m.bytes, acked: m.ackedSeq, dropped: m.dropped }))
}

function decodeStored (value: Uint8Array): SignedRecord {
  try {
    return decodeEnvelope(value)
  } catch (cause) {
    throw new AgentError('LOG_CORRUPT', `stored record is unreadable: ${(cause as Error).message}`, { cause })
  }
}

async function readMeta (db: Level<string, Uint8Array>, deviceId: string): Promise<Meta> {
  const raw = await db.get(HEAD_KEY)
  if (raw === undefined) {
    // No head: the log must be empty too, or records were written by something else.
    for await (const _ of db.keys({ gte: RECORD_PREFIX, lt: 'r0', limit: 1 })) {
      throw new AgentError('LOG_CORRUPT', 'record log has records but no head')
    }
    return { head: { seq: -1, boot: 0, hash: ZERO_HASH }, bytes: 0, ackedSeq: -1, dropped: 0 }
  }
  let meta: Meta
  try {
    const h = JSON.parse(Buffer.from(raw).toString('utf8')) as { seq: number, boot: number, hash: string, bytes: number, acked: number, dropped: number }
    for (const n of [h.seq, h.boot, h.bytes, h.acked, h.dropped]) if (!Number.isSafeInteger(n)) throw new TypeError('bad head numbers')
    meta = { head: { seq: h.seq, boot: h.boot, hash: fromHex(h.hash) }, bytes: h.bytes, ackedSeq: h.acked, dropped: h.dropped }
  } catch (cause) {
    throw new AgentError('LOG_CORRUPT', 'record log head is unreadable', { cause })
  }
  const last = await db.get(recordKey(meta.head.seq))
  if (last !== undefined) {
    const signed = decodeStored(last)
    if (!equalBytes(signed.hash, meta.head.hash) || signed.record.deviceId !== deviceId) {
      throw new AgentError('LOG_CORRUPT', `record log head (seq ${meta.head.seq}) does not match the stored record or device`)
    }
  }
  return meta
}
