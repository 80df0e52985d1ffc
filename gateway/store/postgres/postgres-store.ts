/**
 * The gateway store on PostgreSQL (the scale-out tier, docs/GATEWAY.md §PostgreSQL tier): the same
 * typed ops as the LevelDB store, written as rows of typed tables in one transaction per group
 * commit. Records are unique on (device, seq) and shared by every ingest process; device views and
 * waiting records belong to one process (its node name). A lost connection is retried, never fatal.
 */
import pg from 'pg'
import { decodeEnvelope, equalBytes, hashLeaf, sha256 } from '../../../protocol/index.js'
import { GatewayError } from '../../errors.js'
import {
  GroupCommitStore, decodeInt, encodeInt, decodeBatch, decodePruning, type StoredTreeTip, type StoredPruning, decodeDeviceState, decodeLeaf, decodeQuarantine, decodeStoredRecord,
  type GatewayStore, type LeafEntry, type QuarantineEntry, type StoreOp, type StoreWriterOptions, type StoredBatch,
  type StoredDeviceState, type StoredRecord
} from '../gateway-store.js'
import { migrate } from './migrations.js'

/** The sequencer's fencing token, checked inside every write of batches and leaves (lease.ts). */
export interface Fence {
  name: string
  holder: string
  token: number
}

export interface PostgresStoreOptions extends StoreWriterOptions {
  /** postgres:// connection URL. */
  url: string
  /** This process's name: device views and waiting records are kept per node. */
  node: string
  /** Connections in the pool. Default 4. */
  poolSize?: number
  /**
   * When set, a write that touches batches or leaves first checks this lease is still held with
   * this token (LEASE_LOST otherwise, which is fatal to the writer): a stale sequencer cannot write.
   */
  fence?: () => Fence | undefined
  /** Called when a write waits for the database to come back (once per outage), and when it is back. */
  onOutage?: (error: GatewayError | undefined) => void
  /** Longest pause between write retries while the database is down, ms. Default 2000. */
  retryMaxMs?: number
}

export const DEFAULT_PG_POOL_SIZE = 4

/**
 * Another process stored a different record at (device, seq) first (a fork, or a replay with
 * another body): ours was not written, nor anything of that device after it in the same write.
 */
export interface RecordConflict {
  deviceId: string
  seq: number
  /** The envelope this process tried to store (the loser). */
  envelope: Uint8Array
  /** The envelope the database holds at (device, seq). */
  storedEnvelope: Uint8Array
}

/** A device's tip in the tip tree as of a batch (PROTOCOL.md §7.10). */
export interface TipRow {
  deviceId: string
  seq: number
  /** Record hash (sha256 of the envelope). */
  hash: Uint8Array
}

/** What the sequencer's seal callback gets: the batch's leaves with their record hashes, and the statements to commit. */
export interface SealInput {
  id: number
  leaves: Array<LeafEntry & { recordHash: Uint8Array }>
  prunings: StoredPruning[]
}

/** What it returns: the sealed batch, and the tips it moved (written in the same transaction). */
export interface SealOutput {
  batch: StoredBatch
  tips: TipRow[]
}

/** Pruning statements one seal commits at most (retention/pruner.ts MAX_PRUNINGS_PER_SEAL). */
const PRUNINGS_PER_SEAL = 8

/** Errors that say "the database is not reachable now", as opposed to "this write is wrong". */
export function isTransientPgError (e: unknown): boolean {
  const err = e as { code?: string, message?: string } | undefined
  const code = err?.code ?? ''
  if (code.startsWith('08') || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300') return true
  if (['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH'].includes(code)) return true
  const m = err?.message ?? ''
  return /Connection terminated|connection timeout|Client has encountered a connection error|terminating connection/i.test(m)
}

/**
 * Errors that abort a transaction only for it to be run again: PostgreSQL broke a deadlock with
 * another session by rolling this one back (40P01), or a serialization failure (40001). Ingest
 * processes of a tier write the same tables at once, so it happens under load.
 */
function isRetryableTxError (e: unknown): boolean {
  const code = (e as { code?: string } | undefined)?.code
  return code === '40P01' || code === '40001'
}

/** How many times in a row a write aborted by isRetryableTxError is run again before it fails for good. */
const TX_RETRIES = 50

const guarded = new WeakSet<pg.PoolClient>()

/**
 * A client from the pool with an 'error' listener: a checked-out client whose server goes away
 * (a database restart) emits 'error', which would otherwise crash the process. The query in
 * flight fails on its own and the client is released as broken.
 */
export async function connectClient (pool: pg.Pool): Promise<pg.PoolClient> {
  const client = await pool.connect()
  if (!guarded.has(client)) {
    guarded.add(client)
    client.on('error', () => {})
  }
  return client
}

const buf = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength)
const u8 = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength)
const num = (v: string | number | null): number => v === null ? -1 : Number(v)

/**
 * Byte strings as one binary parameter with 0-based offsets and lengths (length 0: absent). A
 * bytea[] parameter travels as hex text — twice the bytes, hex work on both ends, about 4 % of an
 * ingest process's CPU in a profile — while a Buffer parameter travels as is.
 */
