/**
 * Property-based fuzzing of the decoders with fast-check (fixed seeds, so runs are repeatable):
 * garbage and mutated envelopes may only ever raise ProtocolError with a CBOR_* or RECORD_INVALID
 * code; whatever decodes is canonical (re-encodes to the same bytes); valid random records
 * round-trip byte-identically.
 */
import t from 'tap'
import fc from 'fast-check'
import {
  createSigner, decodeCanonical, decodeEnvelope, decodeRecord, encodeCanonical, encodeRecord, signRecord, toHex,
  ProtocolError, LIMITS, POLICY_VERDICTS, RECORD_KINDS,
  type CborValue, type ProvenanceRecord, type RecordBody, type SignedRecord
} from '../../protocol/index.js'
import { makeMixedChain, TEST_SEED } from '../helpers/records.js'

const DECODE_CODES = /^(CBOR_MALFORMED|CBOR_NON_CANONICAL|CBOR_TOO_LARGE|RECORD_INVALID)$/
const signer = createSigner(TEST_SEED)
const pool = makeMixedChain().records

/** Runs `fn`; true when it returned or threw a ProtocolError with an allowed code. */
function onlyTypedErrors (fn: () => unknown, codes: RegExp = DECODE_CODES): boolean {
  try {
    fn()
    return true
  } catch (e) {
    if (e instanceof ProtocolError && codes.test(e.code)) return true
    throw new Error(`unexpected ${e instanceof Error ? `${e.name} ${(e as { code?: string }).code ?? ''}: ${e.message}` : String(e)}`)
  }
}

/** What a decoded envelope must satisfy: canonical, so encoding it again gives the same bytes. */
function isCanonicalEnvelope (input: Uint8Array, signed: SignedRecord): boolean {
  return toHex(encodeRecord(signed.record)) === toHex(signed.recordBytes) &&
    toHex(encodeCanonical([signed.recordBytes, signed.signature])) === toHex(input)
}

const mutation = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ op: fc.constant('duplicate' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 40 }) }),
  // CBOR heads that claim huge or odd lengths, dropped in anywhere.
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.constantFrom(Uint8Array.of(0x5b, 0, 0, 0, 1, 0, 0, 0, 0), Uint8Array.of(0x9a, 0xff, 0xff, 0xff, 0xff), Uint8Array.of(0x9f), Uint8Array.of(0xbf), Uint8Array.of(0xf9, 0x3c, 0), Uint8Array.of(0xc0), Uint8Array.of(0x20)) })
)
type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never

function mutate (input: Uint8Array, mutations: Mutation[]): Uint8Array {
  let b = Array.from(input)
  for (const m of mutations) {
    const at = b.length === 0 ? 0 : m.at % b.length
    switch (m.op) {
      case 'flip': if (b.length > 0) b[at]! ^= 1 << m.bit; break
      case 'set': if (b.length > 0) b[at] = m.value; break
      case 'truncate': b = b.slice(0, at); break
      case 'insert': b.splice(at, 0, ...m.bytes); break
      case 'delete': b.splice(at, m.length); break
      case 'duplicate': b.splice(at, 0, ...b.slice(at, at + m.length)); break
    }
  }
  return Uint8Array.from(b)
}

t.test('behavior: random bytes into decodeCanonical and decodeEnvelope raise only typed decode errors', async t => {
  let decoded = 0
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), bytes => {
    return onlyTypedErrors(() => {
      const value = decodeCanonical(bytes)
      decoded++
      // The decoder accepts one encoding per value: what decodes re-encodes to the input.
      if (toHex(encodeCanonical(value)) !== toHex(bytes)) throw new Error(`accepted non-canonical ${toHex(bytes)}`)
    }, /^CBOR_/) && onlyTypedErrors(() => decodeEnvelope(bytes)) && onlyTypedErrors(() => decodeRecord(bytes))
  }), { seed: 1, numRuns: 10_000 })
  t.ok(decoded > 100, `${decoded} of 10 000 random inputs were valid canonical CBOR`)
})

