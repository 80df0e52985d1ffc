/**
 * Records (docs/PROTOCOL.md §Records): the published vectors against the code and the doc,
 * round trips of every kind, and RECORD_INVALID naming the bad field paths, both for records
 * built in memory and for hostile bytes off the wire.
 */
import { readFileSync } from 'node:fs'
import fc from 'fast-check'
import t from 'tap'
import {
  decodeEnvelope, decodePeekedEnvelope, peekEnvelope, decodeRecord, encodeCanonical, encodeRecord, fromHex, signRecord, toHex, verifyChain,
  verifyRecordSignature, ProtocolError, LIMITS, RECORD_KINDS, RECORD_SIGNING_PREFIX, createSigner,
  type CborValue, type ProvenanceRecord, type RecordBody, type RecordKind
} from '../../protocol/index.js'
import {
  buildRecordVectors, renderVectorsMarkdown, DOC_BEGIN, DOC_END, PROTOCOL_DOC_PATH, RECORD_VECTORS_PATH, type RecordVectors
} from '../../scripts/gen-record-vectors.js'
import { fakeHash, makeRecord, sampleBody, sampleInference, TEST_SEED } from '../helpers/records.js'

const KINDS = Object.keys(RECORD_KINDS) as RecordKind[]
const signer = createSigner(TEST_SEED)