function packed (items: ReadonlyArray<Uint8Array | undefined>): { blob: Buffer, offsets: number[], lengths: number[] } {
  let total = 0
  for (const it of items) total += it?.byteLength ?? 0
  const blob = Buffer.allocUnsafe(total)
  const offsets: number[] = []
  const lengths: number[] = []
  let at = 0
  for (const it of items) {
    const n = it?.byteLength ?? 0
    offsets.push(at)
    lengths.push(n)
    if (it !== undefined) blob.set(it, at)
    at += n
  }
  return { blob, offsets, lengths }
}

type Table = 'records' | 'devices' | 'pending' | 'leaves' | 'batches' | 'quarantine' | 'meta' | 'prunings' | 'kv'

function tableOf (key: string): Table {
  switch (key.slice(0, 2)) {
    case 'r/': return 'records'
    case 'd/': return 'devices'
    case 'p/': return 'pending'
    case 'l/': return 'leaves'
    case 'b/': return 'batches'
    case 'q/': return 'quarantine'
    case 'm/': return 'meta'
    case 's/': return 'prunings'
    default: return 'kv'
  }
}

/** `r/<device>/<hex seq>` → [device, seq]. */
function deviceSeq (key: string): [string, number] {
  const i = key.lastIndexOf('/')
  return [key.slice(2, i), parseInt(key.slice(i + 1), 16)]
}

/** Meta keys every node shares (the sequencer's); the rest are per node. */
const SHARED_META = new Set(['m/open-batch', 'm/version'])

export class PostgresGatewayStore extends GroupCommitStore implements GatewayStore {
  readonly pool: pg.Pool
  private readonly o: PostgresStoreOptions
  private outage = false
  /**
   * Told about records that lost the race on (device, seq) to a different record (the ingest
   * pipeline quarantines them and resets the device to the stored chain). Called before the
   * write's after-durable callbacks run.
   */
  onRecordConflict: ((conflicts: RecordConflict[]) => void) | undefined

  private constructor (pool: pg.Pool, options: PostgresStoreOptions) {
    super(options)
    this.pool = pool
    this.o = options
  }

  /**
   * Connects, applies pending migrations, and returns the store.
   * @throws GatewayError `STORE_OPEN_FAILED` (no connection), `STORE_MIGRATION_FAILED`.
   */
  static async open (options: PostgresStoreOptions): Promise<PostgresGatewayStore> {
    const pool = new pg.Pool({ connectionString: options.url, max: options.poolSize ?? DEFAULT_PG_POOL_SIZE, connectionTimeoutMillis: 10_000 })
    // An idle client losing its server (a database restart) must not crash the process: the next
    // query on the pool gets a fresh connection, and writes retry.
    pool.on('error', () => {})
    let client: pg.PoolClient
    try {
      client = await connectClient(pool)
    } catch (e) {
      await pool.end().catch(() => {})
      throw new GatewayError('STORE_OPEN_FAILED', `cannot connect to the gateway database: ${(e as Error).message}`, { cause: e })
    }
    try {
      await migrate(client)
    } catch (e) {
      client.release()
      await pool.end().catch(() => {})
      if (isTransientPgError(e)) throw new GatewayError('STORE_OPEN_FAILED', `cannot migrate the gateway database: ${(e as Error).message}`, { cause: e })
      throw new GatewayError('STORE_MIGRATION_FAILED', `gateway database migration failed: ${(e as Error).message}`, { cause: e })
    }
    client.release()
    return new PostgresGatewayStore(pool, options)
  }

  get isOpen (): boolean {
    return !this.closed && !this.outage
  }

  protected async writeOps (ops: StoreOp[]): Promise<void> {
    let pauseMs = 50
    let aborted = 0
    for (;;) {
      try {
        const conflicts = await this.writeOnce(ops)
        if (this.outage) { this.outage = false; this.o.onOutage?.(undefined) }
        if (conflicts === undefined) return
        // Rolled back: write again without the losing records, anything of their devices linked
        // after them (here or still queued) and their device states (they name the loser as tip).
        const first = new Map<string, number>()
        for (const c of conflicts) first.set(c.deviceId, Math.min(c.seq, first.get(c.deviceId) ?? Infinity))
        const forked = (op: StoreOp): boolean => {
          if (op.key.startsWith('d/')) return first.has(op.key.slice(2))
          if (!op.key.startsWith('r/')) return false
          const [d, seq] = deviceSeq(op.key)
          const from = first.get(d)
          return from !== undefined && seq >= from
        }
        ops = ops.filter(op => !forked(op))
        this.dropQueued(forked)
        this.onRecordConflict?.(conflicts)
        continue
      } catch (e) {
        // Every statement is an upsert or insert-if-absent, so retrying a transaction whose
        // COMMIT reply was lost, or that PostgreSQL rolled back to break a deadlock, writes
        // nothing twice.
        if (isRetryableTxError(e) && !this.closed && ++aborted <= TX_RETRIES) {
          // The other transaction goes on meanwhile; a short pause with jitter, so that two
          // writers caught in the same cycle do not meet again at once.
          await new Promise(resolve => setTimeout(resolve, Math.min(5 * aborted, 100) * (0.5 + Math.random())))
          continue
        }
        if (!isTransientPgError(e) || this.closed) throw e
        if (!this.outage) {
          this.outage = true
          this.o.onOutage?.(new GatewayError('STORE_UNAVAILABLE', `gateway database unreachable, retrying writes: ${(e as Error).message}`, { cause: e }))
        }
        await new Promise(resolve => setTimeout(resolve, pauseMs))
        pauseMs = Math.min(pauseMs * 2, this.o.retryMaxMs ?? 2000)
      }
    }
  }