t.test('behavior: CBOR-shaped garbage (random heads and lengths) raises only typed decode errors', async t => {
  // Sequences of plausible CBOR heads reach much deeper into the decoder than uniform bytes.
  const head = fc.oneof(
    fc.integer({ min: 0, max: 255 }).map(b => [b]),
    fc.tuple(fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 31 })).map(([m, i]) => [(m << 5) | i]),
    fc.tuple(fc.constantFrom(0x18, 0x38, 0x58, 0x78, 0x98), fc.integer({ min: 0, max: 255 })).map(([h, n]) => [h, n]),
    fc.tuple(fc.constantFrom(0x19, 0x59, 0x79, 0x99), fc.integer({ min: 0, max: 0xffff })).map(([h, n]) => [h, n >> 8, n & 0xff])
  )
  fc.assert(fc.property(fc.array(head, { maxLength: 60 }), heads => {
    const bytes = Uint8Array.from(heads.flat())
    return onlyTypedErrors(() => decodeCanonical(bytes), /^CBOR_/) && onlyTypedErrors(() => decodeEnvelope(bytes)) && onlyTypedErrors(() => decodeRecord(bytes))
  }), { seed: 2, numRuns: 6000 })
  t.pass()
})

t.test('behavior: structurally valid CBOR of the wrong shape is RECORD_INVALID, never a crash', async t => {
  const { tree } = fc.letrec<{ tree: CborValue }>(tie => ({
    tree: fc.oneof({ maxDepth: 4 },
      fc.oneof(fc.nat(10), fc.maxSafeNat(), fc.string({ maxLength: 8 }), fc.uint8Array({ maxLength: 40 }), fc.constantFrom(true, false, null), fc.constant(new Uint8Array(32))),
      fc.array(tie('tree'), { maxLength: 9 }))
  }))
  // A record-like head (version 1, a known kind) with random fields, so the body decoders run.
  const recordLike = fc.tuple(fc.integer({ min: 0, max: 7 }), fc.array(tree, { minLength: 5, maxLength: 6 }), fc.array(tree, { maxLength: 8 }))
    .map(([kind, fields, body]) => [1, kind, ...fields, body] as CborValue[])
  fc.assert(fc.property(fc.oneof(tree, recordLike), value => {
    const bytes = encodeCanonical(value)
    return onlyTypedErrors(() => decodeRecord(bytes)) &&
      onlyTypedErrors(() => decodeEnvelope(encodeCanonical([bytes, new Uint8Array(64)]))) &&
      onlyTypedErrors(() => decodeEnvelope(bytes))
  }), { seed: 3, numRuns: 4000 })
  t.pass()
})

t.test('behavior: mutated valid envelopes raise only typed errors, and whatever decodes is canonical', async t => {
  let accepted = 0
  fc.assert(fc.property(fc.nat(pool.length - 1), fc.array(mutation, { minLength: 1, maxLength: 4 }), (i, mutations) => {
    const input = mutate(pool[i]!.envelope, mutations)
    return onlyTypedErrors(() => {
      const signed = decodeEnvelope(input)
      accepted++
      if (!isCanonicalEnvelope(input, signed)) throw new Error(`decoded a non-canonical envelope ${toHex(input)}`)
    })
  }), { seed: 4, numRuns: 10_000 })
  t.comment(`${accepted} mutated envelopes still decoded (all canonical)`)
  t.pass()
})

