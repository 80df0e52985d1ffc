/**
 * The gateway's durable state (the interface, and its LevelDB implementation): stored records with their place in a batch, records
 * waiting ahead of a device's tip, device tips, batch leaves and sealed batches, and quarantined
 * input. Writes go through one group-commit writer, so a crash leaves whole write batches only,
 * in the order they were issued (docs/GATEWAY.md §Storage).
 */
import { randomBytes } from 'node:crypto'
import type { Level } from 'level'
import { FatalWriteLevel, openLevel } from '../../common/level.js'
import { cborHeadLength, decodeCanonical, encodeCanonicalDirect, writeCborHead, type CborValue, type CertifiedKey } from '../../protocol/index.js'
import { GatewayError } from '../errors.js'

/** A device's verified chain tip: every record up to `seq` is stored (here or at a peer gateway). */
export interface DeviceTip {
  seq: number
  /** Hash of record `seq` (sha256 of its envelope). */
  hash: Uint8Array
  /** Its boot counter; undefined when the tip was learned from a peer's ack (acks do not carry it). */
  boot: number | undefined
}

/** What the store keeps per device. */
export interface StoredDeviceState {
  deviceId: string
  tip: DeviceTip | undefined
  /** Device time of the last record seen (any outcome), Unix ms; 0 for never. */
  lastSeenMs: number
  /** Records this gateway stored. */
  stored: number
  /** Records of this device quarantined. */
  quarantined: number
  /** Every record up to this seq is in a confirmed batch (here or, by their acks, at peers); -1 for none. */
  anchoredSeq: number
  /** TPM-rooted device: its latest certified boot key (docs/PROTOCOL.md §13), so a restart can check that boot's records. */
  certified?: CertifiedKey
}

/**
 * A device's tip in the tip tree (PROTOCOL.md §7.10): its latest record this gateway put in a
 * batch, and what the tip was when the batch before that one was sealed (what a restart needs to
 * rebuild the last sealed batch's tree).
 */
export interface StoredTreeTip {
  deviceId: string
  seq: number
  /** Record hash (sha256 of the envelope). */
  hash: Uint8Array
  /** Batch the record is a leaf of. */
  batchId: number
  /** The tip as of batches below `batchId`; undefined when the device had none there. */
  before: { seq: number, hash: Uint8Array } | undefined
}

/** One leaf of a batch, in leaf order. */
export interface LeafEntry {
  deviceId: string
  seq: number
  /** RFC 9162 leaf hash of the record envelope. */
  leafHash: Uint8Array
  /** Device time of the record, Unix ms. */
  timeMs: number
  /** Seq of the record this one was linked after (seq - 1, or lower across an honest gap; -1 at genesis). */
  afterSeq: number
}

/** A sealed batch as written at sealing time. */
export interface StoredBatch {
  id: number
  size: number
  root: Uint8Array
  firstRecordTimeMs: number
  lastRecordTimeMs: number
  /** C2SP checkpoint text of the batch, signed as a note by the log key when the gateway has one (PROTOCOL.md §7.8). */
  checkpoint: string
  /** sha256 of the unsigned checkpoint text, signature lines excluded (anchored as the metadata hash, §7.4). */
  metadataHash: Uint8Array
  sealedAtMs: number
}

/** Where a stored record is: its batch, its leaf index, and its bytes. */
export interface StoredRecord {
  batchId: number
  index: number
  envelope: Uint8Array
}

/** A signed pruning statement (PROTOCOL.md §12.1) and the batch whose checkpoint commits it. */
export interface StoredPruning {
  deviceId: string
  lastSeq: number
  /** The statement envelope, CBOR [statement bytes, signature]. */
  envelope: Uint8Array
  /** The sealed batch whose checkpoint carries the statement's hash; 0 while waiting for the next seal. */
  committedInBatch: number
}

/** One piece of rejected input. */
export interface QuarantineEntry {
  /** Gateway time of receipt, Unix ms. */
  timeMs: number
  reason: string
  topic: string
  deviceId: string | undefined
  seq: number | undefined
  detail: string
  /** The offending bytes, cut at the configured limit. */
  raw: Uint8Array
  /** Length of the offending bytes before cutting. */
  rawBytes: number
}

/**
 * One write. A record's put may carry what the ingest side already knows of it, decoded: `record`
 * (the value before encoding) and `leaf` (its leaf hash, record hash and device time). The LevelDB
 * store writes `value` only; the PostgreSQL store uses them to skip decoding and to keep the hashes
 * beside the record, so its sequencer never decodes or hashes an envelope.
 */
export type StoreOp =
  | { type: 'put', key: string, value: Uint8Array, record?: StoredRecord, leaf?: RecordLeafInfo }
  | { type: 'del', key: string }

