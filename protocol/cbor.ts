/**
 * Canonical CBOR for everything that is hashed or signed (RFC 8949 §4.2.1, core deterministic
 * encoding), restricted to the subset our records use: unsigned integers, byte and text strings,
 * arrays, booleans and null. Encoding goes through cbor-x with its non-standard extensions off;
 * decoding is our own strict reader, because cbor-x accepts non-canonical input and trusts
 * declared lengths, and bytes off the network must do neither.
 */
import { Encoder } from 'cbor-x'
import { ProtocolError } from './errors.js'

/** The values our canonical CBOR can carry. Integers are non-negative safe integers. */
export type CborValue = number | string | Uint8Array | boolean | null | readonly CborValue[]

/** Limits applied by {@link decodeCanonical}. */
export interface DecodeLimits {
  /** Largest input accepted, in bytes. */
  maxBytes?: number
  /** Deepest nesting of arrays accepted. */
  maxDepth?: number
  /**
   * Byte strings as views of `bytes` instead of copies (default false). Only for a caller that
   * owns `bytes` and never changes them afterwards: decodeEnvelope copies an envelope once and
   * decodes it this way, one allocation per record instead of one per byte string.
   */
  viewsOfInput?: boolean
}

export const DEFAULT_DECODE_MAX_BYTES = 1024 * 1024
export const DEFAULT_DECODE_MAX_DEPTH = 8

// records: false and tagUint8Array: false keep the output plain RFC 8949 CBOR: cbor-x would
// otherwise emit its "records" extension (tag 105) and tag 64 for Uint8Array.
const encoder = new Encoder({
  useRecords: false,
  tagUint8Array: false,
  mapsAsObjects: false,
  pack: false,
  structuredClone: false,
  variableMapSize: true
})

const UINT32_MAX = 0xffff_ffff
// With the u flag a surrogate pair is one code point, so this matches unpaired surrogates only.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u

/**
 * Encodes `value` in canonical CBOR.
 * @throws TypeError for values outside the supported subset (floats, negatives, objects, text
 *   with lone surrogates).
 */
export function encodeCanonical (value: CborValue): Uint8Array {
  const out = encoder.encode(prepare(value, 0))
  // cbor-x returns a Buffer that may share a pooled ArrayBuffer: copy into an exact-size array.
  return new Uint8Array(out.buffer.slice(out.byteOffset, out.byteOffset + out.byteLength))
}

// cbor-x writes numbers above 2^32-1 as float64 and BigInts always as 8-byte integers; both break
// canonical form, so each integer is handed over in the type that gives the shortest encoding.
function prepare (value: CborValue, depth: number): unknown {
  if (depth > 64) throw new RangeError('CBOR value nested too deeply')
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new TypeError(`canonical CBOR carries non-negative safe integers only, got ${value}`)
    }
    return value > UINT32_MAX ? BigInt(value) : value
  }
  if (typeof value === 'string') {
    // A lone surrogate has no UTF-8 form: cbor-x would write it as CESU bytes (ED A0 80) that
    // no strict decoder accepts, or as U+FFFD for long strings. Refuse instead of signing either.
    if (LONE_SURROGATE.test(value)) throw new TypeError('canonical CBOR text must be well-formed UTF-16 (lone surrogate)')
    return value
  }
  if (typeof value === 'boolean' || value === null) return value
  if (value instanceof Uint8Array) {
    // A Buffer or subclass would be fine too, but a plain view keeps cbor-x on its byte-string path.
    return value.constructor === Uint8Array ? value : new Uint8Array(value.buffer, value.byteOffset, value.byteLength)
  }
  if (Array.isArray(value)) return value.map((v: CborValue) => prepare(v, depth + 1))
  throw new TypeError(`unsupported value in canonical CBOR: ${Object.prototype.toString.call(value)}`)
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/**
 * Decodes one canonical CBOR item that must span all of `bytes`.
 * @throws ProtocolError `CBOR_MALFORMED` (truncated, trailing bytes, bad UTF-8, unsupported type),
 *   `CBOR_NON_CANONICAL` (non-shortest integer or length, indefinite length), `CBOR_TOO_LARGE`.
 */
