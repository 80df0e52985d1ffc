/**
 * The anchorer's durable state on LevelDB: one JSON entry per batch (its state, the signed
 * transactions and the receipt), a root index and a few meta keys. Every state transition is one
 * atomic, fsynced write that happens before the anchorer acts on it.
 */
import type { Level } from 'level'
import { FatalWriteLevel, openLevel } from '../../common/level.js'
import { AnchorError } from './errors.js'
import type { AnchorReceipt, AnchorState, AnchorStateStore } from './types.js'

/** A signed transaction of a batch, kept so a restart re-broadcasts exactly the same bytes. */
export interface StoredTx {
  hash: string
  /** Signed raw transaction, 0x-hex. */
  raw: string
  /** Wall-clock time it was signed and first broadcast. */
  sentAtMs: number
  /** Fee fields as decimal strings (EIP-1559 or legacy). */
  maxFeePerGas?: string
  maxPriorityFeePerGas?: string
  gasPrice?: string
}

/** Where a batch's anchor is on chain once mined (own transaction or adopted). */
export interface MinedAt {
  txHash: string
  blockNumber: number
  blockHash: string
  onChainBatchId: string
  adopted: boolean
}

export interface StoredBatch {
  id: number
  /** 0x-hex, lower case. */
  root: string
  size: number
  firstRecordTimeMs: number
  lastRecordTimeMs: number
  metadataHash: string
  sealedAtMs: number
  state: AnchorState
  /** The nonce of `txs`; set in 'sent' and later for own transactions. */
  nonce?: number
  /** Every transaction signed for this batch with `nonce`, oldest first (replacements append). */
  txs?: StoredTx[]
  mined?: MinedAt
  receipt?: AnchorReceipt
}

/** Registry, account and chain a state folder belongs to. */
export interface StoredConfig {
  registry: string
  account: string
  chainId?: number
}

const BATCH_PREFIX = 'b/'
const ROOT_PREFIX = 'r/'
const CONFIG_KEY = 'm/config'
const CONFIRMED_KEY = 'm/confirmed-through'
const NEXT_NONCE_KEY = 'm/next-nonce'

/** Fixed-width decimal keeps key order equal to id order. */
export function batchKey (id: number): string {
  return BATCH_PREFIX + id.toString().padStart(16, '0')
}

type Op = { type: 'put', key: string, value: unknown }

/** What open() finds: the meta keys and every batch not yet confirmed, in id order. */
export interface LoadedState {
  config: StoredConfig | undefined
  confirmedThrough: number
  nextNonce: number | undefined
  /** Highest id ever enqueued (0 when none). */
  highestId: number
  unconfirmed: StoredBatch[]
}

export class StateStore implements AnchorStateStore {
  private readonly db: Level<string, unknown>
  // One failed write stops the state (common/level.ts): later transitions must not land after a hole.
  private readonly writer: FatalWriteLevel<unknown>
  private readonly sync: boolean

  private constructor (db: Level<string, unknown>, sync: boolean) {
    this.db = db
    this.writer = new FatalWriteLevel(db, e => new AnchorError('ANCHOR_WRITE_FAILED', `anchor state write failed: ${(e as Error).message}`, { cause: e }))
    this.sync = sync
  }

  /** @throws AnchorError ANCHOR_LOCKED, ANCHOR_OPEN_FAILED */
  static async open (dir: string, sync: boolean): Promise<StateStore> {
    const db = await openLevel<unknown>(dir, { keyEncoding: 'utf8', valueEncoding: 'json' }, (e, locked) =>
      new AnchorError(locked ? 'ANCHOR_LOCKED' : 'ANCHOR_OPEN_FAILED', `cannot open anchor state ${dir}: ${(e as Error).message}`, { cause: e }))
    return new StateStore(db, sync)
  }

  /** @throws AnchorError ANCHOR_STATE_CORRUPT, ANCHOR_OPEN_FAILED */
  async load (): Promise<LoadedState> {
    try {
      const config = await this.db.get(CONFIG_KEY)
      if (config !== undefined) assertStoredConfig(config)
      const confirmed = await this.db.get(CONFIRMED_KEY) ?? 0
      const nextNonce = await this.db.get(NEXT_NONCE_KEY)
      if (!isCount(confirmed)) throw corrupt(CONFIRMED_KEY, 'not a count')
      if (nextNonce !== undefined && !isCount(nextNonce)) throw corrupt(NEXT_NONCE_KEY, 'not a count')
      const unconfirmed: StoredBatch[] = []
      // Only batches above the watermark can still move; the confirmed ones stay on disk for receipt().
      for await (const [key, value] of this.db.iterator({ gt: batchKey(confirmed), lt: BATCH_PREFIX + '~' })) {
        assertStoredBatch(value, key)
        if (value.state !== 'confirmed') unconfirmed.push(value)
      }
      let highestId = confirmed
      for await (const key of this.db.keys({ gte: BATCH_PREFIX, lt: BATCH_PREFIX + '~', reverse: true, limit: 1 })) {
        highestId = Math.max(highestId, Number(key.slice(BATCH_PREFIX.length)))
      }
      return { config, confirmedThrough: confirmed, nextNonce, highestId, unconfirmed }
    } catch (e) {
      if (e instanceof AnchorError) throw e
      throw new AnchorError('ANCHOR_OPEN_FAILED', `cannot read anchor state: ${(e as Error).message}`, { cause: e })
    }
  }

