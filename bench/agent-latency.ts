/**
 * The latency part of the agent bench (issue 11): wrapped runs against bare session.run in the
 * same worker arrangement, the added part against its floor (SHA-256 of the tensor bytes at this
 * machine's speed + one fdatasync), and the event loop during inference beside its baselines.
 */
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { open } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay, performance, PerformanceObserver } from 'node:perf_hooks'
import ort from 'onnxruntime-node'
import { ProvenanceAgent, type AgentOptions, type ProvenanceModel } from '../agent/session/index.js'
import { CaptureRing } from '../agent/capture/index.js'
import { DEFAULT_CAPTURE_MAX_BYTES, DEFAULT_CAPTURE_MAX_ENTRIES } from '../agent/daemon/index.js'
import { makeTextLikeImage, paddleOcrModelPaths } from '../agent/input/index.js'
import { fmt, fmtSpread, processCpuMs, spread, time, type Spread } from './measure.js'
import type { ChildFigures, ChildLoopFigures } from './latency-child.js'
import { isEntryPoint } from '../common/entry-point.js'

/** Rounds: each runs one block of every kind, in rotating order (`--rounds`). */
export const DEFAULT_LATENCY_ROUNDS = 16
/** Runs per watched block (`--runs`). */
export const DEFAULT_LATENCY_BLOCK_RUNS = 8
/** Alternating bare/wrapped pairs per round (`--pairs`). */
export const DEFAULT_LATENCY_PAIRS = 8
/** inferenceNiceness of the third agent's model worker. */
const LATENCY_NICENESS = 10
/** Floor samples per round (SHA-256 of the tensor bytes; fdatasync of one small write). */
const FLOOR_SAMPLES = 5

/** How the latency part runs (command line: --rounds, --runs, --intra-op). */
export interface LatencyOptions {
  rounds: number
  runsPerBlock: number
  /** Alternating pairs per round: a bare run and a wrapped run back to back, order flipped each pair. */
  pairsPerRound: number
  /**
   * intraOpNumThreads of the measured arrangement. Default: cores − 1 (at least 1), the target's
   * "a core free for hashing". The same runs with onnxruntime's default pool (every core) are
   * measured beside it, in the same rounds.
   */
  intraOpThreads: number
}

export function defaultLatencyOptions (): LatencyOptions {
  return { rounds: DEFAULT_LATENCY_ROUNDS, runsPerBlock: DEFAULT_LATENCY_BLOCK_RUNS, pairsPerRound: DEFAULT_LATENCY_PAIRS, intraOpThreads: Math.max(1, availableParallelism() - 1) }
}

/** The event loop over the blocks of one kind. */
export interface LoopFigures {
  /** Longest stall over all blocks, ms (monitorEventLoopDelay, resolution 1 ms). */
  maxMs: number
  /** Each block's longest stall. */
  blockMaxMs: Spread
  /** Each block's p99 delay. */
  p99Ms: Spread
  /** Longest single GC pause on this thread during these blocks (PerformanceObserver 'gc'), ms, and its kind. */
  gcMaxMs: number
  gcMaxKind: string
  /** Event-loop busy time (ELU active) per run, ms, median of the blocks. */
  busyMsPerRun: number
  /** The main thread's time on a CPU / waiting on a run queue (Linux schedstat), ms per run, median of the blocks. */
  onCpuMsPerRun: number
  runqueueMsPerRun: number
}

/** Latency of one kind of run: every run's wall ms, and process CPU per run (all threads). */
export interface RunFigures {
  wallMs: Spread
  cpuMsPerRun: Spread
  loop: LoopFigures
}

