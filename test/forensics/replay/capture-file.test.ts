import t from 'tap'
import fc from 'fast-check'
import ort from 'onnxruntime-node'
import {
  CaptureError, CAPTURE_HEADER_BYTES, assertCapture, captureTensor, commitCapturedTensor, commitTensor, decodeCapture,
  encodeCanonical, encodeCapture, sizeCaptureEntry, tensorOfCaptured, ProtocolError,
  type Capture, type CaptureEntry, type CborValue, type TensorLike
} from '../../../protocol/index.js'
import { replayCapture } from '../../../forensics/replay/index.js'
import { makeClassifierModel } from '../../helpers/onnx-models.js'
import { runScenario } from '../../helpers/replay.js'

const SALT = new Uint8Array(32).fill(0x5a)
const MODEL = new Uint8Array(32).fill(0x11)
const FUZZ = { seed: 20240611, numRuns: 300 }

/** One tensor of every dtype, with awkward values (NaN, -0, extremes, multi-byte and lone-surrogate text). */
function tensorsOfEveryDtype (): Array<[string, TensorLike]> {
  return [
    ['f32', { type: 'float32', dims: [2, 2], data: Float32Array.from([1.5, -0, NaN, -Infinity]) }],
    ['u8', { type: 'uint8', dims: [3], data: Uint8Array.from([0, 128, 255]) }],
    ['i8', { type: 'int8', dims: [2], data: Int8Array.from([-128, 127]) }],
    ['u16', { type: 'uint16', dims: [1], data: Uint16Array.from([65535]) }],
    ['i16', { type: 'int16', dims: [2], data: Int16Array.from([-1, 2]) }],
    ['i32', { type: 'int32', dims: [], data: Int32Array.from([-7]) }],
    ['i64', { type: 'int64', dims: [2], data: BigInt64Array.from([-1n, 2n ** 62n]) }],
    ['str', { type: 'string', dims: [2, 2], data: ['person', 'vélo', '', 'x\uD800y'] }],
    ['bool', { type: 'bool', dims: [2], data: Uint8Array.from([0, 1]) }],
    ['f16', { type: 'float16', dims: [2], data: Uint16Array.from([0x3c00, 0x7e00]) }],
    ['f64', { type: 'float64', dims: [1], data: Float64Array.from([Math.PI]) }],
    ['u32', { type: 'uint32', dims: [1], data: Uint32Array.from([0xffffffff]) }],
    ['u64', { type: 'uint64', dims: [1], data: BigUint64Array.from([2n ** 64n - 1n]) }],
    ['empty', { type: 'float32', dims: [0, 3], data: new Float32Array(0) }]
  ]
}

function sampleCapture (): Capture {
  const tensors = tensorsOfEveryDtype().map(([n, tl]) => captureTensor(n, tl))
  return {
    deviceId: 'jetson-orin-0001',
    reason: 'low confidence: 0.31',
    frozenAtMs: 1_700_000_000_000,
    entries: [
      { seq: 7, salt: SALT, modelHash: MODEL, inputs: tensors.slice(0, 7), outputs: tensors.slice(7) },
      { seq: 9, salt: SALT, modelHash: MODEL, inputs: [], outputs: [] }
    ]
  }
}

t.test('behavior: a captured tensor of every dtype opens the commitment of the tensor it came from', async t => {
  for (const [name, tensor] of tensorsOfEveryDtype()) {
    const captured = captureTensor(name, tensor)
    t.same(commitCapturedTensor(SALT, captured), commitTensor(SALT, name, tensor), `${tensor.type} commitment from the captured bytes`)
    t.same(commitTensor(SALT, name, tensorOfCaptured(captured)), commitTensor(SALT, name, tensor), `${tensor.type} back to typed data`)
  }
  // A view into a larger buffer: only its own bytes are captured, and they are a copy.
  const backing = Float32Array.from([9, 1, 2, 9])
  const view = new Float32Array(backing.buffer, 4, 2)
  const c = captureTensor('v', { type: 'float32', dims: [2], data: view })
  backing[1] = 5
  t.same([...new Float32Array(c.data.buffer)], [1, 2], 'captured bytes do not follow the caller reusing its buffer')
})