  /** One transaction; returns the conflicts (rolled back) when a record lost to a different one. */
  private async writeOnce (ops: StoreOp[]): Promise<RecordConflict[] | undefined> {
    // Last op on a key wins, as in a LevelDB batch; then one statement per table and kind.
    const last = new Map<string, StoreOp>()
    for (const op of ops) { last.delete(op.key); last.set(op.key, op) }
    const by = new Map<string, StoreOp[]>()
    let sequencer = false
    for (const op of last.values()) {
      const t = tableOf(op.key)
      if (t === 'leaves' || t === 'batches' || (t === 'meta' && SHARED_META.has(op.key))) sequencer = true
      const k = `${t}/${op.type}`
      let list = by.get(k)
      if (list === undefined) by.set(k, list = [])
      list.push(op)
    }
    const client = await connectClient(this.pool)
    let broken = false
    try {
      await client.query('BEGIN')
      const fence = sequencer ? this.o.fence?.() : undefined
      if (sequencer && this.o.fence !== undefined) await checkFence(client, fence)
      for (const [k, list] of by) {
        const conflicts = await this.apply(client, k, list)
        if (conflicts !== undefined && conflicts.length > 0) {
          await client.query('ROLLBACK')
          return conflicts
        }
      }
      await client.query('COMMIT')
      return undefined
    } catch (e) {
      broken = isTransientPgError(e)
      if (!broken) await client.query('ROLLBACK').catch(() => {})
      throw e
    } finally {
      client.release(broken)
    }
  }

