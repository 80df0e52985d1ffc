/**
 * Checkpoint (C2SP tlog-checkpoint) and proof file (C2SP tlog-proof@v1) text formats: exact output,
 * round trips, and parsers that reject every malformed input with MERKLE_INVALID_PROOF only.
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import fc from 'fast-check'
import { ProtocolError } from '../../protocol/errors.js'
import {
  MAX_PROOF_BYTES, PROOF_HEADER, ProofParser, decodeHashLine, isBase64Text, isCanonicalBase64, formatCheckpoint, formatProof, parseCheckpoint, parseProof, verifyProof,
  type Checkpoint, type TlogProof
} from '../../protocol/checkpoint.js'
import { MerkleTree, computeRoot, hashLeaf } from '../../protocol/merkle.js'

const vectors = JSON.parse(readFileSync(new URL('../vectors/merkle.json', import.meta.url), 'utf8')) as {
  published: { leaves: string[], roots: string[] }
}
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64')
const fromB64 = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'base64'))
const fromHex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'))
const invalid = { name: 'ProtocolError', code: 'MERKLE_INVALID_PROOF' }

const LEAVES = vectors.published.leaves.map((h) => hashLeaf(fromHex(h)))
const ROOT8 = fromHex(vectors.published.roots[8] as string)
const ROOT8_B64 = b64(ROOT8)
const TREE = new MerkleTree(LEAVES)

// The example of https://c2sp.org/tlog-checkpoint, signature line included.
const C2SP_CHECKPOINT = [
  'example.com/behind-the-sofa',
  '20852163',
  'CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=',
  '',
  '— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=',
  ''
].join('\n')

const ANCHOR = [
  { key: 'chain-id', value: '31337' },
  { key: 'contract', value: '0x5FbDB2315678afecb367f032d93F642f64180aa3' },
  { key: 'batch-id', value: '42' },
  { key: 'tx-hash', value: '0x' + 'ab'.repeat(32) },
  { key: 'block', value: '17' }
]

// `extra` null: a proof without the field at all.
function sampleProof (index = 5, extra: TlogProof['extra'] | null = ANCHOR): TlogProof {
  return {
    index,
    hashes: TREE.proveInclusion(index),
    checkpoint: { origin: 'provenance.example/gateway-1', size: 8, rootHash: ROOT8 },
    ...(extra !== null ? { extra } : {})
  }
}

t.test('format: checkpoint lines of tlog-checkpoint, then an empty line', async (t) => {
  const text = formatCheckpoint({ origin: 'example.com/behind-the-sofa', size: 20852163, rootHash: fromB64('CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=') })
  t.equal(text, 'example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n')
  t.equal(formatCheckpoint({ origin: 'o', size: 0, rootHash: new Uint8Array(32) }), 'o\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n', 'size 0 is "0"')
  t.equal(formatCheckpoint({ origin: 'o', size: 1, rootHash: new Uint8Array(32), extensions: ['ext one'] }),
    'o\n1\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\next one\n\n', 'extension lines after the root')
})

t.test('behavior: parses the C2SP example and ignores its signature line', async (t) => {
  const cp = parseCheckpoint(C2SP_CHECKPOINT)
  t.equal(cp.origin, 'example.com/behind-the-sofa')
  t.equal(cp.size, 20852163)
  t.equal(b64(cp.rootHash), 'CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=')
  t.equal(cp.extensions, undefined)
  t.same(parseCheckpoint(Buffer.from(C2SP_CHECKPOINT)), cp, 'same from UTF-8 bytes')
  t.same(parseCheckpoint('example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n'), cp, 'note text without the empty line')
  const withExt = parseCheckpoint('o\n3\n' + ROOT8_B64 + '\nx-ext 1\n\n— o sig\n— w sig\n')
  t.same(withExt.extensions, ['x-ext 1'])
})

t.test('behavior: checkpoint round trip', async (t) => {
  fc.assert(fc.property(
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }).filter((s) => !/[\x00-\x1f\x7f-\x9f\u2028\u2029\uFEFF]/.test(s)),
    fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    fc.uint8Array({ minLength: 32, maxLength: 32 }),
    (origin, size, rootHash) => {
      const cp: Checkpoint = { origin, size, rootHash }
      const text = formatCheckpoint(cp)
      const back = parseCheckpoint(text)
      return back.origin === origin && back.size === size && b64(back.rootHash) === b64(rootHash) && formatCheckpoint(back) === text
    }))
  t.pass('round trips')
})

t.test('format: proof file of tlog-proof@v1 with anchoring as extra data', async (t) => {
  const proof = sampleProof()
  const text = formatProof(proof)
  const lines = text.split('\n')
  t.equal(lines[0], PROOF_HEADER)
  t.match(lines[1], /^extra [A-Za-z0-9+/]+=*$/)
  t.equal(Buffer.from(lines[1]!.slice(6), 'base64').toString('utf8'), ANCHOR.map((e) => `${e.key} ${e.value}\n`).join(''),
    'extra data is the base64 of key value lines')
  t.equal(lines[2], 'index 5')
  t.same(lines.slice(3, 6), proof.hashes.map(b64), 'three hashes, leaf sibling first')
  t.equal(lines[6], '', 'empty line before the checkpoint')
  t.equal(lines.slice(7).join('\n'), formatCheckpoint(proof.checkpoint), 'checkpoint verbatim')
  t.equal(formatProof(sampleProof(5, [])), formatProof(sampleProof(5, null)), 'no extra line without entries')
  t.notMatch(formatProof(sampleProof(5, [])), /\nextra /)
})

t.test('behavior: proof round trip and verification against the published tree', async (t) => {
  for (let index = 0; index < 8; index++) {
    for (const extra of [ANCHOR, null]) {
      const proof = sampleProof(index, extra)
      const text = formatProof(proof)
      const back = parseProof(text)
      t.equal(back.index, index)
      t.same(back.hashes.map(b64), proof.hashes.map(b64))
      t.same(back.extra, extra ?? undefined)
      t.equal(formatProof(back), text, `round trip index ${index}`)
      t.same(parseProof(Buffer.from(text)), back, 'same from bytes')
      verifyProof(back, LEAVES[index]!)
      t.throws(() => verifyProof(back, LEAVES[(index + 1) % 8]!), { name: 'ProtocolError', code: 'MERKLE_ROOT_MISMATCH' })
    }
  }
  // A signed checkpoint inside the proof: signatures are carried but ignored.
  const signed = formatProof(sampleProof()) + '— provenance.example/gateway-1 c2lnbmF0dXJl\n'
  t.same(parseProof(signed).checkpoint.size, 8)
})

t.test('behavior: random proofs round trip and verify', async (t) => {
  const extraArb = fc.uniqueArray(fc.record({
    key: fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,20}$/),
    value: fc.stringMatching(/^[\x21-\x7e]{1,40}$/)
  }), { maxLength: 6, selector: (e) => e.key })
  fc.assert(fc.property(fc.integer({ min: 1, max: 200 }), fc.nat(), extraArb, (n, at, extra) => {
    const leaves = Array.from({ length: n }, (_, i) => hashLeaf(Buffer.from(`leaf ${i}`)))
    const tree = new MerkleTree(leaves)
    const index = at % n
    const proof: TlogProof = { index, hashes: tree.proveInclusion(index), checkpoint: { origin: 'gw', size: n, rootHash: computeRoot(leaves) }, extra }
    const text = formatProof(proof)
    const back = parseProof(text)
    verifyProof(back, leaves[index]!)
    return formatProof(back) === text && (extra.length === 0 ? back.extra === undefined : JSON.stringify(back.extra) === JSON.stringify(extra))
  }), { numRuns: 60 })
  t.pass('round trips')
})

t.test('behavior: extra blocks of any size decode the same, one after another (decodeExtra reuses one buffer)', async (t) => {
  // Larger than the first scratch buffer (4 KiB decoded), then smaller, then larger again.
  const big = Array.from({ length: 8 }, (_, i) => ({ key: `k${i}`, value: String.fromCharCode(0x41 + i).repeat(1000) }))
  const small = [{ key: 'seq', value: '7' }]
  for (const extra of [big, small, ANCHOR, big, small]) t.same(parseProof(formatProof(sampleProof(3, extra))).extra, extra)
  // A refused block in between (not ASCII) leaves nothing behind for the next one.
  const withExtra = (block: string): string => formatProof(sampleProof(3, small)).split('\n').map(l => l.startsWith('extra ') ? `extra ${Buffer.from(block).toString('base64')}` : l).join('\n')
  t.throws(() => parseProof(withExtra('device caf\u00e9\n')), { name: 'ProtocolError', code: 'MERKLE_INVALID_PROOF' })
  t.same(parseProof(withExtra('seq 8\n')).extra, [{ key: 'seq', value: '8' }])
})

t.test('behavior: a hash line or extra is accepted exactly when it is the base64 round trip of its bytes', async (t) => {
  const text = formatProof(sampleProof(2, ANCHOR))
  const lines = text.split('\n')
  const hashAt = lines.findIndex(l => l.startsWith('index ')) + 1
  const extraAt = lines.findIndex(l => l.startsWith('extra '))
  const accepts = (l: string[]): boolean => { try { parseProof(l.join('\n')); return true } catch { return false } }
  const roundTrips = (s: string): boolean => Buffer.from(s, 'base64').toString('base64') === s
  const digits = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  const line = lines[hashAt] as string
  const proofRoot = (l: string[]): boolean => { try { verifyProof(parseProof(l.join('\n')), LEAVES[2]!); return true } catch { return false } }
  t.ok(proofRoot(lines), 'the unchanged proof verifies')
  // Every last digit before the '=' (only those with zero padding bits are canonical), and other characters anywhere.
  for (const last of [...digits, '=', '-', '_', ' ', 'é']) {
    const changed = [...lines]
    changed[hashAt] = line.slice(0, 42) + last + '='
    t.equal(accepts(changed), changed[hashAt].length === 44 && roundTrips(changed[hashAt]), `last digit ${last}`)
  }
  for (const bad of ['-', '_', '=', '.', 'é', ' ']) {
    const changed = [...lines]
    changed[hashAt] = bad + line.slice(1)
    t.notOk(accepts(changed), `a ${JSON.stringify(bad)} in a hash line`)
  }
  const extra = (lines[extraAt] as string).slice('extra '.length)
  for (const [what, e] of [['padding bits', extra.replace(/.(=*)$/, (m, p: string) => digits[(digits.indexOf(m[0] as string) + 1) % 64] + p)], ['url-safe digit', '_' + extra.slice(1)], ['missing padding', extra.replace(/=+$/, '')]] as const) {
    const changed = [...lines]
    changed[extraAt] = 'extra ' + e
    t.equal(accepts(changed), e.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(e) && roundTrips(e), what)
  }
})

t.test('error: malformed checkpoints are MERKLE_INVALID_PROOF', async (t) => {
  const ok = `o\n8\n${ROOT8_B64}\n\n`
  t.doesNotThrow(() => parseCheckpoint(ok))
  const cases: Array<[string | Uint8Array, string]> = [
    ['', 'empty'],
    [`o\n8\n${ROOT8_B64}`, 'no final newline'],
    [`o\n8\n\n`, 'no root line'],
    [`\n8\n${ROOT8_B64}\n\n`, 'empty origin'],
    [`o\x00x\n8\n${ROOT8_B64}\n\n`, 'NUL in origin'],
    [`${'o'.repeat(257)}\n8\n${ROOT8_B64}\n\n`, 'origin too long'],
    [`o\r\n8\r\n${ROOT8_B64}\r\n\r\n`, 'CRLF line ends'],
    [`o\n08\n${ROOT8_B64}\n\n`, 'leading zero in size'],
    [`o\n-1\n${ROOT8_B64}\n\n`, 'negative size'],
    [`o\n8.0\n${ROOT8_B64}\n\n`, 'fractional size'],
    [`o\n+8\n${ROOT8_B64}\n\n`, 'signed size'],
    [`o\n 8\n${ROOT8_B64}\n\n`, 'space before size'],
    [`o\n9007199254740992\n${ROOT8_B64}\n\n`, 'size 2^53'],
    [`o\n99999999999999999999\n${ROOT8_B64}\n\n`, 'size of 20 digits'],
    [`o\n8\n${ROOT8_B64.slice(0, -1)}\n\n`, 'root without padding'],
    [`o\n8\n${ROOT8_B64.replace(/.=$/, (m) => String.fromCharCode(m.charCodeAt(0) + 1) + '=')}\n\n`, 'root with non-zero padding bits'],
    [`o\n8\n${b64(new Uint8Array(31))}\n\n`, '31-byte root'],
    [`o\n8\n${b64(new Uint8Array(33))}\n\n`, '33-byte root'],
    [`o\n8\n${ROOT8_B64.replace(/[A-Za-z]/, '-')}\n\n`, 'base64url character'],
    [`o\n8\n${ROOT8_B64}\n\n— sig`, 'signature without final newline'],
    [`o\n8\n${ROOT8_B64}\n\n\n`, 'empty signature line'],
    [`o\n8\n${ROOT8_B64}\n\n— a\x01b\n`, 'control character in signature line'],
    [`o\n8\n${ROOT8_B64}\n\n${'— s\n'.repeat(65)}`, 'too many signature lines'],
    [`o\n8\n${ROOT8_B64}\n${'x\n'.repeat(17)}\n`, 'too many extension lines'],
    [`o\n8\n${ROOT8_B64}\n\n`.padEnd(70_000, 'x'), 'above the size limit'],
    [`o\ud800\n8\n${ROOT8_B64}\n\n`, 'lone surrogate'],
    [Uint8Array.of(0x6f, 0xff, 0x0a), 'invalid UTF-8'],
    [Uint8Array.of(0xef, 0xbb, 0xbf, ...Buffer.from(ok)), 'byte order mark'],
    [`o\u2028x\n8\n${ROOT8_B64}\n\n`, 'line separator in origin']
  ]
  for (const [input, what] of cases) t.throws(() => parseCheckpoint(input), invalid, what)
  t.throws(() => parseCheckpoint(42 as unknown as string), TypeError, 'not text: a bug in the caller')
})

t.test('error: malformed proof files are MERKLE_INVALID_PROOF', async (t) => {
  const good = formatProof(sampleProof())
  const [header, extraLine, indexLine, h1, h2, h3, blank, ...cp] = good.split('\n')
  const join = (...lines: Array<string | undefined>): string => lines.join('\n')
  const rest = [blank, ...cp]
  const extraOf = (text: string): string => `extra ${Buffer.from(text).toString('base64')}`
  const cases: Array<[string | Uint8Array, string]> = [
    ['', 'empty'],
    [good.replace('\n\n', '\n'), 'no empty line before the checkpoint'],
    [join('c2sp.org/tlog-proof@v2', extraLine, indexLine, h1, h2, h3, ...rest), 'wrong header'],
    [join(extraLine, indexLine, h1, h2, h3, ...rest), 'missing header'],
    [join(header, extraLine, h1, h2, h3, ...rest), 'missing index line'],
    [join(header, indexLine, extraLine, h1, h2, h3, ...rest), 'extra after index'],
    [join(header, extraLine, extraLine, indexLine, h1, h2, h3, ...rest), 'two extra lines'],
    [join(header, extraLine, 'index 05', h1, h2, h3, ...rest), 'leading zero in index'],
    [join(header, extraLine, 'index -5', h1, h2, h3, ...rest), 'negative index'],
    [join(header, extraLine, 'index  5', h1, h2, h3, ...rest), 'two spaces after index'],
    [join(header, extraLine, 'index 8', h1, h2, h3, ...rest), 'index equal to the tree size'],
    [join(header, extraLine, 'index 99999999999999999', h1, h2, h3, ...rest), 'index above 2^53'],
    [join(header, extraLine, indexLine, h1, h2, ...rest), 'one hash missing'],
    [join(header, extraLine, indexLine, h1, h2, h3, h3, ...rest), 'one hash too many'],
    [join(header, extraLine, 'index 0', ...Array(70).fill(h1), ...rest), 'far too many hashes'],
    [join(header, extraLine, indexLine, h1, h2, h3!.slice(0, -1), ...rest), 'hash without padding'],
    [join(header, extraLine, indexLine, h1, h2, b64(new Uint8Array(48)), ...rest), '48-byte hash'],
    [join(header, extraLine, indexLine, h1, h2, h3 + ' ', ...rest), 'trailing space after a hash'],
    [join(header, extraLine, indexLine, h1, h2, h3!.slice(0, 42) + String.fromCharCode(h3!.charCodeAt(42) ^ 1) + '=', ...rest), 'hash with non-zero padding bits'],
    [join(header, extraLine, indexLine, h1, h2, h3!.slice(0, 42) + 'é=', ...rest), 'hash with a non-base64 character'],
    [join(header, 'extra', indexLine, h1, h2, h3, ...rest), 'extra without data'],
    [join(header, 'extra ', indexLine, h1, h2, h3, ...rest), 'extra with empty data'],
    [join(header, 'extra !!!!', indexLine, h1, h2, h3, ...rest), 'extra not base64'],
    [join(header, extraOf('chain-id 1'), indexLine, h1, h2, h3, ...rest), 'extra without final newline'],
    [join(header, extraOf('chain-id 1\nchain-id 2\n'), indexLine, h1, h2, h3, ...rest), 'extra key twice'],
    [join(header, extraOf('Chain 1\n'), indexLine, h1, h2, h3, ...rest), 'extra key with capitals'],
    [join(header, extraOf('chain-id\n'), indexLine, h1, h2, h3, ...rest), 'extra key without value'],
    [join(header, extraOf('note two words\n'), indexLine, h1, h2, h3, ...rest), 'extra value with a space'],
    [join(header, extraOf('\n'), indexLine, h1, h2, h3, ...rest), 'extra with an empty line'],
    [join(header, `extra ${Buffer.from([0x6b, 0x20, 0xff, 0x0a]).toString('base64')}`, indexLine, h1, h2, h3, ...rest), 'extra not UTF-8'],
    [join(header, extraOf('k é\n'), indexLine, h1, h2, h3, ...rest), 'extra value not ASCII'],
    [join(header, extraOf(Array.from({ length: 33 }, (_, i) => `k${i} v\n`).join('')), indexLine, h1, h2, h3, ...rest), 'too many extra entries'],
    [join(header, extraLine, indexLine, h1, h2, h3, blank, 'o', '8', ''), 'checkpoint without root'],
    [good.replace(/\n\n$/, '\n\n\n'), 'empty line in the signatures'],
    [good.padEnd(MAX_PROOF_BYTES + 1, 'x'), 'above the size limit'],
    [good.replace(/\n/g, '\r\n'), 'CRLF line ends']
  ]
  const parser = new ProofParser()
  for (const [input, what] of cases) {
    t.throws(() => parseProof(input), invalid, what)
    t.equal(outcomeOf(() => parser.parse(input)), outcomeOf(() => parseProof(input)), `ProofParser: ${what}`)
  }
  t.doesNotThrow(() => parseProof(good))
})

// 'ok' or the error's code and message: ProofParser must fail exactly where parseProof does.
function outcomeOf (fn: () => unknown): string {
  try {
    fn()
    return 'ok'
  } catch (e) {
    if (e instanceof ProtocolError) return `${e.code}: ${e.message}`
    throw e
  }
}

t.test('behavior: ProofParser reads what parseProof reads, its hash lines decoding to the same hashes, each checkpoint parsed once', async (t) => {
  const parser = new ProofParser()
  const first = parser.parse(formatProof(sampleProof(5)))
  const again = parser.parse(formatProof(sampleProof(6)))
  t.equal(again.checkpoint, first.checkpoint, 'the same checkpoint text gives the same (shared) object')
  for (const i of [0, 3, 5, 7]) {
    const text = formatProof(sampleProof(i))
    const plain = parseProof(text)
    const encoded = parser.parse(text)
    t.same(encoded.hashLines.map(decodeHashLine), plain.hashes, `index ${i}`)
    const { hashLines: _lines, ...encodedRest } = encoded
    const { hashes: _hashes, ...plainRest } = plain
    t.same(encodedRest, plainRest, 'index, checkpoint and extra alike')
  }
  // Mutations of a valid file: both parsers agree on every one.
  const good = formatProof(sampleProof())
  fc.assert(fc.property(fc.nat({ max: good.length - 1 }), fc.string({ unit: 'binary', minLength: 0, maxLength: 2 }), fc.nat({ max: 2 }), (at, ch, del) => {
    const text = good.slice(0, at) + ch + good.slice(at + del)
    return outcomeOf(() => parser.parse(text)) === outcomeOf(() => parseProof(text))
  }), { numRuns: 500 })
})

t.test('behavior: parsers raise only ProtocolError on arbitrary and mutated input', async (t) => {
  const good = formatProof(sampleProof())
  const isProtocolErrorOrOk = (fn: () => unknown): boolean => {
    try {
      fn()
      return true
    } catch (e) {
      return e instanceof ProtocolError && e.code === 'MERKLE_INVALID_PROOF'
    }
  }
  fc.assert(fc.property(fc.oneof(fc.string({ maxLength: 600 }), fc.string({ unit: 'binary', maxLength: 600 })), (s) =>
    isProtocolErrorOrOk(() => parseProof(s)) && isProtocolErrorOrOk(() => parseCheckpoint(s))), { numRuns: 1000 })
  fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (b) =>
    isProtocolErrorOrOk(() => parseProof(b)) && isProtocolErrorOrOk(() => parseCheckpoint(b))), { numRuns: 500 })
  // Mutations of a valid file: a replaced, inserted or deleted character.
  const mutation = fc.record({ at: fc.nat({ max: good.length - 1 }), ch: fc.string({ unit: 'binary', minLength: 0, maxLength: 2 }), del: fc.nat({ max: 2 }) })
  fc.assert(fc.property(mutation, ({ at, ch, del }) => {
    const text = good.slice(0, at) + ch + good.slice(at + del)
    return isProtocolErrorOrOk(() => {
      const p = parseProof(text)
      // Whatever parses is well formed enough to format and to verify without crashing.
      formatProof(p)
      try {
        verifyProof(p, LEAVES[5]!)
      } catch (e) {
        if (!(e instanceof ProtocolError)) throw e
      }
    })
  }), { numRuns: 2000 })
  t.pass('no other exception')
})

t.test('error: formatting what the parser would reject is a RangeError or TypeError', async (t) => {
  const p = sampleProof()
  t.throws(() => formatProof({ ...p, index: 8 }), RangeError, 'index not below size')
  t.throws(() => formatProof({ ...p, index: -1 }), RangeError)
  t.throws(() => formatProof({ ...p, hashes: p.hashes.slice(1) }), RangeError, 'proof length does not fit')
  t.throws(() => formatProof({ ...p, hashes: [p.hashes[0]!, p.hashes[1]!, new Uint8Array(31)] }), RangeError, 'short hash')
  t.throws(() => formatProof({ ...p, hashes: [p.hashes[0]!, p.hashes[1]!, 'x' as unknown as Uint8Array] }), TypeError)
  t.throws(() => formatProof({ ...p, extra: [{ key: 'Key', value: 'v' }] }), RangeError, 'bad extra key')
  t.throws(() => formatProof({ ...p, extra: [{ key: 'k', value: 'two words' }] }), RangeError, 'space in extra value')
  t.throws(() => formatProof({ ...p, extra: [{ key: 'k', value: '' }] }), RangeError, 'empty extra value')
  t.throws(() => formatProof({ ...p, extra: [{ key: 'k', value: '1' }, { key: 'k', value: '2' }] }), RangeError, 'duplicate key')
  t.throws(() => formatCheckpoint({ origin: '', size: 1, rootHash: ROOT8 }), RangeError, 'empty origin')
  t.throws(() => formatCheckpoint({ origin: 'a\nb', size: 1, rootHash: ROOT8 }), RangeError, 'newline in origin')
  t.throws(() => formatCheckpoint({ origin: 'o', size: -1, rootHash: ROOT8 }), RangeError)
  t.throws(() => formatCheckpoint({ origin: 'o', size: 2 ** 53, rootHash: ROOT8 }), RangeError)
  t.throws(() => formatCheckpoint({ origin: 'o', size: 1, rootHash: ROOT8.subarray(1) }), RangeError)
  t.throws(() => formatCheckpoint({ origin: 'o', size: 1, rootHash: ROOT8, extensions: [''] }), RangeError, 'empty extension line')
})

t.test('the base64 text check accepts exactly what /^[A-Za-z0-9+/]*={0,2}$/ does, and canonical means encoding the bytes gives the text back', async t => {
  const reference = /^[A-Za-z0-9+/]*={0,2}$/
  const alphabet = 'AQgw/+9z=-_ \n\u00e9='.split('')
  const text = fc.array(fc.constantFrom(...alphabet), { maxLength: 12 }).map(cs => cs.join(''))
  fc.assert(fc.property(text, s => {
    t.equal(isBase64Text(s), reference.test(s), JSON.stringify(s))
    t.equal(isCanonicalBase64(s), Buffer.from(Buffer.from(s, 'base64').toString('base64')).toString() === s && reference.test(s), JSON.stringify(s))
  }), { numRuns: 2000 })
  // Every single-character change of a real record's text.
  const record = Buffer.from(Array.from({ length: 157 }, (_, i) => (i * 37) & 0xff)).toString('base64')
  for (let i = 0; i < record.length; i++) {
    for (const c of ['=', '-', 'A', '/', '\n']) {
      const s = record.slice(0, i) + c + record.slice(i + 1)
      t.equal(isBase64Text(s), reference.test(s), `${i} ${c}`)
    }
  }
})
