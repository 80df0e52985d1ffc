/**
 * Agent-as-a-service benchmarks (issue: the agent as a device service), ratios against baselines
 * measured in the same run: the backlog drain rate of N buffered records (default 1 M, env
 * BENCH_DRAIN_RECORDS) through Mosquitto into one gateway until all are acked, over raw
 * node:crypto Ed25519 verifications per second (what the gateway's single verifying thread can
 * do); and agent CPU and RSS while idle and while logging 100 inferences/s of the PaddleOCR
 * direction classifier, over bare onnxruntime at the same rate.
 */
import { createPublicKey, verify as nodeVerify } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import ort from 'onnxruntime-node'
import { RECORD_SIGNING_PREFIX, concat, createSigner, sha256, type RecordBody } from '../protocol/index.js'
import { deviceIdOf, startDevChain } from '../contracts/index.js'
import { Gateway } from '../gateway/index.js'
import { RecordLog } from '../agent/log/index.js'
import { Uplink } from '../agent/uplink/index.js'
import { ProvenanceAgent } from '../agent/session/index.js'
import { makeClassifierCrop, paddleOcrModelPaths } from '../agent/input/index.js'
import { startMosquitto } from '../test/helpers/mosquitto.js'
import { isEntryPoint } from '../common/entry-point.js'
import { exitOnHelp, intEnv } from './measure.js'

export interface AgentServiceBenchResult {
  drain: { records: number, drainPerSec: number, rawVerifiesPerSec: number, ratio: number }
  footprint: { idleCpuPct: number, idleRssMiB: number, loggingCpuPct: number, loggingRssMiB: number, bareCpuPct: number, ratePerSec: number }
}

function rawVerifiesPerSec (): number {
  const signer = createSigner(new Uint8Array(32).fill(7))
  const msg = concat(RECORD_SIGNING_PREFIX, new Uint8Array(180).fill(3))
  const sig = signer.sign(msg)
  const key = createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), signer.publicKey]), format: 'der', type: 'spki' })
  let n = 0
  const t0 = performance.now()
  while (performance.now() - t0 < 2000) { for (let i = 0; i < 100; i++) nodeVerify(null, msg, key, sig); n += 100 }
  return n / ((performance.now() - t0) / 1000)
}

/** CPU use of this process over `ms` while `work` runs, as % of one core, and RSS at the end. */
async function measure (ms: number, work: (until: number) => Promise<void>): Promise<{ cpuPct: number, rssMiB: number }> {
  const c0 = process.cpuUsage()
  const t0 = performance.now()
  await work(t0 + ms)
  const c = process.cpuUsage(c0)
  return { cpuPct: (c.user + c.system) / 1000 / (performance.now() - t0) * 100, rssMiB: process.memoryUsage().rss / 1024 / 1024 }
}

/** Runs `once` at `perSec` until the deadline, paced on the clock. */
async function paced (perSec: number, until: number, once: () => Promise<unknown>): Promise<number> {
  let n = 0
  const start = performance.now()
  while (performance.now() < until) {
    await once()
    n++
    const due = start + n * 1000 / perSec
    const wait = due - performance.now()
    if (wait > 0) await new Promise(resolve => setTimeout(resolve, wait))
  }
  return n / ((performance.now() - start) / 1000)
}

