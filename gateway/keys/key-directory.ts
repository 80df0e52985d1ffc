/**
 * Where the gateway learns which Ed25519 key a device signed with at a given device time, and
 * whether the device was revoked by then. The default implementation asks the on-chain registry,
 * caches each device's key history for a TTL (and unknown ids in a bounded negative cache), rate
 * limits its look-ups, and while the chain is unreachable serves the last answers it had (stale).
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
   * @throws GatewayError `KEY_LOOKUP_FAILED` when no answer can be had (registry unreachable, nothing cached),
   *   `KEY_LOOKUP_LIMITED` when look-ups are rate limited now and nothing is cached.
   */
  keyAt: (deviceId: string, timeMs: number) => Promise<KeyAnswer>
  /** A cached, still fresh answer without I/O, or undefined (then call keyAt). Optional fast path. */
  peek?: (deviceId: string, timeMs: number) => KeyAnswer | undefined
  /** Forget what is cached for the device (e.g. after a signature failure: the key may have rotated). */
  refresh?: (deviceId: string) => void
  /** What the directory holds and did (metrics). Optional. */
  stats?: () => KeyDirectoryStats
}

export const DEFAULT_KEY_CACHE_TTL_MS = 60_000
export const DEFAULT_UNKNOWN_KEY_CACHE_TTL_MS = 5_000
export const DEFAULT_KEY_CACHE_MAX_DEVICES = 100_000
/** Bytes of key history cached over all devices (as counted: see {@link cachedBytesOf}). */
export const DEFAULT_KEY_CACHE_MAX_BYTES = 32 * 1024 * 1024
/** Ids the registry said it does not know, remembered for `unknownTtlMs` (the negative cache). */
export const DEFAULT_UNKNOWN_KEY_CACHE_MAX_ENTRIES = 20_000
/** A device's cache is refreshed on demand at most this often (bounds RPC load from bad signatures). */
export const DEFAULT_KEY_REFRESH_MIN_INTERVAL_MS = 1_000
/** Registry look-ups started per second, over all devices (token bucket rate). */
export const DEFAULT_KEY_LOOKUPS_PER_SECOND = 50
/** Registry look-ups that may start at once after a quiet time (token bucket size). */
export const DEFAULT_KEY_LOOKUP_BURST = 200

export interface RegistryKeyDirectoryOptions {
  /** A registry client with a provider (reads only). */
  registry: RegistryClient
  /** How long an answer about a known device stays fresh. Default 60 000 ms. */
  ttlMs?: number
  /** How long "unknown device" stays fresh (devices get registered while the fleet runs). Default 5 000 ms. */
  unknownTtlMs?: number
  /** Devices kept in the cache; the least recently used go first. Default 100 000. */
  maxDevices?: number
  /** Bytes of key history kept in the cache, as counted; the least recently used go first. Default 32 MiB. */
  maxBytes?: number
  /** Unknown ids remembered (negative cache); the oldest go first. Default 20 000. */
  maxUnknownEntries?: number
  /** Least time between two forced refreshes of one device. Default 1 000 ms. */
  refreshMinIntervalMs?: number
  /** Registry look-ups per second over all devices; beyond, `KEY_LOOKUP_LIMITED`. Default 50. */
  lookupsPerSecond?: number
  /** Look-ups that may start at once. Default 200. */
  lookupBurst?: number
  /** Called with the error code when the registry could not be read (for metrics). */
  onLookupError?: (code: string) => void
  /** Clock, Unix ms. Default Date.now. */
  now?: () => number
}

/** What the key directory holds and did, for metrics. */
export interface KeyDirectoryStats {
  /** Known devices cached, and the bytes counted for them. */
  cachedDevices: number
  cachedBytes: number
  /** Unknown ids remembered. */
  unknownEntries: number
  /** Registry calls made (eth_call each). */
  registryCalls: number
  /** Look-ups refused by the rate limit. */
  limited: number
}

interface KeyPeriodEntry { validFromMs: number, publicKey: Uint8Array }

interface CachedDevice {
  /** The device's whole key history, sorted by validFromMs. */
  periods: KeyPeriodEntry[]
  /** Exact device time from which the device is revoked, when it is. */
  revokedFromMs: number | undefined
  fetchedAtMs: number
  refreshedAtMs: number
  /** Bytes counted for this entry. */
  bytes: number
}

/**
 * Bytes counted for a cache entry: the id (UTF-16 in V8), each period's key and number, and the
 * objects and map slot around them (measured ≈ 300 bytes for one period on Node 20; rounded up).
 */
export function cachedBytesOf (deviceId: string, periods: number): number {
  return 384 + 2 * deviceId.length + 96 * periods
}