  private async apply (c: pg.PoolClient, kind: string, ops: StoreOp[]): Promise<RecordConflict[] | undefined> {
    const node = this.o.node
    const puts = ops.filter((o): o is PutOp => o.type === 'put')
    const dels = ops.filter(o => o.type === 'del').map(o => o.key)
    switch (kind) {
      case 'records/put': return await putRecords(c, puts)
      case 'records/del': {
        const r = dels.map(deviceSeq)
        await c.query('DELETE FROM gw_records WHERE (device_id, seq) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))', [r.map(x => x[0]), r.map(x => x[1])])
        return
      }
      case 'devices/put': await putDevices(c, node, puts); return
      case 'devices/del':
        await c.query('DELETE FROM gw_devices WHERE node = $1 AND device_id = ANY($2::text[])', [node, dels.map(k => k.slice(2))])
        return
      case 'pending/put': {
        const r = puts.map(p => [...deviceSeq(p.key), buf(p.value)] as const)
        await c.query(`INSERT INTO gw_pending (node, device_id, seq, envelope) SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::bytea[])
          ON CONFLICT (node, device_id, seq) DO UPDATE SET envelope = EXCLUDED.envelope`, [node, r.map(x => x[0]), r.map(x => x[1]), r.map(x => x[2])])
        return
      }
      case 'pending/del': {
        const r = dels.map(deviceSeq)
        await c.query('DELETE FROM gw_pending WHERE node = $1 AND (device_id, seq) IN (SELECT * FROM unnest($2::text[], $3::bigint[]))', [node, r.map(x => x[0]), r.map(x => x[1])])
        return
      }
      case 'leaves/put': await putLeaves(c, puts); return
      case 'batches/put': await putBatches(c, puts); return
      case 'quarantine/put': await putQuarantine(c, puts); return
      case 'quarantine/del':
        await c.query('DELETE FROM gw_quarantine WHERE key = ANY($1::text[])', [dels.map(k => k.slice(2))])
        return
      case 'meta/put':
        for (const p of puts) {
          const v = decodeMetaInt(p.value)
          await c.query(`INSERT INTO gw_meta (node, key, value) VALUES ($1, $2, $3) ON CONFLICT (node, key) DO UPDATE SET value = EXCLUDED.value`,
            [this.metaNode(p.key), p.key, v])
        }
        return
      case 'meta/del':
        for (const k of dels) await c.query('DELETE FROM gw_meta WHERE node = $1 AND key = $2', [this.metaNode(k), k])
        return
      case 'prunings/put': {
        const list = puts.map(p => decodePruning(p.value))
        await c.query(`INSERT INTO gw_prunings (device_id, last_seq, envelope, committed_in_batch) SELECT * FROM unnest($1::text[], $2::bigint[], $3::bytea[], $4::bigint[])
          ON CONFLICT (device_id, last_seq) DO UPDATE SET envelope = EXCLUDED.envelope, committed_in_batch = EXCLUDED.committed_in_batch`,
        [list.map(x => x.deviceId), list.map(x => x.lastSeq), list.map(x => buf(x.envelope)), list.map(x => x.committedInBatch)])
        return
      }
      case 'prunings/del': {
        const r = dels.map(deviceSeq)
        await c.query('DELETE FROM gw_prunings WHERE (device_id, last_seq) IN (SELECT * FROM unnest($1::text[], $2::bigint[]))', [r.map(x => x[0]), r.map(x => x[1])])
        return
      }
      case 'kv/put':
        await c.query(`INSERT INTO gw_kv (key, value) SELECT * FROM unnest($1::text[], $2::bytea[]) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
          [puts.map(p => p.key), puts.map(p => buf(p.value))])
        return
      case 'kv/del':
        await c.query('DELETE FROM gw_kv WHERE key = ANY($1::text[])', [dels])
        return
      default:
        throw new GatewayError('STORE_WRITE_FAILED', `bug: no table for ${kind}`)
    }
  }

  private metaNode (key: string): string {
    return SHARED_META.has(key) ? '' : this.o.node
  }

  // ------------------------------------------------------------------------------ reads

  private async q<R extends pg.QueryResultRow>(sql: string, params: unknown[]): Promise<R[]> {
    try {
      return (await this.pool.query<R>(sql, params)).rows
    } catch (e) {
      if (isTransientPgError(e)) throw new GatewayError('STORE_UNAVAILABLE', `gateway database unreachable: ${(e as Error).message}`, { cause: e })
      throw new GatewayError('STORE_CORRUPT', `gateway database read failed: ${(e as Error).message}`, { cause: e })
    }
  }

  async getRecord (deviceId: string, seq: number): Promise<StoredRecord | undefined> {
    const rows = await this.q<{ batch_id: string | null, leaf_index: number | null, envelope: Buffer }>(
      'SELECT batch_id, leaf_index, envelope FROM gw_records WHERE device_id = $1 AND seq = $2', [deviceId, seq])
    const r = rows[0]
    return r === undefined ? undefined : { batchId: r.batch_id === null ? 0 : Number(r.batch_id), index: r.leaf_index ?? -1, envelope: u8(r.envelope) }
  }

  async getDeviceState (deviceId: string): Promise<StoredDeviceState | undefined> {
    const rows = await this.q<DeviceRow>('SELECT * FROM gw_devices WHERE node = $1 AND device_id = $2', [this.o.node, deviceId])
    return rows[0] === undefined ? undefined : deviceOf(rows[0])
  }

  // The tier keeps the tip tree as history rows the sequencer writes (gw_tip_history; tipChanges,
  // the sequencer reads them): there are no single-node tree tips here.
  async * treeTips (): AsyncGenerator<StoredTreeTip> {}

  async prunings (deviceId?: string): Promise<StoredPruning[]> {
    const rows = deviceId === undefined
      ? await this.q<PruningRow>('SELECT * FROM gw_prunings ORDER BY device_id, last_seq', [])
      : await this.q<PruningRow>('SELECT * FROM gw_prunings WHERE device_id = $1 ORDER BY last_seq', [deviceId])
    return rows.map(pruningOf)
  }

  /**
   * Each device's tip in the tree of batch `throughBatch` whose tip moved after batch
   * `afterBatch` (0: every device's tip): the step from one batch's tree to a later one's.
   */
  async tipChanges (afterBatch: number, throughBatch: number): Promise<TipRow[]> {
    const rows = await this.q<{ device_id: string, seq: string, hash: Buffer }>(
      `SELECT DISTINCT ON (device_id) device_id, seq, hash FROM gw_tip_history WHERE batch_id > $1 AND batch_id <= $2
       ORDER BY device_id, batch_id DESC`, [afterBatch, throughBatch])
    return rows.map(r => ({ deviceId: r.device_id, seq: Number(r.seq), hash: u8(r.hash) }))
  }

  /** A device's tip in the tree of batch `batchId`: every record of it up to that seq is in batches up to `batchId`; -1 for none. */
  async tipSeqAt (deviceId: string, batchId: number): Promise<number> {
    const rows = await this.q<{ seq: string }>('SELECT seq FROM gw_tip_history WHERE device_id = $1 AND batch_id <= $2 ORDER BY batch_id DESC LIMIT 1', [deviceId, batchId])
    return rows[0] === undefined ? -1 : Number(rows[0].seq)
  }

  /** Id of the newest sealed batch (0: none). */
  async newestBatchId (): Promise<number> {
    const rows = await this.q<{ id: string | null }>('SELECT max(id) AS id FROM gw_batches', [])
    return Number(rows[0]?.id ?? 0)
  }

  /** Devices with a stored record or a tip (for retention runs over the whole tier). */
  async deviceIdsWithRecords (): Promise<string[]> {
    const rows = await this.q<{ device_id: string }>('SELECT DISTINCT device_id FROM gw_tip_history ORDER BY device_id', [])
    return rows.map(r => r.device_id)
  }

  async getBatch (id: number): Promise<StoredBatch | undefined> {
    const rows = await this.q<BatchRow>('SELECT * FROM gw_batches WHERE id = $1', [id])
    return rows[0] === undefined ? undefined : batchOf(rows[0])
  }

  async * batches (fromId = 1): AsyncGenerator<StoredBatch> {
    let next = fromId
    for (;;) {
      const rows = await this.q<BatchRow>('SELECT * FROM gw_batches WHERE id >= $1 ORDER BY id LIMIT 100', [next])
      for (const r of rows) yield batchOf(r)
      if (rows.length < 100) return
      next = Number(rows[rows.length - 1]?.id) + 1
    }
  }

  async leaves (id: number): Promise<LeafEntry[]> {
    const rows = await this.q<{ device_id: string, seq: string, leaf_hash: Buffer, time_ms: string, after_seq: string }>(
      'SELECT device_id, seq, leaf_hash, time_ms, after_seq FROM gw_leaves WHERE batch_id = $1 ORDER BY leaf_index', [id])
    return rows.map(r => ({ deviceId: r.device_id, seq: Number(r.seq), leafHash: u8(r.leaf_hash), timeMs: Number(r.time_ms), afterSeq: Number(r.after_seq) }))
  }

  async * devices (): AsyncGenerator<StoredDeviceState> {
    const rows = await this.q<DeviceRow>('SELECT * FROM gw_devices WHERE node = $1 ORDER BY device_id', [this.o.node])
    for (const r of rows) yield deviceOf(r)
  }

  async * pending (): AsyncGenerator<{ deviceId: string, seq: number, envelope: Uint8Array }> {
    const rows = await this.q<{ device_id: string, seq: string, envelope: Buffer }>(
      'SELECT device_id, seq, envelope FROM gw_pending WHERE node = $1 ORDER BY device_id, seq', [this.o.node])
    for (const r of rows) yield { deviceId: r.device_id, seq: Number(r.seq), envelope: u8(r.envelope) }
  }

  async recordsFrom (deviceId: string, fromSeq: number, limit: number, maxBytes = Number.POSITIVE_INFINITY): Promise<Array<{ seq: number, envelope: Uint8Array }>> {
    const rows = await this.q<{ seq: string, envelope: Buffer }>(
      'SELECT seq, envelope FROM gw_records WHERE device_id = $1 AND seq >= $2 ORDER BY seq LIMIT $3', [deviceId, fromSeq, limit])
    const out: Array<{ seq: number, envelope: Uint8Array }> = []
    let bytes = 0
    for (const r of rows) {
      out.push({ seq: Number(r.seq), envelope: u8(r.envelope) })
      bytes += r.envelope.byteLength
      if (bytes >= maxBytes) break
    }
    return out
  }

  async * recordSeqs (deviceId: string): AsyncGenerator<number> {
    const rows = await this.q<{ seq: string }>('SELECT seq FROM gw_records WHERE device_id = $1 ORDER BY seq', [deviceId])
    for (const r of rows) yield Number(r.seq)
  }

  async countQuarantined (): Promise<number> {
    const rows = await this.q<{ n: string }>('SELECT count(*) AS n FROM gw_quarantine', [])
    return Number(rows[0]?.n ?? 0)
  }

  async pruneQuarantined (count: number): Promise<number> {
    if (count <= 0) return 0
    const rows = await this.q<{ key: string }>('SELECT key FROM gw_quarantine ORDER BY key LIMIT $1', [count])
    if (rows.length > 0) this.enqueue(rows.map(r => ({ type: 'del', key: `q/${r.key}` })))
    return rows.length
  }

  async quarantinePage (limit: number, maxBytes: number, before?: string): Promise<{ items: QuarantineEntry[], next: string | null }> {
    // Same cursor as the LevelDB store: the key without `q/`, with `-` for its inner `/`.
    const lt = before === undefined ? '\uffff' : before.replace('-', '/')
    const rows = await this.q<QuarantineRow>('SELECT * FROM gw_quarantine WHERE key < $1 ORDER BY key DESC LIMIT $2', [lt, limit])
    const items: QuarantineEntry[] = []
    let bytes = 0
    let lastKey: string | undefined
    let full = false
    for (const r of rows) {
      items.push(quarantineOf(r))
      lastKey = r.key
      bytes += r.raw.byteLength
      if (bytes >= maxBytes) { full = true; break }
    }
    if (items.length >= limit) full = true
    return { items, next: full && lastKey !== undefined ? lastKey.replace('/', '-') : null }
  }

  async quarantined (limit: number): Promise<QuarantineEntry[]> {
    const rows = await this.q<QuarantineRow>('SELECT * FROM gw_quarantine ORDER BY key DESC LIMIT $1', [limit])
    return rows.map(quarantineOf)
  }

  async getInt (key: string): Promise<number | undefined> {
    const rows = await this.q<{ value: string }>('SELECT value FROM gw_meta WHERE node = $1 AND key = $2', [this.metaNode(key), key])
    return rows[0] === undefined ? undefined : Number(rows[0].value)
  }

  putInt (key: string, n: number): StoreOp {
    return { type: 'put', key, value: encodeMetaInt(n) }
  }

  /**
   * The sequencer's step: when `maxRecords` records wait unbatched or the oldest has waited
   * `maxAgeMs`, takes up to `maxRecords` of them (ingest order) and seals them as the next batch,
   * all in one transaction under the fence. Returns the batch and its leaf hashes, or undefined.
   * @throws GatewayError `LEASE_LOST`, `STORE_UNAVAILABLE`, `STORE_CORRUPT` (an undecodable record).
   */
  async sealUnbatched (o: { maxRecords: number, maxAgeMs: number, fence: Fence | undefined, seal: (input: SealInput) => SealOutput }): Promise<{ batch: StoredBatch, leafHashes: Uint8Array[] } | undefined> {
    let client: pg.PoolClient | undefined
    let broken = false
    try {
      client = await connectClient(this.pool)
      await client.query('BEGIN')
      await checkFence(client, o.fence)
      // The envelope only for rows from before the hashes were kept (decoded and hashed here).
      const rows = (await client.query<{ device_id: string, seq: string, envelope: Buffer | null, leaf_hash: Buffer | null, record_hash: Buffer | null, time_ms: string | null, old: boolean }>(
        `SELECT device_id, seq, leaf_hash, record_hash, time_ms,
           CASE WHEN leaf_hash IS NULL OR record_hash IS NULL OR time_ms IS NULL THEN envelope END AS envelope,
           ingested_at <= now() - make_interval(secs => $2::double precision / 1000) AS old
         FROM gw_records WHERE batch_id IS NULL ORDER BY ingest_id LIMIT $1 FOR UPDATE`, [o.maxRecords, o.maxAgeMs])).rows
      if (rows.length === 0 || (rows.length < o.maxRecords && rows[0]?.old !== true)) {
        await client.query('ROLLBACK')
        return undefined
      }
      const leaves: SealInput['leaves'] = rows.map(r => {
        if (r.envelope === null && r.leaf_hash !== null && r.record_hash !== null && r.time_ms !== null) {
          return { deviceId: r.device_id, seq: Number(r.seq), leafHash: u8(r.leaf_hash), timeMs: Number(r.time_ms), afterSeq: Number(r.seq) - 1, recordHash: u8(r.record_hash) }
        }
        if (r.envelope === null) throw new GatewayError('STORE_CORRUPT', `stored record ${r.device_id}/${r.seq} has no envelope`)
        const envelope = u8(r.envelope)
        let timeMs: number
        try {
          timeMs = decodeEnvelope(envelope).record.timeMs
        } catch (e) {
          throw new GatewayError('STORE_CORRUPT', `stored record ${r.device_id}/${r.seq} does not decode`, { cause: e })
        }
        // afterSeq is the single-node tracker's bookkeeping; the tier's acks do not use it.
        return { deviceId: r.device_id, seq: Number(r.seq), leafHash: hashLeaf(envelope), timeMs, afterSeq: Number(r.seq) - 1, recordHash: sha256(envelope) }
      })
      const top = await client.query<{ id: string | null }>('SELECT max(id) AS id FROM gw_batches')
      const id = Number(top.rows[0]?.id ?? 0) + 1
      // Statements signed by any process (retention), waiting for a checkpoint to commit them.
      const waiting = (await client.query<PruningRow>(
        'SELECT * FROM gw_prunings WHERE committed_in_batch = 0 ORDER BY device_id, last_seq LIMIT $1 FOR UPDATE', [PRUNINGS_PER_SEAL])).rows.map(pruningOf)
      const { batch, tips } = o.seal({ id, leaves, prunings: waiting })
      if (tips.length > 0) {
        await client.query(`INSERT INTO gw_tip_history (device_id, batch_id, seq, hash) SELECT d, $1, s, h FROM unnest($2::text[], $3::bigint[], $4::bytea[]) AS x(d, s, h)`,
          [id, tips.map(x => x.deviceId), tips.map(x => x.seq), tips.map(x => buf(x.hash))])
      }
      if (waiting.length > 0) {
        await client.query(`UPDATE gw_prunings p SET committed_in_batch = $1 FROM unnest($2::text[], $3::bigint[]) AS x(d, s) WHERE p.device_id = x.d AND p.last_seq = x.s`,
          [id, waiting.map(x => x.deviceId), waiting.map(x => x.lastSeq)])
      }
      // Leaf hashes as one binary parameter, 32 bytes each (packed() above says why).
      const hashes = packed(leaves.map(l => l.leafHash)).blob
      await client.query(`INSERT INTO gw_leaves (batch_id, leaf_index, device_id, seq, leaf_hash, time_ms, after_seq)
        SELECT $1, i - 1, d, s, substring($4::bytea FROM ((i - 1) * 32 + 1)::int FOR 32), t, a FROM unnest($2::text[], $3::bigint[], $5::bigint[], $6::bigint[]) WITH ORDINALITY AS x(d, s, t, a, i)`,
      [id, leaves.map(l => l.deviceId), leaves.map(l => l.seq), hashes, leaves.map(l => l.timeMs), leaves.map(l => l.afterSeq)])
      await client.query(`UPDATE gw_records r SET batch_id = $1, leaf_index = x.i - 1
        FROM unnest($2::text[], $3::bigint[]) WITH ORDINALITY AS x(d, s, i) WHERE r.device_id = x.d AND r.seq = x.s`,
      [id, leaves.map(l => l.deviceId), leaves.map(l => l.seq)])
      await client.query(`INSERT INTO gw_batches (id, size, root, first_record_time_ms, last_record_time_ms, checkpoint, metadata_hash, sealed_at_ms)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [batch.id, batch.size, buf(batch.root), batch.firstRecordTimeMs, batch.lastRecordTimeMs, batch.checkpoint, buf(batch.metadataHash), batch.sealedAtMs])
      await client.query(`INSERT INTO gw_meta (node, key, value) VALUES ('', 'm/open-batch', $1) ON CONFLICT (node, key) DO UPDATE SET value = EXCLUDED.value`, [id + 1])
      await client.query('COMMIT')
      return { batch, leafHashes: leaves.map(l => l.leafHash) }
    } catch (e) {
      broken = isTransientPgError(e)
      if (client !== undefined && !broken) await client.query('ROLLBACK').catch(() => {})
      if (e instanceof GatewayError) throw e
      if (broken) throw new GatewayError('STORE_UNAVAILABLE', `gateway database unreachable: ${(e as Error).message}`, { cause: e })
      throw new GatewayError('STORE_WRITE_FAILED', `sealing a batch failed: ${(e as Error).message}`, { cause: e })
    } finally {
      client?.release(broken)
    }
  }