/** What the ingest side computed of a record that the batch needs. */
export interface RecordLeafInfo {
  /** RFC 9162 leaf hash of the envelope. */
  leafHash: Uint8Array
  /** sha256 of the envelope (the device tip's hash). */
  recordHash: Uint8Array
  /** Device time, Unix ms. */
  timeMs: number
}

const STORE_VERSION = 1
/**
 * LevelDB's write buffer (memtable) for the gateway store: 16 MiB, not LevelDB's 4 MiB. Each full
 * buffer becomes a level-0 table that compaction merges down; a larger one makes fewer, larger
 * tables and less merging. In the gateway bench's later rounds the threads beside the main one and
 * the verify workers (LevelDB's compaction, mostly) took 8-13 µs per stored record against 13-24
 * with 4 MiB (docs/GATEWAY.md §Benchmarks). Costs up to two buffers of memory (the one filling and
 * the one being written out) and up to one buffer of log to replay when the store reopens.
 */
const STORE_WRITE_BUFFER_BYTES = 16 * 1024 * 1024
const SEQ_HEX = 14
const ID_HEX = 12

/** Fixed-width hex keeps lexicographic key order equal to numeric order. */
function hex (n: number, width: number): string {
  return n.toString(16).padStart(width, '0')
}

export const keys = {
  device: (d: string) => `d/${d}`,
  record: (d: string, seq: number) => `r/${d}/${hex(seq, SEQ_HEX)}`,
  pending: (d: string, seq: number) => `p/${d}/${hex(seq, SEQ_HEX)}`,
  leaf: (batch: number, index: number) => `l/${hex(batch, ID_HEX)}/${hex(index, ID_HEX)}`,
  batch: (batch: number) => `b/${hex(batch, ID_HEX)}`,
  treeTip: (d: string) => `t/${d}`,
  quarantine: (timeMs: number, nonce: string) => `q/${hex(timeMs, ID_HEX)}/${nonce}`,
  /** A pruning statement of a device, by the last seq it prunes (docs/GATEWAY.md §Retention). */
  pruning: (d: string, lastSeq: number) => `s/${d}/${hex(lastSeq, SEQ_HEX)}`,
  openBatch: 'm/open-batch',
  foldedThrough: 'm/folded-through',
  version: 'm/version'
} as const

// Device ids never contain '/' (DEVICE_ID_PATTERN), so `<prefix>/<device>/` bounds one device.
function range (prefix: string): { gte: string, lt: string } {
  return { gte: prefix, lt: prefix + '\xff' }
}

// ---------------------------------------------------------------------------------------------
// Codecs. Values are canonical CBOR arrays with a version first. The folder is ours, but a torn
// disk or a wrong folder must end in STORE_CORRUPT, not in a TypeError deep inside ingest.
// Written by encodeCanonicalDirect (the same bytes as encodeCanonical, a fraction of its CPU):
// a stored record costs two values (record, leaf) and its share of its device's tip and state.

function corrupt (what: string, cause?: unknown): never {
  throw new GatewayError('STORE_CORRUPT', `stored ${what} is malformed`, { cause })
}

function decodeArray (bytes: Uint8Array, what: string, length: number | number[]): CborValue[] {
  let v: CborValue
  try {
    v = decodeCanonical(bytes, { maxBytes: 1024 * 1024, maxDepth: 2 })
  } catch (e) {
    corrupt(what, e)
  }
  if (!Array.isArray(v) || !(Array.isArray(length) ? length.includes(v.length) : v.length === length) || v[0] !== STORE_VERSION) corrupt(what)
  return v as CborValue[]
}

function int (v: CborValue | undefined, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) corrupt(what)
  return v
}

function bytes (v: CborValue | undefined, what: string, length?: number): Uint8Array {
  if (!(v instanceof Uint8Array) || (length !== undefined && v.byteLength !== length)) corrupt(what)
  return v
}

function text (v: CborValue | undefined, what: string): string {
  if (typeof v !== 'string') corrupt(what)
  return v
}

export function encodeDeviceState (s: StoredDeviceState): Uint8Array {
  const t = s.tip
  const c = s.certified
  return encodeCanonicalDirect([STORE_VERSION, s.deviceId, t === undefined ? 0 : t.seq + 1, t?.hash ?? null,
    t?.boot === undefined ? 0 : t.boot + 1, s.lastSeenMs, s.stored, s.quarantined, s.anchoredSeq + 1,
    // A tenth field only for a TPM-rooted device: other devices' states keep their bytes.
    ...(c !== undefined ? [[c.boot, c.recordKey, c.registryKey, c.validFromMs, c.validUntilMs]] : [])])
}