export interface LatencyFigures {
  model: string
  /** The arrangement measured: onnxruntime threads in each model worker, on how many cores. */
  arrangement: { cores: number, intraOpThreads: number }
  /** How the runs were watched: blocks of consecutive runs, kinds in rotating order. */
  blocks: string
  bare: RunFigures
  wrapped: RunFigures
  /**
   * The headline: alternating pairs (a bare and a wrapped run back to back, order flipped each
   * pair, `pairsPerRound` per round), each pair's wrapped − bare, ms: the machine drifts little in
   * 50 ms, so this is the least noisy estimate. Quartiles over every pair.
   */
  alternating: {
    pairs: number
    addedMs: Quartiles
    /** The same split by order: the wrapped run first, or the bare one first. */
    addedMsByOrder: { wrappedFirst: Quartiles, bareFirst: Quartiles }
    /** Process CPU (every thread) of the wrapped run − the bare one, ms. */
    addedCpuMs: Quartiles
    /**
     * The synchronous part of each wrapped run() (check, snapshot copy, post): the longest step of
     * a run on the main thread, the hash slices after it being ≈ 0.15 ms each. Quartiles and max, ms.
     */
    runSyncMs: Quartiles & { max: number }
    /** Each pair's floor: the round's SHA part + an fdatasync timed right after the pair. */
    floorMs: Quartiles
    /** Median added ÷ median of the pairs' floors. Target <= 1.2. */
    addedToFloor: number
    /** Each pair's added ÷ its own floor. */
    addedToFloorByPair: Quartiles
    /** Median added CPU ÷ the floor's SHA part. */
    addedCpuToShaFloor: number
  }
  /**
   * What the daemon's default capture ring (16 runs, 32 MiB) adds to a wrapped run: pairs of the
   * same agent's run() with the ring watching and without, order flipped each pair,
   * `pairsPerRound` per round; each pair's captured − plain, ms.
   */
  capture: { pairs: number, addedMs: Quartiles, addedCpuMs: Quartiles }
  /**
   * Per round: median wrapped run − median bare run of that round's blocks, ms: a paired
   * difference, so the drift of the machine between rounds cancels.
   */
  addedMs: Spread
  /** Median of every wrapped run − median of every bare run, ms: pooled over the rounds, unpaired. */
  addedPooledMs: number
  /** Per round: added process CPU per run (wrapped − bare), ms. */
  addedCpuMs: Spread
  /** The floor, per round: its parts measured in that round. */
  floor: {
    /** Input and output bytes of one run. */
    inputBytes: number
    outputBytes: number
    /** SHA-256 speed here, MB/s (10^6 bytes), on those bytes. */
    shaMBps: Spread
    shaInputMs: Spread
    shaOutputMs: Spread
    /** fdatasync of a small write to a file in the state directory's file system. */
    fdatasyncMs: Spread
    totalMs: Spread
  }
  /** Per round: added ÷ floor. Target <= 1.2. */
  addedToFloor: Spread
  /** Per round: added CPU ÷ the floor's SHA part (an fdatasync costs waiting, hardly CPU). */
  addedCpuToShaFloor: Spread
  /** Idle waits as long as a block: the machine's own share (scheduler, other processes). */
  idle: LoopFigures
  /** The same runs with onnxruntime's default intra-op pool (every core), in the same rounds. */
  allCores: { bare: RunFigures, wrapped: RunFigures, addedMs: Spread }
  /** Wrapped runs whose model worker runs at `niceness` (AgentOptions.inferenceNiceness), same arrangement. */
  nice: { niceness: number } & RunFigures
  /** One block with onnxruntime on the main thread (the arrangement before issue 11). */
  inProcess: { wallMs: Spread, loop: LoopFigures }
  /**
   * The event loop in a fresh process running compiled code (bench/latency-child.ts): the agent as
   * the daemon runs it (Daemon.start, generic-x86_64 profile threads) against bare runs in a worker
   * of the same process and idle waits; a 1 ms timer's lateness, GC pauses beside it. The figures
   * above come from this bench's own process (tsx, a heap grown by the other parts).
   */
  freshProcess?: ChildFigures
}

/** First quartile, median and third quartile of a sample. */
export interface Quartiles { p25: number, median: number, p75: number }

function quartiles (xs: readonly number[]): Quartiles {
  const s = [...xs].sort((a, b) => a - b)
  const at = (q: number): number => {
    if (s.length === 0) return NaN
    const i = (s.length - 1) * q
    const lo = Math.floor(i)
    return (s[lo] as number) + ((s[Math.ceil(i)] as number) - (s[lo] as number)) * (i - lo)
  }
  return { p25: at(0.25), median: at(0.5), p75: at(0.75) }
}

/** What one watched block gave. */
interface Block { runsMs: number[], cpuMsPerRun: number, busyMsPerRun: number, onCpuMsPerRun: number, runqueueMsPerRun: number, loopMaxMs: number, loopP99Ms: number, gcMax: { ms: number, kind: string } }

/**
 * This thread's time on a CPU and waiting on a run queue for one, ms (Linux schedstat): the first
 * is what the main thread computes, the second what the scheduler made it wait, whoever ran.
 */
