// Export of a bundle from the gateway's HTTP API (the stand-in serving exactly the contract export
// relies on: GET /v1/devices/<device>/records?fromSeq=&limit= and GET /v1/proof/<device>/<seq>) and
// the registry facts read at one block of a real anvil chain; hostile or failing gateways.
import t, { type Test } from 'tap'
import { createServer, type Server } from 'node:http'
import { decodeBundleRecord, decodeEnvelope, encodeBundleRecord, toHex } from '../../protocol/index.js'
import { exportBundle, GatewayClient } from '../../forensics/export/index.js'
import { verifyBundle } from '../../forensics/verify/index.js'
import { ForensicsError } from '../../forensics/errors.js'
import { FIXTURE_GATEWAY, MAIN_DEVICE, MODEL_0, MODEL_1, startChain, startIncident } from '../helpers/forensics-fixture.js'

const chain = await startChain(t)
const incident = await startIncident(t, chain)

/** A server answering every request with `handler`; closed when the test ends. */
async function serve (t: Test, handler: (path: string) => { status: number, body: string, headers?: Record<string, string> }): Promise<string> {
  const server: Server = createServer((req, res) => {
    const r = handler(req.url ?? '/')
    res.writeHead(r.status, { 'content-type': 'application/json', ...r.headers })
    res.end(r.body)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { server.closeAllConnections(); await new Promise(resolve => server.close(resolve)) })
  const a = server.address()
  return `http://127.0.0.1:${typeof a === 'object' && a !== null ? a.port : 0}`
}

t.test('behavior: export reads every page and every proof, and the facts at one block', async t => {
  const before = incident.requests.length
  const blockBefore = await chain.provider.getBlockNumber()
  const bundle = await exportBundle({ ...incident.exportOptions, pageLimit: 7, now: () => 1234 })
  const requests = incident.requests.slice(before)
  const device = incident.device
  t.same(bundle.records, device.records.map(r => encodeBundleRecord(r.envelope)), 'every record, in seq order, as served')
  const seqs = device.records.map(r => r.record.seq)
  const pageStarts = [0, ...seqs.filter((_, i) => i > 0 && i % 7 === 0)]
  t.same(requests.filter(r => r.includes('/records')), pageStarts.map(s => `/v1/devices/${MAIN_DEVICE}/records?fromSeq=${s}&limit=7`), 'pages follow `next`')
  t.equal(requests.filter(r => r.startsWith('/v1/proof/')).length, device.records.length)
  t.same(bundle.proofs.map(p => p.seq), device.records.map(r => r.record.seq))
  t.equal(bundle.createdAtMs, 1234)
  t.equal(bundle.chain.readAtBlock, blockBefore)
  t.equal(bundle.chain.readAtBlockHash, (await chain.provider.getBlock(blockBefore))?.hash)
  t.same(bundle.chain, { chainId: 31337, registry: chain.deployment.address, readAtBlock: blockBefore, readAtBlockHash: bundle.chain.readAtBlockHash })
  t.same(bundle.device, {
    id: MAIN_DEVICE,
    keys: [
      { publicKey: toHex(device.keys[0]?.publicKey as Uint8Array), validFromMs: 0, validUntilMs: device.keys[1]?.validFromMs },
      { publicKey: toHex(device.keys[1]?.publicKey as Uint8Array), validFromMs: device.keys[1]?.validFromMs }
    ]
  })
  t.match(bundle.models, [
    { hash: MODEL_0, name: 'detector', version: '1.0.0', parentHash: null, status: 'approved', metadataUri: 'https://models.example/detector/1.0.0' },
    { hash: MODEL_1, name: 'detector', version: '1.1.0', parentHash: MODEL_0, status: 'approved' }
  ])
  t.same(bundle.anchors.map(a => a.root), incident.batches.map(b => toHex(b.root)))
  t.same(bundle.anchors.map(a => [a.size, a.onChainBatchId, a.txHash, a.blockNumber, a.blockHash]),
    incident.batches.map(b => [b.size, b.anchored?.batchId.toString(), b.anchored?.txHash, b.anchored?.blockNumber, b.anchored?.blockHash]))
  t.equal(bundle.window, undefined)
})

t.test('behavior: a time window exports from the first record in it to the last', async t => {
  const times = incident.device.records.map(r => r.record.timeMs)
  const fromMs = (times[5] as number) - 1
  const toMs = times[12] as number
  const bundle = await exportBundle({ ...incident.exportOptions, fromMs, toMs })
  t.same(bundle.records.map(r => decodeEnvelope(decodeBundleRecord(r)).record.seq), incident.device.records.slice(5, 13).map(r => r.record.seq))
  t.same(bundle.window, { fromMs, toMs })
  const v = await verifyBundle(bundle, { offline: true })
  t.equal(v.verdict, 'valid', 'a bundle that starts after seq 0 is checked from its first record')
  t.equal(v.fromGenesis, false)
  await t.rejects(exportBundle({ ...incident.exportOptions, fromMs: 1, toMs: 2 }), { constructor: ForensicsError, code: 'EXPORT_EMPTY' })
})

t.test('behavior: a record the gateway serves corrupted is kept as evidence for verify to name', async t => {
  const inc = await startIncident(t, chain, { tamper: (seq, envelope) => seq === 9 ? Uint8Array.from([0x83, ...envelope.subarray(1)]) : envelope, openTail: 2 })
  const bundle = await exportBundle(inc.exportOptions)
  t.equal(bundle.records.length, inc.device.records.length)
  t.equal(bundle.proofs.length, inc.device.records.length - 1 - 2, 'no proof asked for the unreadable record; none for the open batch')
  const v = await verifyBundle(bundle, { offline: true })
  t.same(v.failures.map(f => [f.seq, f.reason]), [[9, 'record-malformed'], ...inc.device.records.slice(-2).map(r => [r.record.seq, 'record-not-anchored'])])
})

t.test('behavior: the bundle names the gateway log key; a gateway from before signed checkpoints gives a bundle without it that still verifies', async t => {
  const bundle = await exportBundle(incident.exportOptions)
  t.same(bundle.gateways, [FIXTURE_GATEWAY])
  const old = await startIncident(t, chain, { unsignedCheckpoints: true })
  const oldBundle = await exportBundle(old.exportOptions)
  t.equal(oldBundle.gateways, undefined)
  const v = await verifyBundle(oldBundle, { offline: true })
  t.equal(v.verdict, 'valid')
  t.same(new Set(v.warnings.map(w => w.reason)), new Set(['checkpoint-unsigned']))
  const bad = await serve(t, path => path === '/v1/log-key'
    ? { status: 200, body: JSON.stringify({ gatewayId: 'gw', keyName: 'has space', publicKey: '00'.repeat(32) }) }
    : path.startsWith('/v1/proof/')
      ? { status: 404, body: '' }
      : { status: 200, body: JSON.stringify({ records: [encodeBundleRecord(incident.device.records[0]?.envelope as Uint8Array)], next: null }) })
  await t.rejects(exportBundle({ ...incident.exportOptions, gatewayUrl: bad }), { constructor: ForensicsError, code: 'GATEWAY_BAD_RESPONSE', message: /log-key/ })
})

t.test('error: gateway failures and answers outside the contract', async t => {
  const dead = await serve(t, () => ({ status: 200, body: '' }))
  const base = { ...incident.exportOptions }
  const fail = async (gatewayUrl: string, code: string, message?: RegExp): Promise<void> => {
    const e = await exportBundle({ ...base, gatewayUrl }).then(() => undefined, (e: unknown) => e)
    t.ok(e instanceof ForensicsError, `${code}: ForensicsError`)
    t.equal((e as ForensicsError).code, code)
    if (message !== undefined) t.match((e as Error).message, message)
  }
  await fail(await serve(t, () => ({ status: 500, body: JSON.stringify({ error: { code: 'INTERNAL', message: 'boom' } }) })), 'GATEWAY_FAILED', /HTTP 500 \(INTERNAL\)/)
  await fail(await serve(t, () => ({ status: 200, body: 'not json' })), 'GATEWAY_BAD_RESPONSE')
  await fail(await serve(t, () => ({ status: 200, body: JSON.stringify({ records: 5, next: null }) })), 'GATEWAY_BAD_RESPONSE')
  await fail(await serve(t, () => ({ status: 200, body: JSON.stringify({ records: [], next: 0 }) })), 'GATEWAY_BAD_RESPONSE', /next: seq above 0/)
  await fail(await serve(t, () => ({ status: 200, body: JSON.stringify({ records: ['!!!!'], next: null }) })), 'GATEWAY_BAD_RESPONSE', /not base64/)
  await fail(await serve(t, () => ({ status: 200, body: '{}', headers: { 'content-length': String(1e9) } })), 'GATEWAY_BAD_RESPONSE', /at most/)
  await fail(dead.replace(/:\d+$/, ':1'), 'GATEWAY_FAILED')
  const proof = await serve(t, path => path.startsWith('/v1/proof/')
    ? { status: 503, body: '' }
    : { status: 200, body: JSON.stringify({ records: [encodeBundleRecord(incident.device.records[0]?.envelope as Uint8Array)], next: null }) })
  await fail(proof, 'GATEWAY_FAILED', /HTTP 503/)
  t.throws(() => new GatewayClient({ gatewayUrl: 'ftp://example' }), TypeError)
})

t.test('behavior: export follows the cursor through pages shorter than asked (a gateway byte cap)', async t => {
  const capped = await startIncident(t, chain, { pageCap: 3 })
  const before = capped.requests.length
  const bundle = await exportBundle({ ...capped.exportOptions, pageLimit: 50 })
  t.same(bundle.records, capped.device.records.map(r => encodeBundleRecord(r.envelope)), 'every record, once, in order')
  const listings = capped.requests.slice(before).filter(r => r.includes('/records?'))
  t.equal(listings.length, Math.ceil(capped.device.records.length / 3), 'one request per short page')
})

t.test('error: the gateway refuses an export without its token (401) or with a wrong one (403)', async t => {
  const { gatewayToken: _, ...anonymous } = incident.exportOptions
  await t.rejects(exportBundle(anonymous), { constructor: ForensicsError, code: 'GATEWAY_FAILED', message: /HTTP 401 \(UNAUTHENTICATED\)/ })
  const wrong = await exportBundle({ ...incident.exportOptions, gatewayToken: 'wrong-token-wrong-token' }).then(() => undefined, (e: unknown) => e)
  t.match(wrong, { code: 'GATEWAY_FAILED', message: /HTTP 403/ })
  t.notMatch((wrong as Error).message, /wrong-token/, 'the token is not in the message')
  t.throws(() => new GatewayClient({ gatewayUrl: 'http://127.0.0.1:1', token: 'has a space' }), TypeError)
})

t.test('error: registry and device problems', async t => {
  await t.rejects(exportBundle({ ...incident.exportOptions, deviceId: 'nobody-7' }), { constructor: ForensicsError, code: 'DEVICE_NOT_REGISTERED' })
  await t.rejects(exportBundle({ ...incident.exportOptions, registry: '0x' + '22'.repeat(20) }), { constructor: ForensicsError, code: 'REGISTRY_NOT_FOUND' })
  await t.rejects(exportBundle({ ...incident.exportOptions, rpcUrl: 'http://127.0.0.1:1' }), { constructor: ForensicsError, code: 'RPC_FAILED' })
  await t.rejects(exportBundle({ ...incident.exportOptions, fromMs: 5, toMs: 4 }), RangeError)
  await t.rejects(exportBundle({ ...incident.exportOptions, concurrency: 0 }), RangeError)
})