export function decodeDeviceState (b: Uint8Array): StoredDeviceState {
  const v = decodeArray(b, 'device state', [9, 10])
  const tipSeq = int(v[2], 'device tip') - 1
  const boot = int(v[4], 'device boot') - 1
  const raw = v[9]
  if (raw !== undefined && (!Array.isArray(raw) || raw.length !== 5)) corrupt('device certified key')
  const c = raw as readonly CborValue[] | undefined
  return {
    ...(c !== undefined
      ? { certified: { boot: int(c[0], 'certified boot'), recordKey: bytes(c[1], 'certified key', 32), registryKey: bytes(c[2], 'certified registry key', 32), validFromMs: int(c[3], 'certified from'), validUntilMs: int(c[4], 'certified until') } }
      : {}),
    deviceId: text(v[1], 'device id'),
    tip: tipSeq < 0 ? undefined : { seq: tipSeq, hash: bytes(v[3], 'device tip hash', 32), boot: boot < 0 ? undefined : boot },
    lastSeenMs: int(v[5], 'device last seen'),
    stored: int(v[6], 'device stored'),
    quarantined: int(v[7], 'device quarantined'),
    anchoredSeq: int(v[8], 'device anchored') - 1
  }
}

export function encodeTreeTip (t: StoredTreeTip): Uint8Array {
  return encodeCanonicalDirect([STORE_VERSION, t.deviceId, t.seq, t.hash, t.batchId, t.before === undefined ? 0 : t.before.seq + 1, t.before?.hash ?? null])
}

export function decodeTreeTip (b: Uint8Array): StoredTreeTip {
  const v = decodeArray(b, 'tree tip', 7)
  const beforeSeq = int(v[5], 'tree tip before') - 1
  return {
    deviceId: text(v[1], 'tree tip device'),
    seq: int(v[2], 'tree tip seq'),
    hash: bytes(v[3], 'tree tip hash', 32),
    batchId: int(v[4], 'tree tip batch'),
    before: beforeSeq < 0 ? undefined : { seq: beforeSeq, hash: bytes(v[6], 'tree tip before hash', 32) }
  }
}

export function encodeStoredRecord (r: StoredRecord): Uint8Array {
  if (!uintOk(r.batchId) || !uintOk(r.index) || !(r.envelope instanceof Uint8Array)) return encodeCanonicalDirect([STORE_VERSION, r.batchId, r.index, r.envelope])
  const n = r.envelope.byteLength
  const out = Buffer.allocUnsafe(1 + 1 + cborHeadLength(r.batchId) + cborHeadLength(r.index) + cborHeadLength(n) + n)
  out[0] = 0x84
  out[1] = STORE_VERSION
  let o = writeCborHead(out, 2, 0, r.batchId)
  o = writeCborHead(out, o, 0, r.index)
  o = writeCborHead(out, o, 2, n)
  out.set(r.envelope, o)
  return asView(out)
}

// The two values written per stored record, laid out by hand: encodeCanonicalDirect walks a value
// array (type checks, a lone-surrogate test and a byte count per string, a measuring pass) and
// cost ~1.5 µs per value on the gateway's main thread. The same bytes for every input (test/gateway/store.test.ts
// holds them to it); anything outside the plain case (a non-ASCII id, an integer it would refuse)
// takes encodeCanonicalDirect, with its errors.
function uintOk (n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0
}

/** A plain Uint8Array view of a Buffer from its pool (what encodeCanonicalDirect returns). */
function asView (b: Buffer): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
}

export function decodeStoredRecord (b: Uint8Array): StoredRecord {
  const v = decodeArray(b, 'record', 4)
  return { batchId: int(v[1], 'record batch'), index: int(v[2], 'record index'), envelope: bytes(v[3], 'record envelope') }
}

export function encodeLeaf (l: LeafEntry): Uint8Array {
  const d = l.deviceId
  const after = l.afterSeq + 1
  // Byte count equal to the length: ASCII only (no lone surrogate, nothing of two bytes or more).
  if (typeof d !== 'string' || Buffer.byteLength(d, 'utf8') !== d.length || !uintOk(l.seq) || !(l.leafHash instanceof Uint8Array) || !uintOk(l.timeMs) || !uintOk(after)) {
    return encodeCanonicalDirect([STORE_VERSION, l.deviceId, l.seq, l.leafHash, l.timeMs, l.afterSeq + 1])
  }
  const h = l.leafHash.byteLength
  const out = Buffer.allocUnsafe(1 + 1 + cborHeadLength(d.length) + d.length + cborHeadLength(l.seq) + cborHeadLength(h) + h + cborHeadLength(l.timeMs) + cborHeadLength(after))
  out[0] = 0x86
  out[1] = STORE_VERSION
  let o = writeCborHead(out, 2, 3, d.length)
  for (let i = 0; i < d.length; i++) out[o + i] = d.charCodeAt(i)
  o = writeCborHead(out, o + d.length, 0, l.seq)
  o = writeCborHead(out, o, 2, h)
  out.set(l.leafHash, o)
  o = writeCborHead(out, o + h, 0, l.timeMs)
  writeCborHead(out, o, 0, after)
  return asView(out)
}