function mainThreadSched (): { onCpuMs: number, runqueueMs: number } {
  try {
    const [onCpu, waiting] = readFileSync('/proc/thread-self/schedstat', 'utf8').trim().split(' ').map(Number)
    return { onCpuMs: (onCpu ?? NaN) / 1e6, runqueueMs: (waiting ?? NaN) / 1e6 }
  } catch {
    return { onCpuMs: NaN, runqueueMs: NaN }
  }
}

/** GC pauses of this thread as they happen: a block takes the ones inside its own time span. */
const gcPauses: Array<{ at: number, ms: number, kind: string }> = []
const GC_KINDS: Record<number, string> = { 1: 'minor', 4: 'major', 8: 'incremental', 16: 'weak callbacks' }
const gcObserver = new PerformanceObserver(list => {
  for (const e of list.getEntries()) gcPauses.push({ at: e.startTime, ms: e.duration, kind: GC_KINDS[((e as { detail?: { kind?: number } }).detail?.kind) ?? 0] ?? 'other' })
  if (gcPauses.length > 10_000) gcPauses.splice(0, gcPauses.length - 10_000)
})

/**
 * Runs `work` under a fresh event-loop delay histogram kept enabled for the whole block. A
 * histogram enabled and disabled around single runs records the gap between its last tick and
 * its re-enabling as one delay (the bare runs between, counted as a stall); a fresh one counts
 * from its first tick, and one tick is let pass and reset away so no sample starts before the block.
 */
async function watchBlock (runs: number, work: () => Promise<number[]>): Promise<Block> {
  const histogram = monitorEventLoopDelay({ resolution: 1 })
  histogram.enable()
  await new Promise(resolve => setTimeout(resolve, 5))
  histogram.reset()
  const t0 = performance.now()
  const elu = performance.eventLoopUtilization()
  const c0 = processCpuMs()
  const s0 = mainThreadSched()
  const runsMs = await work()
  const s1 = mainThreadSched()
  const cpuMs = processCpuMs() - c0
  const busyMs = performance.eventLoopUtilization(elu).active
  histogram.disable()
  // GC entries are delivered asynchronously: let the observer catch up before reading them.
  await new Promise(resolve => setImmediate(resolve))
  const t1 = performance.now()
  const gcMax = gcPauses.filter(g => g.at >= t0 && g.at <= t1).reduce((m, g) => g.ms > m.ms ? g : m, { ms: 0, kind: 'none' })
  return {
    runsMs,
    cpuMsPerRun: cpuMs / runs,
    busyMsPerRun: busyMs / runs,
    onCpuMsPerRun: (s1.onCpuMs - s0.onCpuMs) / runs,
    runqueueMsPerRun: (s1.runqueueMs - s0.runqueueMs) / runs,
    loopMaxMs: histogram.max / 1e6,
    loopP99Ms: histogram.percentile(99) / 1e6,
    gcMax: { ms: gcMax.ms, kind: gcMax.kind }
  }
}

async function timedRuns (runs: number, once: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = []
  for (let i = 0; i < runs; i++) out.push((await time(once)).wallMs)
  return out
}

function loopFigures (blocks: readonly Block[]): LoopFigures {
  const longestGc = blocks.reduce((m, b) => b.gcMax.ms > m.ms ? b.gcMax : m, { ms: 0, kind: 'none' })
  return {
    maxMs: Math.max(...blocks.map(b => b.loopMaxMs)),
    blockMaxMs: spread(blocks.map(b => b.loopMaxMs)),
    p99Ms: spread(blocks.map(b => b.loopP99Ms)),
    gcMaxMs: longestGc.ms,
    gcMaxKind: longestGc.kind,
    busyMsPerRun: spread(blocks.map(b => b.busyMsPerRun)).median,
    onCpuMsPerRun: spread(blocks.map(b => b.onCpuMsPerRun)).median,
    runqueueMsPerRun: spread(blocks.map(b => b.runqueueMsPerRun)).median
  }
}

function runFigures (blocks: readonly Block[]): RunFigures {
  return { wallMs: spread(blocks.flatMap(b => b.runsMs)), cpuMsPerRun: spread(blocks.map(b => b.cpuMsPerRun)), loop: loopFigures(blocks) }
}

/** Per round: median of `a`'s block − median of `b`'s. */
function pairedAdded (a: readonly Block[], b: readonly Block[]): Spread {
  return spread(a.map((x, i) => spread(x.runsMs).median - spread((b[i] as Block).runsMs).median))
}

