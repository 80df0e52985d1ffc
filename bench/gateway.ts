/**
 * Gateway benchmark (issues 8 and 11), against baselines measured in the same run: records
 * verified and durably stored per second through Mosquitto by one gateway (signatures on its
 * verify pool, one worker per core; `--verify-workers N` to change, 0 = main thread), over raw
 * node:crypto Ed25519 verifications per second on as many threads as cores, in rounds interleaved
 * with the raw runs, each round against the raw runs on either side of it (target ratio >= 0.8;
 * median and range of the rounds), wall and CPU; median ack latency; and records
 * anchored per second end to end with batches of 10 000. Devices publish from a child process
 * (this file with --publisher), which also follows the fleet's acks, so neither shares the
 * gateway's event loop or its CPU count — but they share the cores, as Mosquitto and anvil do:
 * the wall ratio counts them against the gateway, and the bench prints the cores each took.
 * The raw baseline's CPU is its threads' own (from /proc/thread-self), its rate each thread's
 * count over its loop's wall time. `--max-backlog N` sets the gateway's maxBacklogRecords.
 */
import { spawn } from 'node:child_process'
import { createPublicKey, verify as nodeVerify } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
import { availableParallelism, tmpdir } from 'node:os'
import { Worker } from 'node:worker_threads'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import mqtt from 'mqtt'
import {
  RECORD_SIGNING_PREFIX, ZERO_HASH, concat, createSigner, decodeAckEnvelope, deviceTopic, encodeRecordBatch, sha256, signRecord,
  topicFilter, type Ack, type SignedRecord
} from '../protocol/index.js'
import { deviceIdOf, startDevChain } from '../contracts/index.js'
import { Gateway, setNoDelay } from '../gateway/index.js'
import { startMosquitto } from '../test/helpers/mosquitto.js'
import { childrenCpuDelta, childrenCpuMs, fmtSpread, mainThreadCpuMs, processCpuMs, spread, threadCpuDelta, threadCpuMs, type Spread, exitOnHelp, intArg, faultCostUs, minorFaults } from './measure.js'
import { isEntryPoint } from '../common/entry-point.js'

const DEVICES = 50
const RECORDS_PER_DEVICE = 1000
const RECORDS_PER_MESSAGE = 100
const BATCH_RECORDS = 10_000
const LATENCY_SAMPLES = 200
const WARMUP_RECORDS = 1000
/** Devices of the untimed warm-up, interleaved as the fleet's (`--warmup-devices N`). */
const WARMUP_DEVICES = 30
/** Timed rounds of the ingest, each between two raw baselines (`--rounds N`). */
const ROUNDS = 3
const RAW_COUNT = 20_000

const USAGE = `usage: node --import tsx bench/gateway.ts [--verify-workers N] [--max-backlog N] [--warmup-devices N] [--rounds N]

${DEVICES} devices x ${RECORDS_PER_DEVICE} records (${RECORDS_PER_MESSAGE} per message) per round published through Mosquitto to
one gateway (fsync on, anvil automine), in rounds interleaved with raw node:crypto verifies on as
many threads as cores (raw, round, raw, round, …, raw; each round against the raw runs beside it);
prints each round, the median and range of the rounds' wall and CPU ratios, then one JSON line.
Run it under the machine-wide lock: flock /tmp/bench.lock node --import tsx bench/gateway.ts

  --verify-workers N   signature pool threads (default: one per core; 0 = on the main thread)
  --max-backlog N      the gateway's maxBacklogRecords (default: the gateway's own)
  --warmup-devices N   devices x ${WARMUP_RECORDS} records of the untimed warm-up before the timed ingest (default ${WARMUP_DEVICES})
  --rounds N           timed rounds; the devices' chains go on from one to the next (default ${ROUNDS})

Environment: PROV_BENCH_CPU_PROFILE=<file> (main thread's .cpuprofile of the ingest),
PROV_BENCH_HEAP_PROFILE=<file> (sampled allocations of the ingest; both profiles cover the last
round), PROV_BENCH_THREADS=1 (every other thread's CPU per record and each round's CLOCK_MONOTONIC
window, for perf).`

