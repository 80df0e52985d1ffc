// Signed acks (docs/PROTOCOL.md §9): the vectors are current and in the doc, verify on both
// Ed25519 backends, and every way an ack can be wrong gives AckError with its code.
import t from 'tap'
import fc from 'fast-check'
import { readFileSync } from 'node:fs'
import {
  AckError, createSigner, decodeAckEnvelope, encodeAckStatement, encodeCanonical, fromHex, sha256, signAck, verifyAck, toHex
} from '../../protocol/index.js'
import {
  ACK_DOC_BEGIN, ACK_DOC_END, ACK_VECTORS_PATH, PROTOCOL_DOC_PATH, buildAckVectors, renderAckVectorsMarkdown, type AckVectors
} from '../../scripts/gen-ack-vectors.js'

const gateway = createSigner(new Uint8Array(32).fill(8))
const other = createSigner(new Uint8Array(32).fill(9))
const base = { deviceId: 'dev-1', gatewayId: 'gateway.gw-1', issuedAtMs: 1_700_000_000_000, storedSeq: 41, storedHash: sha256(new Uint8Array([41])), anchoredSeq: 40 }
const trustedKeys = [gateway.publicKey]

function codeOf (fn: () => unknown): string | undefined {
  try { fn(); return undefined } catch (e) {
    if (!(e instanceof AckError)) throw e
    return e.code
  }
}

t.test('behavior: test/vectors/acks.json is exactly what the code produces now', async t => {
  const file = JSON.parse(readFileSync(ACK_VECTORS_PATH, 'utf8')) as AckVectors
  t.ok(file.source.startsWith('docs/PROTOCOL.md'), 'source names the spec')
  t.same(file, buildAckVectors(), 'rerun `npx tsx scripts/gen-ack-vectors.ts --doc` after a deliberate format change')
})

t.test('behavior: the ack vector block in docs/PROTOCOL.md is rendered from acks.json, byte for byte', async t => {
  const file = JSON.parse(readFileSync(ACK_VECTORS_PATH, 'utf8')) as AckVectors
  const doc = readFileSync(PROTOCOL_DOC_PATH, 'utf8')
  const a = doc.indexOf(ACK_DOC_BEGIN)
  const b = doc.indexOf(ACK_DOC_END)
  t.ok(a >= 0 && b > a, 'the doc has the ack vector markers')
  t.equal(doc.slice(a, b + ACK_DOC_END.length), renderAckVectorsMarkdown(file))
})

t.test('behavior: the vectors verify on both Ed25519 backends and decode to their statements', async t => {
  const file = JSON.parse(readFileSync(ACK_VECTORS_PATH, 'utf8')) as AckVectors
  for (const v of file.acks) {
    for (const backend of ['node', 'noble'] as const) {
      const signed = verifyAck(fromHex(v.envelope), { deviceId: v.statement.deviceId, trustedKeys: [fromHex(file.gatewayKey.publicKey)], backend })
      t.equal(toHex(signed.signature), v.signature, `${v.comment} (${backend})`)
      t.match({ ...signed.statement, gatewayKey: toHex(signed.statement.gatewayKey), storedHash: toHex(signed.statement.storedHash) }, v.statement)
    }
  }
})

t.test('behavior: an ack round-trips and names the key that signed it', async t => {
  const signed = signAck(base, gateway)
  const back = verifyAck(signed.envelope, { deviceId: 'dev-1', trustedKeys: [other.publicKey, gateway.publicKey] })
  t.same(back.statement, { ...base, gatewayKey: gateway.publicKey })
  t.same(decodeAckEnvelope(signed.envelope).ackBytes, signed.ackBytes)
  const none = signAck({ ...base, storedSeq: -1, anchoredSeq: -1, storedHash: new Uint8Array(32) }, gateway)
  t.match(verifyAck(none.envelope, { deviceId: 'dev-1', trustedKeys }).statement, { storedSeq: -1, anchoredSeq: -1 })
})