// Valid records of every kind with random contents within the limits.
const text = (max: number): fc.Arbitrary<string> => fc.string({ unit: 'grapheme', maxLength: max }).filter(s => Buffer.byteLength(s) <= max)
const hash = fc.uint8Array({ minLength: 32, maxLength: 32 })
const uint = fc.oneof(fc.nat(1000), fc.maxSafeNat())
// Unique names in ascending UTF-16 order, as a valid record lists them (docs/PROTOCOL.md §2).
const commitments = fc.uniqueArray(fc.record({ name: text(40), hash }), { maxLength: 6, selector: c => c.name })
  .map(list => [...list].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
const body: fc.Arbitrary<RecordBody> = fc.oneof(
  fc.record({ kind: fc.constant('boot' as const), agentVersion: text(20), profile: text(40) }),
  fc.record({
    kind: fc.constant('model-load' as const), modelHash: hash, manifestHash: hash, graphHash: hash, name: text(60), sizeBytes: uint,
    policy: fc.constantFrom(...(Object.keys(POLICY_VERDICTS) as Array<keyof typeof POLICY_VERDICTS>)), providers: fc.array(text(30), { maxLength: LIMITS.providers })
  }),
  fc.record({ kind: fc.constant('inference' as const), modelHash: hash, inputs: commitments, outputs: commitments, latencyUs: uint, decision: fc.option(text(LIMITS.decisionBytes), { nil: null }) }),
  fc.record({ kind: fc.constant('gap' as const), firstSeq: fc.nat(50), lastSeq: fc.nat(50), beforeHash: hash, lastHash: hash, reason: text(30) })
    .map(g => ({ ...g, firstSeq: Math.min(g.firstSeq, g.lastSeq), lastSeq: Math.max(g.firstSeq, g.lastSeq) })),
  fc.record({ kind: fc.constant('key-rotation' as const), newPublicKey: hash, validFromMs: uint }),
  fc.record({ kind: fc.constant('shutdown' as const), reason: text(60) }),
  fc.record({ kind: fc.constant('policy' as const), version: uint, mode: fc.constantFrom('enforce' as const, 'audit' as const), fleetId: text(40), policyHash: hash }),
  fc.record({
    kind: fc.constant('oversight' as const), reviewer: text(40).filter(r => r !== ''), decisionDeviceId: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,40}$/),
    decisionSeq: uint, decisionHash: hash, verdict: fc.constantFrom('confirmed' as const, 'overridden' as const, 'escalated' as const), reason: text(60)
  }),
  fc.record({ kind: fc.constant('session' as const), phase: fc.constantFrom('start' as const, 'end' as const), sessionId: text(40).filter(r => r !== ''), referenceName: text(40), referenceHash: fc.option(hash, { nil: null }) }),
  fc.record({ kind: fc.constant('data-capture' as const), commitment: hash, sizeBytes: uint, dataset: text(40), label: fc.option(text(60), { nil: null }), capturedAtMs: uint })
)
const deviceId = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,40}$/)
const record: fc.Arbitrary<ProvenanceRecord> = fc.record({
  deviceId, boot: uint, seq: fc.oneof(fc.integer({ min: 51, max: 10_000 }), fc.integer({ min: 51, max: Number.MAX_SAFE_INTEGER })), timeMs: uint, prev: hash, body
})

t.test('behavior: valid random records of every kind round-trip byte-identically', async t => {
  const kinds = new Set<string>()
  fc.assert(fc.property(record, r => {
    const signed = signRecord(r, signer)
    const back = decodeEnvelope(signed.envelope)
    kinds.add(r.body.kind)
    return toHex(encodeRecord(back.record)) === toHex(signed.recordBytes) &&
      toHex(back.hash) === toHex(signed.hash) &&
      JSON.stringify(back.record, hexReplacer) === JSON.stringify(r, hexReplacer) &&
      toHex(encodeRecord(decodeRecord(signed.recordBytes))) === toHex(signed.recordBytes)
  }), { seed: 5, numRuns: 3000 })
  t.same([...kinds].sort(), Object.keys(RECORD_KINDS).sort(), 'every kind was generated')
})

function hexReplacer (_key: string, value: unknown): unknown {
  return value instanceof Uint8Array ? toHex(value) : value
}