/** One timed round of the ingest: DEVICES x RECORDS_PER_DEVICE records, the chains going on from the round before. */
export interface IngestRound {
  storedPerSec: number
  /** Records of the round over the time until all of them were anchored. */
  anchoredPerSec: number
  gatewayCpuMsPerRecord: number
  mainCpuMsPerRecord: number
  workersCpuMsPerRecord: number
  faultsPerRecord: number
  acks: number
  gatewayCores: number
  besideCores: Record<string, number>
  /** The mean of the raw runs right before and right after the round. */
  rawPerSec: number
  rawCpuMsPerVerify: number
  /** storedPerSec ÷ rawPerSec. */
  ratio: number
  /** rawCpuMsPerVerify ÷ gatewayCpuMsPerRecord. */
  cpuRatio: number
  /**
   * workersCpuMsPerRecord ÷ gatewayCpuMsPerRecord: the share of the gateway's CPU that went into
   * its verify workers, from one window. What cpuRatio would be if the workers verified at the raw
   * loop's cost; unlike cpuRatio it does not move when the VM's speed drifts between the round and
   * the raw runs beside it.
   */
  verifyShare: number
}

/** Raw verifies/s and CPU ms per verify, one run of measureRawVerifies. */
interface RawVerifies { perSec: number, cpuMsPerVerify: number }

export interface GatewayBenchResult {
  ingest: {
    /** Medians of the rounds (each round's own: `rounds`). */
    storedPerSec: number
    /** Raw verifies/s on `cores` threads: every raw run, before, between and after the rounds. */
    rawVerifiesPerSec: Spread
    /** The rounds' storedPerSec ÷ the raw rate beside each. */
    ratio: Spread
    /** The rounds' raw CPU ms per verify ÷ the gateway process's CPU ms per stored record (publisher and broker not counted). */
    cpuRatio: Spread
    /** The rounds' verifyShare (IngestRound). */
    verifyShare: Spread
    gatewayCpuMsPerRecord: number
    /** Of which the main thread's (the rest: verify workers, LevelDB and libuv threads). */
    mainCpuMsPerRecord: number
    /** Of which its `verifyWorkers` busiest other threads' (the verify workers; the rest: V8's GC helpers, LevelDB, libuv). */
    workersCpuMsPerRecord: number
    /** Minor page faults of the gateway process per stored record during the ingest, and what one costs here (faultCostUs, before the run). */
    faultsPerRecord: number
    faultCostUs: number
    /** Acks the gateway published during the ingest (one per device per durable write that moved its tip). */
    acks: number
    /** Cores the gateway process kept busy during the ingest (its CPU ms ÷ wall ms). */
    gatewayCores: number
    /** Cores each other process took during the ingest, by command name (publisher = node, mosquitto, anvil). */
    besideCores: Record<string, number>
    rawCpuMsPerVerify: Spread
    verifyWorkers: number
    cores: number
    /** Records per round. */
    records: number
    rounds: IngestRound[]
  }
  ackLatency: { medianMs: number, p99Ms: number, samples: number }
  anchoring: { anchoredPerSec: number, records: number, batchRecords: number, batches: number }
}

const encoder = new TextEncoder()
const seedOf = (i: number | string): Uint8Array => sha256(encoder.encode(`bench-gateway/${i}`))
const deviceName = (i: number): string => `bench-${String(i).padStart(3, '0')}`

/** A device's chain: boot, then inferences, signed as the agent signs them (bench/gateway-postgres.ts uses it too). */
export function makeChain (deviceId: string, seed: Uint8Array, count: number, startTimeMs: number): SignedRecord[] {
  const signer = createSigner(seed)
  const out: SignedRecord[] = []
  let prev = ZERO_HASH
  const modelHash = sha256(encoder.encode('model'))
  for (let seq = 0; seq < count; seq++) {
    const body = seq === 0
      ? { kind: 'boot' as const, agentVersion: 'bench', profile: 'generic-x86-64' }
      : {
          kind: 'inference' as const,
          modelHash,
          inputs: [{ name: 'input', hash: sha256(encoder.encode(`in/${deviceId}/${seq}`)) }],
          outputs: [{ name: 'output', hash: sha256(encoder.encode(`out/${deviceId}/${seq}`)) }],
          latencyUs: 1500 + seq % 100,
          decision: `class-${seq % 3}`
        }
    const signed = signRecord({ deviceId, boot: 1, seq, timeMs: startTimeMs + seq, prev, body }, signer)
    out.push(signed)
    prev = signed.hash
  }
  return out
}