function throwsInvalid (tt: Pick<typeof t, 'throws'>, fn: () => unknown, paths: string[], what: string): void {
  tt.throws(fn, { constructor: ProtocolError, code: 'RECORD_INVALID', message: new RegExp(paths.map(p => escape(p) + ':').join('.*')) }, `${what} → RECORD_INVALID naming ${paths.join(', ')}`)
}
function escape (s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/** Canonical bytes of a record array built field by field, for wire-level tests. */
function wire (fields: { version?: CborValue, kind?: CborValue, deviceId?: CborValue, boot?: CborValue, seq?: CborValue, timeMs?: CborValue, prev?: CborValue, body?: CborValue, extra?: CborValue[] }): Uint8Array {
  // `in`, not `??`: a test may set a field to null on purpose.
  const f = <K extends keyof typeof fields>(k: K, fallback: CborValue): CborValue => k in fields ? fields[k] as CborValue : fallback
  return encodeCanonical([
    f('version', 1), f('kind', 0), f('deviceId', 'dev-1'), f('boot', 1), f('seq', 0), f('timeMs', 1000),
    f('prev', new Uint8Array(32)), f('body', ['0.1.0', 'generic']), ...(fields.extra ?? [])
  ])
}

t.test('behavior: test/vectors/records.json is exactly what the code produces now', async t => {
  const file = JSON.parse(readFileSync(RECORD_VECTORS_PATH, 'utf8')) as RecordVectors
  t.equal(file.source.startsWith('docs/PROTOCOL.md'), true, 'source names the spec')
  t.same(file, buildRecordVectors(), 'rerun `npx tsx scripts/gen-record-vectors.ts --doc` after a deliberate format change')
  // A record of every kind; the policy record (code 6) and a use session around a review come before the shutdown that ends the chain.
  t.same([...new Set(file.records.map(r => r.kind))].sort(), [...KINDS].sort(), 'a record of every kind')
})

t.test('behavior: the vector block in docs/PROTOCOL.md is rendered from records.json, byte for byte', async t => {
  const file = JSON.parse(readFileSync(RECORD_VECTORS_PATH, 'utf8')) as RecordVectors
  const doc = readFileSync(PROTOCOL_DOC_PATH, 'utf8')
  const a = doc.indexOf(DOC_BEGIN)
  const b = doc.indexOf(DOC_END)
  t.ok(a >= 0 && b > a, 'the doc has the vector markers')
  t.equal(doc.slice(a, b + DOC_END.length), renderVectorsMarkdown(file))
  // Belt and braces: every hex string of the JSON appears in the doc.
  for (const r of file.records) {
    for (const hex of [r.recordBytes, r.signature, r.envelope, r.hash]) {
      const flat = doc.slice(a, b).replace(/\n/g, '')
      t.ok(flat.includes(hex), `${r.kind}: ${hex.slice(0, 16)}… is in the doc`)
    }
  }
})

t.test('behavior: the vectors decode, verify on both backends, and form a valid chain', async t => {
  const v = JSON.parse(readFileSync(RECORD_VECTORS_PATH, 'utf8')) as RecordVectors
  t.equal(v.signingPrefix, toHex(RECORD_SIGNING_PREFIX))
  t.equal(Buffer.from(v.signingPrefix, 'hex').toString('latin1'), 'edge-provenance/record/v1\0')
  const keys = v.keys.map(k => fromHex(k.publicKey))
  const decoded = v.records.map(r => {
    const signed = decodeEnvelope(fromHex(r.envelope))
    t.equal(toHex(signed.recordBytes), r.recordBytes, `${r.kind}: record bytes`)
    t.equal(toHex(signed.signature), r.signature, `${r.kind}: signature`)
    t.equal(toHex(signed.hash), r.hash, `${r.kind}: hash`)
    t.equal(toHex(encodeRecord(signed.record)), r.recordBytes, `${r.kind}: re-encodes identically`)
    const json = JSON.parse(JSON.stringify(signed.record, (_k, x: unknown) => x instanceof Uint8Array ? toHex(x) : x)) as unknown
    t.same(json, r.record, `${r.kind}: decoded fields`)
    for (const backend of ['node', 'noble'] as const) {
      t.ok(verifyRecordSignature(signed, keys[r.key]!, backend), `${r.kind}: verifies under key ${r.key} (${backend})`)
      t.notOk(verifyRecordSignature(signed, keys[1 - r.key]!, backend), `${r.kind}: not under the other key (${backend})`)
    }
    return signed
  })
  const rotation = decoded.find(s => s.record.body.kind === 'key-rotation')!.record.body as { validFromMs: number }
  const result = verifyChain(decoded, {
    deviceId: decoded[0]!.record.deviceId,
    keyAt: (_d, timeMs) => timeMs >= rotation.validFromMs ? keys[1] : keys[0]
  })
  t.same(result.failure, undefined)
  t.same(result.gaps, [{ firstSeq: 3, lastSeq: 4, reason: 'disk-budget' }])
  t.equal(result.count, v.records.length, 'every published record is in the chain')
})

t.test('behavior: every kind round-trips through bytes and envelope', async t => {
  const bodies: RecordBody[] = [
    ...KINDS.map(k => sampleBody(k, 3)),
    { ...sampleBody('inference', 4), decision: null, inputs: [], outputs: [] } as RecordBody,
    { kind: 'model-load', modelHash: fakeHash('m'), manifestHash: fakeHash('n'), graphHash: fakeHash('g'), name: '', sizeBytes: 2 ** 53 - 1, policy: 'unapproved', providers: [] },
    { kind: 'model-load', modelHash: fakeHash('m'), manifestHash: fakeHash('n'), graphHash: fakeHash('g'), name: 'm', sizeBytes: 0, policy: 'unchecked', providers: new Array<string>(16).fill('CPUExecutionProvider') },
    { kind: 'boot', agentVersion: 'é'.repeat(128), profile: '\u{1F600}' },
    { kind: 'inference', modelHash: fakeHash('m'), inputs: new Array(256).fill(0).map((_, i) => ({ name: `in${String(i).padStart(3, '0')}`, hash: fakeHash(String(i)) })), outputs: [], latencyUs: 0, decision: 'x'.repeat(1024) }
  ]
  for (const body of bodies) {
    const record = makeRecord(body, { deviceId: 'Dev_01.a:b-c', boot: 2 ** 32, seq: body.kind === 'gap' ? 5 : 2 ** 40, timeMs: 2 ** 53 - 1, prev: fakeHash('prev') })
    const bytes = encodeRecord(record)
    t.same(decodeRecord(bytes), record, `${body.kind}: decodeRecord(encodeRecord(r)) = r`)
    const signed = signRecord(record, signer)
    const back = decodeEnvelope(signed.envelope)
    t.same(back.record, record, `${body.kind}: envelope round trip`)
    t.equal(toHex(back.hash), toHex(signed.hash))
    t.equal(toHex(encodeRecord(back.record)), toHex(bytes), `${body.kind}: byte-identical re-encoding`)
    t.equal(bytes[0], 0x88, 'record is an array of 8')
    t.equal(bytes[2], RECORD_KINDS[body.kind], 'kind code is field 1')
  }
})

t.test('behavior: a decoded envelope owns its bytes: changing the input afterwards (Uint8Array or Buffer) changes nothing', async t => {
  const signed = signRecord(makeRecord(sampleInference(1, fakeHash('m')), { seq: 1, prev: fakeHash('prev') }), signer)
  for (const input of [signed.envelope.slice(), Buffer.from(signed.envelope)]) {
    const back = decodeEnvelope(input)
    const before = { record: structuredClone(back.record), recordBytes: toHex(back.recordBytes), signature: toHex(back.signature), envelope: toHex(back.envelope) }
    input.fill(0)
    t.same(back.record, before.record)
    t.same({ recordBytes: toHex(back.recordBytes), signature: toHex(back.signature), envelope: toHex(back.envelope) }, { recordBytes: before.recordBytes, signature: before.signature, envelope: before.envelope })
    t.equal(toHex(back.hash), toHex(signed.hash))
  }
})

t.test('behavior: peekEnvelope reads what decodeEnvelope does for every envelope it accepts, also with any one byte changed', async t => {
  const envelopes = [...KINDS.map((k, i) => signRecord(makeRecord(sampleBody(k, 3), { seq: k === 'gap' ? 9 : i, timeMs: 1_700_000_000_000 + i, prev: fakeHash('p') }), signer).envelope)]
  let agreed = 0
  let refused = 0
  for (const envelope of envelopes) {
    for (let at = 0; at <= envelope.length; at++) {
      for (const flip of at === envelope.length ? [0] : [0x01, 0x20, 0x80]) {
        const e = envelope.slice()
        if (at < e.length) e[at] = (e[at] as number) ^ flip
        let decoded
        try { decoded = decodeEnvelope(e) } catch { refused++; continue }
        const head = peekEnvelope(e)
        t.ok(head !== undefined, 'a record that decodes can be peeked')
        if (head === undefined) continue
        const same = head.deviceId === decoded.record.deviceId && head.seq === decoded.record.seq && head.timeMs === decoded.record.timeMs &&
          toHex(head.recordBytes) === toHex(decoded.recordBytes) && toHex(head.signature) === toHex(decoded.signature)
        if (!same) t.fail(`peek and decode disagree at byte ${at}`)
        agreed++
      }
    }
  }
  t.ok(agreed > envelopes.length && refused > 0, `${agreed} decoded and agreed, ${refused} refused`)
  t.equal(peekEnvelope(Uint8Array.of(0x82, 0x40)), undefined, 'truncated: undefined, no throw')
})

/** decodeEnvelope's outcome as comparable text: the error's class, code and message, or every field of the result. */
function outcome (decode: () => ReturnType<typeof decodeEnvelope>): string {
  try {
    const s = decode()
    return JSON.stringify({ record: s.record, recordBytes: toHex(s.recordBytes), signature: toHex(s.signature), envelope: toHex(s.envelope), hash: toHex(s.hash) },
      (_k, v: unknown) => v instanceof Uint8Array ? toHex(v) : v)
  } catch (e) {
    return `${(e as Error).constructor.name} ${(e as { code?: string }).code ?? ''} ${(e as Error).message}`
  }
}

/** decodePeekedEnvelope's outcome for `e` as the gateway calls it: e a view inside a larger buffer, peeked first. */
function peekedOutcome (e: Uint8Array): string | undefined {
  const payload = new Uint8Array(e.byteLength + 7)
  payload.set(e, 3)
  const view = payload.subarray(3, 3 + e.byteLength)
  const head = peekEnvelope(view)
  return head === undefined ? undefined : outcome(() => decodePeekedEnvelope(view, head))
}

t.test('behavior: decodePeekedEnvelope gives what decodeEnvelope gives (result or refusal) for every envelope peekEnvelope reads, also with any one byte changed, cut or added', async t => {
  const envelopes = [...KINDS.map((k, i) => signRecord(makeRecord(sampleBody(k, 3), { seq: k === 'gap' ? 9 : i, timeMs: 1_700_000_000_000 + i, prev: fakeHash('p') }), signer).envelope)]
  let accepted = 0
  let refused = 0
  let compared = 0
  for (const envelope of envelopes) {
    const variants: Uint8Array[] = []
    for (let at = 0; at < envelope.length; at++) {
      for (const flip of [0x01, 0x02, 0x20, 0x40, 0x80, 0xff]) {
        const e = envelope.slice()
        e[at] = (e[at] as number) ^ flip
        variants.push(e)
      }
      variants.push(envelope.subarray(0, at))
    }
    variants.push(envelope, Uint8Array.from([...envelope, 0]))
    for (const e of variants) {
      const peeked = peekedOutcome(e)
      if (peeked === undefined) continue
      compared++
      const expected = outcome(() => decodeEnvelope(e))
      if (expected.startsWith('{')) accepted++
      else refused++
      if (peeked !== expected) t.fail(`peeked and full decode differ for ${toHex(e)}: ${peeked} against ${expected}`)
    }
  }
  t.ok(accepted >= envelopes.length && refused > 100, `${compared} peeked envelopes compared: ${accepted} decoded the same, ${refused} refused the same`)
  // Random changes of several bytes, and a head that is not of the envelope given: decodeEnvelope's answer.
  fc.assert(fc.property(fc.integer({ min: 0, max: envelopes.length - 1 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), (k, changes) => {
    const e = (envelopes[k] as Uint8Array).slice()
    for (const [at, x] of changes) e[at % e.length] = (e[at % e.length] as number) ^ x
    const peeked = peekedOutcome(e)
    return peeked === undefined || peeked === outcome(() => decodeEnvelope(e))
  }), { seed: 11, numRuns: 3000 })
  const a = envelopes[0] as Uint8Array
  const b = envelopes[1] as Uint8Array
  t.equal(outcome(() => decodePeekedEnvelope(a, peekEnvelope(b) as NonNullable<ReturnType<typeof peekEnvelope>>)), outcome(() => decodeEnvelope(a)), 'another envelope\'s head: decodeEnvelope of the envelope given')
})

t.test('error: records built in memory with bad fields → RECORD_INVALID naming each path', async t => {
  const ok = makeRecord(sampleBody('inference', 1))
  const bad = (patch: Partial<ProvenanceRecord>, body?: Record<string, unknown>): ProvenanceRecord =>
    ({ ...ok, ...patch, body: body === undefined ? (patch.body ?? ok.body) : { ...ok.body, ...body } })
  const cases: Array<[string, ProvenanceRecord, string[]]> = [
    ['empty deviceId', bad({ deviceId: '' }), ['deviceId']],
    ['deviceId with a slash', bad({ deviceId: 'a/b' }), ['deviceId']],
    ['deviceId starting with a dot', bad({ deviceId: '.hidden' }), ['deviceId']],
    ['deviceId with a space', bad({ deviceId: 'a b' }), ['deviceId']],
    ['deviceId of 129 chars', bad({ deviceId: 'a'.repeat(129) }), ['deviceId']],
    ['negative boot', bad({ boot: -1 }), ['boot']],
    ['fractional seq', bad({ seq: 1.5 }), ['seq']],
    ['timeMs above 2^53-1', bad({ timeMs: 2 ** 53 }), ['timeMs']],
    ['seq as a string', bad({ seq: '1' as unknown as number }), ['seq']],
    ['prev of 31 bytes', bad({ prev: new Uint8Array(31) }), ['prev']],
    ['prev as hex text', bad({ prev: '00'.repeat(32) as unknown as Uint8Array }), ['prev']],
    ['unknown kind', bad({}, { kind: 'reboot' }), ['body.kind']],
    ['body missing', { ...ok, body: undefined } as unknown as ProvenanceRecord, ['body.kind']],
    ['modelHash of 33 bytes', bad({}, { modelHash: new Uint8Array(33) }), ['body.modelHash']],
    ['inputs not an array', bad({}, { inputs: 'x' }), ['body.inputs']],
    ['257 inputs', bad({}, { inputs: new Array(257).fill({ name: 'a', hash: new Uint8Array(32) }) }), ['body.inputs']],
    ['input hash of 31 bytes', bad({}, { inputs: [{ name: 'a', hash: new Uint8Array(31) }] }), ['body.inputs[0].hash']],
    ['output name not text', bad({}, { outputs: [{ name: 1, hash: new Uint8Array(32) }, { name: 'b', hash: new Uint8Array(32) }] }), ['body.outputs[0].name']],
    ['output name of 257 bytes', bad({}, { outputs: [{ name: 'a'.repeat(257), hash: new Uint8Array(32) }] }), ['body.outputs[0].name']],
    ['negative latency', bad({}, { latencyUs: -1 }), ['body.latencyUs']],
    ['decision of 1025 bytes', bad({}, { decision: 'é'.repeat(513) }), ['body.decision']],
    ['decision undefined', bad({}, { decision: undefined }), ['body.decision']],
    ['decision with a lone surrogate', bad({}, { decision: 'cat\uD800' }), ['body.decision']],
    ['two bad fields at once', bad({ seq: -5 }, { latencyUs: 1.5 }), ['seq', 'body.latencyUs']],
    ['boot: profile missing', bad({ body: { kind: 'boot', agentVersion: '1' } as RecordBody }), ['body.profile']],
    ['model-load: unknown policy', bad({ body: { ...sampleBody('model-load'), policy: 'maybe' } as unknown as RecordBody }), ['body.policy']],
    ['model-load: 17 providers', bad({ body: { ...sampleBody('model-load'), providers: new Array(17).fill('CPU') } as RecordBody }), ['body.providers']],
    ['model-load: provider not text', bad({ body: { ...sampleBody('model-load'), providers: ['CPU', 7] } as unknown as RecordBody }), ['body.providers[1]']],
    ['model-load: name of 257 bytes', bad({ body: { ...sampleBody('model-load'), name: 'n'.repeat(257) } as RecordBody }), ['body.name']],
    ['model-load: fractional size', bad({ body: { ...sampleBody('model-load'), sizeBytes: 0.5 } as RecordBody }), ['body.sizeBytes']],
    ['gap: firstSeq above lastSeq', bad({ seq: 10, body: { ...sampleBody('gap'), firstSeq: 4, lastSeq: 3 } as RecordBody }), ['body.firstSeq']],
    ['gap: lastSeq not below its own seq', bad({ seq: 3, body: { ...sampleBody('gap'), firstSeq: 1, lastSeq: 3 } as RecordBody }), ['body.lastSeq']],
    ['gap: beforeHash of 0 bytes', bad({ seq: 9, body: { ...sampleBody('gap'), beforeHash: new Uint8Array() } as RecordBody }), ['body.beforeHash']],
    ['gap: reason not text', bad({ seq: 9, body: { ...sampleBody('gap'), reason: null } as unknown as RecordBody }), ['body.reason']],
    ['key-rotation: key of 33 bytes', bad({ body: { ...sampleBody('key-rotation'), newPublicKey: new Uint8Array(33) } as RecordBody }), ['body.newPublicKey']],
    ['key-rotation: negative validFromMs', bad({ body: { ...sampleBody('key-rotation'), validFromMs: -1 } as RecordBody }), ['body.validFromMs']],
    ['shutdown: reason of 257 bytes', bad({ body: { kind: 'shutdown', reason: 'r'.repeat(257) } }), ['body.reason']],
    ['data-capture: commitment of 31 bytes', bad({ body: { ...sampleBody('data-capture'), commitment: new Uint8Array(31) } as RecordBody }), ['body.commitment']],
    ['data-capture: dataset of 257 bytes', bad({ body: { ...sampleBody('data-capture'), dataset: 'd'.repeat(257) } as RecordBody }), ['body.dataset']],
    ['data-capture: label as a number', bad({ body: { ...sampleBody('data-capture'), label: 3 } as unknown as RecordBody }), ['body.label']],
    ['data-capture: fractional size and time', bad({ body: { ...sampleBody('data-capture'), sizeBytes: 1.5, capturedAtMs: -1 } as RecordBody }), ['body.sizeBytes', 'body.capturedAtMs']]
  ]
  for (const [what, record, paths] of cases) {
    throwsInvalid(t, () => encodeRecord(record), paths, what)
    throwsInvalid(t, () => signRecord(record, signer), paths, `${what} (signRecord)`)
  }
  t.throws(() => encodeRecord(null as unknown as ProvenanceRecord), { constructor: ProtocolError, code: 'RECORD_INVALID' }, 'null')
  t.throws(() => encodeRecord('record' as unknown as ProvenanceRecord), { constructor: ProtocolError, code: 'RECORD_INVALID' }, 'a string')
})

t.test('error: hostile record bytes → RECORD_INVALID naming the field, never a crash', async t => {
  const h = new Uint8Array(32)
  const inference = (body: CborValue[]): Uint8Array => wire({ kind: 2, body })
  const modelLoad = (body: CborValue[]): Uint8Array => wire({ kind: 1, body })
  const okInference: CborValue[] = [h, [['in', h]], [['out', h]], 5, 'cat']
  const okModelLoad: CborValue[] = [h, h, h, 'm.onnx', 10, 1, ['CPUExecutionProvider']]
  t.ok(decodeRecord(inference(okInference)), 'the baseline inference decodes')
  t.ok(decodeRecord(modelLoad(okModelLoad)), 'the baseline model-load decodes')
  t.match(decodeRecord(wire({ kind: 10, body: [h, 5, 'ds', null, 0] })).body, { kind: 'data-capture', dataset: 'ds', label: null }, 'kind 10 is a data capture')

  const cases: Array<[string, Uint8Array, string[]]> = [
    ['record of 7 fields', encodeCanonical([1, 0, 'd', 1, 0, 0, h]), []],
    ['version 2', wire({ version: 2 }), []],
    ['version as text', wire({ version: '1' }), []],
    ['kind 6', wire({ kind: 6 }), []],
    ['kind as text', wire({ kind: 'boot' }), []],
    ['body as text', wire({ body: 'hello' }), []],
    ['deviceId as bytes', wire({ deviceId: new Uint8Array(3) }), ['deviceId']],
    ['deviceId with a newline', wire({ deviceId: 'dev\n1' }), ['deviceId']],
    ['boot as bytes', wire({ boot: new Uint8Array(1) }), ['boot']],
    ['seq as null', wire({ seq: null }), ['seq']],
    ['timeMs as boolean', wire({ timeMs: true }), ['timeMs']],
    ['prev of 20 bytes', wire({ prev: new Uint8Array(20) }), ['prev']],
    ['prev as an array', wire({ prev: [] }), ['prev']],
    ['boot body with 3 fields', wire({ body: ['a', 'b', 'c'] }), ['body']],
    ['boot body with 1 field', wire({ body: ['a'] }), ['body', 'body.profile']],
    ['boot body with bytes', wire({ body: [new Uint8Array(1), 'b'] }), ['body.agentVersion']],
    ['inference: inputs not an array', inference([h, 7, [], 5, null]), ['body.inputs']],
    ['inference: input not a pair', inference([h, [['in']], [], 5, null]), ['body.inputs[0]']],
    ['inference: input pair of 3', inference([h, [['in', h, h]], [], 5, null]), ['body.inputs[0]']],
    ['inference: input name as bytes', inference([h, [[h, h]], [], 5, null]), ['body.inputs[0].name']],
    ['inference: output hash as text', inference([h, [], [['o', 'h']], 5, null]), ['body.outputs[0].hash']],
    ['inference: decision as a number', inference([h, [], [], 5, 7]), ['body.decision']],
    ['inference: decision as false', inference([h, [], [], 5, false]), ['body.decision']],
    ['inference: latency as null', inference([h, [], [], null, null]), ['body.latencyUs']],
    ['model-load: policy 3', modelLoad([h, h, h, 'm', 10, 3, []]), ['body.policy']],
    ['model-load: policy as text', modelLoad([h, h, h, 'm', 10, 'approved', []]), ['body.policy']],
    ['model-load: providers not an array', modelLoad([h, h, h, 'm', 10, 1, 5]), ['body.providers']],
    ['model-load: providers as text', modelLoad([h, h, h, 'm', 10, 1, 'CPU']), ['body.providers']],
    ['model-load: provider as bytes', modelLoad([h, h, h, 'm', 10, 1, [h]]), ['body.providers[0]']],
    ['gap: range above its own seq', wire({ kind: 3, seq: 4, body: [3, 9, h, h, 'r'] }), ['body.lastSeq']],
    ['key-rotation: key of 31 bytes', wire({ kind: 4, body: [new Uint8Array(31), 0] }), ['body.newPublicKey']],
    ['shutdown: reason as null', wire({ kind: 5, body: [null] }), ['body.reason']],
    ['oversight: verdict 3', wire({ kind: 8, body: ['r', 'dev-2', 4, h, 3, 'why'] }), ['body.verdict']],
    ['oversight: decision hash of 31 bytes', wire({ kind: 8, body: ['r', 'dev-2', 4, new Uint8Array(31), 0, 'why'] }), ['body.decisionHash']],
    ['oversight: decision device not an id', wire({ kind: 8, body: ['r', 'a/b', 4, h, 0, 'why'] }), ['body.decisionDeviceId']],
    ['oversight: empty reviewer', wire({ kind: 8, body: ['', 'dev-2', 4, h, 0, 'why'] }), ['body.reviewer']],
    ['oversight: five fields', wire({ kind: 8, body: ['r', 'dev-2', 4, h, 0] }), ['body']],
    ['session: phase 2', wire({ kind: 9, body: [2, 'use-1', 'db', h] }), ['body.phase']],
    ['session: reference hash as text', wire({ kind: 9, body: [0, 'use-1', 'db', 'h'] }), ['body.referenceHash']],
    ['session: empty id', wire({ kind: 9, body: [0, '', 'db', null] }), ['body.sessionId']],
    ['kind 7 is not ours to decode', wire({ kind: 7, body: [] }), []],
    ['kind 11 (unassigned)', wire({ kind: 11 }), []],
    ['data-capture: 4 fields', wire({ kind: 10, body: [h, 5, 'ds', null] }), ['body', 'body.capturedAtMs']],
    ['data-capture: commitment as text', wire({ kind: 10, body: ['h', 5, 'ds', null, 0] }), ['body.commitment']],
    ['data-capture: label as false', wire({ kind: 10, body: [h, 5, 'ds', false, 0] }), ['body.label']]
  ]
  for (const [what, bytes, paths] of cases) {
    if (paths.length === 0) t.throws(() => decodeRecord(bytes), { constructor: ProtocolError, code: 'RECORD_INVALID' }, `${what} → RECORD_INVALID`)
    else throwsInvalid(t, () => decodeRecord(bytes), paths, what)
  }
  t.throws(() => decodeRecord(encodeCanonical('not a record')), { constructor: ProtocolError, code: 'RECORD_INVALID' }, 'a text string')
  t.throws(() => decodeRecord(wire({ extra: [0] })), { constructor: ProtocolError, code: 'RECORD_INVALID' }, 'a ninth field')
  t.throws(() => decodeRecord(inference([h, [[['deep', [[h]]], h]], [], 5, null])), { constructor: ProtocolError, code: 'CBOR_TOO_LARGE' }, 'arrays nested deeper than records go')
  t.throws(() => decodeRecord(Uint8Array.of(0x88, 0x01)), { constructor: ProtocolError, code: 'CBOR_MALFORMED' }, 'truncated')
})

t.test('error: hostile envelopes → RECORD_INVALID or CBOR_*', async t => {
  const signed = signRecord(makeRecord(sampleBody('boot')), signer)
  const cases: Array<[string, Uint8Array, string]> = [
    ['not an array', encodeCanonical(signed.recordBytes), 'RECORD_INVALID'],
    ['array of 1', encodeCanonical([signed.recordBytes]), 'RECORD_INVALID'],
    ['array of 3', encodeCanonical([signed.recordBytes, signed.signature, signed.signature]), 'RECORD_INVALID'],
    // The envelope holds byte strings only: its decoder allows no nesting at all.
    ['record as an array, not bytes', encodeCanonical([[1, 0], signed.signature]), 'CBOR_TOO_LARGE'],
    ['record as text', encodeCanonical(['x', signed.signature]), 'RECORD_INVALID'],
    ['signature of 63 bytes', encodeCanonical([signed.recordBytes, signed.signature.subarray(1)]), 'RECORD_INVALID'],
    ['signature of 65 bytes', encodeCanonical([signed.recordBytes, new Uint8Array(65)]), 'RECORD_INVALID'],
    ['signature as text', encodeCanonical([signed.recordBytes, 'sig']), 'RECORD_INVALID'],
    ['record bytes not canonical', encodeCanonical([Uint8Array.of(0x18, 0x01), signed.signature]), 'CBOR_NON_CANONICAL'],
    ['record bytes with trailing garbage', encodeCanonical([new Uint8Array([...signed.recordBytes, 0]), signed.signature]), 'CBOR_MALFORMED'],
    ['trailing byte after the envelope', new Uint8Array([...signed.envelope, 0]), 'CBOR_MALFORMED'],
    ['truncated envelope', signed.envelope.subarray(0, signed.envelope.length - 1), 'CBOR_MALFORMED'],
    ['empty input', new Uint8Array(), 'CBOR_MALFORMED'],
    ['above 64 KiB', new Uint8Array(LIMITS.envelopeBytes + 1), 'CBOR_TOO_LARGE']
  ]
  for (const [what, bytes, code] of cases) {
    t.throws(() => decodeEnvelope(bytes), { constructor: ProtocolError, code }, `${what} → ${code}`)
  }
  const back = decodeEnvelope(signed.envelope)
  signed.envelope[5]! ^= 1
  t.not(toHex(back.envelope), toHex(signed.envelope), 'decodeEnvelope keeps its own copy of the input')
})


t.test('error: inference inputs and outputs must be unique names in ascending order (one order, one meaning)', async t => {
  const base = sampleInference(1)
  const two = (a: string, b: string) => [{ name: a, hash: fakeHash(a) }, { name: b, hash: fakeHash(b) }]
  t.doesNotThrow(() => encodeRecord(makeRecord({ ...base, inputs: two('a', 'b'), outputs: two('boxes', 'scores') })))
  for (const [side, list] of [['inputs', two('b', 'a')], ['outputs', two('x', 'x')]] as const) {
    const e = t.throws(() => encodeRecord(makeRecord({ ...base, [side]: list })), { constructor: ProtocolError, code: 'RECORD_INVALID' }) as unknown as Error
    t.match(e.message, new RegExp(`body\\.${side}\\[1\\]\\.name: names must be unique and in ascending order`))
  }
  // UTF-16 code unit order, as JavaScript sorts: U+1F600 (surrogates d83d de00) before U+FF5E,
  // the reverse of code point and UTF-8 byte order: the trap §2 warns about.
  t.doesNotThrow(() => encodeRecord(makeRecord({ ...base, inputs: two('\u{1F600}', '\uFF5E') })))
  t.throws(() => encodeRecord(makeRecord({ ...base, inputs: two('\uFF5E', '\u{1F600}') })), { code: 'RECORD_INVALID' })
})