export function decodeCanonical (bytes: Uint8Array, limits: DecodeLimits = {}): CborValue {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('decodeCanonical expects a Uint8Array')
  const maxBytes = limits.maxBytes ?? DEFAULT_DECODE_MAX_BYTES
  const maxDepth = limits.maxDepth ?? DEFAULT_DECODE_MAX_DEPTH
  if (bytes.byteLength > maxBytes) {
    throw new ProtocolError('CBOR_TOO_LARGE', `CBOR input of ${bytes.byteLength} bytes exceeds ${maxBytes}`)
  }
  if (bytes.byteLength === 0) throw new ProtocolError('CBOR_MALFORMED', 'empty CBOR input')
  // Buffer#slice returns a view, not a copy: read through a plain Uint8Array so that every
  // decoded byte string is an independent copy, whatever the caller passed.
  const reader = new Reader(bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), maxDepth, limits.viewsOfInput === true)
  const value = reader.item(0)
  if (reader.pos !== bytes.byteLength) {
    throw new ProtocolError('CBOR_MALFORMED', `${bytes.byteLength - reader.pos} trailing bytes after CBOR item`)
  }
  return value
}

/**
 * The first `count` items of the array that `bytes` starts with, read by the same strict rules as
 * {@link decodeCanonical} (so each is the value a full decode gives), without reading the rest:
 * for a look at a record's header fields before it is decoded in full. Says nothing about whether
 * the rest is well formed. Undefined when `bytes` do not start with an array of at least `count`
 * items or one of them is not canonical; never throws.
 */
export function decodeArrayPrefix (bytes: Uint8Array, count: number, limits: DecodeLimits = {}): CborValue[] | undefined {
  if (!(bytes instanceof Uint8Array) || bytes.byteLength === 0 || bytes.byteLength > (limits.maxBytes ?? DEFAULT_DECODE_MAX_BYTES)) return undefined
  try {
    const reader = new Reader(bytes.constructor === Uint8Array ? bytes : new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), limits.maxDepth ?? DEFAULT_DECODE_MAX_DEPTH, limits.viewsOfInput === true)
    const length = reader.arrayHeader()
    if (length === undefined || length < count) return undefined
    const items: CborValue[] = []
    for (let i = 0; i < count; i++) items.push(reader.item(1))
    return items
  } catch {
    return undefined
  }
}

/** Text strings up to this many bytes are tried as ASCII first (device ids, names, kinds). */
const ASCII_FAST_MAX = 64

/**
 * The text of `bytes` when they are all ASCII (valid UTF-8 that decodes to the same code units),
 * else undefined: TextDecoder's per-call cost is most of a short string's decoding.
 */
function asciiText (bytes: Uint8Array, start: number, end: number): string | undefined {
  for (let i = start; i < end; i++) if ((bytes[i] as number) >= 0x80) return undefined
  // One string, not one per character as `text += …` built (most of a record's decoding garbage),
  // read in place: String.fromCharCode.apply over a subarray cost ~2 µs per string on this machine
  // (the arguments list built from a typed array), Buffer's latin1 slice ~0.3. ASCII bytes are
  // the same code units in latin1.
  return latin1Slice !== undefined ? latin1Slice.call(bytes, start, end) : String.fromCharCode.apply(null, bytes.subarray(start, end) as unknown as number[])
}

// Node's own Buffer method (not in @types/node); it reads any Uint8Array given as `this`. Where a
// runtime lacks it, the one String.fromCharCode over a subarray.
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice?: (this: Uint8Array, start: number, end: number) => string }).latin1Slice

class Reader {
  pos = 0

  // No DataView: one per reader (a gateway makes three per record) cost more than reading the
  // few multi-byte arguments by hand.
  constructor (private readonly bytes: Uint8Array, private readonly maxDepth: number, private readonly views: boolean) {}

