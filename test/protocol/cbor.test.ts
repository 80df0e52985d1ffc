/**
 * Canonical CBOR (RFC 8949 §4.2.1, core deterministic encoding) over our subset: round trips,
 * every rejection rule of the strict decoder with its code, and a cross-check of the encoder
 * against an independent encoder written here from the RFC, and of its output against cbor-x's
 * own decoder.
 */
import { isDeepStrictEqual } from 'node:util'
import t from 'tap'
import fc from 'fast-check'
import { decode as cborxDecode } from 'cbor-x'
import { decodeCanonical, encodeCanonical, encodeCanonicalDirect, fromHex, toHex, ProtocolError, type CborValue } from '../../protocol/index.js'

const utf8 = new TextEncoder()

// RFC 8949 §4.2.1: the argument in the shortest form (§3: 0..23 inline, then 1, 2, 4, 8 bytes),
// definite lengths only. Written independently of protocol/cbor.ts on purpose.
function head (major: number, n: number): number[] {
  const m = major << 5
  if (n < 24) return [m | n]
  if (n < 0x100) return [m | 24, n]
  if (n < 0x1_0000) return [m | 25, n >> 8, n & 0xff]
  if (n < 0x1_0000_0000) return [m | 26, (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]
  const big = BigInt(n)
  const out = [m | 27]
  for (let i = 7; i >= 0; i--) out.push(Number((big >> BigInt(8 * i)) & 0xffn))
  return out
}

function referenceEncode (v: CborValue): Uint8Array {
  const parts: Uint8Array[] = []
  const walk = (x: CborValue): void => {
    if (typeof x === 'number') parts.push(Uint8Array.from(head(0, x)))
    else if (typeof x === 'string') { const b = utf8.encode(x); parts.push(Uint8Array.from(head(3, b.length)), b) } else if (x instanceof Uint8Array) parts.push(Uint8Array.from(head(2, x.length)), x)
    else if (x === false) parts.push(Uint8Array.of(0xf4))
    else if (x === true) parts.push(Uint8Array.of(0xf5))
    else if (x === null) parts.push(Uint8Array.of(0xf6))
    else { parts.push(Uint8Array.from(head(4, x.length))); x.forEach(walk) }
  }
  walk(v)
  return new Uint8Array(Buffer.concat(parts))
}

const boundaryInts = fc.constantFrom(0, 1, 23, 24, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1)
// Lengths around the header boundaries (23/24, 255/256, 65535/65536) need long strings now and then.
const longString = fc.constantFrom(23, 24, 255, 256, 65535, 65536).chain(n => fc.constantFrom('a'.repeat(n), 'é'.repeat(Math.ceil(n / 2)), '€'.repeat(Math.ceil(n / 3))))
const longBytes = fc.constantFrom(23, 24, 255, 256, 65535, 65536).map(n => new Uint8Array(n).fill(n & 0xff))

/** Random values of our subset, nested at most `maxDepth` arrays deep. */
function cborValue (maxDepth = 6): fc.Arbitrary<CborValue> {
  const leaf: fc.Arbitrary<CborValue> = fc.oneof(
    { weight: 3, arbitrary: fc.maxSafeNat() },
    { weight: 2, arbitrary: fc.nat(70_000) },
    { weight: 2, arbitrary: boundaryInts },
    { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 10 }) },
    { weight: 3, arbitrary: fc.uint8Array({ maxLength: 40 }) },
    { weight: 1, arbitrary: fc.oneof(longString, longBytes) },
    { weight: 1, arbitrary: fc.boolean() },
    { weight: 1, arbitrary: fc.constant(null) }
  )
  const { tree } = fc.letrec<{ tree: CborValue }>(tie => ({
    tree: fc.oneof({ depthSize: 'small', maxDepth, withCrossShrink: true }, leaf, fc.array(tie('tree'), { maxLength: 6 }))
  }))
  return tree
}

// cbor-x hands back Buffers for byte strings and may hand back BigInts for 8-byte integers.
function normalise (v: unknown): unknown {
  if (typeof v === 'bigint') return Number(v)
  if (v instanceof Uint8Array) return new Uint8Array(v)
  if (Array.isArray(v)) return v.map(normalise)
  return v
}

function rejects (tt: Pick<typeof t, 'throws'>, hex: string, code: string, what: string, limits?: { maxBytes?: number, maxDepth?: number }): void {
  tt.throws(() => decodeCanonical(fromHex(hex), limits), { constructor: ProtocolError, code }, `${what} (${hex.length > 40 ? hex.slice(0, 40) + '…' : hex}) → ${code}`)
}