t.test('behavior: capture bytes are canonical and round-trip exactly', async t => {
  const capture = sampleCapture()
  const bytes = encodeCapture(capture)
  const back = decodeCapture(bytes)
  t.same(encodeCapture(back), bytes)
  t.equal(back.entries[0]?.outputs.find(o => o.name === 'str')?.dtype, 'string')
  t.equal(bytes[0], 0x85, 'an array of five fields')
  // Read from disk, bytes come as a Buffer: the decoded tensors must still be copies, aligned.
  const fromDisk = Buffer.concat([Buffer.alloc(1), bytes]).subarray(1)
  const decoded = decodeCapture(fromDisk)
  fromDisk.fill(0)
  t.same(encodeCapture(decoded), bytes, 'decoded data does not alias the input')
  t.ok(decoded.entries[0]?.inputs.every(i => i.data.byteOffset === 0), 'each byte string is its own copy')
  t.same([...(tensorOfCaptured(decoded.entries[0]!.inputs[0]!).data as Float32Array)].map(String), ['1.5', '0', 'NaN', '-Infinity'])
  const bound = capture.entries.reduce((a, e) => a + sizeCaptureEntry(e), CAPTURE_HEADER_BYTES)
  t.ok(bytes.byteLength <= bound, `encoded ${bytes.byteLength} ≤ the ring's bound ${bound}`)
})

t.test('error: bad fields are listed by path, and bad tensors are refused when captured', async t => {
  const c = sampleCapture()
  const entry = c.entries[0] as CaptureEntry
  const bad = {
    ...c,
    deviceId: 'bad id/with slash',
    reason: 'x'.repeat(257),
    entries: [
      { ...entry, seq: 9, salt: new Uint8Array(31), inputs: [entry.inputs[0], { ...entry.inputs[0], dims: [3, 2] }] },
      { ...entry, seq: 9, modelHash: 'nope' }
    ]
  }
  const err = (() => { try { encodeCapture(bad as unknown as Capture) } catch (e) { return e as CaptureError } })()
  t.type(err, CaptureError)
  t.equal(err?.code, 'CAPTURE_MALFORMED')
  for (const path of ['deviceId', 'reason', 'entries[0].salt', 'entries[0].inputs[1].name: duplicate', 'entries[0].inputs[1].data',
    'entries[1].seq', 'entries[1].modelHash']) {
    t.match(err?.message, path, `names ${path}`)
  }
  t.throws(() => assertCapture(null), { code: 'CAPTURE_MALFORMED' })
  const tensorErrors: Array<[string, TensorLike]> = [
    ['unknown', { type: 'complex64', dims: [1], data: new Float32Array(2) }],
    ['proto', { type: 'constructor', dims: [1], data: new Float32Array(1) }],
    ['short', { type: 'float32', dims: [3], data: new Float32Array(2) }],
    ['strings', { type: 'string', dims: [2], data: ['a'] }],
    ['dims', { type: 'float32', dims: [-1], data: new Float32Array(0) }],
    ['rank', { type: 'float32', dims: new Array(33).fill(1), data: new Float32Array(1) }]
  ]
  for (const [name, tensor] of tensorErrors) {
    t.throws(() => captureTensor(name, tensor), ProtocolError, name)
    t.throws(() => captureTensor(name, tensor), { code: 'TENSOR_INVALID' }, name)
  }
})

t.test('error: hostile capture bytes give CAPTURE_MALFORMED or CAPTURE_TOO_LARGE, checked before allocating', async t => {
  const good = encodeCapture(sampleCapture())
  const malformed = (v: CborValue): Uint8Array => encodeCanonical(v)
  const salt = new Uint8Array(32)
  const tensor = (name: CborValue, code: CborValue, dims: CborValue, data: CborValue): CborValue => [name, code, dims, data]
  const entry = (inputs: CborValue[]): CborValue => [1, salt, salt, inputs, []]
  const cases: Array<[string, Uint8Array]> = [
    ['empty', new Uint8Array(0)],
    ['not canonical CBOR (float)', new Uint8Array([0xf9, 0x3c, 0x00])],
    ['not an array', malformed('capture')],
    ['wrong version', malformed([2, 'd', 'r', 0, []])],
    ['four fields', malformed([1, 'd', 'r', 0])],
    ['entries not an array', malformed([1, 'd', 'r', 0, 5])],
    ['entry of four fields', malformed([1, 'd', 'r', 0, [[1, salt, salt, []]]])],
    ['tensor of three fields', malformed([1, 'd', 'r', 0, [entry([['x', 1, []]])]])],
    ['unknown dtype code', malformed([1, 'd', 'r', 0, [entry([tensor('x', 99, [1], new Uint8Array(4))])]])],
    ['data too short', malformed([1, 'd', 'r', 0, [entry([tensor('x', 1, [2], new Uint8Array(4))])]])],
    ['dims product beyond 2^53', malformed([1, 'd', 'r', 0, [entry([tensor('x', 2, [2 ** 30, 2 ** 30, 2 ** 30], new Uint8Array(0))])]])],
    ['string count beyond the bytes', malformed([1, 'd', 'r', 0, [entry([tensor('x', 8, [2 ** 40], new Uint8Array(8))])]])],
    ['string not UTF-8', malformed([1, 'd', 'r', 0, [entry([tensor('x', 8, [1], Uint8Array.from([0, 0, 0, 1, 0xff]))])]])],
    ['string with trailing bytes', malformed([1, 'd', 'r', 0, [entry([tensor('x', 8, [1], Uint8Array.from([0, 0, 0, 0, 0]))])]])],
    ['seqs not ascending', malformed([1, 'd', 'r', 0, [entry([]), entry([])]])],
    ['dims not integers', malformed([1, 'd', 'r', 0, [entry([tensor('x', 1, ['1'], new Uint8Array(4))])]])],
    ['nested too deep', malformed([1, 'd', 'r', 0, [entry([tensor('x', 1, [[1]], new Uint8Array(4))])]])],
    // A 9-byte head that claims a 2^53-byte string: refused without allocating it.
    ['declared length beyond the input', Uint8Array.from([0x85, 0x01, 0x61, 0x64, 0x61, 0x72, 0x00, 0x81, 0x85, 0x01, 0x5b, 0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])],
    ['trailing byte', Uint8Array.from([...good, 0])]
  ]
  for (const [what, bytes] of cases) {
    const err = (() => { try { decodeCapture(bytes); return undefined } catch (e) { return e as CaptureError } })()
    t.type(err, CaptureError, what)
    t.equal(err?.code, 'CAPTURE_MALFORMED', what)
  }
  t.throws(() => decodeCapture(good, { maxBytes: good.byteLength - 1 }), { code: 'CAPTURE_TOO_LARGE' })
  t.throws(() => decodeCapture('x' as unknown as Uint8Array), { code: 'CAPTURE_MALFORMED' })
})

