/**
 * The anchorer's state in PostgreSQL (gw_anchor_batches, gw_anchor_meta): the same documents the
 * LevelDB state store keeps, each write one transaction that first checks the sequencer's fencing
 * token, so an anchorer that lost its lease can never move a batch's state again.
 */
import type pg from 'pg'
import { AnchorError } from '../../anchor/errors.js'
import { assertStoredBatch, batchKey, type LoadedState, type StoredBatch, type StoredConfig } from '../../anchor/state-store.js'
import type { AnchorStateStore } from '../../anchor/types.js'
import { checkFence, connectClient, isTransientPgError, type Fence } from './postgres-store.js'

const CONFIG = 'config'
const CONFIRMED = 'confirmed-through'
const NEXT_NONCE = 'next-nonce'

export class PgAnchorStateStore implements AnchorStateStore {
  constructor (private readonly pool: pg.Pool, private readonly fence: () => Fence | undefined) {}

  async load (): Promise<LoadedState> {
    const meta = new Map((await this.read<{ key: string, value: unknown }>('SELECT key, value FROM gw_anchor_meta', [])).map(r => [r.key, r.value]))
    const config = meta.get(CONFIG) as StoredConfig | undefined
    const confirmedThrough = (meta.get(CONFIRMED) as number | undefined) ?? 0
    const nextNonce = meta.get(NEXT_NONCE) as number | undefined
    const unconfirmed: StoredBatch[] = []
    for (const r of await this.read<{ body: unknown }>("SELECT body FROM gw_anchor_batches WHERE id > $1 AND state <> 'confirmed' ORDER BY id", [confirmedThrough])) {
      const b = r.body as { id: number }
      assertStoredBatch(b, batchKey(b.id))
      unconfirmed.push(b)
    }
    const top = await this.read<{ id: string | null }>('SELECT max(id) AS id FROM gw_anchor_batches', [])
    return { config, confirmedThrough, nextNonce, highestId: Math.max(confirmedThrough, Number(top[0]?.id ?? 0)), unconfirmed }
  }

  /** Every batch up to the returned id is confirmed (0: none); one small read, for non-holders. */
  async confirmedThrough (): Promise<number> {
    const rows = await this.read<{ value: unknown }>('SELECT value FROM gw_anchor_meta WHERE key = $1', [CONFIRMED])
    return (rows[0]?.value as number | undefined) ?? 0
  }

  async getBatch (id: number): Promise<StoredBatch | undefined> {
    const rows = await this.read<{ body: unknown }>('SELECT body FROM gw_anchor_batches WHERE id = $1', [id])
    if (rows[0] === undefined) return undefined
    assertStoredBatch(rows[0].body, batchKey(id))
    return rows[0].body
  }

  async idOfRoot (root: string): Promise<number | undefined> {
    const rows = await this.read<{ id: string }>('SELECT id FROM gw_anchor_batches WHERE root = $1', [root])
    return rows[0] === undefined ? undefined : Number(rows[0].id)
  }

  async putConfig (config: StoredConfig): Promise<void> {
    await this.write(async c => { await putMeta(c, CONFIG, config) })
  }

  async putNewBatch (batch: StoredBatch): Promise<void> {
    await this.write(async c => {
      await c.query('INSERT INTO gw_anchor_batches (id, root, state, body) VALUES ($1, $2, $3, $4)', [batch.id, batch.root, batch.state, JSON.stringify(batch)])
    })
  }

  async putBatch (batch: StoredBatch, meta: { confirmedThrough?: number, nextNonce?: number } = {}): Promise<void> {
    await this.write(async c => {
      await c.query('UPDATE gw_anchor_batches SET state = $2, body = $3 WHERE id = $1', [batch.id, batch.state, JSON.stringify(batch)])
      if (meta.confirmedThrough !== undefined) await putMeta(c, CONFIRMED, meta.confirmedThrough)
      if (meta.nextNonce !== undefined) await putMeta(c, NEXT_NONCE, meta.nextNonce)
    })
  }

  /** The pool belongs to the gateway store, which closes it. */
  async close (): Promise<void> {}

  private async read<R extends pg.QueryResultRow>(sql: string, params: unknown[]): Promise<R[]> {
    try {
      return (await this.pool.query<R>(sql, params)).rows
    } catch (e) {
      throw new AnchorError('ANCHOR_OPEN_FAILED', `cannot read anchor state: ${(e as Error).message}`, { cause: e })
    }
  }

  // A failed write is ANCHOR_WRITE_FAILED: the anchorer retries its step (a database restart) and
  // never acts on a state it could not write. A lost lease fails every write for good.
  private async write (fn: (c: pg.PoolClient) => Promise<void>): Promise<void> {
    let client: pg.PoolClient | undefined
    let broken = false
    try {
      client = await connectClient(this.pool)
      await client.query('BEGIN')
      await checkFence(client, this.fence())
      await fn(client)
      await client.query('COMMIT')
    } catch (e) {
      broken = isTransientPgError(e)
      if (client !== undefined && !broken) await client.query('ROLLBACK').catch(() => {})
      throw new AnchorError('ANCHOR_WRITE_FAILED', `anchor state write failed: ${(e as Error).message}`, { cause: e })
    } finally {
      client?.release(broken)
    }
  }
}

async function putMeta (c: pg.ClientBase, key: string, value: unknown): Promise<void> {
  await c.query('INSERT INTO gw_anchor_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value', [key, JSON.stringify(value)])
}