/** One pair of measures, `a`'s first or `b`'s first; resolves to [a's, b's] either way. */
async function pairInOrder<T> (aFirst: boolean, a: () => Promise<T>, b: () => Promise<T>): Promise<[T, T]> {
  if (aFirst) {
    const x = await a()
    return [x, await b()]
  }
  const y = await b()
  return [await a(), y]
}

/** One fdatasync of a 256-byte write, ms, `samples` times. */
async function fdatasyncSamples (dir: string, samples: number): Promise<number[]> {
  const handle = await open(join(dir, 'sync-probe'), 'a')
  try {
    const out: number[] = []
    for (let i = 0; i < samples; i++) {
      await handle.write(randomBytes(256))
      out.push((await time(async () => { await handle.datasync() })).wallMs)
    }
    return out
  } finally {
    await handle.close()
  }
}

/** SHA-256 MB/s on `bytes`, median of `samples` hashes of it. */
function shaMBps (view: ArrayBufferView, samples: number): number {
  const bytes = new Uint8Array(view.buffer, view.byteOffset, view.byteLength)
  const times: number[] = []
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now()
    createHash('sha256').update(bytes).digest()
    times.push(performance.now() - t0)
  }
  return bytes.byteLength / 1e3 / spread(times).median
}

interface Loaded { agent: ProvenanceAgent, model: ProvenanceModel }

async function startAgent (dir: string, name: string, intraOpNumThreads: number | undefined, inferenceNiceness?: number, watchRun?: AgentOptions['watchRun']): Promise<Loaded> {
  const agent = await ProvenanceAgent.start({
    stateDir: join(dir, name),
    deviceId: 'bench-device',
    syncWrites: true,
    ...(watchRun !== undefined ? { watchRun } : {}),
    ...(intraOpNumThreads !== undefined ? { intraOpNumThreads } : {}),
    ...(inferenceNiceness !== undefined ? { inferenceNiceness } : {})
  })
  const model = await agent.loadModel(paddleOcrModelPaths().detection, { name: 'ppocr-det' })
  return { agent, model }
}

/**
 * Runs the compiled event-loop child (`rounds` rounds of `runs` runs per kind) and returns its
 * figures. `flags`: V8 flags for its node (as a systemd unit would pass them).
 */
export async function runLatencyChild (child: string, rounds: number, runs: number, flags: readonly string[] = []): Promise<ChildFigures> {
  return await new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...flags, child, String(rounds), String(runs)], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    p.stdout.on('data', (d: Buffer) => { out += d.toString() })
    p.stderr.on('data', (d: Buffer) => { err += d.toString() })
    p.on('error', reject)
    p.on('close', (code) => {
      const line = out.trim().split('\n').reverse().find(l => l.startsWith('{"execArgv"'))
      if (code !== 0 || line === undefined) reject(new Error(`latency child failed (${code ?? 'signal'}): ${err.slice(-2000)}`))
      else resolve(JSON.parse(line) as ChildFigures)
    })
  })
}

/**
 * `compiledChild`: gives the path of the compiled event-loop child (bench/agent.ts builds it);
 * called only after the in-process part, so that what it loads (the TypeScript compiler) does not
 * weigh on the heap measured here.
 */