t.test('fuzz: truncated, garbage, bit-flipped and arbitrary-CBOR captures give typed errors only', async () => {
  const good = encodeCapture(sampleCapture())
  const decodesOrCaptureError = (bytes: Uint8Array): boolean => {
    try {
      const c = decodeCapture(bytes)
      // Whatever decodes is canonical: it re-encodes to the very bytes.
      return Buffer.from(encodeCapture(c)).equals(Buffer.from(bytes))
    } catch (e) {
      return e instanceof CaptureError && (e.code === 'CAPTURE_MALFORMED' || e.code === 'CAPTURE_TOO_LARGE')
    }
  }
  fc.assert(fc.property(fc.integer({ min: 0, max: good.byteLength - 1 }), n => {
    try { decodeCapture(good.subarray(0, n)); return false } catch (e) { return e instanceof CaptureError && e.code === 'CAPTURE_MALFORMED' }
  }), FUZZ)
  fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), bytes => decodesOrCaptureError(bytes)), FUZZ)
  fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), bytes => decodesOrCaptureError(Uint8Array.from([0x85, 0x01, ...bytes]))), FUZZ)
  fc.assert(fc.property(fc.integer({ min: 0, max: good.byteLength - 1 }), fc.integer({ min: 1, max: 255 }), (at, x) => {
    const bytes = good.slice()
    bytes[at] = (bytes[at] as number) ^ x
    return decodesOrCaptureError(bytes)
  }), FUZZ)
  const value: fc.Arbitrary<CborValue> = fc.letrec<{ v: CborValue }>(tie => ({
    v: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.nat(), fc.constantFrom(0, 1, 2, 8, 32, 2 ** 53 - 1), fc.string({ maxLength: 8 }), fc.uint8Array({ maxLength: 40 }),
      fc.constantFrom(true, false, null), fc.array(tie('v'), { maxLength: 5 })
    )
  })).v
  const shaped = fc.tuple(fc.constant(1), value, value, value, fc.array(
    fc.tuple(value, value, value, fc.array(fc.array(value, { maxLength: 5 }), { maxLength: 3 }), value), { maxLength: 3 }))
  fc.assert(fc.property(shaped, v => decodesOrCaptureError(encodeCanonical(v as CborValue))), FUZZ)
})

t.test('fuzz: replay of bit-flipped real captures gives a report or a CaptureError, nothing else', async t => {
  const feeds = [0.2, 0.7].map(v => ({ x: new ort.Tensor('float32', Float32Array.from([v, v, -v, 1]), [1, 4]) }))
  const s = await runScenario(t, makeClassifierModel({ seed: 1 }), feeds)
  const modelPaths = new Map([[s.modelHashHex, s.modelPath]])
  const good = s.frozen.bytes
  let reports = 0
  let errors = 0
  await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: good.byteLength - 1 }), fc.integer({ min: 1, max: 255 }), async (at, x) => {
    const bytes = good.slice()
    bytes[at] = (bytes[at] as number) ^ x
    try {
      const report = await replayCapture({ capture: bytes, records: s.records, modelPaths })
      reports++
      return report.entries.length <= 2 && report.summary.ok === report.entries.every(e => e.verdict === 'ok')
    } catch (e) {
      errors++
      return e instanceof CaptureError
    }
  }), { seed: FUZZ.seed, numRuns: 120 })
  t.ok(reports > 0 && errors > 0, `both outcomes seen (${reports} reports, ${errors} CaptureErrors)`)
})