function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] as number
}

function percentile (xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(s.length * p))] as number
}

// Plain JavaScript, so that the baseline's workers start as fast as they can. Each times its own
// loop: wall, and its thread's CPU from /proc/thread-self (start-up and the other threads excluded).
const RAW_VERIFY_WORKER = `
const { parentPort, workerData } = require('node:worker_threads')
const { createPublicKey, verify } = require('node:crypto')
const { readFileSync } = require('node:fs')
const { spki, items, count } = workerData
const threadCpuMs = () => {
  const stat = readFileSync('/proc/thread-self/stat', 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) * 10
}
const key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' })
let ok = 0
const c0 = threadCpuMs()
const t0 = performance.now()
for (let i = 0; i < count; i++) { const m = items[i % items.length]; if (verify(null, m.message, key, m.signature)) ok++ }
parentPort.postMessage({ ok, wallMs: performance.now() - t0, cpuMs: threadCpuMs() - c0 })
`

/**
 * Raw node:crypto verifications of record-sized messages under a prepared key, `total` split over
 * `threads` worker threads: per second (each thread's count over its loop's wall time, summed) and
 * CPU ms per verify (the threads' own CPU over their loops: no start-up, nothing else the process does).
 */
export async function measureRawVerifies (total: number, threads: number): Promise<RawVerifies> {
  const records = makeChain('bench-raw', seedOf('raw'), 64, 1_700_000_000_000)
  const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), createSigner(seedOf('raw')).publicKey])
  const items = records.map(r => ({ message: concat(RECORD_SIGNING_PREFIX, r.recordBytes), signature: r.signature }))
  const key = createPublicKey({ key: spki, format: 'der', type: 'spki' })
  for (const m of items) if (!nodeVerify(null, m.message, key, m.signature)) throw new Error('bad baseline signature')
  const runs = await Promise.all(Array.from({ length: threads }, async (_, w) => {
    const count = Math.floor(total / threads) + (w < total % threads ? 1 : 0)
    const worker = new Worker(RAW_VERIFY_WORKER, { eval: true, workerData: { spki, items, count } })
    const run = await new Promise<{ ok: number, wallMs: number, cpuMs: number }>((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject) })
    await worker.terminate()
    if (run.ok !== count) throw new Error('raw verify rejected a signature')
    return { count, ...run }
  }))
  return {
    perSec: runs.reduce((sum, r) => sum + r.count / (r.wallMs / 1000), 0),
    cpuMsPerVerify: runs.reduce((sum, r) => sum + r.cpuMs, 0) / total
  }
}

// -------------------------------------------------------------------------------------------
// Publisher child: signs everything first, then publishes on "go" as fast as the broker takes it,
// and follows the fleet's acks itself ("stored" once every device's last record is acked stored,
// "anchored" once anchored, with the number of acks seen): following 50 devices' acks costs
// CPU that must not be counted as the gateway's.

