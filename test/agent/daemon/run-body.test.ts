// The streaming run-body decoder (agent/daemon/run-body.ts) against hostile and odd bodies, each
// fed whole and split at every byte (or at many): the answer never depends on where TCP cut it.
// Valid bodies decode to the same tensors as the JSON.parse reference (parseRunRequest).
import t, { type Test } from 'tap'
import { DaemonError, RunBodyDecoder, decodeRunBody, encodeBinaryRunBody, parseRunRequest, MAX_RUN_JSON_DEPTH, type RunRequest } from '../../../agent/daemon/index.js'

const f32 = (values: number[]): string => Buffer.from(Float32Array.from(values).buffer).toString('base64')

/** Decodes `body` cut into pieces of `step` bytes. */
function decodeIn (body: Buffer, step: number, binary = false, max = 1 << 20): RunRequest {
  const d = new RunBodyDecoder(binary, max)
  for (let i = 0; i < body.length; i += step) d.write(body.subarray(i, i + step))
  return d.end()
}

/** What a decode gives, as comparable text: the tensors, or the error's code and message. */
function outcome (fn: () => RunRequest): string {
  try {
    const r = fn()
    const feeds = Object.entries(r.feeds).map(([k, v]) => [k, v.type, v.dims, v.type === 'string' ? v.data : Buffer.from((v.data as Uint8Array).buffer, (v.data as Uint8Array).byteOffset, (v.data as Uint8Array).byteLength).toString('hex')])
    return JSON.stringify({ feeds, decision: r.decision, subject: r.subject })
  } catch (e) {
    if (!(e instanceof DaemonError)) throw e
    return `${e.code}: ${e.message}`
  }
}

/** The outcome of `body` for every split (all byte positions when short, else a spread of steps); fails the test if any differ. */
function splitOutcome (t: Test, body: Buffer | string, binary = false, max = 1 << 20): string {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(body)
  const steps = buf.length <= 200 ? Array.from({ length: Math.max(buf.length, 1) }, (_, i) => i + 1) : [1, 2, 3, 5, 7, 64, 1000, buf.length]
  const seen = new Set(steps.map(s => outcome(() => decodeIn(buf, s, binary, max))))
  t.equal(seen.size, 1, 'the same outcome wherever the body is cut')
  return [...seen][0] as string
}

const invalid = (text: string): boolean => text.startsWith('REQUEST_INVALID: ')

t.test('behavior: a run body decodes to the tensors JSON.parse gives, with data before or after dims and type, whatever the chunking', async t => {
  const x = Array.from({ length: 37 }, (_, i) => i / 7 - 2)
  const body = { inputs: { x: { type: 'float32', dims: [1, 37], data: f32(x) }, s: { type: 'string', dims: [2], data: ['é', '\u{1F600}'] } }, decision: 'd\n"q"', subject: 'alice' }
  const reference = outcome(() => parseRunRequest(body))
  t.equal(splitOutcome(t, JSON.stringify(body)), reference, 'type, dims, data')
  const dataFirst = { inputs: { s: body.inputs.s, x: { data: f32(x), dims: [1, 37], type: 'float32' } }, subject: 'alice', decision: 'd\n"q"' }
  t.same(JSON.parse(splitOutcome(t, JSON.stringify(dataFirst))).feeds.sort(), JSON.parse(reference).feeds.sort(), 'data, dims, type: the same tensors (staged, then copied once)')
  // Escapes a JSON encoder may use: "\/" (PHP), \u escapes, spaces and newlines between tokens.
  const escaped = JSON.stringify(body, null, 2).replace(/\//g, '\\/').replace(/"A/g, '"\\u0041')
  t.equal(splitOutcome(t, escaped), reference, 'escapes and whitespace')
  t.equal(splitOutcome(t, '{"inputs":{"e":{"type":"uint8","dims":[0],"data":""}}}'), JSON.stringify({ feeds: [['e', 'uint8', [0], '']] }), 'an empty tensor')
  t.equal(splitOutcome(t, '{"inputs":{"b":{"type":"uint8","dims":[1.0, 2e0],"data":"/+8="}}}'), JSON.stringify({ feeds: [['b', 'uint8', [1, 2], 'ffef']] }), 'dims as JSON writes integers; one padding character')
})

t.test('behavior: a random run body decodes as JSON.parse and the reference decoder do, in one piece or in random pieces', async t => {
  let seed = 7
  const rand = (n: number): number => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed % n }
  for (let round = 0; round < 60; round++) {
    const types = ['float32', 'uint8', 'int64', 'float16', 'bool', 'float64']
    const inputs: Record<string, unknown> = {}
    for (let k = 0; k <= rand(3); k++) {
      const type = types[rand(types.length)] as string
      const dims = [rand(3) + 1, rand(40)]
      const bytes = dims[0]! * dims[1]! * ({ float32: 4, uint8: 1, int64: 8, float16: 2, bool: 1, float64: 8 } as Record<string, number>)[type]!
      const data = Buffer.from(Array.from({ length: bytes }, () => rand(256))).toString('base64')
      const fields: Array<[string, unknown]> = [['type', type], ['dims', dims], ['data', data]]
      fields.sort(() => rand(3) - 1)
      inputs[`in${k}`] = Object.fromEntries(fields)
    }
    const body = Buffer.from(JSON.stringify({ inputs }))
    const reference = outcome(() => parseRunRequest(JSON.parse(body.toString())))
    const d = new RunBodyDecoder(false, 1 << 20)
    for (let at = 0; at < body.length;) { const n = 1 + rand(97); d.write(body.subarray(at, at + n)); at += n }
    if (outcome(() => d.end()) !== reference) { t.fail(`round ${round}: ${body.toString().slice(0, 200)}`); return }
  }
  t.pass('60 random bodies, random chunking: the reference tensors')
})