  /** Flushes what is queued and closes the pool. Safe to call twice. */
  async close (): Promise<void> {
    if (this.closed) return
    try {
      await this.flushIfHealthy()
    } finally {
      this.closed = true
      await this.pool.end().catch(() => {})
    }
  }
}

/** Checks the caller still holds the lease with its token, inside the write's transaction. */
export async function checkFence (c: pg.ClientBase, fence: Fence | undefined): Promise<void> {
  if (fence === undefined) throw new GatewayError('LEASE_LOST', 'sequencer write without the sequencer lease')
  const rows = await c.query('SELECT 1 FROM gw_lease WHERE name = $1 AND holder = $2 AND token = $3 AND expires_at > now() FOR SHARE',
    [fence.name, fence.holder, fence.token])
  if (rows.rowCount === 0) throw new GatewayError('LEASE_LOST', `the ${fence.name} lease (token ${fence.token}) is no longer held by ${fence.holder}`)
}

interface BatchRow { id: string, size: number, root: Buffer, first_record_time_ms: string, last_record_time_ms: string, checkpoint: string, metadata_hash: Buffer, sealed_at_ms: string }
interface DeviceRow { device_id: string, tip_seq: string | null, tip_hash: Buffer | null, tip_boot: string | null, last_seen_ms: string, stored: string, quarantined: string, anchored_seq: string }
interface PruningRow { device_id: string, last_seq: string, envelope: Buffer, committed_in_batch: string }

