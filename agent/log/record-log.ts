/**
 * The device's durable record log on LevelDB. `append` assigns seq and prev, signs, and resolves
 * only once the record is on disk; appends that arrive while a write is in flight share the next
 * write (group commit), so many records share one sync. The head (seq, boot, hash) is written in
 * the same atomic batch as the records it covers, so a crash leaves both or neither.
 */
import { Level } from 'level'
import { decodeEnvelope, signRecord, toHex, fromHex, equalBytes, ZERO_HASH, type RecordBody, type SignedRecord, type Signer } from '../../protocol/index.js'
import { AgentError } from '../errors.js'

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
}

export const DEFAULT_MAX_BATCH_RECORDS = 2048

/** Where the log stands: the last record written. `seq` is -1 for an empty log. */
export interface LogHead { seq: number, boot: number, hash: Uint8Array }

interface Pending { signed: SignedRecord, resolve: (s: SignedRecord) => void, reject: (e: unknown) => void }

const RECORD_PREFIX = 'r/'
const HEAD_KEY = 'm/head'
const ACK_KEY = 'm/acked'

/** LevelDB key of a record: fixed-width hex keeps lexicographic order equal to seq order. */
export function recordKey (seq: number): string {
  return RECORD_PREFIX + seq.toString(16).padStart(14, '0')
}

export class RecordLog {
  private readonly db: Level<string, Uint8Array>
  private readonly deviceId: string
  private readonly signer: Signer
  private readonly clock: () => number
  private readonly sync: boolean
  private readonly maxBatch: number
  /** Last record handed out (may not be durable yet). */
  private tip: LogHead
  /** Last record known durable. */
  private durable: LogHead
  private queue: Pending[] = []
  private writing: Promise<void> | undefined
  private closed = false

  private constructor (db: Level<string, Uint8Array>, options: RecordLogOptions, head: LogHead) {
    this.db = db
    this.deviceId = options.deviceId
    this.signer = options.signer
    this.clock = options.clock ?? Date.now
    this.sync = options.syncWrites ?? true
    this.maxBatch = options.maxBatchRecords ?? DEFAULT_MAX_BATCH_RECORDS
    this.tip = head
    this.durable = head
  }

