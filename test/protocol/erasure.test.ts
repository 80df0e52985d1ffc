// Retention and erasure statements (docs/PROTOCOL.md §12): the vectors are current and in the doc,
// verify on both Ed25519 backends, subject salts differ from device salts, and forged or malformed
// statements give ErasureError with its code.
import t from 'tap'
import fc from 'fast-check'
import { readFileSync } from 'node:fs'
import {
  ErasureError, createSigner, deriveSalt, deriveSubjectRef, deriveSubjectSalt, encodeCanonical, encodePruningStatement, fromHex, sha256,
  signPruningStatement, signShreddingStatement, toHex, verifyPruningStatement, verifyShreddingStatement
} from '../../protocol/index.js'
import {
  ERASURE_DOC_BEGIN, ERASURE_DOC_END, ERASURE_VECTORS_PATH, PROTOCOL_DOC_PATH, buildErasureVectors, renderErasureVectorsMarkdown, type ErasureVectors
} from '../../scripts/gen-pruning-vectors.js'

const gateway = createSigner(new Uint8Array(32).fill(8))
const other = createSigner(new Uint8Array(32).fill(9))
const device = createSigner(new Uint8Array(32).fill(3))
const pruning = {
  gatewayId: 'gateway.gw-1', deviceId: 'dev-1', firstSeq: 0, lastSeq: 9, lastHash: sha256(new Uint8Array([9])),
  batches: [{ id: 1, root: sha256(new Uint8Array([1])) }], retentionDays: 183, cutoffMs: 1000, prunedAtMs: 2000, reason: 'retention'
}
const shredding = { deviceId: 'dev-1', subjectRef: sha256(new Uint8Array([7])), ranges: [{ firstSeq: 3, lastSeq: 4 }], shreddedAtMs: 5000, reason: 'erasure request' }

function codeOf (fn: () => unknown): string | undefined {
  try { fn(); return undefined } catch (e) {
    if (!(e instanceof ErasureError)) throw e
    return e.code
  }
}

t.test('behavior: test/vectors/erasure.json is exactly what the code produces now, and the doc block is rendered from it', async t => {
  const file = JSON.parse(readFileSync(ERASURE_VECTORS_PATH, 'utf8')) as ErasureVectors
  t.same(file, buildErasureVectors(), 'rerun `node --import tsx scripts/gen-pruning-vectors.ts --doc` after a deliberate format change')
  const doc = readFileSync(PROTOCOL_DOC_PATH, 'utf8')
  const a = doc.indexOf(ERASURE_DOC_BEGIN)
  const b = doc.indexOf(ERASURE_DOC_END)
  t.ok(a >= 0 && b > a, 'the doc has the markers')
  t.equal(doc.slice(a, b + ERASURE_DOC_END.length), renderErasureVectorsMarkdown(file))
})

t.test('behavior: the vectors verify on both Ed25519 backends', async t => {
  const file = JSON.parse(readFileSync(ERASURE_VECTORS_PATH, 'utf8')) as ErasureVectors
  for (const backend of ['node', 'noble'] as const) {
    const p = verifyPruningStatement(fromHex(file.pruning.envelope), [fromHex(file.pruning.publicKey)], backend)
    t.equal(toHex(p.hash), file.pruning.hash, `pruning (${backend})`)
    const s = verifyShreddingStatement(fromHex(file.shredding.envelope), () => fromHex(file.shredding.publicKey), backend)
    t.equal(toHex(s.hash), file.shredding.hash, `shredding (${backend})`)
  }
})

t.test('behavior: a subject salt is neither the device salt of the seq nor another subject\'s', async t => {
  const secret = new Uint8Array(32).fill(1)
  const k1 = new Uint8Array(32).fill(2)
  const k2 = new Uint8Array(32).fill(3)
  t.not(toHex(deriveSubjectSalt(k1, 5)), toHex(deriveSalt(k1, 5)), 'domain separated from v1 salts')
  t.not(toHex(deriveSubjectSalt(k1, 5)), toHex(deriveSubjectSalt(k2, 5)))
  t.not(toHex(deriveSubjectSalt(k1, 5)), toHex(deriveSubjectSalt(k1, 6)))
  t.equal(toHex(deriveSubjectRef(secret, 'alice')), toHex(deriveSubjectRef(secret, 'alice')), 'a pseudonym is stable')
  t.not(toHex(deriveSubjectRef(secret, 'alice')), toHex(deriveSubjectRef(secret, 'bob')))
  t.throws(() => deriveSubjectSalt(new Uint8Array(31), 0), RangeError)
  t.throws(() => deriveSubjectRef(secret, ''), RangeError)
})

t.test('error: forged, foreign and altered statements', async t => {
  const signed = signPruningStatement(pruning, gateway)
  t.equal(codeOf(() => verifyPruningStatement(signPruningStatement(pruning, other).envelope, [gateway.publicKey])), 'STATEMENT_UNKNOWN_KEY', 'self-signed by an unknown key')
  const moved = encodePruningStatement({ ...pruning, gatewayKey: gateway.publicKey, lastSeq: 1000 })
  t.equal(codeOf(() => verifyPruningStatement(encodeCanonical([moved, signed.signature]), [gateway.publicKey])), 'STATEMENT_SIGNATURE_INVALID', 'range widened under a genuine signature')
  const s = signShreddingStatement(shredding, device)
  t.equal(codeOf(() => verifyShreddingStatement(s.envelope, () => other.publicKey)), 'STATEMENT_SIGNATURE_INVALID', 'not signed by the device key')
  t.equal(codeOf(() => verifyShreddingStatement(s.envelope, () => undefined)), 'STATEMENT_UNKNOWN_KEY', 'no device key at its time')
})

t.test('error: malformed statements are STATEMENT_MALFORMED', async t => {
  t.equal(codeOf(() => signPruningStatement({ ...pruning, firstSeq: 10 }, gateway)), 'STATEMENT_MALFORMED', 'firstSeq above lastSeq')
  t.equal(codeOf(() => signPruningStatement({ ...pruning, batches: [] }, gateway)), 'STATEMENT_MALFORMED', 'no batch')
  t.equal(codeOf(() => signPruningStatement({ ...pruning, cutoffMs: 3000 }, gateway)), 'STATEMENT_MALFORMED', 'cutoff after the pruning')
  t.equal(codeOf(() => signShreddingStatement({ ...shredding, ranges: [{ firstSeq: 1, lastSeq: 3 }, { firstSeq: 4, lastSeq: 5 }] }, device)), 'STATEMENT_MALFORMED', 'ranges without a hole')
  for (const bytes of [Uint8Array.of(0xff), encodeCanonical('x'), encodeCanonical([new Uint8Array(3), new Uint8Array(64)]), encodeCanonical([new Uint8Array(70_000), new Uint8Array(64)])]) {
    t.equal(codeOf(() => verifyPruningStatement(bytes, [gateway.publicKey])), 'STATEMENT_MALFORMED')
    t.equal(codeOf(() => verifyShreddingStatement(bytes, () => device.publicKey)), 'STATEMENT_MALFORMED')
  }
})

t.test('behavior: mutated statements raise only ErasureError, and none verifies', async t => {
  const good = signPruningStatement(pruning, gateway).envelope
  fc.assert(fc.property(fc.nat(), fc.integer({ min: 0, max: 255 }), (at, value) => {
    const b = Uint8Array.from(good)
    if (b[at % b.length] === value) return
    b[at % b.length] = value
    t.ok(codeOf(() => verifyPruningStatement(b, [gateway.publicKey])) !== undefined)
  }), { numRuns: 200 })
})
