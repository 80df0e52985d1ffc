// The daemon API's memory bounds under attack (#11): bodies admitted under a byte budget (the rest
// wait unread, or get 503 API_BUSY), a body deadline (slowloris gets 408 and frees its bytes),
// huge or endless bodies refused, and run answers streamed. The API runs on a stand-in daemon
// (no model, no log) with small limits, so each attack takes milliseconds.
import t from 'tap'
import { request } from 'node:http'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Tensor } from 'onnxruntime-node'
import { ConfigError } from '../../../common/index.js'
import { loadConfig } from '../../../agent/cli/config.js'
import { chooseAnswerForm, createApiServer, decodeBinaryRunAnswer, encodeBinaryRunBody, DEFAULT_MAX_INFLIGHT_REQUEST_BYTES, RUN_BINARY_ANSWER_TYPE, RUN_BINARY_CONTENT_TYPE, type ApiServer, type ApiServerOptions, type DaemonApi, type DaemonRunResult } from '../../../agent/daemon/index.js'
import { makeTempDir } from '../../helpers/tmp.js'
import { rawRequest } from '../../helpers/raw-http.js'

const quiet = { info: () => {}, warn: () => {}, error: () => {} }
/** What the answer reads of a record. */
const record = { record: { seq: 2, boot: 1, timeMs: 1, body: { kind: 'inference', latencyUs: 5 } }, hash: new Uint8Array(32).fill(0xab) } as unknown as DaemonRunResult['record']

/** A stand-in daemon whose runs copy their inputs and answer `output`; `hold` keeps runs open until released. */
function standIn (output: Float32Array) {
  const runs: Array<Record<string, { type: string, dims: readonly number[], bytes: Buffer }>> = []
  let gate: Promise<void> = Promise.resolve()
  let open = (): void => {}
  const daemon = {
    track: () => {},
    run: async (_name: string, feeds: Record<string, Tensor>): Promise<DaemonRunResult> => {
      runs.push(Object.fromEntries(Object.entries(feeds).map(([k, v]) => {
        const d = v.data as Uint8Array
        return [k, { type: v.type, dims: v.dims, bytes: Buffer.from(Buffer.from(d.buffer, d.byteOffset, d.byteLength)) }]
      })))
      await gate
      // A copy per run, as the daemon's own: the API frees the outputs once its answer is out.
      return { model: 'm', modelHash: 'ab', outputs: { y: new Tensor('float32', output.slice(), [output.length]) }, record }
    }
  } as unknown as DaemonApi
  return {
    daemon,
    runs,
    hold: () => { gate = new Promise(resolve => { open = resolve }) },
    release: () => open()
  }
}

async function serve (t: { teardown: (fn: () => unknown) => void }, o: Partial<ApiServerOptions>, output = new Float32Array(4)): Promise<{ api: ApiServer, path: string } & ReturnType<typeof standIn>> {
  const dir = await makeTempDir(t, 'prov-limits-')
  const api = createApiServer({ maxRequestBytes: 16 * 1024, logger: quiet, ...o })
  const stand = standIn(output)
  api.attach(stand.daemon)
  await api.listen({ socketPath: join(dir, 'api.sock'), socketMode: 0o600 })
  t.teardown(async () => await api.shutdown())
  return { api, path: join(dir, 'api.sock'), ...stand }
}