export function decodeLeaf (b: Uint8Array): LeafEntry {
  const v = decodeArray(b, 'leaf', 6)
  return {
    deviceId: text(v[1], 'leaf device'),
    seq: int(v[2], 'leaf seq'),
    leafHash: bytes(v[3], 'leaf hash', 32),
    timeMs: int(v[4], 'leaf time'),
    afterSeq: int(v[5], 'leaf after') - 1
  }
}

export function encodeBatch (b: StoredBatch): Uint8Array {
  return encodeCanonicalDirect([STORE_VERSION, b.id, b.size, b.root, b.firstRecordTimeMs, b.lastRecordTimeMs, b.checkpoint, b.metadataHash, b.sealedAtMs])
}

export function decodeBatch (b: Uint8Array): StoredBatch {
  const v = decodeArray(b, 'batch', 9)
  return {
    id: int(v[1], 'batch id'),
    size: int(v[2], 'batch size'),
    root: bytes(v[3], 'batch root', 32),
    firstRecordTimeMs: int(v[4], 'batch first time'),
    lastRecordTimeMs: int(v[5], 'batch last time'),
    checkpoint: text(v[6], 'batch checkpoint'),
    metadataHash: bytes(v[7], 'batch metadata hash', 32),
    sealedAtMs: int(v[8], 'batch sealed at')
  }
}

export function encodePruning (p: StoredPruning): Uint8Array {
  return encodeCanonicalDirect([STORE_VERSION, p.deviceId, p.lastSeq, p.envelope, p.committedInBatch])
}

export function decodePruning (b: Uint8Array): StoredPruning {
  const a = decodeArray(b, 'pruning', 5)
  return { deviceId: text(a[1], 'pruning'), lastSeq: int(a[2], 'pruning'), envelope: bytes(a[3], 'pruning'), committedInBatch: int(a[4], 'pruning') }
}

export function encodeQuarantine (q: QuarantineEntry): Uint8Array {
  return encodeCanonicalDirect([STORE_VERSION, q.timeMs, q.reason, q.topic, q.deviceId ?? null, q.seq === undefined ? null : q.seq, q.detail, q.raw, q.rawBytes])
}

export function decodeQuarantine (b: Uint8Array): QuarantineEntry {
  const v = decodeArray(b, 'quarantine entry', 9)
  return {
    timeMs: int(v[1], 'quarantine time'),
    reason: text(v[2], 'quarantine reason'),
    topic: text(v[3], 'quarantine topic'),
    deviceId: v[4] === null ? undefined : text(v[4], 'quarantine device'),
    seq: v[5] === null ? undefined : int(v[5], 'quarantine seq'),
    detail: text(v[6], 'quarantine detail'),
    raw: bytes(v[7], 'quarantine raw'),
    rawBytes: int(v[8], 'quarantine raw length')
  }
}

/** A small integer as stored (store metadata). */
export function encodeInt (n: number): Uint8Array {
  return encodeCanonicalDirect([STORE_VERSION, n])
}

export function decodeInt (b: Uint8Array, what: string): number {
  return int(decodeArray(b, what, 2)[1], what)
}

/**
 * Typed writes of the ingest side: each op names what it writes, so callers never spell keys or
 * pick codecs themselves.
 */
export const storeOps = {
  /** A record waiting ahead of its device's tip. */
  putPending: (deviceId: string, seq: number, envelope: Uint8Array): StoreOp => ({ type: 'put', key: keys.pending(deviceId, seq), value: envelope }),
  delPending: (deviceId: string, seq: number): StoreOp => ({ type: 'del', key: keys.pending(deviceId, seq) }),
  /** A record linked to its device's chain, with its place in a batch. */
  putRecord: (deviceId: string, seq: number, r: StoredRecord): StoreOp => ({ type: 'put', key: keys.record(deviceId, seq), value: encodeStoredRecord(r), record: r }),
  putDeviceState: (s: StoredDeviceState): StoreOp => ({ type: 'put', key: keys.device(s.deviceId), value: encodeDeviceState(s) }),
  /** A device's tip in the tip tree, written with the leaf that moves it. */
  putTreeTip: (t: StoredTreeTip): StoreOp => ({ type: 'put', key: keys.treeTip(t.deviceId), value: encodeTreeTip(t) }),
  putFoldedThrough: (batchId: number): StoreOp => ({ type: 'put', key: keys.foldedThrough, value: encodeInt(batchId) }),
  /** Removes a stored record (pruning: docs/GATEWAY.md §Retention); its leaf hash stays in its batch. */
  delRecord: (deviceId: string, seq: number): StoreOp => ({ type: 'del', key: keys.record(deviceId, seq) }),
  putPruning: (p: StoredPruning): StoreOp => ({ type: 'put', key: keys.pruning(p.deviceId, p.lastSeq), value: encodePruning(p) })
} as const