t.test('behavior: round trips of every type at every header size', async t => {
  const cases: Array<[CborValue, string]> = [
    [0, '00'], [23, '17'], [24, '1818'], [255, '18ff'], [256, '190100'], [65535, '19ffff'],
    [65536, '1a00010000'], [2 ** 32 - 1, '1affffffff'], [2 ** 32, '1b0000000100000000'], [2 ** 53 - 1, '1b001fffffffffffff'],
    ['', '60'], ['a', '6161'], ['ü', '62c3bc'], ['\u{1F600}', '64f09f9880'], ['\uFEFF', '63efbbbf'],
    [new Uint8Array(), '40'], [Uint8Array.of(1, 2, 3), '43010203'],
    [false, 'f4'], [true, 'f5'], [null, 'f6'],
    [[], '80'], [[1, [2, 3]], '8201820203'], [['a', Uint8Array.of(0xff), true, null], '84616141fff5f6']
  ]
  for (const [value, hex] of cases) {
    t.equal(toHex(encodeCanonical(value)), hex, `encode ${hex}`)
    t.same(decodeCanonical(fromHex(hex)), value, `decode ${hex}`)
  }
  // A BOM is content, not a marker: it must survive (TextDecoder would strip it by default).
  t.equal(decodeCanonical(fromHex('63efbbbf')), '\uFEFF')
  // Lengths at the header boundaries, for text, bytes and arrays.
  for (const n of [23, 24, 255, 256, 65535, 65536]) {
    const s = 'x'.repeat(n)
    const roundTrips = (v: CborValue): boolean => isDeepStrictEqual(decodeCanonical(encodeCanonical(v), { maxBytes: 1 << 20 }), v)
    t.ok(roundTrips(s), `text of ${n}`)
    t.ok(roundTrips(new Uint8Array(n)), `bytes of ${n}`)
    t.ok(roundTrips(new Array<number>(n).fill(7)), `array of ${n}`)
  }
})

t.test('behavior: decoded byte strings are copies, not views of the input', async t => {
  const input = fromHex('43010203')
  const out = decodeCanonical(input) as Uint8Array
  input[1] = 9
  t.same(out, Uint8Array.of(1, 2, 3))
  t.equal(out.byteOffset, 0)
  t.equal(out.buffer.byteLength, 3)
})

t.test('behavior: with viewsOfInput byte strings are views of the input, values the same as copies', async t => {
  const input = fromHex('824301020362c3bc')
  const [bytes, text] = decodeCanonical(input, { viewsOfInput: true }) as [Uint8Array, string]
  t.equal(bytes.buffer, input.buffer, 'a view, not a copy')
  t.same(bytes, Uint8Array.of(1, 2, 3))
  t.equal(text, 'ü')
  fc.assert(fc.property(cborValue(4), value => {
    const encoded = encodeCanonical(value)
    return isDeepStrictEqual(decodeCanonical(encoded, { viewsOfInput: true }), decodeCanonical(encoded))
  }), { seed: 0x71e5, numRuns: 500 })
})

t.test('behavior: short text decodes the same by the ASCII path as by TextDecoder, and invalid UTF-8 still fails', async t => {
  const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
  for (const s of ['', 'a', 'device-0001', 'x'.repeat(64), 'x'.repeat(65), '\u007f', 'é', 'abcé', '\u{1F600}x']) {
    const bytes = new TextEncoder().encode(s)
    const encoded = encodeCanonical(s)
    t.equal(decodeCanonical(encoded), utf8.decode(bytes), JSON.stringify(s))
  }
  // 0x80 after ASCII bytes: the fast path gives up, TextDecoder refuses it.
  rejects(t, '6361628061', 'CBOR_MALFORMED', 'ASCII then a lone continuation byte')
})

t.test('behavior: encoder output equals an independent RFC 8949 §4.2.1 encoder, and cbor-x reads it back', async t => {
  fc.assert(fc.property(cborValue(), value => {
    const ours = encodeCanonical(value)
    const reference = referenceEncode(value)
    if (toHex(ours) !== toHex(reference)) return false
    if (!isDeepStrictEqual(normalise(cborxDecode(Buffer.from(ours))), normalise(value))) return false
    return toHex(encodeCanonical(decodeCanonical(ours, { maxBytes: 1 << 20 }))) === toHex(ours)
  }), { seed: 0x8949, numRuns: 400 })
  t.pass('400 random values')
})