/**
 * KeyDirectory over the ProvenanceRegistry. A miss costs one `getDevice` call, and for a known
 * device one `deviceKeys` call that brings its whole key history: every device time is then
 * answered from the cache, whatever the records claim (docs/GATEWAY.md §Keys). Key periods
 * only ever get appended on chain; what may change is a new rotation or a revocation, which the
 * TTL bounds. Unknown ids go to a separate, bounded negative cache so that a flood of made-up ids
 * cannot evict the fleet's keys, and every look-up takes a token from a global bucket.
 */
export class RegistryKeyDirectory implements KeyDirectory {
  private readonly registry: RegistryClient
  private readonly ttlMs: number
  private readonly unknownTtlMs: number
  private readonly maxDevices: number
  private readonly maxBytes: number
  private readonly maxUnknownEntries: number
  private readonly refreshMinIntervalMs: number
  private readonly lookupsPerSecond: number
  private readonly lookupBurst: number
  private readonly onLookupError: (code: string) => void
  private readonly now: () => number
  // Map iteration order is insertion order: re-inserting on use makes it an LRU.
  private readonly cache = new Map<string, CachedDevice>()
  private cacheBytes = 0
  /** Unknown id -> when the registry said so, Unix ms. */
  private readonly unknown = new Map<string, number>()
  private readonly inflight = new Map<string, Promise<CachedDevice | undefined>>()
  private tokens: number
  private tokensAtMs: number
  private registryCalls = 0
  private limited = 0

