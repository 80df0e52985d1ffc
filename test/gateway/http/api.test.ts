// Attacks on the gateway's HTTP API from outside: malformed targets and heads, bodies on GET, slow
// requests, requests without or with a wrong token, and listings asked far too large. Every
// answer is a JSON 4xx (never a 500, never a crash) and every listing page is bounded.
import t from 'tap'
import mqtt from 'mqtt'
import { stat, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { deviceTopic } from '../../../protocol/index.js'
import { MAX_PAGE_ITEMS, Gateway } from '../../../gateway/index.js'
import { startGatewayEnv, httpGet, TEST_HTTP_TOKEN } from '../../fixtures/gateway-env.js'
import { DeviceFleet, makeDevices, registerDevices } from '../../fixtures/gateway-fleet.js'
import { rawRequest } from '../../helpers/raw-http.js'

const env = await startGatewayEnv(t)
const gw = await env.gateway({ httpRequestTimeoutMs: 1000, quarantineMaxRawBytes: 1024 })
const port = Number(new URL(gw.httpUrl as string).port)
const AUTH = `authorization: Bearer ${TEST_HTTP_TOKEN}\r\n`

async function waitFor (what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

/** Publishes `n` payloads that are not CBOR: each becomes a quarantine entry. */
async function quarantineJunk (n: number, bytes: number, tag: string): Promise<void> {
  const client = await mqtt.connectAsync(env.broker.url, { protocolVersion: 5, clientId: `junk-${tag}` })
  try {
    for (let i = 0; i < n; i++) {
      const payload = Buffer.alloc(bytes, i % 251)
      payload[0] = 0xff
      payload.write(`${tag}-${i};`, 1)
      await client.publishAsync(deviceTopic(`junk-${tag}`, 'records'), payload, { qos: 1 })
    }
  } finally {
    await client.endAsync()
  }
}

/** The tag written into the newest stored quarantine entry (entries are stored in order, after the metric counts them). */
async function newestTag (g: Gateway): Promise<string> {
  const page = (await httpGet(`${g.httpUrl as string}/v1/quarantine?limit=1`)).json() as { entries: Array<{ raw: string }> }
  return Buffer.from(page.entries[0]?.raw ?? '', 'base64').subarray(1, 24).toString('latin1').split(';')[0] as string
}

async function quarantinedTotal (g: Gateway): Promise<number> {
  const m = /provenance_gateway_records_quarantined_total\{reason="payload-malformed"\} (\d+)/.exec((await httpGet(`${g.httpUrl as string}/metrics`)).text)
  return Number(m?.[1] ?? 0)
}

t.test('attack: malformed targets and heads get a JSON 4xx, never a 500, and the gateway keeps serving', async t => {
  const cases: Array<[string, string, number]> = [
    ['//', `GET // HTTP/1.1\r\nhost: x\r\n${AUTH}connection: close\r\n\r\n`, 404],
    ['/\\', `GET /\\ HTTP/1.1\r\nhost: x\r\n${AUTH}connection: close\r\n\r\n`, 404],
    ['//evil.example/x', `GET //evil.example/x HTTP/1.1\r\nhost: x\r\n${AUTH}connection: close\r\n\r\n`, 404],
    ['/%zz', `GET /%zz HTTP/1.1\r\nhost: x\r\n${AUTH}connection: close\r\n\r\n`, 400],
    ['bad escape in a device', `GET /v1/devices/%E0%A4%A/records HTTP/1.1\r\nhost: x\r\n${AUTH}connection: close\r\n\r\n`, 400],
    ['bad escape in a proof', `GET /v1/proof/%ff/1 HTTP/1.1\r\nhost: x\r\n${AUTH}connection: close\r\n\r\n`, 400],
    ['bad escape in a query', `GET /v1/quarantine?limit=%zz HTTP/1.1\r\nhost: x\r\n${AUTH}connection: close\r\n\r\n`, 400],
    ['forged cursor', `GET /v1/quarantine?before=../../d/x HTTP/1.1\r\nhost: x\r\n${AUTH}connection: close\r\n\r\n`, 400],
    ['limit 0', `GET /v1/devices?limit=0 HTTP/1.1\r\nhost: x\r\n${AUTH}connection: close\r\n\r\n`, 400],
    ['huge seq', `GET /v1/proof/dev/99999999999999999999 HTTP/1.1\r\nhost: x\r\n${AUTH}connection: close\r\n\r\n`, 400],
    ['absolute form', `GET http://gateway.invalid/healthz HTTP/1.1\r\nhost: x\r\n${AUTH}connection: close\r\n\r\n`, 400],
    ['asterisk form', `GET * HTTP/1.1\r\nhost: x\r\n${AUTH}connection: close\r\n\r\n`, 400],
    ['long path', `GET /${'a'.repeat(5000)} HTTP/1.1\r\nhost: x\r\n${AUTH}connection: close\r\n\r\n`, 414],
    ['path longer than the head limit', `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nhost: x\r\n\r\n`, 431],
    ['huge header', `GET /healthz HTTP/1.1\r\nhost: x\r\nx-junk: ${'j'.repeat(20_000)}\r\n\r\n`, 431],
    ['many headers', `GET /healthz HTTP/1.1\r\nhost: x\r\n${Array.from({ length: 3000 }, (_, i) => `x-${i}: y`).join('\r\n')}\r\n\r\n`, 431],
    ['garbage request line', 'NOT HTTP AT ALL\r\n\r\n', 400],
    ['NUL in the target', `GET /v1/\0 HTTP/1.1\r\nhost: x\r\n${AUTH}connection: close\r\n\r\n`, 400],
    ['POST', `POST /v1/quarantine HTTP/1.1\r\nhost: x\r\n${AUTH}content-length: 2\r\n\r\n{}`, 405],
    ['DELETE unauthenticated', 'DELETE /v1/devices/x HTTP/1.1\r\nhost: x\r\n\r\n', 405],
    ['GET with a body', `GET /v1/devices HTTP/1.1\r\nhost: x\r\n${AUTH}content-length: 5\r\n\r\nhello`, 413],
    ['bearer of a huge token', `GET /v1/devices HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${'t'.repeat(9000)}\r\nconnection: close\r\n\r\n`, 401]
  ]
  for (const [name, request, status] of cases) {
    const answer = await rawRequest({ port }, request)
    t.equal(answer.status, status, `${name}: ${status}`)
    if (answer.status !== 0) t.match(JSON.parse(answer.body), { error: { code: String } }, `${name}: a JSON error body`)
  }
  t.equal((await httpGet(`${gw.httpUrl as string}/healthz`)).status, 200, 'still serving')
  t.equal(gw.health().ok, true)
})

t.test('attack: an endless body and a request that never ends are cut off, not waited for', async t => {
  const endless = await rawRequest({ port }, `GET /v1/devices HTTP/1.1\r\nhost: x\r\n${AUTH}transfer-encoding: chunked\r\n\r\n`, { feed: Buffer.from('400\r\n' + 'z'.repeat(1024) + '\r\n') })
  t.equal(endless.status, 413, 'a body on GET is refused at once')
  t.ok(endless.closed, 'and the connection closed, so the body goes nowhere')
  // Headers that never end: the server answers 408 once httpRequestTimeoutMs (1 s here) is over.
  const slow = await rawRequest({ port }, `GET /v1/devices HTTP/1.1\r\nhost: x\r\n${AUTH}x-slow: `)
  t.ok(slow.closed, 'a request that never completes is closed')
  t.ok(slow.status === 408 || slow.status === 0, `408 or a bare close (${slow.status})`)
  t.equal((await httpGet(`${gw.httpUrl as string}/healthz`)).status, 200, 'still serving')
})

t.test('attack: requests without the token or with a wrong one are refused with 401/403 and a JSON body', async t => {
  const url = gw.httpUrl as string
  for (const path of ['/v1/devices', '/v1/quarantine', '/v1/devices/x/records', '/v1/batches/1', '/metrics', '/v1/proof/x/0', '/no-such-route', '//']) {
    const none = await fetch(url + path)
    t.equal(none.status, 401, `${path}: no token, 401`)
    t.match(none.headers.get('www-authenticate'), /^Bearer realm=/)
    t.match(await none.json(), { error: { code: 'UNAUTHENTICATED' } })
    const wrong = await fetch(url + path, { headers: { authorization: 'Bearer not-the-token-of-this-gateway' } })
    t.equal(wrong.status, 403, `${path}: wrong token, 403`)
    t.match(await wrong.json(), { error: { code: 'FORBIDDEN' } })
    // A prefix of the right token, other schemes, and the token without its scheme are all wrong.
    for (const header of [`Bearer ${TEST_HTTP_TOKEN.slice(0, -1)}`, `Basic ${TEST_HTTP_TOKEN}`, TEST_HTTP_TOKEN, `Bearer ${TEST_HTTP_TOKEN} x`]) {
      t.not((await fetch(url + path, { headers: { authorization: header } })).status, 200, `${path}: "${header.slice(0, 12)}…" refused`)
    }
  }
  t.equal((await fetch(`${url}/healthz`)).status, 200, 'health is public by default')
  t.equal((await fetch(`${url}/v1/devices`, { headers: { authorization: `bearer ${TEST_HTTP_TOKEN}` } })).status, 200, 'the scheme is case-insensitive (RFC 7235)')
})

t.test('behavior: public routes are chosen by option; a gateway without a token makes one (0600) and keeps it', async t => {
  const open = await env.gateway({ httpPublicProofs: true, httpPublicMetrics: true, httpPublicHealth: false })
  const url = open.httpUrl as string
  t.equal((await fetch(`${url}/v1/proof/nobody/0`)).status, 404, 'proofs public: answered without a token')
  t.equal((await fetch(`${url}/metrics`)).status, 200, 'metrics public')
  t.equal((await fetch(`${url}/healthz`)).status, 401, 'health private')
  t.equal((await fetch(`${url}/v1/devices`)).status, 401, 'listings stay private')

  const name = 'gw-own-token'
  const own = await env.gateway({ name, httpToken: undefined })
  const file = join(env.dir, name, 'api-token')
  t.equal(own.httpTokenFile, file)
  t.equal((await stat(file)).mode & 0o777, 0o600, 'the token file is 0600')
  const token = (await readFile(file, 'utf8')).trim()
  t.equal(own.httpToken, token)
  t.ok(token.length >= 32, 'a long random token')
  t.equal((await httpGet(`${own.httpUrl as string}/v1/devices`, token)).status, 200)
  t.equal((await httpGet(`${own.httpUrl as string}/v1/devices`)).status, 403, 'another gateway\'s token is refused')
  await own.stop()
  const again = await env.gateway({ name, httpToken: undefined })
  t.equal(again.httpToken, token, 'the same token after a restart')

  const none = await env.gateway({ httpAuth: 'none' })
  t.equal((await httpGet(`${none.httpUrl as string}/v1/devices`, null)).status, 200, 'httpAuth none: no token asked')
  t.throws(() => new Gateway(env.gatewayOptions({ httpToken: 'short' })), RangeError)
  // They would ingest and ack later tests' records too (a later test waits on one gateway's store).
  for (const g of [open, again, none]) await g.stop()
})

t.test('behavior: quarantine pages are capped and a cursor walks all of them exactly once', async t => {
  const before = await quarantinedTotal(gw)
  await quarantineJunk(130, 600, 'page')
  await waitFor('130 entries', async () => (await quarantinedTotal(gw)) - before >= 130 && await newestTag(gw) === 'page-129')
  const big = (await httpGet(`${gw.httpUrl as string}/v1/quarantine?limit=10000`)).json()
  t.equal(big.entries.length, MAX_PAGE_ITEMS.quarantine, 'limit=10000 gets the hard maximum')
  t.type(big.next, 'string', 'and a cursor')
  const seen: string[] = []
  let cursor: string | null = null
  let pages = 0
  do {
    const res = await httpGet(`${gw.httpUrl as string}/v1/quarantine?limit=40${cursor === null ? '' : `&before=${cursor}`}`)
    t.equal(res.status, 200)
    const page = res.json() as { entries: Array<{ raw: string, timeMs: number }>, next: string | null }
    t.ok(page.entries.length <= 40)
    for (const e of page.entries) seen.push(Buffer.from(e.raw, 'base64').subarray(1, 24).toString('latin1').split(';')[0] as string)
    cursor = page.next
    pages++
  } while (cursor !== null && pages < 100)
  const ours = seen.filter(s => s.startsWith('page-'))
  t.equal(ours.length, 130, 'every entry of ours')
  t.equal(new Set(ours).size, 130, 'none twice')
  t.same(ours.slice(0, 3), ['page-129', 'page-128', 'page-127'], 'newest first')
})

t.test('behavior: listing pages stop at httpMaxPageBytes, and the cursor carries on', async t => {
  // The first gateway would ack the fleet's records too, and a gateway that sees a peer's ack
  // first takes the tip from it and never stores those records itself: only `small` may listen.
  await gw.stop()
  const small = await env.gateway({ httpMaxPageBytes: 4096, quarantineMaxRawBytes: 1024 })
  const before = await quarantinedTotal(small)
  await quarantineJunk(12, 1500, 'bytes')
  await waitFor('12 entries', async () => (await quarantinedTotal(small)) - before >= 12 && await newestTag(small) === 'bytes-11')
  const first = (await httpGet(`${small.httpUrl as string}/v1/quarantine?limit=100`)).json()
  t.equal(first.entries.length, 4, '4 KiB of 1 KiB entries')
  t.type(first.next, 'string')

  const devices = makeDevices('paged', 1, 40)
  await registerDevices(env.chain.registryAs('deviceRegistrar'), devices)
  const fleet = new DeviceFleet({ brokerUrl: env.broker.url, devices })
  t.teardown(async () => await fleet.stop())
  await fleet.start()
  await fleet.waitAllStored(20_000)
  const id = devices[0]?.id as string
  // The fleet's wait ends on the first ack of any gateway: wait for small's own store to list the last record.
  await waitFor('small stored the last record', async () => ((await httpGet(`${small.httpUrl as string}/v1/devices/${id}/records?fromSeq=39&limit=1`)).json() as { records?: string[] }).records?.length === 1)
  const envelopeBytes = devices[0]?.records[0]?.envelope.byteLength ?? 0
  const got: string[] = []
  let from: number | null = 0
  let requests = 0
  while (from !== null && requests < 100) {
    const page = (await httpGet(`${small.httpUrl as string}/v1/devices/${id}/records?fromSeq=${from}&limit=1000`)).json() as { records: string[], next: number | null }
    t.ok(page.records.length <= Math.ceil(4096 / envelopeBytes), 'a page holds about 4 KiB of envelopes')
    got.push(...page.records)
    from = page.next
    requests++
  }
  t.equal(got.length, 40, 'every record')
  t.ok(requests > 1, `several pages (${requests})`)
  const listing = (await httpGet(`${small.httpUrl as string}/v1/devices?limit=100000`)).json()
  t.match(listing, { devices: Array, total: Number })
})