t.test('behavior: the direct writer used for records gives exactly the cbor-x encoder\'s bytes', async t => {
  fc.assert(fc.property(cborValue(), value => toHex(encodeCanonicalDirect(value)) === toHex(encodeCanonical(value))), { seed: 0x5eed, numRuns: 1000 })
  for (const bad of [1.5, -1, 2 ** 53, '\ud800', { a: 1 }] as unknown[]) {
    t.throws(() => encodeCanonicalDirect(bad as CborValue), TypeError)
  }
  t.pass('1000 random values')
})

t.test('behavior: decoding accepts exactly one encoding per value (decode ∘ encode = id on accepted input)', async t => {
  fc.assert(fc.property(cborValue(4), value => {
    const bytes = referenceEncode(value)
    return isDeepStrictEqual(decodeCanonical(bytes, { maxBytes: 1 << 20 }), value)
  }), { seed: 42, numRuns: 300 })
  t.pass('300 random values')
})

t.test('error: integers and lengths not in shortest form → CBOR_NON_CANONICAL', async t => {
  rejects(t, '1817', 'CBOR_NON_CANONICAL', 'uint 23 in one extra byte')
  rejects(t, '1800', 'CBOR_NON_CANONICAL', 'uint 0 in one extra byte')
  rejects(t, '1900ff', 'CBOR_NON_CANONICAL', 'uint 255 in two bytes')
  rejects(t, '1a0000ffff', 'CBOR_NON_CANONICAL', 'uint 65535 in four bytes')
  rejects(t, '1b00000000ffffffff', 'CBOR_NON_CANONICAL', 'uint 2^32-1 in eight bytes')
  rejects(t, '580100', 'CBOR_NON_CANONICAL', 'byte string length 1 in long form')
  rejects(t, '780161', 'CBOR_NON_CANONICAL', 'text length 1 in long form')
  rejects(t, '980100', 'CBOR_NON_CANONICAL', 'array length 1 in long form')
  rejects(t, '82011817', 'CBOR_NON_CANONICAL', 'non-shortest int nested in an array')
})

t.test('error: indefinite lengths → CBOR_NON_CANONICAL', async t => {
  rejects(t, '5f4101ff', 'CBOR_NON_CANONICAL', 'indefinite byte string')
  rejects(t, '7f6161ff', 'CBOR_NON_CANONICAL', 'indefinite text string')
  rejects(t, '9f01ff', 'CBOR_NON_CANONICAL', 'indefinite array')
  rejects(t, 'bf616101ff', 'CBOR_NON_CANONICAL', 'indefinite map')
  rejects(t, '1f', 'CBOR_NON_CANONICAL', 'additional information 31 on an integer')
  rejects(t, 'ff', 'CBOR_MALFORMED', 'a lone break')
})

t.test('error: floats, simple values, tags, maps, negative integers → CBOR_MALFORMED', async t => {
  rejects(t, 'f93c00', 'CBOR_MALFORMED', 'half float 1.0')
  rejects(t, 'fa3f800000', 'CBOR_MALFORMED', 'single float 1.0')
  rejects(t, 'fb3ff0000000000000', 'CBOR_MALFORMED', 'double float 1.0')
  rejects(t, 'f97e00', 'CBOR_MALFORMED', 'half float NaN')
  rejects(t, 'f7', 'CBOR_MALFORMED', 'undefined')
  rejects(t, 'f0', 'CBOR_MALFORMED', 'simple value 16')
  rejects(t, 'f820', 'CBOR_MALFORMED', 'simple value 32')
  rejects(t, 'c074323031332d30332d32315432303a30343a30305a', 'CBOR_MALFORMED', 'tag 0 (date string)')
  rejects(t, 'c249010000000000000000', 'CBOR_MALFORMED', 'tag 2 (bignum)')
  rejects(t, 'd8404101', 'CBOR_MALFORMED', 'tag 64 (cbor-x typed array)')
  rejects(t, 'd9010001', 'CBOR_MALFORMED', 'tag 256 (string ref)')
  rejects(t, 'a0', 'CBOR_MALFORMED', 'empty map')
  rejects(t, 'a10102', 'CBOR_MALFORMED', 'map {1: 2}')
  rejects(t, '20', 'CBOR_MALFORMED', 'negative integer -1')
  rejects(t, '3818', 'CBOR_MALFORMED', 'negative integer -25')
  rejects(t, '8120', 'CBOR_MALFORMED', 'negative integer inside an array')
  rejects(t, '1c', 'CBOR_MALFORMED', 'reserved additional information 28')
  rejects(t, '5d', 'CBOR_MALFORMED', 'reserved additional information 29')
  rejects(t, '9e', 'CBOR_MALFORMED', 'reserved additional information 30')
})