  item (depth: number): CborValue {
    const start = this.pos
    const initial = this.u8()
    const major = initial >> 5
    const info = initial & 0x1f
    if (major === 7) {
      // RFC 8949 §3.3: 20 false, 21 true, 22 null; floats and other simple values are not ours.
      if (info === 20) return false
      if (info === 21) return true
      if (info === 22) return null
      throw new ProtocolError('CBOR_MALFORMED', `unsupported simple value or float (0x${initial.toString(16)}) at byte ${start}`)
    }
    if (info === 31) throw new ProtocolError('CBOR_NON_CANONICAL', `indefinite length at byte ${start}`)
    const arg = this.argument(info, start)
    switch (major) {
      case 0: return arg
      case 2: {
        if (this.views) return this.take(arg, start)
        // A copy straight away (not a view, then its copy).
        this.need(arg, start)
        const out = this.bytes.slice(this.pos, this.pos + arg)
        this.pos += arg
        return out
      }
      case 3: {
        if (arg <= ASCII_FAST_MAX) {
          this.need(arg, start)
          const ascii = asciiText(this.bytes, this.pos, this.pos + arg)
          if (ascii !== undefined) {
            this.pos += arg
            return ascii
          }
        }
        const text = this.take(arg, start)
        try {
          return utf8.decode(text)
        } catch (cause) {
          throw new ProtocolError('CBOR_MALFORMED', `invalid UTF-8 in text string at byte ${start}`, { cause })
        }
      }
      case 4: {
        if (depth >= this.maxDepth) throw new ProtocolError('CBOR_TOO_LARGE', `arrays nested deeper than ${this.maxDepth}`)
        // Every element takes at least one byte: a larger declared count cannot be honest, and
        // checking it first keeps a 4-byte header from reserving gigabytes.
        if (arg > this.bytes.byteLength - this.pos) {
          throw new ProtocolError('CBOR_MALFORMED', `array of ${arg} items at byte ${start} exceeds the input`)
        }
        // Sized up front: push() would give even a pair a backing store of 17 slots.
        const items = new Array<CborValue>(arg)
        for (let i = 0; i < arg; i++) items[i] = this.item(depth + 1)
        return items
      }
      default:
        throw new ProtocolError('CBOR_MALFORMED', `unsupported major type ${major} at byte ${start}`)
    }
  }

  /** The item count when the next item is an array (its header read), else undefined (nothing read). */
  arrayHeader (): number | undefined {
    const initial = this.bytes[this.pos]
    if (initial === undefined || initial >> 5 !== 4 || (initial & 0x1f) === 31) return undefined
    const start = this.pos++
    return this.argument(initial & 0x1f, start)
  }

  private argument (info: number, start: number): number {
    if (info < 24) return info
    let value: number
    let min: number
    switch (info) {
      case 24: value = this.u8(); min = 24; break
      case 25: this.need(2, start); value = this.uint16(this.pos); this.pos += 2; min = 0x100; break
      case 26: this.need(4, start); value = this.uint32(this.pos); this.pos += 4; min = 0x1_0000; break
      case 27: {
        this.need(8, start)
        const high = this.uint32(this.pos)
        const low = this.uint32(this.pos + 4)
        this.pos += 8
        // high * 2^32 + low <= 2^53 - 1 exactly when high < 2^21.
        if (high >= 0x20_0000) {
          throw new ProtocolError('CBOR_TOO_LARGE', `integer above 2^53-1 at byte ${start}`)
        }
        value = high * 0x1_0000_0000 + low
        min = 0x1_0000_0000
        break
      }
      default:
        throw new ProtocolError('CBOR_MALFORMED', `reserved additional information ${info} at byte ${start}`)
    }
    if (value < min) throw new ProtocolError('CBOR_NON_CANONICAL', `integer or length not in shortest form at byte ${start}`)
    return value
  }

  /** Big-endian unsigned integers at `at` (bounds checked by the caller). */
  private uint16 (at: number): number {
    const b = this.bytes
    return ((b[at] as number) << 8) | (b[at + 1] as number)
  }

  private uint32 (at: number): number {
    const b = this.bytes
    return (b[at] as number) * 0x100_0000 + (((b[at + 1] as number) << 16) | ((b[at + 2] as number) << 8) | (b[at + 3] as number))
  }

