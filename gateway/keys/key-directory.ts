/**
 * Where the gateway learns which Ed25519 key a device signed with at a given device time, and
 * whether the device was revoked by then. The default implementation asks the on-chain registry
 * and caches answers per device for a TTL; while the chain is unreachable it serves the last
 * answers it had (stale) rather than stopping ingest.
 */
import { RegistryError, deviceIdOf, type RegistryClient } from '../../contracts/index.js'
import { GatewayError } from '../errors.js'

/** A device's key at one device time. */
export interface KeyAnswer {
  /** Raw 32-byte Ed25519 public key; absent when the device is unknown or had no key yet. */
  publicKey?: Uint8Array
  /** True when the device was revoked at or before that time. */
  revoked: boolean
  /** True when the registry does not know the device at all. */
  unknown?: boolean
}

/** The seam between verification and the registry of device keys. */
export interface KeyDirectory {
  /**
   * The key valid for `deviceId` at device time `timeMs` (Unix ms).
   * @throws GatewayError `KEY_LOOKUP_FAILED` when no answer can be had (registry unreachable, nothing cached).
   */
  keyAt: (deviceId: string, timeMs: number) => Promise<KeyAnswer>
  /** A cached, still fresh answer without I/O, or undefined (then call keyAt). Optional fast path. */
  peek?: (deviceId: string, timeMs: number) => KeyAnswer | undefined
  /** Forget what is cached for the device (e.g. after a signature failure: the key may have rotated). */
  refresh?: (deviceId: string) => void
}

export const DEFAULT_KEY_CACHE_TTL_MS = 60_000
export const DEFAULT_UNKNOWN_KEY_CACHE_TTL_MS = 5_000
export const DEFAULT_KEY_CACHE_MAX_DEVICES = 100_000
/** A device's cache is refreshed on demand at most this often (bounds RPC load from bad signatures). */
export const DEFAULT_KEY_REFRESH_MIN_INTERVAL_MS = 1_000

export interface RegistryKeyDirectoryOptions {
  /** A registry client with a provider (reads only). */
  registry: RegistryClient
  /** How long an answer about a known device stays fresh. Default 60 000 ms. */
  ttlMs?: number
  /** How long "unknown device" stays fresh (devices get registered while the fleet runs). Default 5 000 ms. */
  unknownTtlMs?: number
  /** Devices kept in the cache; the least recently used go first. Default 100 000. */
  maxDevices?: number
  /** Least time between two forced refreshes of one device. Default 1 000 ms. */
  refreshMinIntervalMs?: number
  /** Called with the error code when the registry could not be read (for metrics). */
  onLookupError?: (code: string) => void
  /** Clock, Unix ms. Default Date.now. */
  now?: () => number
}

interface KeyPeriodEntry { validFromMs: number, publicKey: Uint8Array }

interface CachedDevice {
  /** Key periods learned so far, sorted by validFromMs. */
  periods: KeyPeriodEntry[]
  /** Exact device time from which the device is revoked, when it is. */
  revokedFromMs: number | undefined
  /** Device times below this have no key (they precede the first key). */
  noKeyBelowMs: number
  unknown: boolean
  fetchedAtMs: number
  refreshedAtMs: number
}

/**
 * KeyDirectory over the ProvenanceRegistry (`keyAt(deviceIdOf(name), timeMs)`). Key periods only
 * ever get appended on chain, so an answer stays true for its period; what may change is a new
 * rotation or a revocation, which the TTL bounds (docs/GATEWAY.md §Keys).
 */
export class RegistryKeyDirectory implements KeyDirectory {
  private readonly registry: RegistryClient
  private readonly ttlMs: number
  private readonly unknownTtlMs: number
  private readonly maxDevices: number
  private readonly refreshMinIntervalMs: number
  private readonly onLookupError: (code: string) => void
  private readonly now: () => number
  // Map iteration order is insertion order: re-inserting on use makes it an LRU.
  private readonly cache = new Map<string, CachedDevice>()
  private readonly inflight = new Map<string, Promise<KeyAnswer>>()

  constructor (options: RegistryKeyDirectoryOptions) {
    this.registry = options.registry
    this.ttlMs = options.ttlMs ?? DEFAULT_KEY_CACHE_TTL_MS
    this.unknownTtlMs = options.unknownTtlMs ?? DEFAULT_UNKNOWN_KEY_CACHE_TTL_MS
    this.maxDevices = options.maxDevices ?? DEFAULT_KEY_CACHE_MAX_DEVICES
    this.refreshMinIntervalMs = options.refreshMinIntervalMs ?? DEFAULT_KEY_REFRESH_MIN_INTERVAL_MS
    this.onLookupError = options.onLookupError ?? (() => {})
    this.now = options.now ?? Date.now
    for (const [name, v] of [['ttlMs', this.ttlMs], ['unknownTtlMs', this.unknownTtlMs], ['refreshMinIntervalMs', this.refreshMinIntervalMs]] as const) {
      if (!Number.isFinite(v) || v < 0) throw new RangeError(`${name} must be a non-negative number`)
    }
    if (!Number.isSafeInteger(this.maxDevices) || this.maxDevices < 1) throw new RangeError('maxDevices must be a positive integer')
  }

  peek (deviceId: string, timeMs: number): KeyAnswer | undefined {
    const c = this.cache.get(deviceId)
    if (c === undefined || !this.isFresh(c)) return undefined
    return answerFrom(c, timeMs)
  }