export async function benchLatency (dir: string, options: LatencyOptions = defaultLatencyOptions(), compiledChild?: () => Promise<string>): Promise<LatencyFigures> {
  const { rounds, runsPerBlock: runs, pairsPerRound, intraOpThreads } = options
  gcObserver.observe({ entryTypes: ['gc'] })
  // Three agents with the same model: the measured arrangement, onnxruntime's default pool, and
  // the measured arrangement with a nice model worker. Idle agents cost nothing: a model worker
  // sleeps between runs (with one intra-op thread onnxruntime has no pool to spin).
  // The measured agent's runs are watched by a capture ring as the daemon's are, only while
  // `capturing` is set (the capture pairs).
  const ring = new CaptureRing({ stateDir: join(dir, 'latency'), deviceId: 'bench-device', maxEntries: DEFAULT_CAPTURE_MAX_ENTRIES, maxBytes: DEFAULT_CAPTURE_MAX_BYTES })
  let capturing = false
  const main = await startAgent(dir, 'latency', intraOpThreads, undefined, (inputs, hold) => capturing ? ring.watch(inputs, hold) : undefined)
  const all = await startAgent(dir, 'latency-all-cores', undefined)
  const nice = await startAgent(dir, 'latency-nice', intraOpThreads, LATENCY_NICENESS)
  const input = main.model.inputNames[0] as string
  const image = makeTextLikeImage({ width: 320, height: 320, seed: 1 }).data
  const feeds = { [input]: new ort.Tensor('float32', image, [1, 3, 320, 320]) }
  let outputBytes = 0
  let warmMs = 0
  for (const { model } of [main, all, nice]) {
    for (let i = 0; i < 3; i++) {
      await model.loaded.session.run(feeds)
      const t0 = performance.now()
      const { outputs } = await model.run(feeds)
      warmMs = Math.max(warmMs, performance.now() - t0)
      outputBytes = Object.values(outputs).reduce((n, t) => n + (t.data as Float32Array).byteLength, 0)
    }
  }
  const watchRuns = async (once: () => Promise<unknown>): Promise<Block> => await watchBlock(runs, async () => await timedRuns(runs, once))
  // Blocks of consecutive runs, each under one histogram; kinds rotate so that drift in the
  // machine's load falls on all of them alike. The idle block waits as long as a block of runs.
  const kinds = {
    bare: async () => await watchRuns(async () => await main.model.loaded.session.run(feeds)),
    wrapped: async () => await watchRuns(async () => await main.model.run(feeds)),
    bareAllCores: async () => await watchRuns(async () => await all.model.loaded.session.run(feeds)),
    wrappedAllCores: async () => await watchRuns(async () => await all.model.run(feeds)),
    wrappedNice: async () => await watchRuns(async () => await nice.model.run(feeds)),
    idle: async () => await watchBlock(runs, async () => { await new Promise(resolve => setTimeout(resolve, runs * warmMs)); return [] })
  }
  const names = Object.keys(kinds) as Array<keyof typeof kinds>
  const blocks = Object.fromEntries(names.map(n => [n, [] as Block[]])) as Record<keyof typeof kinds, Block[]>
  const inputBytes = image.byteLength
  const outputSample = randomBytes(outputBytes)
  const floor = { shaMBps: [] as number[], shaInputMs: [] as number[], shaOutputMs: [] as number[], fdatasyncMs: [] as number[], totalMs: [] as number[] }
  const pairs = { wallMs: [] as number[], cpuMs: [] as number[], floorMs: [] as number[], syncMs: [] as number[], wrappedFirstMs: [] as number[], bareFirstMs: [] as number[] }
  const capturePairs = { wallMs: [] as number[], cpuMs: [] as number[] }
  const captured = async (): Promise<{ wallMs: number, cpuMs: number }> => {
    capturing = true
    try {
      return await time(async () => await main.model.run(feeds))
    } finally {
      capturing = false
    }
  }
  for (let r = 0; r < rounds; r++) {
    // The floor's SHA part in this round: SHA-256 at this machine's speed on the same byte counts
    // (input and output hashed as the agent does, one stream each).
    const mbps = spread([shaMBps(image, FLOOR_SAMPLES), shaMBps(outputSample, FLOOR_SAMPLES)]).median
    const shaMs = (inputBytes + outputBytes) / 1e3 / mbps
    for (let k = 0; k < names.length; k++) {
      const name = names[(r + k) % names.length] as keyof typeof kinds
      blocks[name].push(await kinds[name]())
    }
    for (let p = 0; p < pairsPerRound; p++) {
      const wrappedFirst = (r * pairsPerRound + p) % 2 === 0
      const [wrapped, bare] = await pairInOrder(wrappedFirst, async () => await time(async () => {
        const s0 = performance.now()
        const pending = main.model.run(feeds)
        pairs.syncMs.push(performance.now() - s0)
        await pending
      }), async () => await time(async () => await main.model.loaded.session.run(feeds)))
      pairs.wallMs.push(wrapped.wallMs - bare.wallMs)
      ;(wrappedFirst ? pairs.wrappedFirstMs : pairs.bareFirstMs).push(wrapped.wallMs - bare.wallMs)
      pairs.cpuMs.push(wrapped.cpuMs - bare.cpuMs)
      // This pair's own fdatasync: the disk is shared, and a sync waits for whatever else the
      // file system must commit at that moment (other processes' writes among it).
      const pairSync = (await fdatasyncSamples(dir, 1))[0] as number
      pairs.floorMs.push(shaMs + pairSync)
    }
    for (let p = 0; p < pairsPerRound; p++) {
      const [withRing, plain] = await pairInOrder((r * pairsPerRound + p) % 2 === 0, captured, async () => await time(async () => await main.model.run(feeds)))
      capturePairs.wallMs.push(withRing.wallMs - plain.wallMs)
      capturePairs.cpuMs.push(withRing.cpuMs - plain.cpuMs)
    }
    // The fdatasync part in the same round, apart from the pairs.
    const sync = spread(await fdatasyncSamples(dir, FLOOR_SAMPLES)).median
    floor.shaMBps.push(mbps)
    floor.shaInputMs.push(inputBytes / 1e3 / mbps)
    floor.shaOutputMs.push(outputBytes / 1e3 / mbps)
    floor.fdatasyncMs.push(sync)
    floor.totalMs.push(shaMs + sync)
  }
  for (const a of [main, all, nice]) await a.agent.stop()

  // The arrangement before issue 11, for comparison: onnxruntime on this thread.
  const inProcess = await ort.InferenceSession.create(paddleOcrModelPaths().detection, { intraOpNumThreads: intraOpThreads })
  await inProcess.run(feeds)
  const before = await watchRuns(async () => await inProcess.run(feeds))
  await inProcess.release()
  gcObserver.disconnect()
  const freshProcess = compiledChild === undefined ? undefined : await runLatencyChild(await compiledChild(), rounds, runs * 2)

  const added = blocks.wrapped.map((b, i) => spread(b.runsMs).median - spread((blocks.bare[i] as Block).runsMs).median)
  const addedCpu = blocks.wrapped.map((b, i) => b.cpuMsPerRun - (blocks.bare[i] as Block).cpuMsPerRun)
  return {
    model: 'ch_PP-OCRv4_det_infer.onnx, 1×3×320×320',
    arrangement: { cores: availableParallelism(), intraOpThreads },
    blocks: `${rounds} rounds × ${runs} runs per kind + ${pairsPerRound} alternating pairs`,
    bare: runFigures(blocks.bare),
    wrapped: runFigures(blocks.wrapped),
    addedMs: spread(added),
    alternating: {
      pairs: pairs.wallMs.length,
      addedMs: quartiles(pairs.wallMs),
      addedMsByOrder: { wrappedFirst: quartiles(pairs.wrappedFirstMs), bareFirst: quartiles(pairs.bareFirstMs) },
      addedCpuMs: quartiles(pairs.cpuMs),
      runSyncMs: { ...quartiles(pairs.syncMs), max: Math.max(...pairs.syncMs) },
      floorMs: quartiles(pairs.floorMs),
      addedToFloor: quartiles(pairs.wallMs).median / quartiles(pairs.floorMs).median,
      addedToFloorByPair: quartiles(pairs.wallMs.map((a, i) => a / (pairs.floorMs[i] as number))),
      addedCpuToShaFloor: quartiles(pairs.cpuMs).median / spread(floor.shaInputMs.map((x, i) => x + (floor.shaOutputMs[i] as number))).median
    },
    capture: { pairs: capturePairs.wallMs.length, addedMs: quartiles(capturePairs.wallMs), addedCpuMs: quartiles(capturePairs.cpuMs) },
    addedPooledMs: spread(blocks.wrapped.flatMap(b => b.runsMs)).median - spread(blocks.bare.flatMap(b => b.runsMs)).median,
    addedCpuMs: spread(addedCpu),
    floor: {
      inputBytes,
      outputBytes,
      shaMBps: spread(floor.shaMBps),
      shaInputMs: spread(floor.shaInputMs),
      shaOutputMs: spread(floor.shaOutputMs),
      fdatasyncMs: spread(floor.fdatasyncMs),
      totalMs: spread(floor.totalMs)
    },
    addedToFloor: spread(added.map((a, i) => a / (floor.totalMs[i] as number))),
    addedCpuToShaFloor: spread(addedCpu.map((a, i) => a / ((floor.shaInputMs[i] as number) + (floor.shaOutputMs[i] as number)))),
    idle: loopFigures(blocks.idle),
    allCores: { bare: runFigures(blocks.bareAllCores), wrapped: runFigures(blocks.wrappedAllCores), addedMs: pairedAdded(blocks.wrappedAllCores, blocks.bareAllCores) },
    nice: { niceness: LATENCY_NICENESS, ...runFigures(blocks.wrappedNice) },
    inProcess: { wallMs: spread(before.runsMs), loop: loopFigures([before]) },
    ...(freshProcess !== undefined ? { freshProcess } : {})
  }
}

