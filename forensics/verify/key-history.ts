/**
 * The device key valid at a device time, from a key history (the bundle's, or the registry's read
 * at one block): the same answer as the registry's `keyAt`, without a call per record.
 */
import { fromHex, type BundleKey, type KeyLookup } from '../../protocol/index.js'

/**
 * A key lookup over `keys` (oldest first, as the registry lists them): the key whose
 * [validFromMs, validUntilMs) contains the time; undefined before the first key or for another
 * device. O(log keys) per lookup.
 */
export function createKeyLookup (deviceId: string, keys: readonly BundleKey[]): KeyLookup {
  const from = keys.map(k => k.validFromMs)
  const bytes = keys.map(k => fromHex(k.publicKey))
  return (id, timeMs) => {
    if (id !== deviceId) return undefined
    // Last key with validFromMs <= timeMs.
    let lo = 0
    let hi = from.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if ((from[mid] as number) <= timeMs) lo = mid + 1
      else hi = mid
    }
    const at = lo - 1
    const key = keys[at]
    if (key === undefined) return undefined
    if (key.validUntilMs !== undefined && timeMs >= key.validUntilMs) return undefined
    return bytes[at]
  }
}

/** Where two key histories first differ: the device time from which they disagree, or undefined when equal. */
export function findKeyDifference (a: readonly BundleKey[], b: readonly BundleKey[]): { fromMs: number, index: number } | undefined {
  const n = Math.max(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a[i]
    const y = b[i]
    if (x !== undefined && y !== undefined && x.publicKey === y.publicKey && x.validFromMs === y.validFromMs && x.validUntilMs === y.validUntilMs) continue
    const starts = [x?.validFromMs, y?.validFromMs].filter((v): v is number => v !== undefined)
    // A period that only its end tells apart starts to differ at the earlier end.
    if (x !== undefined && y !== undefined && x.publicKey === y.publicKey && x.validFromMs === y.validFromMs) {
      const ends = [x.validUntilMs, y.validUntilMs].filter((v): v is number => v !== undefined)
      return { fromMs: Math.min(...ends), index: i }
    }
    return { fromMs: Math.min(...starts), index: i }
  }
  return undefined
}