// ---------------------------------------------------------------------------------------------

/** What the writer asks its owner for right before each write (e.g. device states as they stand). */
export interface WriteHook {
  /** Ops to add to the batch about to be written, and what to run once it is durable. */
  beforeWrite: () => { ops: StoreOp[], afterDurable?: () => void }
}

/**
 * The gateway's store as the rest of the gateway sees it: LevelDB (embedded, the default) or
 * PostgreSQL (postgres-store.ts, the scale-out tier). Writes are typed ops through one group-commit
 * writer; `afterDurable` callbacks run only once the ops are committed.
 */
export interface GatewayStore {
  readonly isOpen: boolean
  /** Number of write batches so far (for tests and metrics). */
  readonly writes: number
  /** Operations and bytes waiting for the next write. */
  readonly queuedOps: number
  readonly queuedBytes: number
  addWriteHook: (hook: WriteHook) => void
  enqueue: (ops: StoreOp[], afterDurable?: () => void) => void
  quarantineOp: (entry: QuarantineEntry) => StoreOp
  quarantineKey: (timeMs: number) => string
  touch: () => void
  flush: () => Promise<void>
  getRecord: (deviceId: string, seq: number) => Promise<StoredRecord | undefined>
  getDeviceState: (deviceId: string) => Promise<StoredDeviceState | undefined>
  treeTips: () => AsyncGenerator<StoredTreeTip>
  prunings: (deviceId?: string) => Promise<StoredPruning[]>
  getBatch: (id: number) => Promise<StoredBatch | undefined>
  batches: (fromId?: number) => AsyncGenerator<StoredBatch>
  leaves: (id: number) => Promise<LeafEntry[]>
  devices: () => AsyncGenerator<StoredDeviceState>
  pending: () => AsyncGenerator<{ deviceId: string, seq: number, envelope: Uint8Array }>
  recordsFrom: (deviceId: string, fromSeq: number, limit: number, maxBytes?: number) => Promise<Array<{ seq: number, envelope: Uint8Array }>>
  recordSeqs: (deviceId: string) => AsyncGenerator<number>
  countQuarantined: () => Promise<number>
  pruneQuarantined: (count: number) => Promise<number>
  quarantinePage: (limit: number, maxBytes: number, before?: string) => Promise<{ items: QuarantineEntry[], next: string | null }>
  quarantined: (limit: number) => Promise<QuarantineEntry[]>
  getInt: (key: string) => Promise<number | undefined>
  putInt: (key: string, n: number) => StoreOp
  close: () => Promise<void>
}

/** The LevelDB store under its old name, so `GatewayStore.open(…)` keeps working (the type is the interface). */
export const GatewayStore = { open: async (options: GatewayStoreOptions): Promise<LevelGatewayStore> => await LevelGatewayStore.open(options) }

/** Options both stores take. */
export interface StoreWriterOptions {
  /** Called once when a write fails for good: the gateway cannot go on consistently after that. */
  onFatal?: (error: GatewayError) => void
  /** Called when an after-durable callback throws (a bug). Default: rethrown asynchronously. */
  onCallbackError?: (error: unknown) => void
}

/**
 * The group-commit writer both stores share: operations queued while a write is in flight share
 * the next one; subclasses say how one batch of ops is written atomically.
 */
export abstract class GroupCommitStore {
  private readonly onFatal: (error: GatewayError) => void
  private readonly onCallbackError: (error: unknown) => void
  private ops: StoreOp[] = []
  private opsBytes = 0
  private callbacks: Array<() => void> = []
  private writing: Promise<void> | undefined
  private scheduled = false
  private failure: GatewayError | undefined
  protected closed = false
  private readonly hooks: WriteHook[] = []
  private readonly nonce = randomBytes(4).toString('hex')
  private counter = 0
  /** Number of write batches so far (for tests and metrics). */
  writes = 0

  protected constructor (options: StoreWriterOptions) {
    this.onFatal = options.onFatal ?? (() => {})
    this.onCallbackError = options.onCallbackError ?? ((e) => { queueMicrotask(() => { throw e }) })
  }

