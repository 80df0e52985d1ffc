// The incident bundle format (protocol/bundle.ts): round trip, one entry per line, every bad field
// named by its path, sizes refused before anything is parsed, and fuzzing with fast-check: hostile
// input only ever raises BundleError.
import t, { type Test } from 'tap'
import fc from 'fast-check'
import { BUNDLE_LIMITS, BundleError, assertBundle, decodeBundle, decodeBundleRecord, encodeBundle, type Bundle } from '../../protocol/index.js'
import { makeMixedChain } from '../helpers/records.js'
import { offlineBundle } from '../helpers/forensics-fixture.js'

/** A well-formed bundle without a chain, with a window and a capture entry. */
function sampleBundle (): Bundle {
  return { ...offlineBundle(makeMixedChain()), window: { fromMs: 0 }, captures: [{ capture: 'AAAA' }] }
}

const valid = sampleBundle()

function bundleError (t: Test, fn: () => unknown, code: string): BundleError | undefined {
  try {
    fn()
  } catch (e) {
    t.ok(e instanceof BundleError, 'BundleError')
    t.equal((e as BundleError).code, code)
    return e as BundleError
  }
  t.fail(`expected ${code}`)
  return undefined
}

t.test('behavior: encode then decode gives the same bundle, one list entry per line', async t => {
  const text = encodeBundle(valid)
  t.same(decodeBundle(text), valid)
  t.same(decodeBundle(new TextEncoder().encode(text)), valid, 'from bytes too')
  const lines = text.split('\n')
  for (const r of valid.records) t.ok(lines.includes(`  ${JSON.stringify(r)},`) || lines.includes(`  ${JSON.stringify(r)}`), 'each record on its own line')
  t.equal(decodeBundleRecord(valid.records[0] as string).byteLength > 0, true)
})

t.test('error: assertBundle names the path of every bad field', async t => {
  const bad = JSON.parse(JSON.stringify(valid)) as Record<string, any>
  bad.createdAtMs = -1
  bad.device.id = 'has space'
  bad.device.keys[0].publicKey = 'XYZ'
  bad.device.keys[0].validUntilMs = 5
  bad.chain.registry = '0x1234'
  bad.models[0].status = 'blessed'
  bad.records[2] = 'not base64!'
  bad.proofs[1].seq = 0
  bad.anchors[0].size = 0
  bad.anchors[0].txHash = 'cd'.repeat(32)
  bad.surplus = true
  const e = bundleError(t, () => assertBundle(bad), 'BUNDLE_INVALID')
  t.same(e?.problems.map(p => p.slice(0, p.indexOf(':'))), [
    'surplus', 'createdAtMs', 'device.id', 'device.keys[0].publicKey', 'device.keys[0].validUntilMs', 'chain.registry', 'models[0].status',
    'records[2]', 'proofs[1].seq', 'anchors[0].size', 'anchors[0].txHash'
  ])
  t.match(e?.message, /records\[2\]: not standard base64/)
})

t.test('error: key periods must chain: each validUntilMs is the next validFromMs, strictly later', async t => {
  const b = JSON.parse(JSON.stringify(valid)) as Bundle
  b.device.keys[1] = { ...b.device.keys[1] as Bundle['device']['keys'][number], validFromMs: 0 }
  const e = bundleError(t, () => assertBundle(b), 'BUNDLE_INVALID')
  t.match(e?.problems, [/device\.keys\[0\]\.validUntilMs/, /device\.keys\[1\]\.validFromMs: not after/])
  bundleError(t, () => assertBundle({ ...valid, device: { ...valid.device, keys: [] } }), 'BUNDLE_INVALID')
})

t.test('error: another format is BUNDLE_UNSUPPORTED, not a list of problems', async t => {
  bundleError(t, () => assertBundle({ ...valid, format: 'edge-provenance-bundle/v2' }), 'BUNDLE_UNSUPPORTED')
  bundleError(t, () => decodeBundle('{"format":1}'), 'BUNDLE_UNSUPPORTED')
  bundleError(t, () => decodeBundle('[]'), 'BUNDLE_INVALID')
})

t.test('error: sizes are refused before parsing or walking', async t => {
  bundleError(t, () => decodeBundle('x'.repeat(101), { maxBytes: 100 }), 'BUNDLE_TOO_LARGE')
  bundleError(t, () => decodeBundle(new Uint8Array(101), { maxBytes: 100 }), 'BUNDLE_TOO_LARGE')
  bundleError(t, () => decodeBundle('é'.repeat(60), { maxBytes: 100 }), 'BUNDLE_TOO_LARGE')
  // A list over its limit is refused by length alone: its entries are never looked at.
  bundleError(t, () => assertBundle({ ...valid, records: new Array(BUNDLE_LIMITS.records + 1) }), 'BUNDLE_TOO_LARGE')
  bundleError(t, () => assertBundle({ ...valid, device: { ...valid.device, keys: new Array(BUNDLE_LIMITS.keys + 1) } }), 'BUNDLE_TOO_LARGE')
  const e = bundleError(t, () => assertBundle({ ...valid, proofs: Array.from({ length: 5000 }, () => 7) }), 'BUNDLE_INVALID')
  t.equal(e?.problems.length, BUNDLE_LIMITS.problems, 'a flood of bad fields stops at the problem limit')
  bundleError(t, () => decodeBundleRecord('A'.repeat(4 * 30000)), 'BUNDLE_INVALID')
  bundleError(t, () => decodeBundleRecord('AAB='), 'BUNDLE_INVALID')
})