  private u8 (): number {
    if (this.pos >= this.bytes.byteLength) throw new ProtocolError('CBOR_MALFORMED', 'truncated CBOR input')
    return this.bytes[this.pos++] as number
  }

  private need (n: number, start: number): void {
    if (this.bytes.byteLength - this.pos < n) {
      throw new ProtocolError('CBOR_MALFORMED', `truncated CBOR item at byte ${start}`)
    }
  }

  private take (length: number, start: number): Uint8Array {
    this.need(length, start)
    const out = this.bytes.subarray(this.pos, this.pos + length)
    this.pos += length
    return out
  }
}

/**
 * The same bytes as {@link encodeCanonical}, written directly rather than through cbor-x: records
 * are encoded once per inference on the device, and for our small subset two passes over the
 * value (measure, then write) cost a fraction of cbor-x's general path. A property test holds the
 * two to identical output.
 * @throws TypeError for values outside the supported subset.
 */
export function encodeCanonicalDirect (value: CborValue): Uint8Array {
  const out = Buffer.allocUnsafe(measure(value, 0))
  const end = write(out, 0, value)
  if (end !== out.length) throw new Error('canonical CBOR writer: measured and written lengths differ')
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength)
}

/** Bytes of the canonical (shortest) head of argument `n` (a non-negative safe integer). */
export function headLength (n: number): number {
  return n < 24 ? 1 : n < 0x100 ? 2 : n < 0x1_0000 ? 3 : n <= UINT32_MAX ? 5 : 9
}

function measure (value: CborValue, depth: number): number {
  if (depth > 64) throw new RangeError('CBOR value nested too deeply')
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw new TypeError(`canonical CBOR carries non-negative safe integers only, got ${value}`)
    return headLength(value)
  }
  if (typeof value === 'string') {
    if (LONE_SURROGATE.test(value)) throw new TypeError('canonical CBOR text must be well-formed UTF-16 (lone surrogate)')
    const n = Buffer.byteLength(value, 'utf8')
    return headLength(n) + n
  }
  if (typeof value === 'boolean' || value === null) return 1
  if (value instanceof Uint8Array) return headLength(value.byteLength) + value.byteLength
  if (Array.isArray(value)) {
    let n = headLength(value.length)
    for (const v of value as readonly CborValue[]) n += measure(v, depth + 1)
    return n
  }
  throw new TypeError(`unsupported value in canonical CBOR: ${Object.prototype.toString.call(value)}`)
}

/**
 * Writes the canonical head of major type `major` with argument `n` at `o`; returns the offset
 * after it. For hand-laid values of a fixed shape (the gateway's stored records), byte-identical
 * to encodeCanonicalDirect's.
 */
export function writeHead (out: Buffer, o: number, major: number, n: number): number {
  const m = major << 5
  if (n < 24) { out[o] = m | n; return o + 1 }
  if (n < 0x100) { out[o] = m | 24; out[o + 1] = n; return o + 2 }
  if (n < 0x1_0000) { out[o] = m | 25; out.writeUInt16BE(n, o + 1); return o + 3 }
  if (n <= UINT32_MAX) { out[o] = m | 26; out.writeUInt32BE(n, o + 1); return o + 5 }
  out[o] = m | 27
  out.writeBigUInt64BE(BigInt(n), o + 1)
  return o + 9
}

function write (out: Buffer, o: number, value: CborValue): number {
  if (typeof value === 'number') return writeHead(out, o, 0, value)
  if (typeof value === 'string') {
    const n = Buffer.byteLength(value, 'utf8')
    o = writeHead(out, o, 3, n)
    return o + out.write(value, o, n, 'utf8')
  }
  if (value === false) { out[o] = 0xf4; return o + 1 }
  if (value === true) { out[o] = 0xf5; return o + 1 }
  if (value === null) { out[o] = 0xf6; return o + 1 }
  if (value instanceof Uint8Array) {
    o = writeHead(out, o, 2, value.byteLength)
    out.set(value, o)
    return o + value.byteLength
  }
  const items = value
  o = writeHead(out, o, 4, items.length)
  for (const v of items) o = write(out, o, v)
  return o
}