function childCell (l: ChildLoopFigures): string {
  const gcs = Object.entries(l.gcCounts).map(([k, n]) => `${n} ${k}`).join(', ')
  const sp = l.stallMaxSplit
  const own = `; its interval: loop running ${fmt(sp.runningMs)}, in its poll ${fmt(sp.pollMs)}, main thread waiting for a CPU ${fmt(sp.runqueueMs)}, VM steal ${fmt(sp.stealMs, 0)}; **our work within one stall at most ${fmt(l.ownBlockMaxMs)}** (running less the wait that cannot have been in the poll), ${fmt(l.ownBlockNoGcMaxMs)} without a GC, ${fmt(l.ownBlockQuietMaxMs)} without a GC or steal`
  return `${fmt(l.stallMaxMs)} (per block median ${fmt(spread(l.blockStallMs).median)}; without a GC in it ${fmt(l.stallNoGcMaxMs)}${own}; longest GC ${fmt(l.gcMaxMs)} ${l.gcMaxKind}; GCs ${gcs === '' ? 'none' : gcs} in ${l.runs} runs; majors per 256 runs ${fmt(l.majorsPer256Runs)})`
}

function loopCell (l: LoopFigures): string {
  return `${fmt(l.maxMs)} (per block ${fmtSpread(l.blockMaxMs)}; p99 ${fmtSpread(l.p99Ms)}; longest GC ${fmt(l.gcMaxMs)} ${l.gcMaxKind})`
}

