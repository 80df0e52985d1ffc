/**
 * The PostgreSQL tier's benchmark (#14), each figure against a baseline measured in the same run:
 * verified+stored records/s of one gateway process on PostgreSQL over raw node:crypto Ed25519
 * verifies/s on as many threads as cores (the gateway's verify pool has one worker per core;
 * measured before and after the rounds), and over one core; one vs two gateway processes on a
 * shared subscription, the load generator in a third process; and a backlog drain (records queued
 * at the broker while the gateway is down). Interleaved rounds, median and range, CPU time of the
 * gateway processes (all threads) beside wall time, and the load average after each round.
 */
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir, cpus, loadavg } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import mqtt from 'mqtt'
import { decodeAckEnvelope, deviceTopic, encodeRecordBatch, sha256, createSigner, topicFilter } from '../protocol/index.js'
import { deviceIdOf, startDevChain } from '../contracts/index.js'
import { loadOrCreateLogKey } from '../gateway/index.js'
import { startMosquitto, type Mosquitto } from '../test/helpers/mosquitto.js'
import { startPostgres } from '../test/helpers/postgres.js'
import { startGatewayProcess, type GatewayProcess } from '../test/fixtures/gateway-process.js'
import { makeChain, measureRawVerifies } from './gateway.js'
import { spread, type Spread, exitOnHelp, intEnv } from './measure.js'
import { isEntryPoint } from '../common/entry-point.js'

const DEVICES = intEnv('PROV_BENCH_PG_DEVICES', 50)
const RECORDS_PER_DEVICE = intEnv('PROV_BENCH_PG_RECORDS', 300)
const RECORDS_PER_MESSAGE = 50
const ROUNDS = intEnv('PROV_BENCH_PG_ROUNDS', 3)
/** The issue asks for 1 M; what drains in about a minute on a 2-core box (set PROV_BENCH_PG_BACKLOG to change). */
const BACKLOG_RECORDS = intEnv('PROV_BENCH_PG_BACKLOG', 60_000)

const encoder = new TextEncoder()
const seedOf = (i: number): Uint8Array => sha256(encoder.encode(`bench-gateway-pg/${i}`))
const deviceName = (i: number): string => `bench-pg-${String(i).padStart(3, '0')}`

export interface PgBenchRound { processes: number, records: number, wallMs: number, gatewayCpuMs: number, perSec: number, loadAvg: number }
export interface GatewayPostgresBenchResult {
  rawVerifiesPerSecOneCore: number
  /** Raw verifies on as many threads as cores (the gateway's pool size), before and after the rounds. */
  rawAllCores: { perSec: Spread, cpuMsPerVerify: Spread }
  cores: number
  oneProcess: { perSec: Spread, ratioToRawOneCore: Spread, ratioToRawAllCores: Spread, cpuMsPerRecord: Spread, cpuRatio: Spread }
  twoProcesses: { perSec: Spread, speedup: Spread, cpuMsPerRecord: Spread }
  backlog: { records: number, perSec: number, ratioToRawOneCore: number, wallMs: number, gatewayCpuMs: number }
  rounds: PgBenchRound[]
}

/** CPU ms (user + system) a process used so far, from /proc (Linux). */
function pidCpuMs (pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(f[11]) + Number(f[12])) * 10
  } catch { return 0 }
}

// -------------------------------------------------------------------------------------------
// Publisher child: signs everything first, then publishes on "go" (devices interleaved).

async function runPublisher (brokerUrl: string, devices: number, perDevice: number): Promise<void> {
  const chains = Array.from({ length: devices }, (_, i) => makeChain(deviceName(i), seedOf(i), perDevice, 1_700_000_000_000))
  const payloads: Array<{ topic: string, payload: Buffer }> = []
  for (let k = 0; k < perDevice; k += RECORDS_PER_MESSAGE) {
    for (let i = 0; i < devices; i++) {
      payloads.push({ topic: deviceTopic(deviceName(i), 'records'), payload: Buffer.from(encodeRecordBatch((chains[i] ?? []).slice(k, k + RECORDS_PER_MESSAGE).map(r => r.envelope))) })
    }
  }
  const client = await mqtt.connectAsync(brokerUrl, { protocolVersion: 5, clientId: `bench-pg-publisher-${process.pid}` })
  process.stdout.write('ready\n')
  await new Promise<void>(resolve => process.stdin.once('data', () => resolve()))
  for (let i = 0; i < payloads.length; i += 200) {
    await Promise.all(payloads.slice(i, i + 200).map(async p => await client.publishAsync(p.topic, p.payload, { qos: 1 })))
  }
  process.stdout.write('published\n')
  await client.endAsync()
}