async function runPublisher (brokerUrl: string, startTimeMs: number, rounds: number): Promise<void> {
  // Each device's chain goes on from round to round: round r publishes seqs r*1000 .. r*1000+999.
  const perRound: Array<Array<{ topic: string, payload: Buffer }>> = Array.from({ length: rounds }, () => [])
  for (let i = 0; i < DEVICES; i++) {
    const id = deviceName(i)
    const chain = makeChain(id, seedOf(i), RECORDS_PER_DEVICE * rounds, startTimeMs)
    for (let k = 0; k < chain.length; k += RECORDS_PER_MESSAGE) {
      (perRound[Math.floor(k / RECORDS_PER_DEVICE)] as Array<{ topic: string, payload: Buffer }>).push({ topic: deviceTopic(id, 'records'), payload: Buffer.from(encodeRecordBatch(chain.slice(k, k + RECORDS_PER_MESSAGE).map(r => r.envelope))) })
    }
  }
  // Interleave devices as a fleet would (each round's messages are in device order above).
  const perDevice = RECORDS_PER_DEVICE / RECORDS_PER_MESSAGE
  const ordered = perRound.map(payloads => Array.from({ length: payloads.length }, (_, k) => payloads[(k % DEVICES) * perDevice + Math.floor(k / DEVICES)] as typeof payloads[number]))
  const client = await mqtt.connectAsync(brokerUrl, { protocolVersion: 5, clientId: `bench-publisher-${process.pid}` })
  const watcher = await mqtt.connectAsync(brokerUrl, { protocolVersion: 5, clientId: `bench-watcher-${process.pid}` })
  setNoDelay(watcher)
  const acks = new Map<string, Ack>()
  // The round whose acks are followed: set by its "go", kept until the next one.
  let round = -1
  let acksSeen = 0
  const said = new Set<string>()
  const all = (field: 'storedSeq' | 'anchoredSeq'): boolean => {
    for (let i = 0; i < DEVICES; i++) if ((acks.get(deviceName(i))?.[field] ?? -1) < RECORDS_PER_DEVICE * (round + 1) - 1) return false
    return true
  }
  watcher.on('message', (topic, payload) => {
    acksSeen++
    try { acks.set(topic.split('/')[2] as string, decodeAckEnvelope(new Uint8Array(payload)).statement) } catch { return }
    if (round < 0) return
    for (const field of ['storedSeq', 'anchoredSeq'] as const) {
      if (!said.has(field) && all(field)) {
        said.add(field)
        process.stdout.write(`${field === 'storedSeq' ? 'stored' : 'anchored'} ${acksSeen}\n`)
      }
    }
  })
  await watcher.subscribeAsync(topicFilter('ack'), { qos: 1 })
  const commands = createInterface({ input: process.stdin })
  const lines = commands[Symbol.asyncIterator]()
  process.stdout.write('ready\n')
  // One "go" per round; the bench says it once the previous round is stored, anchored and its
  // baseline measured. The end of stdin ends the publisher.
  for (let r = 0; r < rounds; r++) {
    const line = await lines.next()
    if (line.done === true || line.value !== 'go') throw new Error(`publisher: expected "go", got ${String(line.value)}`)
    round = r
    acksSeen = 0
    said.clear()
    await Promise.all((ordered[r] as typeof ordered[number]).map(async p => await client.publishAsync(p.topic, p.payload, { qos: 1 })))
  }
  await lines.next()
  commands.close()
  await client.endAsync()
  await watcher.endAsync(true)
}

// -------------------------------------------------------------------------------------------

/**
 * PROV_BENCH_HEAP_PROFILE=<file.heapprofile>: samples the main thread's allocations during the
 * ingest, those already collected included (node's --heap-prof keeps only what is still alive at
 * exit, which hides the per-record garbage this is for). Open the file in Chrome's DevTools.
 */
async function startAllocationSampling (): Promise<() => Promise<unknown>> {
  const session = new Session()
  session.connect()
  await session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })
  return async () => {
    const { profile } = await session.post('HeapProfiler.stopSampling')
    session.disconnect()
    return profile
  }
}

/**
 * PROV_BENCH_CPU_PROFILE=<file.cpuprofile>: the main thread's CPU profile of the ingest alone
 * (node's --cpu-prof would add start-up, signing, registration and the baselines). Sampled every 100 µs.
 */
async function startCpuProfile (): Promise<() => Promise<unknown>> {
  const session = new Session()
  session.connect()
  await session.post('Profiler.enable')
  await session.post('Profiler.setSamplingInterval', { interval: 100 })
  await session.post('Profiler.start')
  return async () => {
    const { profile } = await session.post('Profiler.stop')
    session.disconnect()
    return profile
  }
}