interface Reply { status: number, headers: Record<string, string | string[] | undefined>, text: string }
async function post (path: string, body: string | Buffer, contentType = 'application/json'): Promise<Reply> {
  return await new Promise((resolve, reject) => {
    const req = request({ socketPath: path, method: 'POST', path: '/v1/models/m/run', headers: { 'content-type': contentType } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

async function waitFor (what: string, fn: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

const uint8Body = (bytes: Buffer): string => JSON.stringify({ inputs: { x: { type: 'uint8', dims: [bytes.length], data: bytes.toString('base64') } } })
const head = (length: number | 'chunked', type = 'application/json'): string =>
  `POST /v1/models/m/run HTTP/1.1\r\nhost: localhost\r\ncontent-type: ${type}\r\n${length === 'chunked' ? 'transfer-encoding: chunked' : `content-length: ${length}`}\r\n\r\n`

t.test('behavior: JSON and binary run bodies reach the model byte for byte, and the answer streams with its exact length', async t => {
  // 80 000 output bytes: more than one 48 KiB slice of the answer, and not a multiple of 3.
  const output = Float32Array.from({ length: 20_000 }, (_, i) => Math.sin(i))
  const s = await serve(t, {}, output)
  const a = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251))
  const b = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7) % 253))
  const first = await post(s.path, uint8Body(a))
  t.equal(first.status, 200, first.text.slice(0, 200))
  t.equal(Number(first.headers['content-length']), Buffer.byteLength(first.text), 'content-length is the answer\'s length')
  const answer = JSON.parse(first.text)
  t.same(Buffer.from(answer.outputs.y.data, 'base64'), Buffer.from(output.buffer), 'the output, encoded slice by slice')
  t.same(answer.outputs.y.dims, [20_000])
  t.same(answer.record, { seq: 2, boot: 1, timeMs: 1, hash: 'ab'.repeat(32), latencyUs: 5 })
  t.match(answer, { model: 'm', modelHash: 'ab' })
  // The same size again: each run gets its own bytes (the first run's buffer was freed).
  t.equal((await post(s.path, uint8Body(b))).status, 200)
  t.equal((await post(s.path, encodeBinaryRunBody({ x: { type: 'uint8', dims: [3000], data: a } }), RUN_BINARY_CONTENT_TYPE)).status, 200)
  t.same(s.runs.map(r => r.x?.bytes), [a, b, a], 'each run got its own bytes (JSON, JSON again, binary)')
  t.equal(s.api.bodies.inFlightBytes, 0, 'every admitted byte given back')
  const wrongType = await post(s.path, uint8Body(a), 'text/plain')
  t.equal(wrongType.status, 400)
  t.match(JSON.parse(wrongType.text).error.message, /application\/json \(base64 tensors\) or application\/octet-stream \(the binary run body\)/)
})

t.test('attack: a huge Content-Length is refused unread and takes no budget; an endless chunked body stops at maxRequestBytes', async t => {
  const s = await serve(t, { maxInflightRequestBytes: 8 * 1024 })
  const huge = await rawRequest({ path: s.path }, head(1024 ** 3) + '{"inputs":')
  t.equal(huge.status, 413)
  t.match(huge.body, /"REQUEST_TOO_LARGE"/)
  t.equal(s.api.bodies.inFlightBytes, 0, 'nothing admitted')
  // Data before its dims is staged: the body limit bounds it.
  const chunk = Buffer.from('a00\r\n' + 'A'.repeat(0xa00) + '\r\n')
  const framed = (text: string): string => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`
  const endless = await rawRequest({ path: s.path }, head('chunked') + framed('{"inp') + framed('uts":{"x":{"data":"AAAAAAAAAAAA'), { feed: chunk })
  t.equal(endless.status, 413, 'endless chunked body: 413')
  t.match(endless.body, /"REQUEST_TOO_LARGE"/)
  t.ok(endless.closed, 'and the connection is closed')
  await waitFor('the budget back', () => s.api.bodies.inFlightBytes === 0)
  t.equal((await post(s.path, uint8Body(Buffer.alloc(100)))).status, 200, 'still serving')
})

t.test('attack: a body that stops arriving (slowloris) gets 408 at its deadline, and its bytes go back to the budget', async t => {
  const s = await serve(t, { maxInflightRequestBytes: 8 * 1024, bodyTimeoutMs: 300 })
  const stalled = await rawRequest({ path: s.path }, head(8000) + '{"inputs":{"x":{"type":"uint8","dims":[5000],"data":"AAAA')
  t.equal(stalled.status, 408, 'REQUEST_TIMEOUT')
  t.match(stalled.body, /"REQUEST_TIMEOUT".*did not arrive within 300 ms/)
  t.ok(stalled.closed, 'the connection is closed')
  t.equal(s.api.bodies.inFlightBytes, 0, 'the 8000 admitted bytes are back')
  t.equal((await post(s.path, uint8Body(Buffer.alloc(5000)))).status, 200, 'a request needing most of the budget is admitted at once')
})

t.test('attack: concurrent big requests wait unread beyond the budget and are served in turn; one that waits too long gets 503 with Retry-After', async t => {
  const s = await serve(t, { maxInflightRequestBytes: 12 * 1024, admissionTimeoutMs: 30_000 })
  const body = uint8Body(Buffer.alloc(6000, 1)) // 8 KiB of JSON: one fits in 12 KiB, two do not
  s.hold()
  const replies = Array.from({ length: 4 }, async () => await post(s.path, body))
  await waitFor('one run and three waiting', () => s.runs.length === 1 && s.api.bodies.waiting === 3)
  t.equal(s.api.bodies.inFlightBytes, Buffer.byteLength(body), 'only the first body is admitted')
  s.release()
  const statuses = (await Promise.all(replies)).map(r => r.status)
  t.same(statuses, [200, 200, 200, 200], 'all served, in turn')
  t.equal(s.runs.length, 4)

  const busy = await serve(t, { maxInflightRequestBytes: 12 * 1024, admissionTimeoutMs: 200 })
  busy.hold()
  const first = post(busy.path, body)
  await waitFor('the first run', () => busy.runs.length === 1)
  const refused = await post(busy.path, body)
  t.equal(refused.status, 503, 'API_BUSY after the admission wait')
  t.equal(JSON.parse(refused.text).error.code, 'API_BUSY')
  t.equal(refused.headers['retry-after'], '1', 'with Retry-After')
  busy.release()
  t.equal((await first).status, 200)
})

t.test('attack: a client that leaves while waiting for admission frees its place', async t => {
  const s = await serve(t, { maxInflightRequestBytes: 12 * 1024, admissionTimeoutMs: 30_000 })
  const body = uint8Body(Buffer.alloc(6000, 1))
  s.hold()
  const first = post(s.path, body)
  await waitFor('the first run', () => s.runs.length === 1)
  const req = request({ socketPath: s.path, method: 'POST', path: '/v1/models/m/run', headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } })
  req.on('error', () => {})
  req.write(body.slice(0, 10))
  await waitFor('it waits', () => s.api.bodies.waiting === 1)
  req.destroy()
  await waitFor('it left the queue', () => s.api.bodies.waiting === 0)
  s.release()
  t.equal((await first).status, 200)
  t.equal(s.runs.length, 1, 'the one that left never ran')
  await waitFor('the budget back', () => s.api.bodies.inFlightBytes === 0)
})

t.test('behavior: the agent configuration takes maxInflightRequestBytes (file or environment) and refuses a nonsense one', async t => {
  const env = (v: string): Record<string, string> => ({ PROVENANCE_AGENT_DEVICE_ID: 'dev-1', PROVENANCE_AGENT_STATE_DIR: '/tmp/x', PROVENANCE_AGENT_PROFILE: 'generic-x86_64', PROVENANCE_AGENT_MAX_INFLIGHT_REQUEST_BYTES: v })
  t.equal((await loadConfig({ env: env('4194304') })).config.maxInflightRequestBytes, 4 * 1024 * 1024)
  t.equal((await loadConfig({ env: env('') })).config.maxInflightRequestBytes, undefined, 'unset: DEFAULT_MAX_INFLIGHT_REQUEST_BYTES')
  t.equal(DEFAULT_MAX_INFLIGHT_REQUEST_BYTES, 8 * 1024 * 1024)
  const err = await loadConfig({ env: env('12') }).then(() => undefined, (e: unknown) => e)
  t.type(err, ConfigError)
  t.match((err as Error).message, /maxInflightRequestBytes|MAX_INFLIGHT_REQUEST_BYTES/)
})

/** A run posted with `accept`, its answer read whole (or paused `pauseMs` after its first bytes, as a slow reader). */
async function postFor (path: string, body: string | Buffer, accept: string | undefined, o: { contentType?: string, pauseMs?: number, onPause?: () => Promise<void> } = {}): Promise<{ status: number, headers: Record<string, string | string[] | undefined>, bytes: Buffer, aborted: boolean }> {
  return await new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': o.contentType ?? 'application/json', ...(accept !== undefined ? { accept } : {}) }
    const req = request({ socketPath: path, method: 'POST', path: '/v1/models/m/run', headers }, (res) => {
      const chunks: Buffer[] = []
      let paused = false
      res.on('data', (c: Buffer) => {
        chunks.push(c)
        if (o.pauseMs === undefined || paused) return
        paused = true
        res.pause()
        setTimeout(() => { void (o.onPause ?? (async () => {}))().then(() => res.resume(), reject) }, o.pauseMs)
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes: Buffer.concat(chunks), aborted: false }))
      res.on('error', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes: Buffer.concat(chunks), aborted: true }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

t.test('attack: Accept values the run route cannot serve are refused before the body is read or the model runs', async t => {
  const cases: Array<[string | undefined, 'json' | 'binary' | 'REQUEST_INVALID' | 'NOT_ACCEPTABLE']> = [
    [undefined, 'json'], ['', 'json'], ['*/*', 'json'], ['application/*', 'json'], ['application/json', 'json'],
    ['application/octet-stream', 'binary'], ['APPLICATION/OCTET-STREAM;q=0.5', 'binary'],
    ['application/octet-stream, application/json', 'json'], ['application/json;q=0.4, application/octet-stream', 'binary'],
    ['application/octet-stream;q=0.9, */*;q=0.1', 'binary'], ['application/*;q=0.2, application/octet-stream;q=0.1', 'json'],
    ['application/json;q=0, */*', 'binary'], ['text/html', 'NOT_ACCEPTABLE'], ['application/json;q=0', 'NOT_ACCEPTABLE'],
    ['application/octet-stream;q=0, application/json;q=0', 'NOT_ACCEPTABLE'], ['image/*', 'NOT_ACCEPTABLE'],
    ['json', 'REQUEST_INVALID'], ['*/json', 'REQUEST_INVALID'], ['application/json;q=2', 'REQUEST_INVALID'],
    ['application/json;q=0.5555', 'REQUEST_INVALID'], ['application/json;q=abc', 'REQUEST_INVALID'], ['a/b/c', 'REQUEST_INVALID'],
    [Array.from({ length: 65 }, () => 'text/plain').join(','), 'REQUEST_INVALID']
  ]
  for (const [accept, want] of cases) {
    if (want === 'json' || want === 'binary') { t.equal(chooseAnswerForm(accept), want, `Accept: ${String(accept).slice(0, 60)}`); continue }
    t.throws(() => chooseAnswerForm(accept), { name: 'DaemonError', code: want }, `Accept: ${String(accept).slice(0, 60)}`)
  }
  const s = await serve(t, {})
  const body = uint8Body(Buffer.alloc(100, 1))
  const refused = await postFor(s.path, body, 'text/html')
  t.equal(refused.status, 406)
  t.equal(JSON.parse(refused.bytes.toString()).error.code, 'NOT_ACCEPTABLE', 'the error itself is JSON')
  t.equal((await postFor(s.path, body, 'application/json;q=7')).status, 400)
  t.equal(s.runs.length, 0, 'no run for either')
  await waitFor('the budget back', () => s.api.bodies.inFlightBytes === 0)
  t.equal((await postFor(s.path, body, 'application/octet-stream')).status, 200, 'still serving')
})

t.test('attack: a client reading its binary answer slowly holds no budget and no copy, gets every byte; one that never reads is cut at the body timeout', async t => {
  // 4 MiB of output: far more than the socket buffers, so the answer waits on the reader.
  const output = Float32Array.from({ length: 1 << 20 }, (_, i) => Math.cos(i))
  const s = await serve(t, { maxInflightRequestBytes: 8 * 1024 }, output)
  const body = encodeBinaryRunBody({ x: { type: 'uint8', dims: [6000], data: Buffer.alloc(6000, 3) } })
  const slow = await postFor(s.path, body, 'application/octet-stream', {
    contentType: RUN_BINARY_CONTENT_TYPE,
    pauseMs: 200,
    onPause: async () => {
      // While its answer waits on it: its bytes are back in the budget and another request is served.
      t.equal(s.api.bodies.inFlightBytes, 0, 'the slow reader holds no budget')
      const other = await postFor(s.path, body, undefined, { contentType: RUN_BINARY_CONTENT_TYPE })
      t.equal(other.status, 200, 'another client is served meanwhile (JSON answer)')
      t.same(Buffer.from(JSON.parse(other.bytes.toString()).outputs.y.data, 'base64'), Buffer.from(output.buffer))
    }
  })
  t.equal(slow.status, 200)
  t.equal(slow.headers['content-type'], RUN_BINARY_ANSWER_TYPE)
  t.equal(Number(slow.headers['content-length']), slow.bytes.byteLength)
  const answer = decodeBinaryRunAnswer(slow.bytes)
  t.same(Buffer.from((answer.outputs.y?.data as Float32Array).buffer), Buffer.from(output.buffer), 'every output byte, raw')
  t.same(answer.outputs.y?.dims, [1 << 20])
  t.same(answer.record, { seq: 2, boot: 1, timeMs: 1, hash: 'ab'.repeat(32), latencyUs: 5 })
  t.match(answer, { model: 'm', modelHash: 'ab' })

  // A reader that stops for good: the connection is closed at the body timeout (the client sees
  // it once it reads again, after 600 ms here).
  const warnings: string[] = []
  const logger = { ...quiet, warn: (_o: unknown, m?: string) => { warnings.push(m ?? '') } }
  const short = await serve(t, { maxInflightRequestBytes: 8 * 1024, bodyTimeoutMs: 200, logger }, output)
  const stuck = await postFor(short.path, body, 'application/octet-stream', { contentType: RUN_BINARY_CONTENT_TYPE, pauseMs: 600 })
  t.ok(stuck.aborted, 'the answer is cut')
  t.ok(stuck.bytes.byteLength < output.byteLength, `${stuck.bytes.byteLength} bytes of ${output.byteLength + 100} got through`)
  t.match(warnings, [/answer not taken by its client within the body timeout/])
  t.equal((await postFor(short.path, body, 'application/octet-stream', { contentType: RUN_BINARY_CONTENT_TYPE })).status, 200, 'still serving')
})

t.test('behavior: the admission wait and the body timeout come from the agent configuration (file or environment); zero, huge or fractional ones are refused', async t => {
  const base = { PROVENANCE_AGENT_DEVICE_ID: 'dev-1', PROVENANCE_AGENT_STATE_DIR: '/tmp/x', PROVENANCE_AGENT_PROFILE: 'generic-x86_64' }
  const env = (o: Record<string, string>): Record<string, string> => ({ ...base, ...o })
  const c = (await loadConfig({ env: env({ PROVENANCE_AGENT_API_ADMISSION_TIMEOUT_MS: '0', PROVENANCE_AGENT_API_BODY_TIMEOUT_MS: '5000' }) })).config
  t.equal(c.apiAdmissionTimeoutMs, 0, 'admission 0: refuse at once when full')
  t.equal(c.apiBodyTimeoutMs, 5000)
  const dir = await makeTempDir(t, 'prov-limits-config-')
  const file = join(dir, 'agent.json')
  await writeFile(file, JSON.stringify({ apiAdmissionTimeoutMs: 1500, apiBodyTimeoutMs: 600_000 }))
  const fromFile = (await loadConfig({ env: env({ PROVENANCE_AGENT_CONFIG: file }) })).config
  t.same([fromFile.apiAdmissionTimeoutMs, fromFile.apiBodyTimeoutMs], [1500, 600_000])
  const bad: Array<[string, string, RegExp]> = [
    ['PROVENANCE_AGENT_API_BODY_TIMEOUT_MS', '0', /apiBodyTimeoutMs: must be an integer in 100\.\.600000 \(milliseconds\)/],
    ['PROVENANCE_AGENT_API_BODY_TIMEOUT_MS', '600001', /apiBodyTimeoutMs: must be an integer in 100\.\.600000/],
    ['PROVENANCE_AGENT_API_BODY_TIMEOUT_MS', '1.5', /apiBodyTimeoutMs: must be an integer/],
    ['PROVENANCE_AGENT_API_ADMISSION_TIMEOUT_MS', '99999999999', /apiAdmissionTimeoutMs: must be an integer in 0\.\.600000/],
    ['PROVENANCE_AGENT_API_ADMISSION_TIMEOUT_MS', '-1', /apiAdmissionTimeoutMs: must be an integer in 0\.\.600000/],
    ['PROVENANCE_AGENT_API_ADMISSION_TIMEOUT_MS', '30s', /apiAdmissionTimeoutMs: must be an integer/]
  ]
  for (const [name, value, message] of bad) {
    const err = await loadConfig({ env: env({ [name]: value }) }).then(() => undefined, (e: unknown) => e)
    t.type(err, ConfigError, `${name}=${value}`)
    t.match((err as Error).message, message)
  }
  await writeFile(file, JSON.stringify({ apiBodyTimeoutMs: '30000' }))
  await t.rejects(loadConfig({ env: env({ PROVENANCE_AGENT_CONFIG: file }) }), { message: /apiBodyTimeoutMs: must be an integer/ }, 'a string in the file')
  // The library checks its own options the same way.
  t.throws(() => createApiServer({ maxRequestBytes: 1024, logger: quiet, bodyTimeoutMs: 0 }), RangeError)
  t.throws(() => createApiServer({ maxRequestBytes: 1024, logger: quiet, admissionTimeoutMs: Infinity }), RangeError)
  t.throws(() => createApiServer({ maxRequestBytes: 1024, logger: quiet, bodyTimeoutMs: 2 ** 31 }), RangeError)
})

t.test('behavior: admissionTimeoutMs 0 refuses at once when the budget is full', async t => {
  const s = await serve(t, { maxInflightRequestBytes: 12 * 1024, admissionTimeoutMs: 0 })
  const body = uint8Body(Buffer.alloc(6000, 1))
  s.hold()
  const first = post(s.path, body)
  await waitFor('the first run', () => s.runs.length === 1)
  const refused = await post(s.path, body)
  t.equal(refused.status, 503)
  t.equal(JSON.parse(refused.text).error.code, 'API_BUSY')
  s.release()
  t.equal((await first).status, 200)
  t.equal((await post(s.path, body)).status, 200, 'room again: admitted at once')
})
