import t from 'tap'
import { hashLeaf, parseProof, verifyProof, fromHex, toHex, openCheckpoint, parseVerifierKey, formatVerifierKey, sha256, formatCheckpoint, verifyReceipt } from '../../protocol/index.js'
import { startGatewayEnv, httpGet, TEST_HTTP_TOKEN } from '../fixtures/gateway-env.js'
import { DeviceFleet, makeDevices, registerDevices } from '../fixtures/gateway-fleet.js'

t.test('behavior: stores, acks and anchors every record; each proof verifies against the root on chain', async t => {
  const env = await startGatewayEnv(t)
  const devices = makeDevices('basic', 8, 30)
  await registerDevices(env.chain.registryAs('deviceRegistrar'), devices)
  const gw = await env.gateway({ batchMaxRecords: 64 })
  const fleet = new DeviceFleet({ brokerUrl: env.broker.url, devices })
  t.teardown(async () => await fleet.stop())
  await fleet.start()
  await fleet.waitAllStored(20_000)
  await fleet.waitAllAnchored(20_000)

  const registry = env.chain.registryAs('outsider')
  const roots = new Map<string, bigint>()
  for (const d of devices) {
    for (const r of d.records) {
      const seq = r.record.seq
      const res = await httpGet(`${gw.httpUrl}/v1/proof/${d.id}/${seq}`)
      t.equal(res.status, 200, `proof of ${d.id}/${seq}`)
      const proof = parseProof(res.text)
      verifyProof(proof, hashLeaf(r.envelope))
      const extra = Object.fromEntries((proof.extra ?? []).map(e => [e.key, e.value]))
      t.equal(extra['chain-id'], String(env.chain.anvil.chainId))
      const root = '0x' + toHex(proof.checkpoint.rootHash)
      if (!roots.has(root)) {
        const anchor = await registry.getAnchor(root)
        t.ok(anchor, 'root anchored on chain')
        t.equal(anchor?.size, BigInt(proof.checkpoint.size))
        roots.set(root, anchor?.batchId ?? 0n)
      }
      t.equal(extra['batch-id'], String(roots.get(root)))
    }
  }
  const total = devices.length * 30
  const sizes = [...roots.keys()].length
  t.ok(sizes >= Math.ceil(total / 64), 'batches of at most 64 records')

  const json = await httpGet(`${gw.httpUrl}/v1/proof/${devices[0]?.id}/3?format=json`)
  t.equal(json.status, 200)
  const body = json.json()
  t.equal(body.leafHash, toHex(hashLeaf(devices[0]?.records[3]?.envelope as Uint8Array)))
  t.equal(body.anchor.state, 'confirmed')
  t.match(body.anchor.txHash, /^0x[0-9a-f]{64}$/)
  t.ok(fromHex(body.batch.root).length === 32)

  const status = await httpGet(`${gw.httpUrl}/v1/devices/${devices[1]?.id}`)
  t.match(status.json(), { device: devices[1]?.id, lastSeq: 29, stored: 30, quarantined: 0, anchoredSeq: 29, pending: 0, openGaps: [] })
  const health = await httpGet(`${gw.httpUrl}/healthz`)
  t.equal(health.status, 200)
  t.match(health.json(), { ok: true, brokerConnected: true, storeOpen: true, anchorLagBatches: 0 })
  const metrics = await httpGet(`${gw.httpUrl}/metrics`)
  t.match(metrics.text, new RegExp(`provenance_gateway_records_stored_total ${total}\\b`))
  t.match(metrics.text, /provenance_gateway_batch_size_records_count \d+/)
  t.match(metrics.text, /provenance_gateway_anchor_latency_seconds_count \d+/)
})

t.test('behavior: with no broker URL the gateway runs an embedded broker on loopback', async t => {
  const env = await startGatewayEnv(t)
  const devices = makeDevices('embedded', 2, 5)
  await registerDevices(env.chain.registryAs('deviceRegistrar'), devices)
  const gw = await env.gateway({ brokerUrl: undefined })
  t.match(gw.brokerUrl, /^mqtt:\/\/127\.0\.0\.1:\d+$/)
  const fleet = new DeviceFleet({ brokerUrl: gw.brokerUrl as string, devices, protocolVersion: 4 })
  t.teardown(async () => await fleet.stop())
  await fleet.start()
  await fleet.waitAllStored(10_000)
  await fleet.waitAllAnchored(10_000)
  t.equal(gw.deviceStatus(devices[0]?.id as string)?.stored, 5)
})