  /** Writes `ops` atomically and durably (in order; the last op on a key wins). */
  protected abstract writeOps (ops: StoreOp[]): Promise<void>

  /** The error a failed write becomes (GatewayError as is, others STORE_WRITE_FAILED). */
  protected writeFailure (cause: unknown): GatewayError {
    if (cause instanceof GatewayError) return cause
    return new GatewayError('STORE_WRITE_FAILED', `gateway store write failed: ${(cause as Error).message}`, { cause })
  }

  /** Registers a hook called before each write (the ingest's device states, the tip tree's tips), in the order registered. */
  addWriteHook (hook: WriteHook): void {
    this.hooks.push(hook)
  }

  /**
   * Queues operations for the next write batch; `afterDurable` runs once they are on disk.
   * @throws GatewayError `STORE_CLOSED`, or the write failure that stopped the store.
   */
  enqueue (ops: StoreOp[], afterDurable?: () => void): void {
    if (this.failure !== undefined) throw this.failure
    if (this.closed) throw new GatewayError('STORE_CLOSED', 'the gateway store is closed')
    for (const op of ops) this.push(op)
    if (afterDurable !== undefined) this.callbacks.push(afterDurable)
    this.schedule()
  }

  private push (op: StoreOp): void {
    this.ops.push(op)
    this.opsBytes += op.key.length + (op.type === 'put' ? op.value.byteLength : 0)
  }

  /** The put of a new quarantine entry (key unique within this store). */
  quarantineOp (entry: QuarantineEntry): StoreOp {
    return { type: 'put', key: this.quarantineKey(entry.timeMs), value: encodeQuarantine(entry) }
  }

  /** Asks for a write soon even with nothing queued (the hook may have something). */
  touch (): void {
    if (this.failure === undefined && !this.closed) this.schedule()
  }

  /** A key for a new quarantine entry, unique within this store. */
  quarantineKey (timeMs: number): string {
    return keys.quarantine(timeMs, `${this.nonce}${hex(this.counter++, 8)}`)
  }

  /** Number of operations waiting for the next write. */
  get queuedOps (): number {
    return this.ops.length
  }

  /** Bytes (keys and values) of the operations waiting for the next write. */
  get queuedBytes (): number {
    return this.opsBytes
  }

  private schedule (): void {
    if (this.scheduled || this.writing !== undefined) return
    this.scheduled = true
    // Let the rest of this turn of the event loop (more messages) join the batch.
    setImmediate(() => {
      this.scheduled = false
      this.startDrain()
    })
  }

  private startDrain (): void {
    if (this.writing !== undefined) return
    // Cleared in a later microtask than the assignment, even when drain() finds nothing to do.
    this.writing = this.drain().finally(() => {
      this.writing = undefined
      if (this.failure === undefined && !this.closed && (this.ops.length > 0 || this.callbacks.length > 0)) this.schedule()
    })
  }

  private async drain (): Promise<void> {
    for (;;) {
      const ops = this.ops
      const callbacks = this.callbacks
      for (const hook of this.hooks) {
        const hooked = hook.beforeWrite()
        for (const op of hooked.ops) ops.push(op)
        if (hooked.afterDurable !== undefined) callbacks.push(hooked.afterDurable)
      }
      if (ops.length === 0 && callbacks.length === 0) break
      this.ops = []
      this.opsBytes = 0
      this.callbacks = []
      if (ops.length > 0) {
        try {
          await this.writeOps(ops)
        } catch (cause) {
          this.failure = this.writeFailure(cause)
          this.onFatal(this.failure)
          return
        }
        this.writes++
      }
      for (const cb of callbacks) {
        try {
          cb()
        } catch (e) {
          // A callback's bug must not stall the writer (every later write waits on this loop).
          this.onCallbackError(e)
        }
      }
    }
  }

  /**
   * Resolves once everything queued so far is durable.
   * @throws GatewayError `STORE_WRITE_FAILED` when a write failed.
   */
  async flush (): Promise<void> {
    for (;;) {
      if (this.failure !== undefined) throw this.failure
      if (this.writing !== undefined) { await this.writing; continue }
      for (const hook of this.hooks) {
        const hooked = hook.beforeWrite()
        for (const op of hooked.ops) this.push(op)
        if (hooked.afterDurable !== undefined) this.callbacks.push(hooked.afterDurable)
      }
      if (this.ops.length === 0 && this.callbacks.length === 0) return
      this.startDrain()
    }
  }