t.test('error: unsigned, unknown-key, bad-signature and foreign-device acks', async t => {
  const signed = signAck(base, gateway)
  t.equal(codeOf(() => verifyAck(encodeCanonical([1, 42, base.storedHash, 41]), { deviceId: 'dev-1', trustedKeys })), 'ACK_UNSIGNED', 'version 1')
  t.equal(codeOf(() => verifyAck(signAck(base, other).envelope, { deviceId: 'dev-1', trustedKeys })), 'ACK_UNKNOWN_KEY', 'self-signed')
  t.equal(codeOf(() => verifyAck(signed.envelope, { deviceId: 'dev-1', trustedKeys: [] })), 'ACK_UNKNOWN_KEY', 'no key trusted')
  // The trusted key named in the statement, signed by another key.
  const stolen = encodeAckStatement({ ...base, gatewayKey: gateway.publicKey })
  t.equal(codeOf(() => verifyAck(encodeCanonical([stolen, other.sign(stolen)]), { deviceId: 'dev-1', trustedKeys })), 'ACK_SIGNATURE_INVALID', 'key named, not signed by it')
  const moved = encodeAckStatement({ ...base, gatewayKey: gateway.publicKey, storedSeq: 1000 })
  t.equal(codeOf(() => verifyAck(encodeCanonical([moved, signed.signature]), { deviceId: 'dev-1', trustedKeys })), 'ACK_SIGNATURE_INVALID', 'statement changed under a genuine signature')
  t.equal(codeOf(() => verifyAck(signed.envelope, { deviceId: 'dev-2', trustedKeys })), 'ACK_FOREIGN_DEVICE', 'genuine ack of another device')
})

t.test('error: malformed acks are ACK_MALFORMED', async t => {
  const good = signAck(base, gateway)
  const cases: Array<[string, Uint8Array]> = [
    ['garbage', Uint8Array.of(0xff, 0x00)],
    ['empty', new Uint8Array(0)],
    ['not an array', encodeCanonical('ack')],
    ['one element', encodeCanonical([good.ackBytes])],
    ['short signature', encodeCanonical([good.ackBytes, new Uint8Array(63)])],
    ['statement of 7 fields', encodeCanonical([encodeCanonical([2, 'dev-1', 'g', gateway.publicKey, 1, 1, base.storedHash]), new Uint8Array(64)])],
    ['format 3', encodeCanonical([encodeCanonical([3, 'dev-1', 'g', gateway.publicKey, 1, 1, base.storedHash, 0]), new Uint8Array(64)])],
    ['device id with a slash', encodeCanonical([encodeCanonical([2, 'a/b', 'g', gateway.publicKey, 1, 1, base.storedHash, 0]), new Uint8Array(64)])],
    ['short key', encodeCanonical([encodeCanonical([2, 'dev-1', 'g', new Uint8Array(31), 1, 1, base.storedHash, 0]), new Uint8Array(64)])],
    ['seq not a number', encodeCanonical([encodeCanonical([2, 'dev-1', 'g', gateway.publicKey, 1, 'x', base.storedHash, 0]), new Uint8Array(64)])],
    ['too large', encodeCanonical([new Uint8Array(600), new Uint8Array(64)])]
  ]
  for (const [name, bytes] of cases) t.equal(codeOf(() => verifyAck(bytes, { deviceId: 'dev-1', trustedKeys })), 'ACK_MALFORMED', name)
  t.equal(codeOf(() => signAck({ ...base, storedSeq: 1.5 }, gateway)), 'ACK_MALFORMED', 'signAck checks its statement')
  t.equal(codeOf(() => signAck({ ...base, storedHash: new Uint8Array(3) }, gateway)), 'ACK_MALFORMED')
})

t.test('behavior: mutated acks raise only AckError, and none of them verifies', async t => {
  const good = signAck(base, gateway).envelope
  fc.assert(fc.property(fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }), cut: fc.boolean() }), { minLength: 1, maxLength: 4 }), muts => {
    let b = Array.from(good)
    for (const m of muts) {
      if (m.cut) b = b.slice(0, m.at % (b.length + 1))
      else if (b.length > 0) b[m.at % b.length] = m.value
    }
    const bytes = Uint8Array.from(b)
    if (toHex(bytes) === toHex(good)) return true
    try {
      verifyAck(bytes, { deviceId: 'dev-1', trustedKeys })
      return false
    } catch (e) {
      return e instanceof AckError
    }
  }), { seed: 9, numRuns: 5000 })
  t.pass()
})