function pruningOf (r: PruningRow): StoredPruning {
  return { deviceId: r.device_id, lastSeq: Number(r.last_seq), envelope: u8(r.envelope), committedInBatch: Number(r.committed_in_batch) }
}

interface QuarantineRow { key: string, time_ms: string, reason: string, topic: string, device_id: string | null, seq: string | null, detail: string, raw: Buffer, raw_bytes: number }

function batchOf (r: BatchRow): StoredBatch {
  return {
    id: Number(r.id),
    size: r.size,
    root: u8(r.root),
    firstRecordTimeMs: Number(r.first_record_time_ms),
    lastRecordTimeMs: Number(r.last_record_time_ms),
    checkpoint: r.checkpoint,
    metadataHash: u8(r.metadata_hash),
    sealedAtMs: Number(r.sealed_at_ms)
  }
}

function deviceOf (r: DeviceRow): StoredDeviceState {
  return {
    deviceId: r.device_id,
    tip: r.tip_seq === null || r.tip_hash === null ? undefined : { seq: Number(r.tip_seq), hash: u8(r.tip_hash), boot: r.tip_boot === null ? undefined : Number(r.tip_boot) },
    lastSeenMs: Number(r.last_seen_ms),
    stored: Number(r.stored),
    quarantined: Number(r.quarantined),
    anchoredSeq: num(r.anchored_seq)
  }
}