t.test('behavior: a record entry is accepted exactly when it is the base64 round trip of its bytes (canonical padding bits)', async t => {
  const roundTrips = (s: string): boolean => /^[A-Za-z0-9+/]*={0,2}$/.test(s) && s.length % 4 === 0 && s.length > 0 && Buffer.from(s, 'base64').toString('base64') === s
  const accepts = (s: string): boolean => { try { decodeBundleRecord(s); return true } catch (e) { if (!(e instanceof BundleError)) throw e; return false } }
  for (const s of ['AA==', 'AB==', 'AAA=', 'AAB=', 'AAC=', 'AAAA', '////', '//8=', '/w==', '/x==']) t.equal(accepts(s), roundTrips(s), s)
  const digit = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/')
  fc.assert(fc.property(fc.array(digit, { minLength: 1, maxLength: 12 }), fc.constantFrom('', '=', '=='), (digits, pad) => {
    const s = digits.join('') + pad
    return accepts(s) === roundTrips(s)
  }), { seed: 0xb64, numRuns: 2000 })
})

t.test('error: bytes that are not UTF-8 or text that is not JSON are BUNDLE_MALFORMED', async t => {
  bundleError(t, () => decodeBundle(Uint8Array.of(0x7b, 0xff, 0x7d)), 'BUNDLE_MALFORMED')
  bundleError(t, () => decodeBundle('{"format": '), 'BUNDLE_MALFORMED')
  bundleError(t, () => decodeBundle('\ud800'), 'BUNDLE_MALFORMED')
  bundleError(t, () => decodeBundle('['.repeat(200_000)), 'BUNDLE_MALFORMED')
})

t.test('error: a bundle starting with a UTF-8 byte order mark is BUNDLE_MALFORMED, as bytes and as text (docs/FORENSICS.md §2)', async t => {
  const text = encodeBundle(valid)
  bundleError(t, () => decodeBundle(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)])), 'BUNDLE_MALFORMED')
  bundleError(t, () => decodeBundle('\ufeff' + text), 'BUNDLE_MALFORMED')
  t.ok(decodeBundle(Buffer.from(text)), 'the same bundle without the BOM decodes')
  t.throws(() => decodeBundle(42 as unknown as string), TypeError)
  t.throws(() => encodeBundle({ ...valid, createdAtMs: 1.5 }), { code: 'BUNDLE_INVALID' }, 'never writes what it would not read')
})

// --- fuzzing: hostile input only ever raises BundleError ---------------------------------------

function onlyBundleErrors (input: string | Uint8Array): void {
  try {
    decodeBundle(input)
  } catch (e) {
    if (!(e instanceof BundleError)) throw e
  }
}

const text = encodeBundle(valid)
const RUNS = { numRuns: 200, seed: 20240611 }

t.test('fuzz: arbitrary JSON values and random text decode or raise BundleError only', async t => {
  fc.assert(fc.property(fc.jsonValue(), v => onlyBundleErrors(JSON.stringify(v) ?? 'null')), RUNS)
  fc.assert(fc.property(fc.string({ maxLength: 200 }), s => onlyBundleErrors(s)), RUNS)
  fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), b => onlyBundleErrors(b)), RUNS)
  t.pass('no other exception escaped')
})

t.test('fuzz: a valid bundle with one field replaced by any JSON value, or truncated, raises BundleError only', async t => {
  const paths: Array<Array<string | number>> = [
    ['format'], ['createdAtMs'], ['device'], ['device', 'id'], ['device', 'keys'], ['device', 'keys', 0], ['device', 'keys', 0, 'publicKey'],
    ['device', 'keys', 0, 'validFromMs'], ['device', 'revokedFromMs'], ['chain'], ['chain', 'chainId'], ['chain', 'readAtBlockHash'], ['window'],
    ['models', 0], ['models', 0, 'parentHash'], ['models', 0, 'status'], ['records'], ['records', 0], ['proofs', 0], ['proofs', 0, 'proof'],
    ['anchors', 0], ['anchors', 0, 'size'], ['anchors', 0, 'lastRecordTimeMs'], ['captures'], ['captures', 0]
  ]
  fc.assert(fc.property(fc.constantFrom(...paths), fc.jsonValue({ maxDepth: 3 }), (path, value) => {
    const b = JSON.parse(text) as Record<string, unknown>
    let at: any = b
    for (const k of path.slice(0, -1)) at = at[k]
    at[path[path.length - 1] as string] = value
    onlyBundleErrors(JSON.stringify(b))
  }), RUNS)
  fc.assert(fc.property(fc.integer({ min: 0, max: text.length - 1 }), n => onlyBundleErrors(text.slice(0, n))), RUNS)
  fc.assert(fc.property(fc.integer({ min: 0, max: text.length - 1 }), fc.integer({ min: 0, max: 0xffff }), (n, c) =>
    onlyBundleErrors(text.slice(0, n) + String.fromCharCode(c) + text.slice(n + 1))), RUNS)
  t.pass('no other exception escaped')
})
