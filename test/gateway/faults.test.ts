/**
 * The slow multi-fault run: 50 devices publishing concurrently through Mosquitto to a gateway
 * running as a child process (the real CLI), while the broker restarts, the gateway is killed
 * with SIGKILL mid-batch and started again, and the chain goes away for a while. At the end every
 * record is stored once, anchored once, and its proof from the API verifies against the chain.
 */
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { hashLeaf, parseProof, toHex, verifyProof } from '../../protocol/index.js'
import { startAnvil, type AnvilInstance } from '../../contracts/index.js'
import { startGatewayEnv, httpGet } from '../fixtures/gateway-env.js'
import { DeviceFleet, makeDevices, registerDevices } from '../fixtures/gateway-fleet.js'
import { startGatewayProcess } from '../fixtures/gateway-process.js'

const DEVICES = 50
const RECORDS = 60

const startChild = startGatewayProcess

async function sleep (ms: number): Promise<void> {
  await new Promise(resolve => setTimeout(resolve, ms))
}

t.test('behavior: broker restart, gateway SIGKILL and chain outage lose nothing and duplicate nothing', async t => {
  const env = await startGatewayEnv(t, { anvilState: true })
  const devices = makeDevices('fleet', DEVICES, RECORDS)
  await registerDevices(env.chain.registryAs('deviceRegistrar'), devices)
  const config = env.gatewayOptions({ name: 'gw-faults', batchMaxRecords: 100, batchMaxAgeMs: 300, keyCacheTtlMs: 120_000 })
  const configPath = join(env.dir, 'gateway.json')
  await writeFile(configPath, JSON.stringify({ ...config, logLevel: 'info' }))

  let child = await startChild(configPath)
  let restartedAnvil: AnvilInstance | undefined
  t.teardown(async () => {
    if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill('SIGKILL')
    await restartedAnvil?.stop()
  })

  const fleet = new DeviceFleet({ brokerUrl: env.broker.url, devices, messageSizes: [1, 2, 3], maxInFlight: 2, ackTimeoutMs: 2000, messageIntervalMs: 150 })
  t.teardown(async () => await fleet.stop())
  await fleet.start()
  const total = DEVICES * RECORDS

  // Fault 1: the broker goes away and comes back (it keeps no state: sessions and retained acks are lost).
  while (fleet.storedRecords < total * 0.2) await sleep(50)
  await env.broker.stop()
  await sleep(1000)
  await env.broker.restart()
  t.comment(`broker restarted at ${fleet.storedRecords} stored`)

  // Fault 2: SIGKILL while records are flowing (the open batch is not empty), then a restart on the same state.
  while (fleet.storedRecords < total * 0.45) await sleep(50)
  const health = (await httpGet(`${child.httpUrl}/healthz`)).json()
  child.proc.kill('SIGKILL')
  await child.exited
  t.comment(`gateway killed at ${fleet.storedRecords} stored, open batch ${health.openBatch.id} with ${health.openBatch.size} records`)
  child = await startChild(configPath)

  // Fault 3: the chain stops for a while and comes back with its state on the same port.
  while (fleet.storedRecords < total * 0.6) await sleep(50)
  const port = env.chain.anvil.port
  await env.chain.anvil.stop()
  t.comment(`chain stopped at ${fleet.storedRecords} stored`)
  await sleep(2000)
  restartedAnvil = await startAnvil({ stateDir: env.anvilStateDir, port })
  t.comment(`chain restarted at ${fleet.storedRecords} stored`)

  await fleet.waitAllStored(60_000)
  await fleet.waitAllAnchored(60_000)
  t.comment(`resends: ${fleet.resends}, messages: ${fleet.published}`)

  // Every record: one proof, verifying against a root the chain holds, one leaf per record.
  const registry = env.chain.registryAs('outsider')
  const leaves = new Map<string, Set<number>>()
  const queue = devices.flatMap(d => d.records.map(r => ({ d, r })))
  const check = async (): Promise<void> => {
    for (let item = queue.pop(); item !== undefined; item = queue.pop()) {
      const { d, r } = item
      const res = await httpGet(`${child.httpUrl}/v1/proof/${d.id}/${r.record.seq}`)
      if (res.status !== 200) { t.fail(`no proof of ${d.id}/${r.record.seq}: ${res.text}`); continue }
      const proof = parseProof(res.text)
      verifyProof(proof, hashLeaf(r.envelope))
      const root = toHex(proof.checkpoint.rootHash)
      const set = leaves.get(root) ?? new Set<number>()
      if (set.has(proof.index)) t.fail(`leaf ${proof.index} of ${root} proves two records`)
      set.add(proof.index)
      leaves.set(root, set)
    }
  }
  await Promise.all(Array.from({ length: 8 }, check))
  const events = await registry.listAnchors()
  const anchored = new Map(events.map(e => [e.root.slice(2), Number(e.size)]))
  t.equal(events.length, anchored.size, 'no root anchored twice')
  let anchoredLeaves = 0
  for (const [root, set] of leaves) {
    t.equal(anchored.get(root), set.size, `batch ${root.slice(0, 8)} is on chain with exactly our records`)
  }
  for (const size of anchored.values()) anchoredLeaves += size
  t.equal(anchoredLeaves, total, 'every record anchored once, nothing else anchored')
  for (const d of devices.slice(0, 5)) {
    t.match((await httpGet(`${child.httpUrl}/v1/devices/${d.id}`)).json(), { lastSeq: RECORDS - 1, stored: RECORDS, anchoredSeq: RECORDS - 1, pending: 0 })
  }

  child.proc.kill('SIGTERM')
  t.equal(await child.exited, 0, 'SIGTERM stops the gateway cleanly')
})