async function startPublisher (brokerUrl: string, devices: number, perDevice: number): Promise<{ go: () => Promise<void>, kill: () => void }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--publisher', brokerUrl, String(devices), String(perDevice)], { stdio: ['pipe', 'pipe', 'inherit'] })
  const lines = createInterface({ input: child.stdout })
  const next = async (): Promise<string> => await new Promise(resolve => lines.once('line', resolve))
  if (await next() !== 'ready') throw new Error('publisher did not start')
  return {
    go: async () => { child.stdin.write('go\n'); if (await next() !== 'published') throw new Error('publisher failed'); child.stdin.end() },
    kill: () => { child.kill('SIGKILL') }
  }
}

/** Follows acks; resolves once every device acked its last record. */
async function ackWatcher (brokerUrl: string, devices: number, lastSeq: number): Promise<{ done: Promise<void>, close: () => Promise<void> }> {
  const acked = new Map<string, number>()
  let resolveDone: () => void = () => {}
  const done = new Promise<void>(resolve => { resolveDone = resolve })
  let complete = 0
  const w = await mqtt.connectAsync(brokerUrl, { protocolVersion: 5, clientId: `bench-pg-watch-${process.pid}-${Math.random()}` })
  w.on('message', (topic, payload) => {
    let seq: number
    try { seq = decodeAckEnvelope(new Uint8Array(payload)).statement.storedSeq } catch { return }
    const d = topic.split('/')[2] as string
    const before = acked.get(d) ?? -1
    if (seq > before) {
      acked.set(d, seq)
      if (before < lastSeq && seq >= lastSeq && ++complete === devices) resolveDone()
    }
  })
  await w.subscribeAsync(topicFilter('ack'), { qos: 1 })
  return { done, close: async () => { await w.endAsync(true) } }
}