  /**
   * Opens (or creates) the log and checks that its head matches the last stored record.
   * @throws AgentError `LOG_LOCKED` (another process has it open), `LOG_OPEN_FAILED`, `LOG_CORRUPT`.
   */
  static async open (options: RecordLogOptions): Promise<RecordLog> {
    const db = new Level<string, Uint8Array>(options.dir, { keyEncoding: 'utf8', valueEncoding: 'view' })
    try {
      await db.open()
    } catch (e) {
      const locked = (e as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED'
      throw new AgentError(locked ? 'LOG_LOCKED' : 'LOG_OPEN_FAILED', `cannot open record log ${options.dir}: ${(e as Error).message}`, { cause: e })
    }
    try {
      const head = await readHead(db, options.deviceId)
      return new RecordLog(db, options, head)
    } catch (e) {
      await db.close()
      throw e
    }
  }

  /** The last record written durably. */
  get head (): LogHead { return { ...this.durable } }

  /** Seq the next record will get. */
  get nextSeq (): number { return this.tip.seq + 1 }

  /**
   * Appends a record whose body `build` makes from its seq (the seq salts tensor commitments).
   * Resolves with the signed record once it is durable.
   * @throws AgentError `LOG_CLOSED`, `LOG_WRITE_FAILED`; ProtocolError `RECORD_INVALID` from a bad body.
   */
  async append (build: (seq: number) => RecordBody): Promise<SignedRecord> {
    return await this.appendAt(this.tip.boot, build)
  }

  /** Appends a boot record, which advances the boot counter. */
  async appendBoot (body: Omit<Extract<RecordBody, { kind: 'boot' }>, 'kind'>): Promise<SignedRecord> {
    return await this.appendAt(this.tip.boot + 1, () => ({ kind: 'boot', ...body }))
  }

  private async appendAt (boot: number, build: (seq: number) => RecordBody): Promise<SignedRecord> {
    if (this.closed) throw new AgentError('LOG_CLOSED', 'the record log is closed')
    const seq = this.tip.seq + 1
    // Everything that can throw happens before the tip moves, so a bad body costs no seq.
    const signed = signRecord({ deviceId: this.deviceId, boot, seq, timeMs: this.clock(), prev: this.tip.hash, body: build(seq) }, this.signer)
    this.tip = { seq, boot, hash: signed.hash }
    return await new Promise<SignedRecord>((resolve, reject) => {
      this.queue.push({ signed, resolve, reject })
      if (this.writing === undefined) this.writing = this.drain()
    })
  }

  private async drain (): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.maxBatch)
      const last = (batch[batch.length - 1] as Pending).signed.record
      const head: LogHead = { seq: last.seq, boot: last.boot, hash: (batch[batch.length - 1] as Pending).signed.hash }
      const ops = batch.map(p => ({ type: 'put' as const, key: recordKey(p.signed.record.seq), value: p.signed.envelope }))
      try {
        await this.db.batch([...ops, { type: 'put', key: HEAD_KEY, value: encodeHead(head) }], { sync: this.sync })
      } catch (cause) {
        // Records queued behind this batch chain onto it: none of them can be kept. Rewind to
        // the last durable record so the chain stays whole, and fail them all.
        const failed = [...batch, ...this.queue.splice(0)]
        this.tip = this.durable
        const error = new AgentError('LOG_WRITE_FAILED', `record log write failed: ${(cause as Error).message}`, { cause })
        for (const p of failed) p.reject(error)
        continue
      }
      this.durable = head
      for (const p of batch) p.resolve(p.signed)
    }
    this.writing = undefined
  }

  /** Resolves once every append issued so far has settled. */
  async flush (): Promise<void> {
    while (this.writing !== undefined) await this.writing
  }

  /** Records with seq in [fromSeq, toSeq], oldest first. */
  async * iterate (fromSeq = 0, toSeq = Number.MAX_SAFE_INTEGER): AsyncGenerator<SignedRecord> {
    for await (const value of this.db.values({ gte: recordKey(fromSeq), lte: recordKey(Math.min(toSeq, 0xff_ffff_ffff_ffff)) })) {
      yield decodeStored(value)
    }
  }

  /** Records with seq in [fromSeq, toSeq], at most `limit`. */
  async range (fromSeq: number, toSeq: number, limit = Infinity): Promise<SignedRecord[]> {
    const out: SignedRecord[] = []
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

  /** Highest seq the gateway acknowledged (-1 when none). */
  async ackedSeq (): Promise<number> {
    const v = await this.db.get(ACK_KEY)
    return v === undefined ? -1 : Number(Buffer.from(v).toString('utf8'))
  }

  /**
   * Records an acknowledgement and deletes the acknowledged records, keeping the head record so
   * the chain can always continue from it.
   */
  async acknowledge (seq: number, options: { deleteAcked?: boolean } = {}): Promise<void> {
    const current = await this.ackedSeq()
    if (seq <= current) return
    const upTo = Math.min(seq, this.durable.seq)
    const batch = this.db.batch().put(ACK_KEY, Buffer.from(String(upTo)))
    if (options.deleteAcked ?? true) {
      // The head record stays: the next record's prev must be checkable after a restart.
      const lastToDelete = upTo === this.durable.seq ? upTo - 1 : upTo
      for await (const key of this.db.keys({ gte: recordKey(Math.max(current + 1, 0)), lte: recordKey(Math.max(lastToDelete, 0)) })) {
        if (key !== recordKey(this.durable.seq)) batch.del(key)
      }
    }
    await batch.write({ sync: this.sync })
  }

  /** Waits for pending writes and closes the database. */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.flush()
    await this.db.close()
  }
}

function encodeHead (head: LogHead): Uint8Array {
  return Buffer.from(JSON.stringify({ seq: head.seq, boot: head.boot, hash: toHex(head.hash) }))
}

function decodeStored (value: Uint8Array): SignedRecord {
  try {
    return decodeEnvelope(value)
  } catch (cause) {
    throw new AgentError('LOG_CORRUPT', `stored record is unreadable: ${(cause as Error).message}`, { cause })
  }
}

async function readHead (db: Level<string, Uint8Array>, deviceId: string): Promise<LogHead> {
  const raw = await db.get(HEAD_KEY)
  if (raw === undefined) {
    // No head: the log must be empty too, or records were written by something else.
    for await (const _ of db.keys({ gte: RECORD_PREFIX, lt: 'r0', limit: 1 })) {
      throw new AgentError('LOG_CORRUPT', 'record log has records but no head')
    }
    return { seq: -1, boot: 0, hash: ZERO_HASH }
  }
  let head: LogHead
  try {
    const h = JSON.parse(Buffer.from(raw).toString('utf8')) as { seq: number, boot: number, hash: string }
    if (!Number.isSafeInteger(h.seq) || !Number.isSafeInteger(h.boot)) throw new TypeError('bad head numbers')
    head = { seq: h.seq, boot: h.boot, hash: fromHex(h.hash) }
  } catch (cause) {
    throw new AgentError('LOG_CORRUPT', 'record log head is unreadable', { cause })
  }
  const last = await db.get(recordKey(head.seq))
  if (last !== undefined) {
    const signed = decodeStored(last)
    if (!equalBytes(signed.hash, head.hash) || signed.record.deviceId !== deviceId) {
      throw new AgentError('LOG_CORRUPT', `record log head (seq ${head.seq}) does not match the stored record or device`)
    }
  }
  return head
}
