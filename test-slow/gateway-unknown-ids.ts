/**
 * Issue 9 point 6 as a test, on a real gateway (the CLI in a process of its own) behind the real
 * Mosquitto, its JSON-RPC going through a proxy that counts eth_calls: 500 records dated before a
 * key's validity, then 20 000 made-up device ids. Registry calls are bounded whatever the timing;
 * nothing of the made-up ids is kept or persisted; RSS and API latency are measured and printed.
 */
import t from 'tap'
import mqtt from 'mqtt'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ZERO_HASH, createSigner, deviceTopic, encodeRecordBatch, signRecord, type SignedRecord } from '../protocol/index.js'
import { deviceIdOf } from '../contracts/index.js'
import { LevelGatewayStore } from '../gateway/index.js'
import { startGatewayEnv, httpGet } from '../test/fixtures/gateway-env.js'
import { MIB, metricsOf, rssOf, sleep, slowestScrape, startChild, startCountingProxy, waitFor } from '../test/fixtures/gateway-probe.js'
import { ChainBuilder, sampleBody, seedFrom } from '../test/helpers/records.js'

t.test('behavior: made-up device ids and records before a key\'s validity cost bounded registry calls and no lasting state', async t => {
  const GHOSTS = 20_000
  const EARLY = 500
  const env = await startGatewayEnv(t)
  const now = Date.now()
  const early = new ChainBuilder({ deviceId: 'early', seed: 'early', startTimeMs: now - EARLY * 1000, stepMs: 1000 })
  // Its only key becomes valid tomorrow: every record below is dated before it.
  await env.chain.registryAs('deviceRegistrar').registerDevice({ deviceId: deviceIdOf('early'), publicKey: early.signer.publicKey, validFromMs: now + 86_400_000 })

  // Every JSON-RPC call of the gateway goes through this proxy, which counts the eth_calls.
  const proxy = await startCountingProxy(t, env.chain.anvil.rpcUrl)
  const config = env.gatewayOptions({ name: 'gw-ghosts', anchorPrivateKey: undefined, processMetrics: true, rpcUrl: proxy.url })
  const configPath = join(env.dir, 'gw-ghosts.json')
  await writeFile(configPath, JSON.stringify({ ...config, logLevel: 'info' }))
  const child = await startChild(t, configPath)
  const pid = child.proc.pid as number
  const client = await mqtt.connectAsync(env.broker.url, { protocolVersion: 5, clientId: 'ghost-pub' })
  t.teardown(async () => await client.endAsync(true))
  const publish = async (deviceId: string, records: SignedRecord[]): Promise<void> => {
    await client.publishAsync(deviceTopic(deviceId, 'records'), Buffer.from(encodeRecordBatch(records.map(r => r.envelope))), { qos: 1 })
  }

  // 500 records before the key's validity, each at its own device time.
  early.append(sampleBody('boot'))
  for (let i = 1; i < EARLY; i++) early.appendInference()
  for (let i = 0; i < EARLY; i += 50) await publish('early', early.records.slice(i, i + 50))
  await waitFor('500 no-key', async () => (await metricsOf(child)).get('records_quarantined_total{reason="no-key"}') === EARLY)
  const earlyCalls = proxy.ethCalls
  // Plus, at most, the gateway's own start-up check of its log key on chain (signed acks).
  t.ok(earlyCalls <= 3, `${EARLY} records before the key's validity: ${earlyCalls} eth_calls (getDevice, deviceKeys, and the log-key check at start)`)

  // 20 000 made-up ids, one record each, signed by a key no registry knows.
  const ghost = createSigner(seedFrom('ghost'))
  const started = Date.now()
  slowestScrape(true)
  let polling = true
  const poller = (async () => { while (polling) { await metricsOf(child); await sleep(100) } })()
  try {
    let inFlight: Array<Promise<void>> = []
    for (let i = 0; i < GHOSTS; i++) {
      const id = `ghost-${i}`
      inFlight.push(publish(id, [signRecord({ deviceId: id, boot: 1, seq: 0, timeMs: now, prev: ZERO_HASH, body: sampleBody('boot') }, ghost)]))
      if (inFlight.length >= 200) { await Promise.all(inFlight); inFlight = [] }
    }
    await Promise.all(inFlight)
    // Every ghost record ends one of three ways: quarantined, refused by the rate limit, or (on a
    // loaded machine, the RPC timing out) left for a resend.
    await waitFor('every ghost record handled', async () => {
      const m = await metricsOf(child)
      return (m.get('records_quarantined_total{reason="unknown-device"}') ?? 0) + (m.get('records_key_lookup_limited_total') ?? 0) +
        (m.get('records_key_unavailable_total') ?? 0) === GHOSTS
    }, 240_000)
  } finally {
    polling = false
    await poller.catch(() => {})
  }
  const elapsedS = (Date.now() - started) / 1000
  const m = await metricsOf(child)
  const ghostCalls = proxy.ethCalls - earlyCalls
  // The token bucket (burst 200, 50/s) bounds look-ups of new ids whatever the timing; each unknown
  // id costs one getDevice; +2 for a TTL refresh of the registered device, which takes no token.
  const bound = 200 + Math.ceil(50 * elapsedS) + 1 + 2
  t.ok(ghostCalls <= bound, `${GHOSTS} made-up ids in ${elapsedS.toFixed(1)} s: ${ghostCalls} eth_calls (bound ${bound})`)
  // Its own count can differ from the wire's by the provider's retries on a loaded machine.
  t.ok((m.get('key_registry_calls') ?? Infinity) <= bound + earlyCalls, `the gateway counts ${m.get('key_registry_calls')} registry calls (wire: ${proxy.ethCalls})`)
  t.equal(m.get('devices{state="known"}'), 1, 'only the registered device is kept')
  t.equal(m.get('devices{state="provisional"}'), 0, 'no state left for made-up ids')
  t.ok((m.get('key_cache_entries{kind="unknown"}') ?? Infinity) <= 20_000, 'the negative cache is bounded')
  t.equal((await httpGet(`${child.httpUrl}/v1/devices/ghost-7`)).status, 404)
  t.same((await httpGet(`${child.httpUrl}/v1/devices`)).json(), { devices: ['early'], total: 1, next: null })
  const rss = await rssOf(pid)
  t.comment(`eth_calls: ${earlyCalls} for ${EARLY} records before the key's validity, ${ghostCalls} for ${GHOSTS} made-up ids in ${elapsedS.toFixed(1)} s (bound ${bound})`)
  t.comment(`limited: ${m.get('records_key_lookup_limited_total')}, quarantined unknown-device: ${m.get('records_quarantined_total{reason="unknown-device"}')}; ` +
    `slowest /metrics answer during the flood ${slowestScrape().toFixed(0)} ms; gateway RSS ${(rss.rss / MIB).toFixed(0)} MiB, peak ${(rss.peak / MIB).toFixed(0)} MiB`)

  child.proc.kill('SIGTERM')
  t.equal(await child.exited, 0)
  // Nothing of the made-up ids on disk either (quarantine entries aside).
  const store = await LevelGatewayStore.open({ dir: join(env.dir, 'gw-ghosts', 'store') })
  const kept: string[] = []
  for await (const d of store.devices()) kept.push(d.deviceId)
  await store.close()
  t.same(kept, ['early'], 'only the registered device is persisted')
})