  /** Removes queued operations that match (a write found them invalid before they were written). */
  protected dropQueued (drop: (op: StoreOp) => boolean): void {
    const kept = this.ops.filter(op => !drop(op))
    if (kept.length === this.ops.length) return
    this.ops = kept
    this.opsBytes = kept.reduce((n, op) => n + op.key.length + (op.type === 'put' ? op.value.byteLength : 0), 0)
  }

  /** flush() unless a write already failed (closing must not throw that failure again). */
  protected async flushIfHealthy (): Promise<void> {
    if (this.failure === undefined) await this.flush()
  }
}

/** Options of the LevelDB store. */
export interface GatewayStoreOptions extends StoreWriterOptions {
  /** LevelDB folder (created when missing). */
  dir: string
  /** fsync every write batch. Default true; group commit amortises it. */
  syncWrites?: boolean
}

/** The LevelDB store (embedded, single process). Reads are direct; writes go through the group-commit writer. */
export class LevelGatewayStore extends GroupCommitStore implements GatewayStore {
  private readonly db: Level<string, Uint8Array>
  private readonly writer: FatalWriteLevel<Uint8Array>
  private readonly sync: boolean

  private constructor (db: Level<string, Uint8Array>, options: GatewayStoreOptions) {
    super(options)
    this.db = db
    this.writer = new FatalWriteLevel(db, cause => this.writeFailure(cause))
    this.sync = options.syncWrites ?? true
  }

  /**
   * Opens (or creates) the store.
   * @throws GatewayError `STORE_LOCKED` (another process has it open), `STORE_OPEN_FAILED`, `STORE_CORRUPT`.
   */
  static async open (options: GatewayStoreOptions): Promise<LevelGatewayStore> {
    const db = await openLevel<Uint8Array>(options.dir, { keyEncoding: 'utf8', valueEncoding: 'view' }, (e, locked) =>
      new GatewayError(locked ? 'STORE_LOCKED' : 'STORE_OPEN_FAILED', `cannot open gateway store ${options.dir}: ${(e as Error).message}`, { cause: e }),
    // Envelopes are hashes and signatures: Snappy saved ~nothing and cost the compaction thread CPU on every flush and compaction.
    { compression: false, writeBufferBytes: STORE_WRITE_BUFFER_BYTES })
    try {
      const version = await db.get(keys.version)
      if (version === undefined) await db.put(keys.version, encodeInt(STORE_VERSION), { sync: true })
      else if (decodeInt(version, 'store version') !== STORE_VERSION) throw new GatewayError('STORE_CORRUPT', 'unsupported gateway store version')
    } catch (e) {
      await db.close()
      throw e
    }
    return new LevelGatewayStore(db, options)
  }

  get isOpen (): boolean {
    return !this.closed && this.db.status === 'open'
  }

  protected async writeOps (ops: StoreOp[]): Promise<void> {
    // Chained: abstract-level's array form costs several times more per operation, and
    // each record is a few of them.
    await this.writer.chained(batch => {
      for (const op of ops) {
        if (op.type === 'put') batch.put(op.key, op.value)
        else batch.del(op.key)
      }
    }, { sync: this.sync })
  }

  // ------------------------------------------------------------------------------ reads

  async getRecord (deviceId: string, seq: number): Promise<StoredRecord | undefined> {
    const v = await this.db.get(keys.record(deviceId, seq))
    return v === undefined ? undefined : decodeStoredRecord(v)
  }

  async getBatch (id: number): Promise<StoredBatch | undefined> {
    const v = await this.db.get(keys.batch(id))
    return v === undefined ? undefined : decodeBatch(v)
  }

  /** Sealed batches with id >= fromId, in id order. */
  async * batches (fromId = 1): AsyncGenerator<StoredBatch> {
    for await (const v of this.db.values({ gte: keys.batch(fromId), lt: 'b/\xff' })) yield decodeBatch(v)
  }

  /** The leaves of batch `id` written so far, in leaf order. */
  async leaves (id: number): Promise<LeafEntry[]> {
    const out: LeafEntry[] = []
    for await (const v of this.db.values(range(`l/${hex(id, ID_HEX)}/`))) out.push(decodeLeaf(v))
    return out
  }

  async * devices (): AsyncGenerator<StoredDeviceState> {
    for await (const v of this.db.values(range('d/'))) yield decodeDeviceState(v)
  }

  /** Every device's tip in the tip tree (PROTOCOL.md §7.10), in key order. */
  async * treeTips (): AsyncGenerator<StoredTreeTip> {
    for await (const v of this.db.values(range('t/'))) yield decodeTreeTip(v)
  }

  /** Every waiting record: [deviceId, seq, envelope]. */
  async * pending (): AsyncGenerator<{ deviceId: string, seq: number, envelope: Uint8Array }> {
    for await (const [k, v] of this.db.iterator(range('p/'))) {
      const parts = k.split('/')
      if (parts.length !== 3) corrupt('pending key')
      yield { deviceId: parts[1] as string, seq: parseInt(parts[2] as string, 16), envelope: v }
    }
  }

