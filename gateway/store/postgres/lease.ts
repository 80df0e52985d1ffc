/**
 * The sequencer lease: one row in gw_lease that names the one process allowed to batch, prove and
 * anchor. Taking it over (after it expired) raises its token; every sequencer write checks the
 * token inside its transaction (checkFence), so a holder that stalled past expiry writes nothing.
 */
import { randomBytes } from 'node:crypto'
import type pg from 'pg'
import type { Fence } from './postgres-store.js'

export const DEFAULT_LEASE_TTL_MS = 5_000
export const SEQUENCER_LEASE = 'sequencer'

export interface LeaseOptions {
  pool: pg.Pool
  /** Readable name of this process (a unique suffix is added: a restart is a new holder). */
  node: string
  /** How long a lease lasts without renewal, ms; renewed every third of it. Default 5000. */
  ttlMs?: number
  /** Called when this process becomes the holder (with its token) and when it loses the lease. */
  onChange?: (held: Fence | undefined) => void
  /** Called with each failed attempt (database down): the lease is lost once its time runs out. */
  onError?: (error: unknown) => void
  name?: string
}

export class Lease {
  readonly holder: string
  private readonly o: Required<Omit<LeaseOptions, 'onChange' | 'onError'>> & Pick<LeaseOptions, 'onChange' | 'onError'>
  private held: Fence | undefined
  /** Local time (ms) before which the held lease is surely still ours (renewal time + ttl, minus a margin). */
  private validUntilMs = 0
  private timer: NodeJS.Timeout | undefined
  private stopped = false
  private busy: Promise<void> | undefined

  constructor (options: LeaseOptions) {
    this.o = { ttlMs: DEFAULT_LEASE_TTL_MS, name: SEQUENCER_LEASE, ...options }
    this.holder = `${options.node}/${process.pid}/${randomBytes(4).toString('hex')}`
  }

  /** The fence to write under, while the lease is surely held; undefined otherwise. */
  fence (): Fence | undefined {
    if (this.held !== undefined && Date.now() >= this.validUntilMs) this.lose()
    return this.held
  }

  get isHolder (): boolean {
    return this.fence() !== undefined
  }

  /** Starts trying to take and keep the lease. */
  start (): void {
    this.stopped = false
    this.tick()
  }

  /** One attempt now: renew if held, take if free or expired. Returns the fence when held. */
  async tryOnce (): Promise<Fence | undefined> {
    const started = Date.now()
    const ttl = this.o.ttlMs
    try {
      let token: number | undefined
      if (this.held !== undefined) {
        const r = await this.o.pool.query<{ token: string }>(
          `UPDATE gw_lease SET expires_at = now() + make_interval(secs => $4::double precision / 1000)
           WHERE name = $1 AND holder = $2 AND token = $3 RETURNING token`, [this.o.name, this.holder, this.held.token, ttl])
        token = r.rows[0] === undefined ? undefined : Number(r.rows[0].token)
      } else {
        const r = await this.o.pool.query<{ token: string }>(
          `INSERT INTO gw_lease (name, holder, token, expires_at) VALUES ($1, $2, 1, now() + make_interval(secs => $3::double precision / 1000))
           ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, token = gw_lease.token + 1, expires_at = EXCLUDED.expires_at
           WHERE gw_lease.expires_at < now() RETURNING token`, [this.o.name, this.holder, ttl])
        token = r.rows[0] === undefined ? undefined : Number(r.rows[0].token)
      }
      if (token === undefined) {
        if (this.held !== undefined) this.lose()
        return undefined
      }
      // Counted from before the query: the database may have renewed it up to then only.
      this.validUntilMs = started + ttl - Math.min(1000, ttl / 5)
      if (this.held === undefined) {
        this.held = { name: this.o.name, holder: this.holder, token }
        this.o.onChange?.(this.held)
      }
      return this.held
    } catch (e) {
      this.o.onError?.(e)
      return this.fence()
    }
  }

  /** Stops renewing; with `release`, gives the lease up at once so another process takes over now. */
  async stop (release = false): Promise<void> {
    this.stopped = true
    if (this.timer !== undefined) clearTimeout(this.timer)
    await this.busy
    const held = this.held
    this.held = undefined
    if (release && held !== undefined) {
      await this.o.pool.query('UPDATE gw_lease SET expires_at = now() - interval \'1 second\' WHERE name = $1 AND holder = $2 AND token = $3',
        [held.name, held.holder, held.token]).catch(() => {})
    }
  }

  private lose (): void {
    this.held = undefined
    this.o.onChange?.(undefined)
  }

  private tick (): void {
    if (this.stopped) return
    this.busy = this.tryOnce().then(() => {}).finally(() => {
      this.busy = undefined
      if (this.stopped) return
      this.timer = setTimeout(() => this.tick(), Math.max(50, Math.floor(this.o.ttlMs / 3)))
      this.timer.unref()
    })
  }
}