t.test('error: truncated input and trailing bytes → CBOR_MALFORMED', async t => {
  rejects(t, '', 'CBOR_MALFORMED', 'empty input')
  rejects(t, '18', 'CBOR_MALFORMED', 'missing 1-byte argument')
  rejects(t, '1901', 'CBOR_MALFORMED', 'short 2-byte argument')
  rejects(t, '1a000100', 'CBOR_MALFORMED', 'short 4-byte argument')
  rejects(t, '1b00000001000000', 'CBOR_MALFORMED', 'short 8-byte argument')
  rejects(t, '430102', 'CBOR_MALFORMED', 'byte string shorter than declared')
  rejects(t, '6361', 'CBOR_MALFORMED', 'text shorter than declared')
  rejects(t, '8201', 'CBOR_MALFORMED', 'array with fewer items than declared')
  rejects(t, '0000', 'CBOR_MALFORMED', 'one trailing byte')
  rejects(t, '8001', 'CBOR_MALFORMED', 'a second item after the first')
})

t.test('error: invalid UTF-8 in text strings → CBOR_MALFORMED', async t => {
  rejects(t, '61ff', 'CBOR_MALFORMED', 'byte 0xff')
  rejects(t, '61c3', 'CBOR_MALFORMED', 'truncated 2-byte sequence')
  rejects(t, '62c328', 'CBOR_MALFORMED', 'bad continuation byte')
  rejects(t, '62c0af', 'CBOR_MALFORMED', 'overlong encoding of "/"')
  rejects(t, '63eda080', 'CBOR_MALFORMED', 'UTF-8 encoded surrogate U+D800')
  rejects(t, '64f4908080', 'CBOR_MALFORMED', 'code point above U+10FFFF')
  rejects(t, '8261616180', 'CBOR_MALFORMED', 'lone continuation byte in a nested string')
})

t.test('error: declared lengths beyond the input fail before any allocation', async t => {
  const cases = [
    ['5b0000000100000000', 'byte string of 4 GiB'],
    ['5a7fffffff', 'byte string of 2 GiB'],
    ['7a7fffffff', 'text of 2 GiB'],
    ['9a7fffffff', 'array of 2^31 items'],
    ['9b001fffffffffffff', 'array of 2^53-1 items'],
    ['8a01', 'array of 10 items with 1 byte left'],
    ['99ffff' + '00'.repeat(100), 'array of 65535 items with 100 bytes left']
  ] as const
  for (const [hex, what] of cases) {
    const before = process.memoryUsage()
    const started = process.hrtime.bigint()
    rejects(t, hex, 'CBOR_MALFORMED', what)
    const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6
    const after = process.memoryUsage()
    t.ok(elapsedMs < 50, `${what}: rejected in ${elapsedMs.toFixed(2)} ms`)
    t.ok(after.arrayBuffers - before.arrayBuffers < 1 << 20, `${what}: no buffer allocated`)
    t.ok(after.heapUsed - before.heapUsed < 16 << 20, `${what}: no large heap growth`)
  }
  rejects(t, '1b0020000000000000', 'CBOR_TOO_LARGE', 'integer 2^53 (above the safe range)')
  rejects(t, '1bffffffffffffffff', 'CBOR_TOO_LARGE', 'integer 2^64-1')
  rejects(t, '5b0020000000000000', 'CBOR_TOO_LARGE', 'byte string length 2^53')
})

t.test('error: nesting deeper than maxDepth and input larger than maxBytes → CBOR_TOO_LARGE', async t => {
  const nested = (n: number): string => '81'.repeat(n) + '00'
  t.same(decodeCanonical(fromHex(nested(8))), [[[[[[[[0]]]]]]]], '8 nested arrays pass the default depth of 8')
  rejects(t, nested(9), 'CBOR_TOO_LARGE', '9 nested arrays')
  rejects(t, nested(10_000), 'CBOR_TOO_LARGE', '10 000 nested arrays (no stack overflow)')
  rejects(t, '8100', 'CBOR_TOO_LARGE', 'any array when maxDepth is 0', { maxDepth: 0 })
  t.equal(decodeCanonical(fromHex('00'), { maxDepth: 0 }), 0, 'a scalar passes maxDepth 0')
  t.same(decodeCanonical(fromHex('8281008100'), { maxDepth: 2 }), [[0], [0]])
  rejects(t, '82810081810000', 'CBOR_TOO_LARGE', 'depth 3 with maxDepth 2', { maxDepth: 2 })

  t.throws(() => decodeCanonical(new Uint8Array(1024 * 1024 + 1)), { constructor: ProtocolError, code: 'CBOR_TOO_LARGE' }, 'default limit 1 MiB')
  rejects(t, '4400000000', 'CBOR_TOO_LARGE', '5 bytes with maxBytes 4', { maxBytes: 4 })
  t.same(decodeCanonical(fromHex('4400000000'), { maxBytes: 5 }), new Uint8Array(4), 'exactly maxBytes passes')
})