t.test('attack: malformed base64 is refused wherever the chunk boundaries fall, and says where', async t => {
  const good = f32([1, 2, 3, 4]) // 24 characters, ends in "=="
  const cases: Array<[string, string, RegExp]> = [
    ['a character outside the alphabet', good.slice(0, 9) + '*' + good.slice(10), /inputs\.x\.data: not base64 \('\*' at character 9/],
    ['base64url characters', good.slice(0, 4) + '-_' + good.slice(6), /not base64 \('-' at character 4/],
    ['padding in the middle', 'AAAA==AA' + good.slice(8), /not base64/],
    ['missing padding', good.slice(0, 22), /not a multiple of 4|decodes to 15 bytes/],
    ['a space inside', good.slice(0, 8) + ' ' + good.slice(8), /not base64 \(character 32/],
    ['a raw newline (control character) inside', good.slice(0, 8) + '\n' + good.slice(8), /not base64|control character/],
    ['an escape that is not base64', good.slice(0, 8) + '\\u0021' + good.slice(8), /not base64 \('!'/],
    ['more bytes than the dims hold', good.replace(/==$/, 'AA'), /decodes to more than the 16 bytes float32 \[1, 4\] holds/],
    ['fewer bytes than the dims hold', good.slice(0, 16), /decodes to 12 bytes, 16 expected/]
  ]
  for (const [what, data, message] of cases) {
    for (const order of ['dims first', 'data first']) {
      const tensor = order === 'dims first' ? `{"type":"float32","dims":[1,4],"data":"${data}"}` : `{"data":"${data}","dims":[1,4],"type":"float32"}`
      const text = splitOutcome(t, `{"inputs":{"x":${tensor}}}`)
      t.ok(invalid(text), `${what}, ${order}: REQUEST_INVALID`)
      if (!(what === 'more bytes than the dims hold' && order === 'data first')) t.match(text, message, `${what}, ${order}: names the problem`)
      else t.match(text, /decodes to 18 bytes, 16 expected/, `${what}, ${order}: names the problem`)
    }
  }
})

t.test('attack: unknown, duplicate and missing fields, trailing garbage and nested junk are REQUEST_INVALID naming each field', async t => {
  const x = `{"type":"float32","dims":[1,4],"data":"${f32([1, 2, 3, 4])}"}`
  const cases: Array<[string, string, RegExp]> = [
    ['an unknown top-level field', `{"inputs":{"x":${x}},"extra":{"a":[1,{"b":null}]}}`, /extra: not a field of a run request/],
    ['an unknown tensor field', `{"inputs":{"x":{"type":"float32","dims":[1,4],"name":"x","data":"${f32([1, 2, 3, 4])}"}}}`, /inputs\.x\.name: not a field of a tensor/],
    ['a duplicate top-level field', `{"inputs":{"x":${x}},"inputs":{}}`, /inputs: given twice/],
    ['a duplicate input', `{"inputs":{"x":${x},"x":${x}}}`, /inputs\.x: given twice/],
    ['a duplicate data field', `{"inputs":{"x":{"type":"float32","dims":[1,4],"data":"${f32([1, 2, 3, 4])}","data":"${f32([1, 2, 3, 4])}"}}}`, /inputs\.x\.data: given twice/],
    ['no inputs', '{"decision":"d"}', /inputs: must be an object of named tensors/],
    ['no data', '{"inputs":{"x":{"type":"float32","dims":[1,4]}}}', /inputs\.x\.data: must be base64/],
    ['every bad field at once', '{"inputs":{"x":{"type":"float33","dims":[1,-4],"data":5}},"extra":1,"subject":""}', /inputs\.x\.type: must be one of.*inputs\.x\.dims\[1\]: must be an integer.*extra: not a field.*subject: must be a non-empty string/],
    ['trailing garbage', `{"inputs":{"x":${x}}} {}`, /the end of the body expected at byte \d+, got '\{'/],
    ['a second document', `{"inputs":{"x":${x}}}{"inputs":{}}`, /the end of the body expected/],
    ['not an object', '[1,2]', /'\{' expected at byte 0, got '\['/],
    ['a truncated body', `{"inputs":{"x":${x}`, /the body ends early/],
    ['an empty body', '', /the body ends early, at byte 0/],
    ['a bad literal', '{"inputs":{},"extra":tru}', /'true' expected/],
    ['a bad number', '{"inputs":{"x":{"type":"uint8","dims":[01],"data":""}}}', /bad number '01'/],
    ['a control character in a name', '{"inputs":{"a\u0001":{}}}', /no control character in a string/],
    ['a rank over 32', `{"inputs":{"x":{"type":"uint8","dims":[${Array(40).fill(1).join(',')}],"data":"AA=="}}}`, /inputs\.x\.dims: must be an array of at most 32/],
    ['a string tensor with base64', '{"inputs":{"s":{"type":"string","dims":[1],"data":"AAAA"}}}', /inputs\.s\.data: must be an array of strings/],
    ['a float tensor with strings', '{"inputs":{"x":{"type":"float32","dims":[1],"data":["a"]}}}', /inputs\.x\.data: must be base64/]
  ]
  for (const [what, body, message] of cases) {
    const text = splitOutcome(t, body)
    t.ok(invalid(text), `${what}: REQUEST_INVALID`)
    t.match(text, message, `${what}: ${String(message)}`)
  }
  const deep = (n: number): string => `{"inputs":{},"junk":${'['.repeat(n)}${']'.repeat(n)}}`
  t.match(splitOutcome(t, deep(MAX_RUN_JSON_DEPTH)), /junk: not a field of a run request$/, `junk nested ${MAX_RUN_JSON_DEPTH} deep is skipped and named`)
  t.match(splitOutcome(t, deep(MAX_RUN_JSON_DEPTH + 2)), /nested deeper than 64/, 'deeper junk stops the parse')
  // A hundred thousand unknown fields: refused at the 17th, not collected into a message or a set.
  const many = '{"inputs":{}' + Array.from({ length: 100_000 }, (_, i) => `,"f${i}":0`).join('') + '}'
  t.match(outcome(() => decodeRunBody(Buffer.from(many), false, 4 << 20)), /more than 16 fields in the request object/)
  const inputs = '{"inputs":{' + Array.from({ length: 2000 }, (_, i) => `"i${i}":{}`).join(',') + '}}'
  t.match(outcome(() => decodeRunBody(Buffer.from(inputs), false, 4 << 20)), /inputs: more than 1024 tensors/)
})

t.test('attack: dims that claim more than the body may carry are refused before any allocation', async t => {
  const text = splitOutcome(t, '{"inputs":{"x":{"type":"float64","dims":[2147483647,2147483647,2147483647],"data":"AAAA"}}}', false, 4096)
  t.match(text, /inputs\.x\.data: float64 \[2147483647, 2147483647, 2147483647\] needs .* bytes, more than a request of at most 4096 bytes carries/)
  // Just over what 4096 bytes of base64 carry (3072 bytes), data first: the staged bytes are bounded by the body.
  t.match(splitOutcome(t, '{"inputs":{"x":{"data":"AAAA","type":"uint8","dims":[3073]}}}', false, 4096), /needs 3073 bytes, more than a request of at most 4096/)
})

t.test('behavior: the binary run body carries the same tensors without base64; short, long or mislabelled bodies are refused', async t => {
  const x = Float32Array.from({ length: 37 }, (_, i) => i / 7 - 2)
  const json = { inputs: { x: { type: 'float32', dims: [1, 37], data: Buffer.from(x.buffer).toString('base64') }, s: { type: 'string', dims: [1], data: ['é'] } }, decision: 'd' }
  const reference = outcome(() => parseRunRequest(json))
  const bin = encodeBinaryRunBody({ x: { type: 'float32', dims: [1, 37], data: x }, s: { type: 'string', dims: [1], data: ['é'] } }, { decision: 'd' })
  t.equal(splitOutcome(t, bin, true), reference, 'binary: the tensors of the JSON body')
  const cases: Array<[string, Buffer, RegExp]> = [
    ['one byte short', bin.subarray(0, bin.length - 1), /1 bytes of tensor data missing \(the header's tensors take 148\)/],
    ['one byte too many', Buffer.concat([bin, Buffer.from([0])]), /bytes after the 148 bytes of tensor data/],
    ['a header length past the body', Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xff]), bin.subarray(4)]), /a header of 4294967295 bytes/],
    ['base64 data in the header', (() => { const h = Buffer.from(JSON.stringify({ inputs: { x: { type: 'uint8', dims: [1], data: 'AA==' } } })); const n = Buffer.alloc(4); n.writeUInt32BE(h.length); return Buffer.concat([n, h, Buffer.from([1])]) })(), /inputs\.x\.data: not in a binary body's header/],
    ['a header longer than its JSON, padded with junk', (() => { const h = Buffer.from('{"inputs":{}}x'); const n = Buffer.alloc(4); n.writeUInt32BE(h.length); return Buffer.concat([n, h]) })(), /only whitespace up to the end of the header/]
  ]
  for (const [what, body, message] of cases) {
    const text = splitOutcome(t, body, true)
    t.ok(invalid(text), `${what}: REQUEST_INVALID`)
    t.match(text, message, what)
  }
})