  /**
   * Up to `limit` stored records of one device with seq >= fromSeq, ascending; stops once
   * `maxBytes` of envelopes are read (at least one record), so a page's memory is bounded.
   */
  async recordsFrom (deviceId: string, fromSeq: number, limit: number, maxBytes = Number.POSITIVE_INFINITY): Promise<Array<{ seq: number, envelope: Uint8Array }>> {
    const out: Array<{ seq: number, envelope: Uint8Array }> = []
    let bytes = 0
    for await (const [k, v] of this.db.iterator({ gte: keys.record(deviceId, fromSeq), lt: `r/${deviceId}/\xff`, limit })) {
      const envelope = decodeStoredRecord(v).envelope
      out.push({ seq: parseInt(k.slice(k.lastIndexOf('/') + 1), 16), envelope })
      bytes += envelope.byteLength
      if (bytes >= maxBytes) break
    }
    return out
  }

  /** Stored record seqs of one device, ascending (for listings and tests). */
  async * recordSeqs (deviceId: string): AsyncGenerator<number> {
    for await (const k of this.db.keys(range(`r/${deviceId}/`))) yield parseInt(k.slice(k.lastIndexOf('/') + 1), 16)
  }

  /** One device's state, or undefined for a device never seen. */
  async getDeviceState (deviceId: string): Promise<StoredDeviceState | undefined> {
    const v = await this.db.get(keys.device(deviceId))
    return v === undefined ? undefined : decodeDeviceState(v)
  }

  /** Pruning statements: of one device, or of every device; by device, then last seq ascending. */
  async prunings (deviceId?: string): Promise<StoredPruning[]> {
    const out: StoredPruning[] = []
    for await (const v of this.db.values(range(deviceId === undefined ? 's/' : `s/${deviceId}/`))) out.push(decodePruning(v))
    return out
  }

  /** Number of quarantine entries (a scan of their keys: at start only). */
  async countQuarantined (): Promise<number> {
    let n = 0
    for await (const _ of this.db.keys(range('q/'))) n++
    return n
  }

  /** Deletes the `count` oldest quarantine entries (through the writer). Returns how many it found. */
  async pruneQuarantined (count: number): Promise<number> {
    if (count <= 0) return 0
    const ops: StoreOp[] = []
    for await (const k of this.db.keys({ ...range('q/'), limit: count })) ops.push({ type: 'del', key: k })
    if (ops.length > 0) this.enqueue(ops)
    return ops.length
  }

  /**
   * A page of quarantine entries, newest first, older than the cursor `before` (from an earlier
   * page); stops at `limit` entries or once `maxBytes` of raw input are read (at least one).
   * `next` is the cursor of the following page, null after the oldest entry.
   */
  async quarantinePage (limit: number, maxBytes: number, before?: string): Promise<{ items: QuarantineEntry[], next: string | null }> {
    const items: QuarantineEntry[] = []
    let bytes = 0
    let lastKey: string | undefined
    let full = false
    const r = range('q/')
    // The cursor is the key without its `q/` prefix, with `-` for its inner `/` (URL-friendly).
    const lt = before === undefined ? r.lt : `q/${before.replace('-', '/')}`
    for await (const [k, v] of this.db.iterator({ gte: r.gte, lt, reverse: true, limit })) {
      const entry = decodeQuarantine(v)
      items.push(entry)
      lastKey = k
      bytes += entry.raw.byteLength
      if (bytes >= maxBytes) { full = true; break }
    }
    if (items.length >= limit) full = true
    return { items, next: full && lastKey !== undefined ? lastKey.slice(2).replace('/', '-') : null }
  }

  /** Quarantine entries, newest first. */
  async quarantined (limit: number): Promise<QuarantineEntry[]> {
    const out: QuarantineEntry[] = []
    for await (const v of this.db.values({ ...range('q/'), reverse: true, limit })) out.push(decodeQuarantine(v))
    return out
  }

  async getInt (key: string): Promise<number | undefined> {
    const v = await this.db.get(key)
    return v === undefined ? undefined : decodeInt(v, key)
  }

  /** The put of a small integer (store metadata). */
  putInt (key: string, n: number): StoreOp {
    return { type: 'put', key, value: encodeInt(n) }
  }

  /** Flushes what is queued and closes the database. Safe to call twice. */
  async close (): Promise<void> {
    if (this.closed) return
    try {
      await this.flushIfHealthy()
    } finally {
      this.closed = true
      await this.db.close()
    }
  }
}