export async function main (): Promise<AgentServiceBenchResult> {
  const records = intEnv('BENCH_DRAIN_RECORDS', 1_000_000)
  const dir = await mkdtemp(join(tmpdir(), 'prov-bench-svc-'))
  const broker = await startMosquitto({ config: ['set_tcp_nodelay true'] })
  const chain = await startDevChain()
  try {
    process.stderr.write('agent-service bench: raw Ed25519 verifications…\n')
    const raw = rawVerifiesPerSec()
    process.stderr.write('agent-service bench: footprint idle and at 100 inferences/s…\n')
    const agent = await ProvenanceAgent.start({ stateDir: join(dir, 'agent'), deviceId: 'bench-svc-2' })
    const cls = await agent.loadModel(paddleOcrModelPaths().classification, { name: 'cls' })
    // Measured before the gateway starts in this process, so RSS is the agent's own; the uplink
    // is connected to Mosquitto, as on a device.
    const agentUplink = new Uplink({ log: agent.log, deviceId: 'bench-svc-2', brokerUrl: broker.url })
    await agentUplink.start()
    const feeds = { [cls.inputNames[0] as string]: new ort.Tensor('float32', makeClassifierCrop({ seed: 1 }).data, [1, 3, 48, 192]) }
    await cls.run(feeds)
    const idle = await measure(5000, async until => { await new Promise(resolve => setTimeout(resolve, until - performance.now())) })
    let ratePerSec = 0
    const bare = await measure(10_000, async until => { await paced(100, until, async () => await cls.loaded.session.run(feeds)) })
    const logging = await measure(10_000, async until => { ratePerSec = await paced(100, until, async () => await cls.run(feeds)) })
    await agentUplink.stop()
    await agent.stop()

    const gateway = new Gateway({
      name: 'bench-gw', stateDir: join(dir, 'gw'), brokerUrl: broker.url, rpcUrl: chain.anvil.rpcUrl, registry: chain.deployment.address,
      chainId: chain.anvil.chainId, batchMaxRecords: 10_000, processMetrics: false, maxPendingPerDevice: 100_000
    })
    await gateway.start()
    try {
      const signer = createSigner(sha256(new TextEncoder().encode('bench-agent-service')))
      await chain.registryAs('deviceRegistrar').registerDevice({ deviceId: deviceIdOf('bench-svc'), publicKey: signer.publicKey, validFromMs: 0 })
      process.stderr.write(`agent-service bench: buffering ${records} records offline…\n`)
      const log = await RecordLog.open({ dir: join(dir, 'log'), deviceId: 'bench-svc', signer, syncWrites: false })
      await log.appendBoot({ agentVersion: 'bench', profile: 'bench' })
      const h = sha256(new Uint8Array([1]))
      const body = (): RecordBody => ({ kind: 'inference', modelHash: h, inputs: [{ name: 'x', hash: h }], outputs: [{ name: 'y', hash: h }], latencyUs: 900, decision: 'angle=0' })
      for (let done = 1; done < records; done += 1000) await Promise.all(Array.from({ length: Math.min(1000, records - done) }, async () => await log.append(body)))
      process.stderr.write('agent-service bench: draining through Mosquitto into the gateway…\n')
      const uplink = new Uplink({ log, deviceId: 'bench-svc', brokerUrl: broker.url, batchRecords: 1000, maxInFlightBatches: 16, gatewayPublicKeys: [gateway.logPublicKey as Uint8Array] })
      const t0 = performance.now()
      await uplink.start()
      let lastReport = t0
      while (uplink.status().ackedSeq < log.head.seq) {
        await new Promise(resolve => setTimeout(resolve, 100))
        if (performance.now() - lastReport > 10_000) {
          lastReport = performance.now()
          const acked = uplink.status().ackedSeq + 1
          process.stderr.write(`  ${acked}/${records} acked, ${(acked / ((lastReport - t0) / 1000)).toFixed(0)} records/s\n`)
        }
      }
      const drainPerSec = records / ((performance.now() - t0) / 1000)
      await uplink.stop()
      await log.close()

      const result: AgentServiceBenchResult = {
        drain: { records, drainPerSec, rawVerifiesPerSec: raw, ratio: drainPerSec / raw },
        footprint: { idleCpuPct: idle.cpuPct, idleRssMiB: idle.rssMiB, loggingCpuPct: logging.cpuPct, loggingRssMiB: logging.rssMiB, bareCpuPct: bare.cpuPct, ratePerSec }
      }
      const f = (x: number): string => x.toFixed(1)
      console.log(`backlog drain      ${records} records: ${f(drainPerSec)} records/s vs raw Ed25519 verifies ${f(raw)}/s   ratio ${drainPerSec / raw > 0 ? (drainPerSec / raw).toFixed(2) : '-'}`)
      console.log(`agent idle         CPU ${f(idle.cpuPct)} % of a core, RSS ${f(idle.rssMiB)} MiB`)
      console.log(`agent 100 inf/s    CPU ${f(logging.cpuPct)} % vs bare onnxruntime ${f(bare.cpuPct)} % (x${(logging.cpuPct / bare.cpuPct).toFixed(2)}), RSS ${f(logging.rssMiB)} MiB, achieved ${f(ratePerSec)}/s`)
      console.log(JSON.stringify({ agentService: result }))
      return result
    } finally {
      await gateway.stop()
    }
  } finally {
    await chain.stop()
    await broker.close()
    await rm(dir, { recursive: true, force: true })
  }
}

const USAGE = `usage: node --import tsx bench/agent-service.ts

The backlog drain of buffered records through Mosquitto into one gateway until all are acked,
against raw node:crypto verifies/s; agent CPU and RSS idle and at 100 inferences/s against bare
onnxruntime at the same rate.

Environment: BENCH_DRAIN_RECORDS (default 1000000).`

if (isEntryPoint(import.meta.url)) {
  exitOnHelp(USAGE)
  main().catch(e => { console.error(e); process.exit(1) })
}