  async getBatch (id: number): Promise<StoredBatch | undefined> {
    const value = await this.db.get(batchKey(id))
    if (value === undefined) return undefined
    assertStoredBatch(value, batchKey(id))
    return value
  }

  /** Local id that holds `root`, if any. */
  async idOfRoot (root: string): Promise<number | undefined> {
    const value = await this.db.get(ROOT_PREFIX + root)
    return typeof value === 'number' ? value : undefined
  }

  async putConfig (config: StoredConfig): Promise<void> {
    await this.write([{ type: 'put', key: CONFIG_KEY, value: config }])
  }

  /** A new batch and its root index entry, in one write. */
  async putNewBatch (batch: StoredBatch): Promise<void> {
    await this.write([
      { type: 'put', key: batchKey(batch.id), value: batch },
      { type: 'put', key: ROOT_PREFIX + batch.root, value: batch.id }
    ])
  }

  /** A batch's new state; with `meta`, the confirmed watermark and/or next nonce in the same write. */
  async putBatch (batch: StoredBatch, meta: { confirmedThrough?: number, nextNonce?: number } = {}): Promise<void> {
    const ops: Op[] = [{ type: 'put', key: batchKey(batch.id), value: batch }]
    if (meta.confirmedThrough !== undefined) ops.push({ type: 'put', key: CONFIRMED_KEY, value: meta.confirmedThrough })
    if (meta.nextNonce !== undefined) ops.push({ type: 'put', key: NEXT_NONCE_KEY, value: meta.nextNonce })
    await this.write(ops)
  }

  async close (): Promise<void> {
    await this.db.close()
  }

  /** @throws AnchorError ANCHOR_WRITE_FAILED, for this write and every one after it. */
  private async write (ops: Op[]): Promise<void> {
    await this.writer.batch(ops, { sync: this.sync })
  }
}

// ---------------------------------------------------------------------------- guards

const STATES: readonly string[] = ['queued', 'sent', 'mined', 'confirmed']
const HEX32 = /^0x[0-9a-f]{64}$/
const HEX = /^0x[0-9a-fA-F]*$/

function isCount (v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0
}

function corrupt (key: string, what: string): AnchorError {
  return new AnchorError('ANCHOR_STATE_CORRUPT', `anchor state ${key}: ${what}`)
}

function assertStoredConfig (v: unknown): asserts v is StoredConfig {
  const c = v as Partial<StoredConfig> | null
  if (typeof c !== 'object' || c === null || typeof c.registry !== 'string' || typeof c.account !== 'string' ||
    (c.chainId !== undefined && !isCount(c.chainId))) {
    throw corrupt(CONFIG_KEY, 'not a config')
  }
}

/** Checks an entry read from disk; collects every bad field so a corrupt entry is easy to diagnose. */
export function assertStoredBatch (v: unknown, key: string): asserts v is StoredBatch {
  const bad: string[] = []
  if (typeof v !== 'object' || v === null) throw corrupt(key, 'not an object')
  const b = v as Record<string, unknown>
  if (!isCount(b.id) || b.id === 0 || batchKey(b.id) !== key) bad.push('id')
  if (typeof b.root !== 'string' || !HEX32.test(b.root)) bad.push('root')
  if (!isCount(b.size) || b.size === 0) bad.push('size')
  if (!isCount(b.firstRecordTimeMs)) bad.push('firstRecordTimeMs')
  if (!isCount(b.lastRecordTimeMs)) bad.push('lastRecordTimeMs')
  if (typeof b.metadataHash !== 'string' || !HEX32.test(b.metadataHash)) bad.push('metadataHash')
  if (typeof b.sealedAtMs !== 'number' || !Number.isFinite(b.sealedAtMs)) bad.push('sealedAtMs')
  if (typeof b.state !== 'string' || !STATES.includes(b.state)) bad.push('state')
  if (b.nonce !== undefined && !isCount(b.nonce)) bad.push('nonce')
  if (b.txs !== undefined) {
    if (!Array.isArray(b.txs)) bad.push('txs')
    else {
      b.txs.forEach((t: unknown, i) => {
        const tx = t as Record<string, unknown> | null
        if (typeof tx !== 'object' || tx === null || typeof tx.hash !== 'string' || !HEX32.test(tx.hash) ||
          typeof tx.raw !== 'string' || !HEX.test(tx.raw) || typeof tx.sentAtMs !== 'number') bad.push(`txs[${i}]`)
      })
    }
  }
  if (b.state === 'sent' && (b.nonce === undefined || !Array.isArray(b.txs) || b.txs.length === 0)) bad.push('sent without tx')
  if (b.mined !== undefined) {
    const m = b.mined as Record<string, unknown> | null
    if (typeof m !== 'object' || m === null || typeof m.txHash !== 'string' || !isCount(m.blockNumber) ||
      typeof m.blockHash !== 'string' || typeof m.onChainBatchId !== 'string' || typeof m.adopted !== 'boolean') bad.push('mined')
  }
  if (b.state === 'mined' && b.mined === undefined) bad.push('mined without block')
  if (b.state === 'confirmed' && (typeof b.receipt !== 'object' || b.receipt === null)) bad.push('confirmed without receipt')
  if (bad.length > 0) throw corrupt(key, `bad fields: ${bad.join(', ')}`)
}
