import t from 'tap'
import { join } from 'node:path'
import { loadOrCreateLogKey } from '../../gateway/index.js'
import { hashLeaf, parseProof, toHex, verifyProof } from '../../protocol/index.js'
import { startGatewayEnv, httpGet } from '../fixtures/gateway-env.js'
import { DeviceFleet, makeDevices, registerDevices } from '../fixtures/gateway-fleet.js'

t.test('behavior: two gateways on a shared subscription split the load and anchor each record once', async t => {
  const env = await startGatewayEnv(t)
  const devices = makeDevices('shared', 12, 30)
  await registerDevices(env.chain.registryAs('deviceRegistrar'), devices)
  const second = env.chain.anvil.accounts[5]
  if (second === undefined) throw new Error('anvil has no account 5')
  await env.chain.registryAs('admin').grantRole('anchorer', second.address)

  // Each gateway signs its acks with its own log key and trusts its peer's (the shared tip).
  const keyA = toHex((await loadOrCreateLogKey(join(env.dir, 'gw-a', 'log-key.json'))).publicKey)
  const keyB = toHex((await loadOrCreateLogKey(join(env.dir, 'gw-b', 'log-key.json'))).publicKey)
  const a = await env.gateway({ name: 'gw-a', shareGroup: 'fleet', batchMaxRecords: 50, peerGatewayKeys: [keyB] })
  const b = await env.gateway({ name: 'gw-b', shareGroup: 'fleet', batchMaxRecords: 50, anchorPrivateKey: second.privateKey, peerGatewayKeys: [keyA] })
  const fleet = new DeviceFleet({ brokerUrl: env.broker.url, devices, oneInFlight: true, ackTimeoutMs: 10_000 })
  t.teardown(async () => await fleet.stop())
  await fleet.start()
  await fleet.waitAllStored(30_000)
  await fleet.waitAllAnchored(30_000)
  t.equal(fleet.resends, 0, 'no ack timed out')

  let storedA = 0
  let storedB = 0
  const roots = new Map<string, { size: number, leaves: Set<number> }>()
  for (const d of devices) {
    storedA += a.deviceStatus(d.id)?.stored ?? 0
    storedB += b.deviceStatus(d.id)?.stored ?? 0
    for (const r of d.records) {
      const [ra, rb] = await Promise.all([
        httpGet(`${a.httpUrl}/v1/proof/${d.id}/${r.record.seq}`),
        httpGet(`${b.httpUrl}/v1/proof/${d.id}/${r.record.seq}`)
      ])
      const found = [ra, rb].filter(x => x.status === 200)
      t.equal(found.length, 1, `${d.id}/${r.record.seq} stored by exactly one gateway`)
      const proof = parseProof((found[0] as { text: string }).text)
      verifyProof(proof, hashLeaf(r.envelope))
      const root = toHex(proof.checkpoint.rootHash)
      const entry = roots.get(root) ?? { size: proof.checkpoint.size, leaves: new Set<number>() }
      t.notOk(entry.leaves.has(proof.index), 'one record per leaf')
      entry.leaves.add(proof.index)
      roots.set(root, entry)
    }
  }
  t.ok(storedA > 0 && storedB > 0, `both gateways stored some (${storedA} and ${storedB})`)
  t.equal(storedA + storedB, devices.length * 30, 'the union holds every record once')

  // On chain: exactly the batches of the two gateways, each full of our records, none twice.
  const events = await env.chain.registryAs('outsider').listAnchors()
  t.equal(events.length, roots.size, 'one anchor per batch')
  let anchoredLeaves = 0
  for (const e of events) {
    const entry = roots.get(e.root.slice(2))
    t.ok(entry, 'anchored root is one of our batches')
    t.equal(Number(e.size), entry?.size)
    t.equal(entry?.leaves.size, entry?.size, 'every leaf of the batch is one of our records')
    anchoredLeaves += Number(e.size)
  }
  t.equal(anchoredLeaves, devices.length * 30, 'each record anchored once')
  t.match(a.deviceStatus(devices[0]?.id as string), { lastSeq: 29, anchoredSeq: 29 })
  t.match(b.deviceStatus(devices[0]?.id as string), { lastSeq: 29, anchoredSeq: 29 })
})