  constructor (options: RegistryKeyDirectoryOptions) {
    this.registry = options.registry
    this.ttlMs = options.ttlMs ?? DEFAULT_KEY_CACHE_TTL_MS
    this.unknownTtlMs = options.unknownTtlMs ?? DEFAULT_UNKNOWN_KEY_CACHE_TTL_MS
    this.maxDevices = options.maxDevices ?? DEFAULT_KEY_CACHE_MAX_DEVICES
    this.maxBytes = options.maxBytes ?? DEFAULT_KEY_CACHE_MAX_BYTES
    this.maxUnknownEntries = options.maxUnknownEntries ?? DEFAULT_UNKNOWN_KEY_CACHE_MAX_ENTRIES
    this.refreshMinIntervalMs = options.refreshMinIntervalMs ?? DEFAULT_KEY_REFRESH_MIN_INTERVAL_MS
    this.lookupsPerSecond = options.lookupsPerSecond ?? DEFAULT_KEY_LOOKUPS_PER_SECOND
    this.lookupBurst = options.lookupBurst ?? DEFAULT_KEY_LOOKUP_BURST
    this.onLookupError = options.onLookupError ?? (() => {})
    this.now = options.now ?? Date.now
    for (const [name, v] of [['ttlMs', this.ttlMs], ['unknownTtlMs', this.unknownTtlMs], ['refreshMinIntervalMs', this.refreshMinIntervalMs]] as const) {
      if (!Number.isFinite(v) || v < 0) throw new RangeError(`${name} must be a non-negative number`)
    }
    for (const [name, v] of [['maxDevices', this.maxDevices], ['maxBytes', this.maxBytes], ['maxUnknownEntries', this.maxUnknownEntries], ['lookupBurst', this.lookupBurst]] as const) {
      if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer`)
    }
    if (!Number.isFinite(this.lookupsPerSecond) || this.lookupsPerSecond <= 0) throw new RangeError('lookupsPerSecond must be a positive number')
    this.tokens = this.lookupBurst
    this.tokensAtMs = this.now()
  }

  peek (deviceId: string, timeMs: number): KeyAnswer | undefined {
    const c = this.cache.get(deviceId)
    if (c !== undefined) return this.isFresh(c) ? answerFrom(c, timeMs) : undefined
    const unknownAt = this.unknown.get(deviceId)
    if (unknownAt !== undefined && this.now() - unknownAt < this.unknownTtlMs) return { revoked: false, unknown: true }
    return undefined
  }

  refresh (deviceId: string): void {
    const c = this.cache.get(deviceId)
    if (c === undefined) return
    if (this.now() - c.refreshedAtMs < this.refreshMinIntervalMs) return
    c.refreshedAtMs = this.now()
    c.fetchedAtMs = -Infinity
  }

  /** What the cache holds and how many registry calls were made (for metrics and tests). */
  stats (): KeyDirectoryStats {
    return { cachedDevices: this.cache.size, cachedBytes: this.cacheBytes, unknownEntries: this.unknown.size, registryCalls: this.registryCalls, limited: this.limited }
  }

  /**
   * @throws GatewayError `KEY_LOOKUP_FAILED` when the registry cannot be read and nothing usable is
   *   cached; `KEY_LOOKUP_LIMITED` when the look-up rate is used up and nothing usable is cached.
   */
  async keyAt (deviceId: string, timeMs: number): Promise<KeyAnswer> {
    if (typeof deviceId !== 'string' || deviceId.length === 0) throw new TypeError('deviceId must be a non-empty string')
    if (!Number.isSafeInteger(timeMs) || timeMs < 0) throw new RangeError('timeMs must be a non-negative safe integer')
    const hit = this.peek(deviceId, timeMs)
    if (hit !== undefined) return hit
    // One request per device at a time: a burst of records of one device asks once.
    let p = this.inflight.get(deviceId)
    if (p === undefined) {
      // Only ids with no key cached take a token: a flood of made-up ids must not delay the TTL
      // refresh of a known device (that is how a revocation is seen). Known devices refresh at
      // most once per ttlMs (or refreshMinIntervalMs), so their own load is bounded by the fleet.
      if (!this.cache.has(deviceId) && !this.takeToken()) return this.limitedAnswer(deviceId)
      p = this.fetch(deviceId).finally(() => this.inflight.delete(deviceId))
      this.inflight.set(deviceId, p)
    }
    const c = await p
    return c === undefined ? { revoked: false, unknown: true } : answerFrom(c, timeMs)
  }

  private isFresh (c: CachedDevice): boolean {
    return this.now() - c.fetchedAtMs < this.ttlMs
  }

  private takeToken (): boolean {
    const now = this.now()
    this.tokens = Math.min(this.lookupBurst, this.tokens + Math.max(0, now - this.tokensAtMs) * this.lookupsPerSecond / 1000)
    this.tokensAtMs = now
    if (this.tokens < 1) return false
    this.tokens--
    return true
  }

  // Out of tokens: the last word on an unknown id still holds for a while (it is not in the cache).
  private limitedAnswer (deviceId: string): KeyAnswer {
    if (this.unknown.has(deviceId)) return { revoked: false, unknown: true }
    this.limited++
    throw new GatewayError('KEY_LOOKUP_LIMITED', `registry look-ups are rate limited (${this.lookupsPerSecond}/s); key of "${deviceId}" not read`)
  }

  private async call<T> (read: () => Promise<T>): Promise<T> {
    this.registryCalls++
    return await read()
  }

  // The whole key history and the revocation of the device; undefined when it is unknown.
  private async fetch (deviceId: string): Promise<CachedDevice | undefined> {
    const old = this.cache.get(deviceId)
    try {
      const id = deviceIdOf(deviceId)
      const info = await this.call(async () => await this.registry.getDevice(id))
      if (info === undefined) {
        this.remember(deviceId, undefined)
        return undefined
      }
      const history = await this.call(async () => await this.registry.getDeviceKeys(id))
      const periods = history.map(k => ({ validFromMs: Number(k.validFromMs), publicKey: hexToBytes(k.publicKey) }))
      periods.sort((a, b) => a.validFromMs - b.validFromMs)
      const c: CachedDevice = {
        periods,
        revokedFromMs: info.revokedFromMs === undefined ? undefined : Number(info.revokedFromMs),
        fetchedAtMs: this.now(),
        refreshedAtMs: old?.refreshedAtMs ?? -Infinity,
        bytes: cachedBytesOf(deviceId, periods.length)
      }
      this.remember(deviceId, c)
      return c
    } catch (e) {
      const code = e instanceof RegistryError ? e.code : 'REGISTRY_RPC_FAILED'
      this.onLookupError(code)
      // Stale but usable: keep verifying with what the registry said last (docs/GATEWAY.md §Keys).
      if (old !== undefined) return old
      throw new GatewayError('KEY_LOOKUP_FAILED', `cannot read the key of "${deviceId}" from the registry: ${(e as Error).message}`, { cause: e })
    }
  }

  private remember (deviceId: string, c: CachedDevice | undefined): void {
    const old = this.cache.get(deviceId)
    if (old !== undefined) {
      this.cache.delete(deviceId)
      this.cacheBytes -= old.bytes
    }
    this.unknown.delete(deviceId)
    if (c === undefined) {
      this.unknown.set(deviceId, this.now())
      if (this.unknown.size > this.maxUnknownEntries) {
        const oldest = this.unknown.keys().next().value
        if (oldest !== undefined) this.unknown.delete(oldest)
      }
      return
    }
    this.cache.set(deviceId, c)
    this.cacheBytes += c.bytes
    while (this.cache.size > 1 && (this.cache.size > this.maxDevices || this.cacheBytes > this.maxBytes)) {
      const [oldestId, oldest] = this.cache.entries().next().value as [string, CachedDevice]
      this.cache.delete(oldestId)
      this.cacheBytes -= oldest.bytes
    }
  }
}

function answerFrom (c: CachedDevice, timeMs: number): KeyAnswer {
  const revoked = c.revokedFromMs !== undefined && timeMs >= c.revokedFromMs
  let key: Uint8Array | undefined
  for (const p of c.periods) {
    if (p.validFromMs <= timeMs) key = p.publicKey
    else break
  }
  return key === undefined ? { revoked } : { publicKey: key, revoked }
}

function hexToBytes (hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex.startsWith('0x') ? hex.slice(2) : hex, 'hex'))
}