function quarantineOf (r: QuarantineRow): QuarantineEntry {
  return {
    timeMs: Number(r.time_ms),
    reason: r.reason,
    topic: r.topic,
    deviceId: r.device_id ?? undefined,
    seq: r.seq === null ? undefined : Number(r.seq),
    detail: r.detail,
    raw: u8(r.raw),
    rawBytes: r.raw_bytes
  }
}

// Meta values travel in ops as the LevelDB store encodes them ([version, n], canonical CBOR).
const encodeMetaInt = encodeInt
const decodeMetaInt = (b: Uint8Array): number => decodeInt(b, 'store metadata')

// The bulkier writes of PostgresGatewayStore.apply, one per table (apply keeps the one-line ones).
type PutOp = Extract<StoreOp, { type: 'put' }>

/** Inserts records; a (device, seq) already stored with other bytes comes back as a conflict. */
async function putRecords (c: pg.PoolClient, puts: PutOp[]): Promise<RecordConflict[] | undefined> {
  const r = puts.map(p => [...deviceSeq(p.key), p.record ?? decodeStoredRecord(p.value)] as const)
  const leaf = puts.map(p => p.leaf)
  const env = packed(r.map(x => x[2].envelope))
  const lh = packed(leaf.map(l => l?.leafHash))
  const rh = packed(leaf.map(l => l?.recordHash))
  // A duplicate (another process stored it first) dies on the key; the first one stays.
  const inserted = await c.query(`INSERT INTO gw_records (device_id, seq, batch_id, leaf_index, envelope, leaf_hash, record_hash, time_ms)
    SELECT d, s, NULLIF(b, 0), CASE WHEN b = 0 THEN NULL ELSE i END, substring($5::bytea FROM eo + 1 FOR el),
      CASE WHEN ll = 0 THEN NULL ELSE substring($8::bytea FROM lo + 1 FOR ll) END,
      CASE WHEN rl = 0 THEN NULL ELSE substring($11::bytea FROM ro + 1 FOR rl) END, t
    FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::int[], $6::int[], $7::int[], $9::int[], $10::int[], $12::int[], $13::int[], $14::bigint[])
      AS x(d, s, b, i, eo, el, lo, ll, ro, rl, t)
    ON CONFLICT (device_id, seq) DO NOTHING`,
  [r.map(x => x[0]), r.map(x => x[1]), r.map(x => x[2].batchId), r.map(x => x[2].index),
    env.blob, env.offsets, env.lengths, lh.blob, lh.offsets, lh.lengths, rh.blob, rh.offsets, rh.lengths, leaf.map(l => l?.timeMs ?? null)])
  if ((inserted.rowCount ?? 0) === r.length) return undefined
  // Some were there already: the same bytes are a resend; other bytes are a conflict, and
  // acking ours as stored would be a lie.
  const there = await c.query<{ device_id: string, seq: string, envelope: Buffer }>(
    `SELECT g.device_id, g.seq, g.envelope FROM gw_records g JOIN unnest($1::text[], $2::bigint[]) AS x(d, s) ON g.device_id = x.d AND g.seq = x.s`,
    [r.map(x => x[0]), r.map(x => x[1])])
  const mine = new Map(r.map(x => [`${x[0]}/${x[1]}`, x[2].envelope]))
  const conflicts: RecordConflict[] = []
  for (const row of there.rows) {
    const ours = mine.get(`${row.device_id}/${row.seq}`)
    const stored = u8(row.envelope)
    if (ours !== undefined && !equalBytes(ours, stored)) conflicts.push({ deviceId: row.device_id, seq: Number(row.seq), envelope: ours, storedEnvelope: stored })
  }
  return conflicts
}