export async function main (): Promise<GatewayBenchResult> {
  // Before anything else runs in this process: process CPU counts every thread.
  const faultCost = faultCostUs()
  const dir = await mkdtemp(join(tmpdir(), 'prov-bench-gw-'))
  // Mosquitto leaves Nagle's algorithm on unless told (docs/OPERATIONS.md §Gateway).
  const broker = await startMosquitto({ config: ['set_tcp_nodelay true'] })
  const chain = await startDevChain()
  const cleanups: Array<() => Promise<void>> = []
  try {
    const cores = availableParallelism()
    const verifyWorkers = intArg('verify-workers', cores, 0)
    process.stderr.write(`gateway bench: raw Ed25519 verifications on ${cores} threads…\n`)
    const rawBefore = await measureRawVerifies(RAW_COUNT, cores)

    process.stderr.write(`gateway bench: registering ${DEVICES + 1} devices…\n`)
    const registrar = chain.registryAs('deviceRegistrar')
    for (let i = 0; i < DEVICES; i++) await registrar.registerDevice({ deviceId: deviceIdOf(deviceName(i)), publicKey: createSigner(seedOf(i)).publicKey, validFromMs: 0 })
    await registrar.registerDevice({ deviceId: deviceIdOf('bench-latency'), publicKey: createSigner(seedOf('latency')).publicKey, validFromMs: 0 })
    const warmupDevices = intArg('warmup-devices', WARMUP_DEVICES)
    const warmupName = (i: number): string => `bench-warmup-${i}`
    for (let i = 0; i < warmupDevices; i++) await registrar.registerDevice({ deviceId: deviceIdOf(warmupName(i)), publicKey: createSigner(seedOf(warmupName(i))).publicKey, validFromMs: 0 })

    const gateway = new Gateway({
      name: 'bench',
      stateDir: join(dir, 'gateway'),
      brokerUrl: broker.url,
      rpcUrl: chain.anvil.rpcUrl,
      registry: chain.deployment.address,
      chainId: chain.anvil.chainId,
      anchorPrivateKey: chain.anvil.accounts[3]?.privateKey,
      anchorPollIntervalMs: 100,
      batchMaxRecords: BATCH_RECORDS,
      batchMaxAgeMs: 600_000,
      processMetrics: false,
      verifyWorkers,
      ...(process.argv.includes('--max-backlog') ? { maxBacklogRecords: intArg('max-backlog', 50_000) } : {})
    })
    await gateway.start()
    cleanups.push(async () => await gateway.stop())
    await gateway.waitForBroker()

    // The latency device's acks, followed from the bench process (the fleet's: by the publisher).
    const acks = new Map<string, Ack>()
    const waiters: Array<() => void> = []
    const watcher = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: `bench-watcher-${process.pid}` })
    setNoDelay(watcher)
    cleanups.push(async () => { await watcher.endAsync(true) })
    watcher.on('message', (topic, payload) => {
      try { acks.set(topic.split('/')[2] as string, decodeAckEnvelope(new Uint8Array(payload)).statement) } catch { return }
      for (const w of waiters.splice(0)) w()
    })
    await watcher.subscribeAsync([deviceTopic('bench-latency', 'ack'), ...Array.from({ length: warmupDevices }, (_, i) => deviceTopic(warmupName(i), 'ack'))], { qos: 1 })
    const until = async (done: () => boolean): Promise<void> => {
      while (!done()) await new Promise<void>(resolve => waiters.push(resolve))
    }

    // Warm-up, untimed: a gateway that has been running has its verify workers started (under
    // tsx ~0.3 s of CPU each, 10 µs per record of this run) and its code compiled. One device was
    // not enough: the fleet's interleaving then reached code V8 had not optimized yet, and
    // compiling it on V8's helper threads was ~9 µs per record of the timed ingest. So several
    // devices, messages interleaved as the publisher sends them: 30 (30 000 records), not 10, since
    // with 10 V8's helper threads still took 20–25 µs per record of the timed part against 16–17
    // with 30 (interleaved runs, docs/GATEWAY.md §Benchmarks). A gateway runs for days: measuring
    // it after its JIT has settled is the honest figure; the warm-up is never timed.
    const warmupAt = Date.now()
    const warmupChains = Array.from({ length: warmupDevices }, (_, i) => makeChain(warmupName(i), seedOf(warmupName(i)), WARMUP_RECORDS, warmupAt))
    const warmupMessages: Array<Promise<unknown>> = []
    for (let k = 0; k < WARMUP_RECORDS; k += RECORDS_PER_MESSAGE) {
      warmupChains.forEach((c, i) => {
        warmupMessages.push(watcher.publishAsync(deviceTopic(warmupName(i), 'records'), Buffer.from(encodeRecordBatch(c.slice(k, k + RECORDS_PER_MESSAGE).map(r => r.envelope))), { qos: 1 }))
      })
    }
    await Promise.all(warmupMessages)
    const allWarm = (field: 'storedSeq' | 'anchoredSeq'): boolean => warmupChains.every((_, i) => (acks.get(warmupName(i))?.[field] ?? -1) >= WARMUP_RECORDS - 1)
    await until(() => allWarm('storedSeq'))
    // Its own batches, anchored before the timed part, so the fleet's batches are whole (and all sealed).
    await gateway.sealNow()
    await until(() => allWarm('anchoredSeq'))

    const rounds = intArg('rounds', ROUNDS)
    const total = DEVICES * RECORDS_PER_DEVICE
    process.stderr.write(`gateway bench: publisher signing ${total * rounds} records…\n`)
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--publisher', broker.url, String(Date.now()), String(rounds)], { stdio: ['pipe', 'pipe', 'inherit'] })
    cleanups.push(() => { child.kill('SIGKILL'); return Promise.resolve() })
    const lines = createInterface({ input: child.stdout })
    // Queued: two lines in one chunk come in one turn, before a second once('line') could be set.
    const received: string[] = []
    let lineWaiter: (() => void) | undefined
    lines.on('line', (line) => { received.push(line); lineWaiter?.() })
    const nextLine = async (): Promise<string> => {
      while (received.length === 0) await new Promise<void>(resolve => { lineWaiter = resolve })
      return received.shift() as string
    }
    if (await nextLine() !== 'ready') throw new Error('publisher did not start')

    // Interleaved: raw verifies, round 1, raw verifies, round 2, … raw verifies. Each round is
    // compared with the raw runs on either side of it.
    // For `perf record -k CLOCK_MONOTONIC`: each round's window on that clock (seconds).
    const monotonic = (): string => (Number(process.hrtime.bigint()) / 1e9).toFixed(3)
    const raws = [rawBefore]
    const done: Array<Omit<IngestRound, 'ratio' | 'cpuRatio' | 'verifyShare' | 'rawPerSec' | 'rawCpuMsPerVerify'>> = []
    for (let round = 0; round < rounds; round++) {
      const last = round === rounds - 1
      process.stderr.write(`gateway bench: ingest through Mosquitto, round ${round + 1} of ${rounds}…\n`)
      const t0 = performance.now()
      const c0 = processCpuMs()
      const beside0 = childrenCpuMs()
      const m0 = mainThreadCpuMs()
      const threads0 = threadCpuMs()
      const faults0 = minorFaults()
      // Profiles cover the last round: the most settled.
      const heapProfile = !last || process.env.PROV_BENCH_HEAP_PROFILE === undefined ? undefined : await startAllocationSampling()
      const cpuProfile = !last || process.env.PROV_BENCH_CPU_PROFILE === undefined ? undefined : await startCpuProfile()
      const window0 = monotonic()
      child.stdin.write('go\n')
      const stored = await nextLine()
      if (process.env.PROV_BENCH_THREADS !== undefined) process.stderr.write(`ingest window of round ${round + 1} (CLOCK_MONOTONIC s): ${window0},${monotonic()}\n`)
      const storedSecs = (performance.now() - t0) / 1000
      const faultsPerRecord = (minorFaults() - faults0) / total
      const gatewayCpuMsPerRecord = (processCpuMs() - c0) / total
      const mainCpuMsPerRecord = (mainThreadCpuMs() - m0) / total
      // Beside the main thread, the verifyWorkers busiest threads are the verify workers; the rest is
      // V8's helpers (parallel scavenges, concurrent marking, compiling), LevelDB's and libuv's.
      const perThread = threadCpuDelta(threads0, threadCpuMs()).filter(t => t.tid !== process.pid)
      const workersCpuMsPerRecord = perThread.slice(0, verifyWorkers).reduce((sum, t) => sum + t.ms, 0) / total
      // Each other thread's CPU per record, busiest first, by thread id (node names none of its
      // threads; perf report --sort pid lists them by the same ids): where "other" goes.
      if (process.env.PROV_BENCH_THREADS !== undefined) process.stderr.write(`other threads, µs per record: ${perThread.slice(verifyWorkers).filter(t => t.ms > 0).map(t => `${t.tid} ${(t.ms * 1000 / total).toFixed(1)}`).join(', ')}\n`)
      if (cpuProfile !== undefined) await writeFile(process.env.PROV_BENCH_CPU_PROFILE as string, JSON.stringify(await cpuProfile()))
      if (heapProfile !== undefined) await writeFile(process.env.PROV_BENCH_HEAP_PROFILE as string, JSON.stringify(await heapProfile()))
      const beside = childrenCpuDelta(beside0, childrenCpuMs())
      const anchored = await nextLine()
      const anchoredSecs = (performance.now() - t0) / 1000
      if (!stored.startsWith('stored ') || !anchored.startsWith('anchored ')) throw new Error(`publisher said "${stored}", "${anchored}"`)
      done.push({
        storedPerSec: total / storedSecs,
        anchoredPerSec: total / anchoredSecs,
        gatewayCpuMsPerRecord,
        mainCpuMsPerRecord,
        workersCpuMsPerRecord,
        faultsPerRecord,
        acks: Number(stored.split(' ')[1]),
        gatewayCores: gatewayCpuMsPerRecord * total / (storedSecs * 1000),
        besideCores: Object.fromEntries(Object.entries(beside).map(([name, ms]) => [name, ms / (storedSecs * 1000)]))
      })
      process.stderr.write(`gateway bench: raw Ed25519 verifications on ${cores} threads, again…\n`)
      raws.push(await measureRawVerifies(RAW_COUNT, cores))
    }
    child.stdin.end()
    const ingestRounds: IngestRound[] = done.map((r, i) => {
      const before = raws[i] as RawVerifies
      const after = raws[i + 1] as RawVerifies
      const rawPerSec = (before.perSec + after.perSec) / 2
      const rawCpuMsPerVerify = (before.cpuMsPerVerify + after.cpuMsPerVerify) / 2
      return { ...r, rawPerSec, rawCpuMsPerVerify, ratio: r.storedPerSec / rawPerSec, cpuRatio: rawCpuMsPerVerify / r.gatewayCpuMsPerRecord, verifyShare: r.workersCpuMsPerRecord / r.gatewayCpuMsPerRecord }
    })

    process.stderr.write('gateway bench: ack latency…\n')
    const latency = makeChain('bench-latency', seedOf('latency'), LATENCY_SAMPLES, Date.now())
    const device = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: `bench-device-${process.pid}` })
    // A device's uplink would do the same; otherwise its own Nagle delay dominates the figure.
    setNoDelay(device)
    cleanups.push(async () => { await device.endAsync(true) })
    const samples: number[] = []
    for (const r of latency) {
      const s0 = performance.now()
      await device.publishAsync(deviceTopic('bench-latency', 'records'), Buffer.from(encodeRecordBatch([r.envelope])), { qos: 1 })
      await until(() => (acks.get('bench-latency')?.storedSeq ?? -1) >= r.record.seq)
      samples.push(performance.now() - s0)
    }

    const med = (pick: (r: IngestRound) => number): number => spread(ingestRounds.map(pick)).median
    // V8's GC helpers, LevelDB's and libuv's threads: the process less the main thread and the verify workers.
    const otherMs = (r: IngestRound): number => r.gatewayCpuMsPerRecord - r.mainCpuMsPerRecord - r.workersCpuMsPerRecord
    const besideNames = [...new Set(ingestRounds.flatMap(r => Object.keys(r.besideCores)))]
    const result: GatewayBenchResult = {
      ingest: {
        storedPerSec: med(r => r.storedPerSec),
        rawVerifiesPerSec: spread(raws.map(r => r.perSec)),
        ratio: spread(ingestRounds.map(r => r.ratio)),
        cpuRatio: spread(ingestRounds.map(r => r.cpuRatio)),
        verifyShare: spread(ingestRounds.map(r => r.verifyShare)),
        gatewayCpuMsPerRecord: med(r => r.gatewayCpuMsPerRecord),
        faultsPerRecord: med(r => r.faultsPerRecord),
        faultCostUs: faultCost,
        mainCpuMsPerRecord: med(r => r.mainCpuMsPerRecord),
        workersCpuMsPerRecord: med(r => r.workersCpuMsPerRecord),
        acks: med(r => r.acks),
        gatewayCores: med(r => r.gatewayCores),
        besideCores: Object.fromEntries(besideNames.map(name => [name, med(r => r.besideCores[name] ?? 0)])),
        rawCpuMsPerVerify: spread(raws.map(r => r.cpuMsPerVerify)),
        verifyWorkers,
        cores,
        records: total,
        rounds: ingestRounds
      },
      ackLatency: { medianMs: median(samples), p99Ms: percentile(samples, 0.99), samples: samples.length },
      anchoring: { anchoredPerSec: med(r => r.anchoredPerSec), records: total, batchRecords: BATCH_RECORDS, batches: Math.ceil(total / BATCH_RECORDS) }
    }
    const f = (x: number): string => x.toFixed(x >= 100 ? 0 : 2)
    const us = (ms: number): string => (ms * 1000).toFixed(0)
    const ing = result.ingest
    ingestRounds.forEach((r, i) => {
      console.log(`round ${i + 1} of ${rounds}          ${f(r.storedPerSec)} records/s, ratio wall ${r.ratio.toFixed(2)}, CPU ${r.cpuRatio.toFixed(2)}: ${us(r.gatewayCpuMsPerRecord)} µs per record (main thread ${us(r.mainCpuMsPerRecord)}, verify workers ${us(r.workersCpuMsPerRecord)}, other threads ${us(otherMs(r))}) vs raw verify ${us(r.rawCpuMsPerVerify)} µs; verify workers' share ${r.verifyShare.toFixed(2)}`)
    })
    console.log(`verified + stored   ${f(ing.storedPerSec)} records/s (verify pool of ${verifyWorkers}; median of ${rounds} rounds) vs raw Ed25519 verifies on ${cores} threads ${fmtSpread(ing.rawVerifiesPerSec, 0)}/s (before, between and after the rounds)   ratio wall ${fmtSpread(ing.ratio)}, CPU ${fmtSpread(ing.cpuRatio)} (rounds; each against the raw runs beside it) (target >= 0.8)`)
    console.log(`gateway CPU         ${us(ing.gatewayCpuMsPerRecord)} µs per record: main thread ${us(ing.mainCpuMsPerRecord)} µs, verify workers ${us(ing.workersCpuMsPerRecord)} µs, other threads (V8's GC helpers, LevelDB, libuv) ${us(med(otherMs))} µs (medians of the rounds); raw verify ${fmtSpread({ median: ing.rawCpuMsPerVerify.median * 1000, min: ing.rawCpuMsPerVerify.min * 1000, max: ing.rawCpuMsPerVerify.max * 1000 }, 0)} µs`)
    console.log(`verify share        ${fmtSpread(ing.verifyShare)}: the verify workers' share of the gateway's CPU in each round, the CPU ratio the gateway would reach with its workers at the raw loop's cost per verify (one window each, so the VM's drift between a round and its raw runs does not move it)`)
    console.log(`page faults         ${ing.faultsPerRecord.toFixed(2)} per record (pages first touched, all threads), at ${ing.faultCostUs.toFixed(1)} µs each on this machine: ~${(ing.faultsPerRecord * ing.faultCostUs).toFixed(1)} µs of the CPU per record`)
    console.log(`beside the gateway  it kept ${ing.gatewayCores.toFixed(2)} of ${cores} cores busy; ${Object.entries(ing.besideCores).map(([n, c]) => `${n === 'node' ? 'publisher' : n} ${c.toFixed(2)}`).join(', ')} cores during the ingest; ${ing.acks} acks`)
    console.log(`ack latency         median ${f(result.ackLatency.medianMs)} ms, p99 ${f(result.ackLatency.p99Ms)} ms (${samples.length} one-record messages, fsync per write)`)
    console.log(`anchored end to end ${f(result.anchoring.anchoredPerSec)} records/s (${total} records per round, median of the rounds, batches of ${BATCH_RECORDS}, anvil automine)`)
    console.log(JSON.stringify({ gateway: result }))
    return result
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => {})
    await chain.stop()
    await broker.close()
    await rm(dir, { recursive: true, force: true })
  }
}

if (isEntryPoint(import.meta.url)) {
  if (process.argv[2] === '--publisher') {
    runPublisher(process.argv[3] as string, Number(process.argv[4]), Number(process.argv[5])).catch(e => { console.error(e); process.exit(1) })
  } else {
    exitOnHelp(USAGE)
    main().catch(e => { console.error(e); process.exit(1) })
  }
}