t.test('error: the encoder refuses values outside the subset', async t => {
  for (const bad of [-1, 1.5, NaN, Infinity, 2 ** 53, -0.5]) {
    t.throws(() => encodeCanonical(bad), TypeError, `number ${bad}`)
  }
  for (const bad of [{}, undefined, 1n, new Map(), new Date(0), Symbol('x'), new Uint16Array(2)] as unknown[]) {
    t.throws(() => encodeCanonical(bad as CborValue), TypeError, `value ${Object.prototype.toString.call(bad)}`)
  }
  t.throws(() => encodeCanonical([{} as unknown as CborValue]), TypeError, 'object nested in an array')
  // Lone surrogates have no UTF-8 form; cbor-x alone would emit CESU bytes (ED A0 80) for short
  // strings and U+FFFD for long ones, neither of which decodes back to the value signed.
  for (const bad of ['\uD800', 'a\uDC00b', 'x'.repeat(300) + '\uDFFF', '\uDE00\uD83D']) {
    t.throws(() => encodeCanonical(bad), TypeError, `lone surrogate in ${JSON.stringify(bad.slice(-3))}`)
  }
  t.equal(toHex(encodeCanonical('\uD83D\uDE00')), '64f09f9880', 'a surrogate pair is one code point')
  let deep: CborValue = 0
  for (let i = 0; i < 70; i++) deep = [deep]
  t.throws(() => encodeCanonical(deep), RangeError, 'nesting beyond 64')
  t.throws(() => decodeCanonical('00' as unknown as Uint8Array), TypeError, 'decoder input must be bytes')
})

t.test('behavior: Buffers and offset views encode as plain byte strings', async t => {
  const backing = Uint8Array.of(9, 9, 1, 2, 3, 9)
  t.equal(toHex(encodeCanonical(backing.subarray(2, 5))), '43010203')
  t.equal(toHex(encodeCanonical(Buffer.from([1, 2, 3]))), '43010203')
  t.equal(toHex(encodeCanonical([Buffer.from([1])])), '814101')
})

t.test('behavior: every 2-, 4- and 8-byte integer argument reads as its big-endian value, or is refused as not shortest or above 2^53-1', async t => {
  // The reader takes these bytes by hand (no DataView): held to BigInt's reading of the same bytes.
  const expected = (bytes: Uint8Array): string => {
    const n = bytes.reduce((v, b) => (v << 8n) | BigInt(b), 0n)
    const min = [0n, 0x100n, 0x1_0000n, 0n, 0x1_0000_0000n][bytes.length >> 1] as bigint
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) return 'CBOR_TOO_LARGE'
    return n < min ? 'CBOR_NON_CANONICAL' : String(n)
  }
  const got = (input: Uint8Array): string => {
    try { return String(decodeCanonical(input)) } catch (e) { return (e as ProtocolError).code }
  }
  const size = fc.constantFrom(2, 4, 8)
  const argument = size.chain(n => fc.uint8Array({ minLength: n, maxLength: n }))
  fc.assert(fc.property(argument, fc.boolean(), (bytes, small) => {
    // Small values too: the high bytes zero, the boundaries of each size hit often.
    const b = small ? Uint8Array.from(bytes, (x, i) => i < bytes.length - 3 ? 0 : x) : bytes
    const head = ({ 2: 0x19, 4: 0x1a, 8: 0x1b } as Record<number, number>)[b.length] as number
    return got(Uint8Array.of(head, ...b)) === expected(b)
  }), { seed: 5, numRuns: 4000 })
  t.equal(got(fromHex('1b001fffffffffffff')), String(2 ** 53 - 1), '2^53-1')
  t.equal(got(fromHex('1b0020000000000000')), 'CBOR_TOO_LARGE', '2^53')
  t.equal(got(fromHex('1b00000000ffffffff')), 'CBOR_NON_CANONICAL', '2^32-1 in 8 bytes')
  t.equal(got(fromHex('1affffffff')), String(2 ** 32 - 1), '2^32-1')
})