async function putDevices (c: pg.PoolClient, node: string, puts: PutOp[]): Promise<void> {
  const s = puts.map(p => decodeDeviceState(p.value))
  await c.query(`INSERT INTO gw_devices (node, device_id, tip_seq, tip_hash, tip_boot, last_seen_ms, stored, quarantined, anchored_seq)
    SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::bytea[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[])
    ON CONFLICT (node, device_id) DO UPDATE SET tip_seq = EXCLUDED.tip_seq, tip_hash = EXCLUDED.tip_hash, tip_boot = EXCLUDED.tip_boot,
      last_seen_ms = EXCLUDED.last_seen_ms, stored = EXCLUDED.stored, quarantined = EXCLUDED.quarantined, anchored_seq = EXCLUDED.anchored_seq`,
  [node, s.map(x => x.deviceId), s.map(x => x.tip?.seq ?? null), s.map(x => x.tip === undefined ? null : buf(x.tip.hash)),
    s.map(x => x.tip?.boot ?? null), s.map(x => x.lastSeenMs), s.map(x => x.stored), s.map(x => x.quarantined), s.map(x => x.anchoredSeq)])
}

async function putLeaves (c: pg.PoolClient, puts: PutOp[]): Promise<void> {
  const r = puts.map(p => {
    const parts = p.key.split('/')
    return [parseInt(parts[1] ?? '', 16), parseInt(parts[2] ?? '', 16), decodeLeaf(p.value)] as const
  })
  await c.query(`INSERT INTO gw_leaves (batch_id, leaf_index, device_id, seq, leaf_hash, time_ms, after_seq)
    SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::bigint[], $5::bytea[], $6::bigint[], $7::bigint[])
    ON CONFLICT (batch_id, leaf_index) DO NOTHING`,
  [r.map(x => x[0]), r.map(x => x[1]), r.map(x => x[2].deviceId), r.map(x => x[2].seq), r.map(x => buf(x[2].leafHash)), r.map(x => x[2].timeMs), r.map(x => x[2].afterSeq)])
}

async function putBatches (c: pg.PoolClient, puts: PutOp[]): Promise<void> {
  for (const p of puts) {
    const b = decodeBatch(p.value)
    await c.query(`INSERT INTO gw_batches (id, size, root, first_record_time_ms, last_record_time_ms, checkpoint, metadata_hash, sealed_at_ms)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING`,
    [b.id, b.size, buf(b.root), b.firstRecordTimeMs, b.lastRecordTimeMs, b.checkpoint, buf(b.metadataHash), b.sealedAtMs])
  }
}

async function putQuarantine (c: pg.PoolClient, puts: PutOp[]): Promise<void> {
  const q = puts.map(p => [p.key.slice(2), decodeQuarantine(p.value)] as const)
  await c.query(`INSERT INTO gw_quarantine (key, time_ms, reason, topic, device_id, seq, detail, raw, raw_bytes)
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[], $8::bytea[], $9::int[])
    ON CONFLICT (key) DO NOTHING`,
  [q.map(x => x[0]), q.map(x => x[1].timeMs), q.map(x => x[1].reason), q.map(x => x[1].topic), q.map(x => x[1].deviceId ?? null),
    q.map(x => x[1].seq ?? null), q.map(x => x[1].detail), q.map(x => buf(x[1].raw)), q.map(x => x[1].rawBytes)])
}