/** The latency rows of the agent bench's table. */
export function printLatency (l: LatencyFigures): void {
  const f = l.floor
  const arr = `${l.arrangement.intraOpThreads} intra-op thread(s) on ${l.arrangement.cores} cores`
  const al = l.alternating
  const q = (x: Quartiles): string => `${fmt(x.median)} (p25 ${fmt(x.p25)}, p75 ${fmt(x.p75)})`
  console.log(`| inference latency, added per run, ${l.model}, ${arr}: ${al.pairs} alternating pairs (bare session.run and wrapped run() back to back, same worker) | added ${q(al.addedMs)} ms; wrapped first ${q(al.addedMsByOrder.wrappedFirst)}, bare first ${q(al.addedMsByOrder.bareFirst)} | floor per pair ${q(al.floorMs)} ms (parts below) | ${fmt(al.addedToFloor)} (per pair ${q(al.addedToFloorByPair)}) | added CPU ${q(al.addedCpuMs)} ms ÷ SHA ${fmt(f.shaInputMs.median + f.shaOutputMs.median)} = ${fmt(al.addedCpuToShaFloor)} | ≤ 1.2 |`)
  console.log(`| … with the daemon's capture ring (${l.capture.pairs} alternating pairs of the same run() with the ring watching and without) | added ${q(l.capture.addedMs)} ms to a wrapped run | | | added CPU ${q(l.capture.addedCpuMs)} ms | |`)
  console.log(`| the synchronous part of each wrapped run() (check, snapshot copy, post), ms | ${q(al.runSyncMs)}, max ${fmt(al.runSyncMs.max)} | | | | ≈ 1 |`)
  console.log(`| inference latency ms, blocks: ${l.blocks} | ${fmtSpread(l.wrapped.wallMs)} | bare session.run, same worker ${fmtSpread(l.bare.wallMs)} | added per round ${fmtSpread(l.addedMs)} ms ÷ floor ${fmtSpread(f.totalMs)} ms = ${fmtSpread(l.addedToFloor)} (pooled: ${fmt(l.addedPooledMs)} ÷ ${fmt(f.totalMs.median)} = ${fmt(l.addedPooledMs / f.totalMs.median)}) | CPU per run ${fmt(l.wrapped.cpuMsPerRun.median)} vs ${fmt(l.bare.cpuMsPerRun.median)}: added ${fmtSpread(l.addedCpuMs)} ÷ SHA = ${fmtSpread(l.addedCpuToShaFloor)} | ≤ 1.2 |`)
  console.log(`| … the floor: SHA-256 at ${fmt(f.shaMBps.median, 0)} MB/s of input ${f.inputBytes} B (${fmt(f.shaInputMs.median)} ms) + output ${f.outputBytes} B (${fmt(f.shaOutputMs.median)} ms) + fdatasync ${fmtSpread(f.fdatasyncMs)} ms | | | | | |`)
  console.log(`| event loop, longest stall during inference, ms (this part's compiled process: the agent and this bench; monitorEventLoopDelay) | ${loopCell(l.wrapped.loop)} | bare runs ${loopCell(l.bare.loop)}; idle wait ${loopCell(l.idle)}; run on the main thread ${fmt(l.inProcess.loop.maxMs)} | | | ≤ 5 |`)
  console.log(`| main thread per inference, ms: busy (ELU) / on a CPU / waiting for one (schedstat) | ${fmt(l.wrapped.loop.busyMsPerRun)} / ${fmt(l.wrapped.loop.onCpuMsPerRun)} / ${fmt(l.wrapped.loop.runqueueMsPerRun)} | bare run ${fmt(l.bare.loop.busyMsPerRun)} / ${fmt(l.bare.loop.onCpuMsPerRun)} / ${fmt(l.bare.loop.runqueueMsPerRun)}; run on the main thread ${fmt(l.inProcess.loop.busyMsPerRun)} | | | |`)
  const a = l.allCores
  console.log(`| the same with onnxruntime's default pool (every core) | latency ${fmtSpread(a.wrapped.wallMs)}, bare ${fmtSpread(a.bare.wallMs)}, added per round ${fmtSpread(a.addedMs)} ms; CPU per run ${fmt(a.wrapped.cpuMsPerRun.median)} vs ${fmt(a.bare.cpuMsPerRun.median)}; longest stall ${loopCell(a.wrapped.loop)}, bare ${loopCell(a.bare.loop)}; main thread waiting ${fmt(a.wrapped.loop.runqueueMsPerRun)} ms per run | the rows above | | | |`)
  const n = l.nice
  console.log(`| the same arrangement, model worker at nice ${n.niceness} (inferenceNiceness) | latency ${fmtSpread(n.wallMs)}; longest stall ${loopCell(n.loop)}; main thread on a CPU / waiting ${fmt(n.loop.onCpuMsPerRun)} / ${fmt(n.loop.runqueueMsPerRun)} ms per run | the wrapped runs above | | | ≤ 5 |`)
  const c = l.freshProcess
  if (c !== undefined) {
    console.log(`| event loop, fresh compiled process, agent as the daemon runs it, outputs ${c.outputs === 'lend' ? 'lent and released (as the API answers)' : c.outputs} (${c.rounds} rounds × ${c.runsPerBlock} runs per kind; lateness of a 1 ms timer, ms${c.execArgv.length > 0 ? `; node ${c.execArgv.join(' ')}` : ''}) | ${childCell(c.wrapped)} | bare runs ${childCell(c.bare)}; idle waits ${childCell(c.idle)} | heap ${fmt(c.heapUsedMiB)} MiB, longest major GC ${fmt(c.majorMsPerHeapMiB)} ms per MiB | | ≤ 5 |`)
  }
}

/**
 * Run as a process of its own: bench/agent.ts compiles this file (and measure.ts) beside dist/ and
 * starts it with the service unit's environment, so that the runs measured are compiled code in a
 * heap that holds the agent and this bench only, as a device runs the agent. Under tsx in the
 * bench's process they also paid tsx's per-call helpers and the GCs of a heap grown by the other
 * parts: added ÷ floor 1.17-1.58 (median 1.32) against 0.94-1.27 (median 1.22) compiled, five
 * fresh processes of each alternated (2026-12-03, Xeon VM, quiet).
 * Prints the figures as one JSON line.
 * Usage: node dist/bench/agent-latency.js <dir> <LatencyOptions as JSON> [<compiled event-loop child>]
 */
if (isEntryPoint(import.meta.url)) {
  const [dir, options, eventLoopChild] = process.argv.slice(2)
  if (dir === undefined || options === undefined) throw new Error('usage: agent-latency.js <dir> <options JSON> [<event-loop child>]')
  const figures = await benchLatency(dir, JSON.parse(options) as LatencyOptions, eventLoopChild === undefined ? undefined : () => Promise.resolve(eventLoopChild))
  console.log(JSON.stringify(figures))
  // The agents' workers are stopped by benchLatency; nothing else keeps this process.
}