export async function main (): Promise<GatewayPostgresBenchResult> {
  const dir = await mkdtemp(join(tmpdir(), 'prov-bench-pg-'))
  const pgServer = await startPostgres()
  const chain = await startDevChain()
  const brokers: Mosquitto[] = []
  try {
    process.stderr.write('gateway-postgres bench: raw Ed25519 verifications (one core)…\n')
    const rawVerifiesPerSecOneCore = (await measureRawVerifies(20_000, 1)).perSec
    const cores = cpus().length
    const rawAll = [await measureRawVerifies(40_000, cores)]
    process.stderr.write(`gateway-postgres bench: registering ${DEVICES} devices…\n`)
    const registrar = chain.registryAs('deviceRegistrar')
    for (let i = 0; i < DEVICES; i++) await registrar.registerDevice({ deviceId: deviceIdOf(deviceName(i)), publicKey: createSigner(seedOf(i)).publicKey, validFromMs: 0 })
    const names = ['pg-a', 'pg-b']
    const keys = await Promise.all(names.map(async n => Buffer.from((await loadOrCreateLogKey(join(dir, n, 'log-key.json'))).publicKey).toString('hex')))
    let dbs = 0

    // One round: a fresh broker (no retained acks of earlier rounds) and database, `n` gateway
    // processes, the publisher; `backlog`: the records are queued while the gateways are down.
    const round = async (n: number, perDevice: number, backlog = false): Promise<PgBenchRound> => {
      const broker = await startMosquitto({ config: ['set_tcp_nodelay true', 'max_queued_messages 1000000'] })
      brokers.push(broker)
      const url = await pgServer.createDatabase(`bench${++dbs}`)
      const configs = await Promise.all(names.slice(0, n).map(async (name, i) => {
        const path = join(dir, `${name}-${dbs}.json`)
        await writeFile(path, JSON.stringify({
          name, stateDir: join(dir, name), brokerUrl: broker.url, shareGroup: 'bench', postgresUrl: url, rpcUrl: chain.anvil.rpcUrl,
          registry: chain.deployment.address, chainId: chain.anvil.chainId, batchMaxRecords: 10_000, batchMaxAgeMs: 1000,
          processMetrics: false, httpToken: 'bench-http-token-0123456789', peerGatewayKeys: keys.filter((_, j) => j !== i),
          sessionExpirySeconds: 3600, logLevel: 'info', maxBacklogRecords: 20_000
        }))
        return path
      }))
      let procs: GatewayProcess[] = await Promise.all(configs.map(async c => await startGatewayProcess(c)))
      const publisher = await startPublisher(broker.url, DEVICES, perDevice)
      const watcher = await ackWatcher(broker.url, DEVICES, perDevice - 1)
      try {
        if (backlog) {
          // Sessions exist at the broker: stop the gateways, queue everything, then start them.
          for (const p of procs) p.proc.kill('SIGTERM')
          await Promise.all(procs.map(async p => await p.exited))
          await publisher.go()
          procs = await Promise.all(configs.map(async c => await startGatewayProcess(c)))
        }
        const cpu0 = procs.reduce((s, p) => s + pidCpuMs(p.proc.pid ?? 0), 0)
        const t0 = performance.now()
        if (!backlog) await publisher.go()
        let timer: NodeJS.Timeout | undefined
        const timeout = new Promise<never>((_resolve, reject) => {
          // 5 min, or 5 ms per record for a big backlog (200 per second at worst).
          const limitMs = Math.max(300_000, DEVICES * perDevice * 5)
          timer = setTimeout(() => reject(new Error(`round with ${n} process(es) did not finish in ${limitMs / 1000} s: ${procs.map(p => p.log.slice(-5).join('\n')).join('\n')}`)), limitMs)
        })
        await Promise.race([watcher.done, timeout]).finally(() => clearTimeout(timer))
        const wallMs = performance.now() - t0
        const gatewayCpuMs = procs.reduce((s, p) => s + pidCpuMs(p.proc.pid ?? 0), 0) - cpu0
        const records = DEVICES * perDevice
        return { processes: n, records, wallMs, gatewayCpuMs, perSec: records / (wallMs / 1000), loadAvg: loadavg()[0] ?? 0 }
      } finally {
        publisher.kill()
        await watcher.close()
        // SIGTERM first (a profiled child writes its profile on a clean exit), SIGKILL after 15 s.
        for (const p of procs) if (p.proc.exitCode === null) p.proc.kill('SIGTERM')
        const killer = setTimeout(() => { for (const p of procs) if (p.proc.exitCode === null) p.proc.kill('SIGKILL') }, 15_000)
        await Promise.all(procs.map(async p => await p.exited))
        clearTimeout(killer)
        await broker.close()
      }
    }

    const rounds: PgBenchRound[] = []
    for (let r = 0; r < ROUNDS; r++) {
      // Alternating order, so that load and frequency drift treat both alike.
      for (const n of r % 2 === 0 ? [1, 2] : [2, 1]) {
        process.stderr.write(`gateway-postgres bench: round ${r + 1}, ${n} process(es)…\n`)
        rounds.push(await round(n, RECORDS_PER_DEVICE))
      }
    }
    process.stderr.write(`gateway-postgres bench: backlog drain of ${BACKLOG_RECORDS} records…\n`)
    const drain = await round(1, Math.ceil(BACKLOG_RECORDS / DEVICES), true)
    rawAll.push(await measureRawVerifies(40_000, cores))
    const rawPerSec = spread(rawAll.map(r => r.perSec))
    const rawCpu = spread(rawAll.map(r => r.cpuMsPerVerify))

    const one = rounds.filter(r => r.processes === 1)
    const two = rounds.filter(r => r.processes === 2)
    const result: GatewayPostgresBenchResult = {
      rawVerifiesPerSecOneCore,
      rawAllCores: { perSec: rawPerSec, cpuMsPerVerify: rawCpu },
      cores,
      oneProcess: {
        perSec: spread(one.map(r => r.perSec)),
        ratioToRawOneCore: spread(one.map(r => r.perSec / rawVerifiesPerSecOneCore)),
        ratioToRawAllCores: spread(one.map(r => r.perSec / rawPerSec.median)),
        cpuMsPerRecord: spread(one.map(r => r.gatewayCpuMs / r.records)),
        // Raw CPU per verify over the gateway's CPU per verified+stored record (all its threads).
        cpuRatio: spread(one.map(r => rawCpu.median / (r.gatewayCpuMs / r.records)))
      },
      twoProcesses: {
        perSec: spread(two.map(r => r.perSec)),
        speedup: spread(two.map((r, i) => r.perSec / (one[i] as PgBenchRound).perSec)),
        cpuMsPerRecord: spread(two.map(r => r.gatewayCpuMs / r.records))
      },
      backlog: { records: drain.records, perSec: drain.perSec, ratioToRawOneCore: drain.perSec / rawVerifiesPerSecOneCore, wallMs: drain.wallMs, gatewayCpuMs: drain.gatewayCpuMs },
      rounds
    }
    const f = (s: Spread, d = 0): string => `${s.median.toFixed(d)} (${s.min.toFixed(d)}–${s.max.toFixed(d)})`
    console.log(`raw Ed25519 verifies, one core      ${rawVerifiesPerSecOneCore.toFixed(0)}/s (${result.cores} cores here)`)
    console.log(`raw Ed25519 verifies, ${cores} threads    ${f(rawPerSec)}/s before/after the rounds; ${f(rawCpu, 3)} ms CPU per verify`)
    console.log(`1 process, PostgreSQL store         ${f(result.oneProcess.perSec)} records/s verified+stored+acked; wall ratio to raw on ${cores} cores ${f(result.oneProcess.ratioToRawAllCores, 2)} (to one core ${f(result.oneProcess.ratioToRawOneCore, 2)}); gateway CPU ${f(result.oneProcess.cpuMsPerRecord, 3)} ms/record, CPU ratio ${f(result.oneProcess.cpuRatio, 2)}`)
    console.log(`2 processes, shared subscription    ${f(result.twoProcesses.perSec)} records/s; speedup over 1 ${f(result.twoProcesses.speedup, 2)}; gateway CPU ${f(result.twoProcesses.cpuMsPerRecord, 3)} ms/record`)
    console.log(`backlog drain (${drain.records} records queued at the broker, 1 process) ${drain.perSec.toFixed(0)} records/s, wall ratio to raw on ${cores} cores ${(drain.perSec / rawPerSec.median).toFixed(2)} (one core ${result.backlog.ratioToRawOneCore.toFixed(2)}), wall ${(drain.wallMs / 1000).toFixed(1)} s, gateway CPU ${(drain.gatewayCpuMs / 1000).toFixed(1)} s = ${(drain.gatewayCpuMs / drain.records).toFixed(3)} ms/record, CPU ratio ${(rawCpu.median / (drain.gatewayCpuMs / drain.records)).toFixed(2)}`)
    console.log(`load average (1 min) at the end of each round: ${rounds.map(r => `${r.processes}p ${r.loadAvg.toFixed(1)}`).join(', ')}; drain ${drain.loadAvg.toFixed(1)}`)
    console.log(`(${DEVICES} devices x ${RECORDS_PER_DEVICE} records per round, ${RECORDS_PER_MESSAGE} per message, ${ROUNDS} interleaved rounds; PostgreSQL, Mosquitto and the publisher share this machine)`)
    console.log(JSON.stringify({ gatewayPostgres: { ...result, rounds: undefined } }))
    return result
  } finally {
    for (const b of brokers) await b.close().catch(() => {})
    await chain.stop()
    await pgServer.close()
    await rm(dir, { recursive: true, force: true })
  }
}

const USAGE = `usage: node --import tsx bench/gateway-postgres.ts

The PostgreSQL tier: verified+stored records/s of one gateway process against raw verifies on as
many threads as cores and on one; one vs two gateway processes on a shared subscription; a backlog
drain. Interleaved rounds, median and range, CPU time beside wall time.

Environment: PROV_BENCH_PG_DEVICES (default 50), PROV_BENCH_PG_RECORDS (per device, default 300),
PROV_BENCH_PG_ROUNDS (default 3), PROV_BENCH_PG_BACKLOG (default 60000).`

if (isEntryPoint(import.meta.url)) {
  exitOnHelp(USAGE)
  if (process.argv[2] === '--publisher') {
    runPublisher(process.argv[3] as string, Number(process.argv[4]), Number(process.argv[5])).catch(e => { console.error(e); process.exit(1) })
  } else {
    main().catch(e => { console.error(e); process.exit(1) })
  }
}