t.test('behavior: the first message of a device whose key is not cached yet is verified on the pool, not record by record on the main thread', async t => {
  const env = await startGatewayEnv(t)
  const devices = makeDevices('first-message', 1, 100)
  await registerDevices(env.chain.registryAs('deviceRegistrar'), devices)
  // Workers start only when 64 signatures wait at once: one by one, they never would.
  const gw = await env.gateway({ verifyWorkers: 1 })
  const fleet = new DeviceFleet({ brokerUrl: env.broker.url, devices, messageSizes: [100], oneInFlight: true })
  t.teardown(async () => await fleet.stop())
  await fleet.start()
  await fleet.waitAllStored(20_000)
  t.equal(gw.deviceStatus(devices[0]?.id as string)?.stored, 100)
  t.equal(gw.verifyPool?.stats.started, true, 'the 99 records after the key look-up went to the pool together')
})

t.test('behavior: API answers 404 for unknown records and 400 for bad path parameters', async t => {
  const env = await startGatewayEnv(t)
  const gw = await env.gateway()
  t.equal((await httpGet(`${gw.httpUrl}/v1/proof/nobody/0`)).status, 404)
  t.equal((await httpGet(`${gw.httpUrl}/v1/proof/no%2Fbody/0`)).status, 400)
  t.equal((await httpGet(`${gw.httpUrl}/v1/proof/dev/01`)).status, 400)
  t.equal((await httpGet(`${gw.httpUrl}/v1/proof/dev/1?format=xml`)).status, 400)
  t.equal((await httpGet(`${gw.httpUrl}/v1/devices/nobody`)).status, 404)
  t.equal((await httpGet(`${gw.httpUrl}/v1/batches/1`)).status, 404)
  t.equal((await httpGet(`${gw.httpUrl}/nope`)).status, 404)
  const post = await fetch(`${gw.httpUrl}/healthz`, { method: 'POST' })
  t.equal(post.status, 405)
})

t.test('behavior: sealed checkpoints are signed notes by the log key, metadataHash stays the unsigned bytes, and each record has a COSE receipt', async t => {
  const env = await startGatewayEnv(t)
  const devices = makeDevices('signed', 2, 5)
  await registerDevices(env.chain.registryAs('deviceRegistrar'), devices)
  const gw = await env.gateway({ batchMaxRecords: 4 })
  const fleet = new DeviceFleet({ brokerUrl: env.broker.url, devices })
  t.teardown(async () => await fleet.stop())
  await fleet.start()
  await fleet.waitAllStored(20_000)
  await fleet.waitAllAnchored(20_000)
  const publicKey = gw.logPublicKey as Uint8Array
  const d = devices[0] as (typeof devices)[number]
  const r = d.records[2] as (typeof d.records)[number]

  const res = await httpGet(`${gw.httpUrl}/v1/proof/${d.id}/2`)
  t.equal(res.status, 200)
  const proof = parseProof(res.text)
  const checkpointNote = res.text.slice(res.text.indexOf('\n\n') + 2)
  const keyName = proof.checkpoint.origin.replace(/\/batch\/\d+$/, '')
  const opened = openCheckpoint(checkpointNote, [parseVerifierKey(formatVerifierKey(keyName, publicKey))])
  t.equal(opened.verified.length, 1, 'the checkpoint verifies under the gateway log key')
  t.equal(toHex(opened.checkpoint.rootHash), toHex(proof.checkpoint.rootHash))
  const anchor = await env.chain.registryAs('outsider').getAnchorEvent('0x' + toHex(proof.checkpoint.rootHash))
  t.equal(anchor?.metadataHash?.toLowerCase(), '0x' + toHex(sha256(Buffer.from(opened.checkpointText, 'utf8'))), 'metadataHash is SHA-256 of the unsigned checkpoint')
  t.equal(opened.checkpointText, formatCheckpoint(proof.checkpoint))

  const cose = await fetch(`${gw.httpUrl}/v1/proof/${d.id}/2?format=cose`, { headers: { authorization: `Bearer ${TEST_HTTP_TOKEN}` } })
  t.equal(cose.status, 200)
  t.match(cose.headers.get('content-type'), /^application\/cose/)
  const receipt = new Uint8Array(await cose.arrayBuffer())
  const checked = verifyReceipt(receipt, hashLeaf(r.envelope), { root: proof.checkpoint.rootHash, treeSize: proof.checkpoint.size, publicKey })
  t.equal(checked.leafIndex, proof.index)
  const bad = await httpGet(`${gw.httpUrl}/v1/proof/${d.id}/2?format=xml`)
  t.equal(bad.status, 400)
  const logKey = await httpGet(`${gw.httpUrl}/v1/log-key`)
  t.equal(logKey.status, 200)
  t.same(logKey.json(), { gatewayId: gw.options.gatewayId, keyName, publicKey: toHex(publicKey), verifierKey: formatVerifierKey(keyName, publicKey) })
  t.equal((await httpGet(`${gw.httpUrl}/v1/log-key`, null)).status, 401, 'behind the token like proofs')
})
