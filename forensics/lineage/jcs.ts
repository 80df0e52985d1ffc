/**
 * RFC 8785 JSON Canonicalization Scheme for the values a training statement holds: hyperparameters
 * are hashed and diffed in this form, so two trainers writing the same parameters agree byte for byte.
 */
import { ForensicsError } from '../errors.js'

/** A JSON value as JSON.parse returns it. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue }

/** Nesting deeper than this is refused (hyperparameters are shallow; this bounds the recursion). */
export const MAX_JSON_DEPTH = 64

/**
 * The RFC 8785 canonical form of `value`: object members sorted by their names' UTF-16 code units
 * (§3.2.3), numbers as ECMAScript Number-to-String (§3.2.2.3), strings as JSON.stringify writes them
 * (§3.2.2.2 is the ECMAScript escaping), no whitespace.
 * @throws ForensicsError CANONICAL_JSON_INVALID for non-finite numbers, lone surrogates, non-JSON values, depth over MAX_JSON_DEPTH
 */
export function canonicalJson (value: unknown, depth = 0): string {
  if (depth > MAX_JSON_DEPTH) throw new ForensicsError('CANONICAL_JSON_INVALID', `nested deeper than ${MAX_JSON_DEPTH}`)
  if (value === null || typeof value === 'boolean') return JSON.stringify(value)
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ForensicsError('CANONICAL_JSON_INVALID', `${String(value)} is not a JSON number`)
    return JSON.stringify(value)
  }
  if (typeof value === 'string') {
    // RFC 8785 §3.2.2.2: input must be valid Unicode; a lone surrogate has no UTF-8 form.
    if (/\p{Surrogate}/u.test(value)) throw new ForensicsError('CANONICAL_JSON_INVALID', 'a string holds a lone surrogate')
    return JSON.stringify(value)
  }
  if (Array.isArray(value)) return `[${value.map(v => canonicalJson(v, depth + 1)).join(',')}]`
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    // Default sort compares UTF-16 code units: exactly RFC 8785 §3.2.3.
    const keys = Object.keys(value).sort()
    return `{${keys.map(k => `${canonicalJson(k, depth + 1)}:${canonicalJson((value as Record<string, unknown>)[k], depth + 1)}`).join(',')}}`
  }
  throw new ForensicsError('CANONICAL_JSON_INVALID', `a ${typeof value} is not a JSON value`)
}