  refresh (deviceId: string): void {
    const c = this.cache.get(deviceId)
    if (c === undefined) return
    if (this.now() - c.refreshedAtMs < this.refreshMinIntervalMs) return
    c.refreshedAtMs = this.now()
    c.fetchedAtMs = -Infinity
  }

  /**
   * @throws GatewayError `KEY_LOOKUP_FAILED` when the registry cannot be read and nothing usable is cached.
   */
  async keyAt (deviceId: string, timeMs: number): Promise<KeyAnswer> {
    if (typeof deviceId !== 'string' || deviceId.length === 0) throw new TypeError('deviceId must be a non-empty string')
    if (!Number.isSafeInteger(timeMs) || timeMs < 0) throw new RangeError('timeMs must be a non-negative safe integer')
    const hit = this.peek(deviceId, timeMs)
    if (hit !== undefined) return hit
    // One request per device and time at a time: a burst of records of one device asks once.
    const key = `${deviceId}\n${timeMs}`
    let p = this.inflight.get(key)
    if (p === undefined) {
      p = this.fetch(deviceId, timeMs).finally(() => this.inflight.delete(key))
      this.inflight.set(key, p)
    }
    return await p
  }

  private isFresh (c: CachedDevice): boolean {
    return this.now() - c.fetchedAtMs < (c.unknown ? this.unknownTtlMs : this.ttlMs)
  }

  private async fetch (deviceId: string, timeMs: number): Promise<KeyAnswer> {
    const old = this.cache.get(deviceId)
    // A cache entry that is still fresh but has no answer for this time (an older key period)
    // is extended; a stale one is started over, since rotations or a revocation may be new.
    const base: CachedDevice = old !== undefined && this.isFresh(old)
      ? old
      : { periods: [], revokedFromMs: undefined, noKeyBelowMs: 0, unknown: false, fetchedAtMs: this.now(), refreshedAtMs: old?.refreshedAtMs ?? -Infinity }
    try {
      const id = deviceIdOf(deviceId)
      // A new cache entry also reads the device (one more call per TTL): the exact revocation
      // time then answers every record time, not just the one asked about.
      const [answer, info] = await Promise.all([
        this.registry.keyAt(id, timeMs).catch((e: unknown) => {
          if (e instanceof RegistryError && e.revert?.name === 'UnknownDevice') return undefined
          throw e
        }),
        base === old ? Promise.resolve(null) : this.registry.getDevice(id)
      ])
      if (answer === undefined || info === undefined) {
        this.store(deviceId, { ...base, periods: [], unknown: true, fetchedAtMs: this.now() })
        return { revoked: false, unknown: true }
      }
      if (info !== null) base.revokedFromMs = info.revokedFromMs === undefined ? undefined : Number(info.revokedFromMs)
      base.unknown = false
      if (answer.publicKey === undefined || answer.validFromMs === undefined) {
        base.noKeyBelowMs = Math.max(base.noKeyBelowMs, timeMs + 1)
      } else {
        const entry = { validFromMs: Number(answer.validFromMs), publicKey: hexToBytes(answer.publicKey) }
        if (!base.periods.some(p => p.validFromMs === entry.validFromMs)) {
          base.periods.push(entry)
          base.periods.sort((a, b) => a.validFromMs - b.validFromMs)
        }
      }
      if (answer.revoked && (base.revokedFromMs === undefined || base.revokedFromMs > timeMs)) {
        // Revoked since the entry was made: keyAt says so for this time; the exact start comes
        // with the next fresh entry.
        base.revokedFromMs = timeMs
      }
      if (base !== old) base.fetchedAtMs = this.now()
      this.store(deviceId, base)
      const result = answerFrom(base, timeMs)
      if (result === undefined) throw new RegistryError('REGISTRY_BAD_RESPONSE', `keyAt(${timeMs}) answered a period that does not contain it`)
      return result
    } catch (e) {
      const code = e instanceof RegistryError ? e.code : 'REGISTRY_RPC_FAILED'
      this.onLookupError(code)
      // Stale but usable: keep verifying with what the registry said last (docs/GATEWAY.md §Keys).
      const stale = old === undefined ? undefined : answerFrom(old, timeMs)
      if (stale !== undefined) return stale
      throw new GatewayError('KEY_LOOKUP_FAILED', `cannot read the key of "${deviceId}" from the registry: ${(e as Error).message}`, { cause: e })
    }
  }

  private store (deviceId: string, c: CachedDevice): void {
    this.cache.delete(deviceId)
    this.cache.set(deviceId, c)
    if (this.cache.size > this.maxDevices) {
      const oldest = this.cache.keys().next().value
      if (oldest !== undefined) this.cache.delete(oldest)
    }
  }
}

// Undefined: the cache says nothing about this time (an older key period not fetched yet).
function answerFrom (c: CachedDevice, timeMs: number): KeyAnswer | undefined {
  if (c.unknown) return { revoked: false, unknown: true }
  const revoked = c.revokedFromMs !== undefined && timeMs >= c.revokedFromMs
  if (timeMs < c.noKeyBelowMs && (c.periods[0] === undefined || c.periods[0].validFromMs > timeMs)) return { revoked }
  let key: Uint8Array | undefined
  for (const p of c.periods) {
    if (p.validFromMs <= timeMs) key = p.publicKey
    else break
  }
  return key === undefined ? undefined : { publicKey: key, revoked }
}

function hexToBytes (hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex.startsWith('0x') ? hex.slice(2) : hex, 'hex'))
}
