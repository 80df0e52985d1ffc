/**
 * A fresh process for the event-loop part of the latency bench, run compiled (bench/agent.ts
 * transpiles it beside dist/, as the memory child): the agent as the daemon runs it (Daemon.start
 * with the generic-x86_64 profile's threads, runs called in this process), against bare runs of
 * the same model in a worker of its own (same threads) and idle waits, in rotating blocks. A 1 ms
 * interval timer measures how late each tick comes (the event loop's stalls); the GC pauses of
 * this thread (PerformanceObserver 'gc') are matched against them. Each tick also reads the loop's
 * utilization (`eventLoopUtilization`: wall time outside its poll for events, exact) and the main
 * thread's time waiting for a CPU (Linux schedstat's run_delay, exact once the thread runs), so a
 * stall splits into time the loop was running (our callbacks and GC pauses, and any preemption
 * meanwhile) and time it sat in its poll although the timer was due (a late wake-up: the VM or the
 * run queue), beside the time the hypervisor took from this VM's vCPUs then (/proc/stat steal,
 * all vCPUs, in 10 ms units). schedstat's time on a CPU is not used: the kernel updates it at
 * scheduler ticks (4 ms at HZ=250), too coarse for 1 ms intervals. Prints one JSON line.
 * Usage: node [v8 flags] dist/bench/latency-child.js [rounds] [runs per block] [outputs]
 * `outputs` says what the daemon runs do with their outputs: `lend` (default: lent and released
 * once the run resolved, as the API answers), `keep` (given, then dropped for the GC, as a library
 * caller that keeps them), `detach` (given, then freed at once by transfer to a sink, as the API
 * did before lending).
 */
import { openSync, readSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay, performance, PerformanceObserver } from 'node:perf_hooks'
import { getHeapStatistics } from 'node:v8'
import ort from 'onnxruntime-node'
import { Daemon } from '../agent/daemon/index.js'
import { releaseBytes } from '../common/release-bytes.js'
import { profileThreadOptions, resolveProfile } from '../agent/profile/index.js'
import { makeTextLikeImage, paddleOcrModelPaths } from '../agent/input/index.js'
import { loadModelInWorker } from '../agent/session/index.js'

/** The profile the child follows (the memory child's). */
export const LATENCY_CHILD_PROFILE = 'generic-x86_64'
const TICK_MS = 1
const WARM_RUNS = 20

/** One kind's figures over its blocks. */
export interface ChildLoopFigures {
  /** Longest lateness of a 1 ms tick, ms, over all blocks; and each block's longest (sorted). */
  stallMaxMs: number
  blockStallMs: number[]
  /** Longest lateness of a tick during which no GC pause of this thread happened. */
  stallNoGcMaxMs: number
  /** The longest stall, split (see StallSplit), ms. */
  stallMaxSplit: StallSplit
  /**
   * The most our own work can have held the loop within one stall: the time the loop was running
   * less the wait for a CPU that cannot have fallen in its poll (run_delay beyond the poll time),
   * at most the stall; and the same among stalls without a GC pause of this thread, ms. An upper
   * bound: the wait that may have fallen in the poll is counted as ours.
   */
  ownBlockMaxMs: number
  ownBlockNoGcMaxMs: number
  /** The same among stalls with neither a GC pause nor a unit of steal in their interval, ms. */
  ownBlockQuietMaxMs: number
  /** The stall in which that longest own block happened, split. */
  ownBlockMaxSplit: StallSplit
  /** monitorEventLoopDelay (resolution 1 ms) max over the blocks, ms. */
  histogramMaxMs: number
  /** Longest GC pause and its kind; GC counts by kind over the blocks; runs measured. */
  gcMaxMs: number
  gcMaxKind: string
  gcCounts: Record<string, number>
  runs: number
  /** Median run wall time, ms (NaN for idle). */
  runMs: number
  /** Median of the blocks' longest stalls, ms. */
  blockStallMedianMs: number
  /** Major GCs (mark-compact) per 256 runs (per 256 × the median run time for idle). */
  majorsPer256Runs: number
}

export interface ChildFigures {
  execArgv: string[]
  /** What the daemon runs did with their outputs (see the usage). */
  outputs: OutputMode
  rounds: number
  runsPerBlock: number
  wrapped: ChildLoopFigures
  bare: ChildLoopFigures
  idle: ChildLoopFigures
  /** V8 heap in use at the end of the blocks, MiB (median), and the longest major pause per MiB of it. */
  heapUsedMiB: number
  majorMsPerHeapMiB: number
}

export type OutputMode = 'lend' | 'keep' | 'detach'

/**
 * A stall's lateness and its interval (lateness + the 1 ms period) split, ms: the loop running
 * (ELU active), in its poll (the rest), and of all that, the main thread runnable but waiting
 * for a CPU (schedstat run_delay); and beside them the steal of all the VM's vCPUs over the
 * interval (/proc/stat, 10 ms units: 0 means less than one unit came in).
 */
export interface StallSplit { lateMs: number, runningMs: number, pollMs: number, runqueueMs: number, stealMs: number }

const GC_KINDS: Record<number, string> = { 1: 'minor', 4: 'major', 8: 'incremental', 16: 'weak callbacks' }

interface Block { ticks: number[], activeMs: number[], waitNs: number[], stealTicks: number[], gcs: Array<{ at: number, ms: number, kind: string }>, runsMs: number[], histMaxMs: number, heapUsed: number }

const gcs: Array<{ at: number, ms: number, kind: string }> = []
const observer = new PerformanceObserver(list => {
  for (const e of list.getEntries()) gcs.push({ at: e.startTime, ms: e.duration, kind: GC_KINDS[(e as { detail?: { kind?: number } }).detail?.kind ?? 0] ?? 'other' })
})

/**
 * A proc file read again and again by pread (no string, no allocation per read): `field(i)` is
 * the i-th space-separated decimal number of its first line (words count as fields too), NaN when
 * the file could not be opened (not Linux, a kernel without schedstats) or has no such field.
 */
class ProcFields {
  private readonly fd: number | undefined
  private readonly buf = Buffer.alloc(256)

  constructor (path: string) {
    try {
      this.fd = openSync(path, 'r')
    } catch {
      this.fd = undefined
    }
  }

  get available (): boolean { return this.fd !== undefined }

  field (index: number): number {
    if (this.fd === undefined) return NaN
    const n = readSync(this.fd, this.buf, 0, this.buf.length, 0)
    let field = 0
    let value = 0
    for (let i = 0; i < n; i++) {
      const c = this.buf[i] as number
      if (c === 32 || c === 10) {
        if (field === index) return value
        if (c === 10) break
        if (this.buf[i + 1] !== 32) { field++; value = 0 }
      } else value = value * 10 + c - 48
    }
    return field === index ? value : NaN
  }
}

// The main thread's schedstat (opened here, so /proc/thread-self is this thread):
// "<ns on a CPU> <ns runnable, waiting on a run queue> <timeslices>"; field 1.
const schedstat = new ProcFields('/proc/thread-self/schedstat')
// The VM's steal over all vCPUs in USER_HZ ticks: /proc/stat's first line "cpu  user nice system
// idle iowait irq softirq steal …", field 8.
const stat = new ProcFields('/proc/stat')
const USER_HZ_MS = 10

/** Runs `work` while a 1 ms interval timer records when each tick came, and the loop's and thread's figures then. */
async function watch (work: () => Promise<number[]>): Promise<Block> {
  const histogram = monitorEventLoopDelay({ resolution: 1 })
  const ticks: number[] = []
  const activeMs: number[] = []
  const waitNs: number[] = []
  const steal: number[] = []
  const tick = (): void => {
    ticks.push(performance.now())
    activeMs.push(performance.eventLoopUtilization().active)
    waitNs.push(schedstat.field(1))
    steal.push(stat.field(8))
  }
  const timer = setInterval(tick, TICK_MS)
  histogram.enable()
  await new Promise(resolve => setTimeout(resolve, 5))
  histogram.reset()
  ticks.length = 0
  activeMs.length = 0
  waitNs.length = 0
  steal.length = 0
  tick()
  const runsMs = await work()
  tick()
  clearInterval(timer)
  histogram.disable()
  await new Promise(resolve => setImmediate(resolve))
  const t0 = ticks[0] as number
  const t1 = ticks[ticks.length - 1] as number
  return { ticks, activeMs, waitNs, stealTicks: steal, gcs: gcs.filter(g => g.at >= t0 && g.at <= t1), runsMs, histMaxMs: histogram.max / 1e6, heapUsed: getHeapStatistics().used_heap_size }
}

function median (xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] as number : ((s[m - 1] as number) + (s[m] as number)) / 2
}

function figures (blocks: readonly Block[], runMsForIdle?: number): ChildLoopFigures {
  let stallMaxMs = 0
  let stallNoGcMaxMs = 0
  let stallMaxSplit: StallSplit = { lateMs: 0, runningMs: 0, pollMs: 0, runqueueMs: 0, stealMs: 0 }
  let ownBlockMaxMs = 0
  let ownBlockNoGcMaxMs = 0
  let ownBlockQuietMaxMs = 0
  let ownBlockMaxSplit: StallSplit = stallMaxSplit
  const blockStallMs: number[] = []
  const gcCounts: Record<string, number> = {}
  let gcMax = { ms: 0, kind: 'none' }
  for (const b of blocks) {
    let blockMax = 0
    for (let i = 1; i < b.ticks.length; i++) {
      const from = b.ticks[i - 1] as number
      const to = b.ticks[i] as number
      const late = Math.max(0, to - from - TICK_MS)
      blockMax = Math.max(blockMax, late)
      // Over the whole interval (the expected 1 ms included; the tick's own reads are in it too).
      const runningMs = (b.activeMs[i] as number) - (b.activeMs[i - 1] as number)
      const runqueueMs = ((b.waitNs[i] as number) - (b.waitNs[i - 1] as number)) / 1e6
      const stealMs = ((b.stealTicks[i] as number) - (b.stealTicks[i - 1] as number)) * USER_HZ_MS
      const split = { lateMs: late, runningMs, pollMs: Math.max(0, to - from - runningMs), runqueueMs, stealMs }
      // Without schedstat no wait is known to have been outside the poll: still an upper bound.
      const waitOutsidePoll = Number.isNaN(runqueueMs) ? 0 : Math.max(0, runqueueMs - split.pollMs)
      const own = Math.max(0, Math.min(late, runningMs - waitOutsidePoll))
      const noGc = !b.gcs.some(g => g.at < to && g.at + g.ms > from)
      if (noGc) stallNoGcMaxMs = Math.max(stallNoGcMaxMs, late)
      if (late > stallMaxMs) { stallMaxMs = late; stallMaxSplit = split }
      if (own > ownBlockMaxMs) { ownBlockMaxMs = own; ownBlockMaxSplit = split }
      if (noGc) ownBlockNoGcMaxMs = Math.max(ownBlockNoGcMaxMs, own)
      if (noGc && stealMs === 0) ownBlockQuietMaxMs = Math.max(ownBlockQuietMaxMs, own)
    }
    blockStallMs.push(blockMax)
    for (const g of b.gcs) {
      gcCounts[g.kind] = (gcCounts[g.kind] ?? 0) + 1
      if (g.ms > gcMax.ms) gcMax = g
    }
  }
  return {
    stallMaxMs,
    blockStallMs: blockStallMs.sort((a, b) => a - b),
    stallNoGcMaxMs,
    stallMaxSplit,
    ownBlockMaxMs,
    ownBlockNoGcMaxMs,
    // Unknown without /proc/stat: no stall can be said to have had no steal.
    ownBlockQuietMaxMs: stat.available ? ownBlockQuietMaxMs : NaN,
    ownBlockMaxSplit,
    histogramMaxMs: Math.max(...blocks.map(b => b.histMaxMs)),
    gcMaxMs: gcMax.ms,
    gcMaxKind: gcMax.kind,
    gcCounts,
    runs: blocks.reduce((n, b) => n + b.runsMs.length, 0),
    runMs: median(blocks.flatMap(b => b.runsMs)),
    blockStallMedianMs: median(blockStallMs),
    majorsPer256Runs: (gcCounts.major ?? 0) * 256 / (runMsForIdle === undefined
      ? blocks.reduce((n, b) => n + b.runsMs.length, 0)
      : blocks.reduce((n, b) => n + ((b.ticks[b.ticks.length - 1] as number) - (b.ticks[0] as number)), 0) / runMsForIdle)
  }
}

const rounds = Number(process.argv[2] ?? 12)
const runs = Number(process.argv[3] ?? 16)
const mode = (process.argv[4] ?? 'lend') as OutputMode
if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(runs) || runs < 1 || !['lend', 'keep', 'detach'].includes(mode)) {
  console.error('usage: latency-child.js [rounds] [runs per block] [lend|keep|detach]')
  process.exit(2)
}
const modelPath = paddleOcrModelPaths().detection
const dir = await mkdtemp(join(tmpdir(), 'prov-loop-'))
const resolved = await resolveProfile(LATENCY_CHILD_PROFILE)
const daemon = await Daemon.start({ deviceId: 'bench-device', stateDir: dir, profile: resolved, models: [{ name: 'det', path: modelPath }] })
const bareModel = await loadModelInWorker(modelPath, profileThreadOptions(resolved.profile.threads))
const inputName = (await daemon.status()).models[0]?.inputs?.[0]?.name ?? 'x'
const image = makeTextLikeImage({ width: 320, height: 320, seed: 1 }).data
const feeds = { [inputName]: new ort.Tensor('float32', image, [1, 3, 320, 320]) }
const daemonRun = async (): Promise<void> => {
  const r = await daemon.run('det', feeds, undefined, undefined, { lendOutputs: mode === 'lend' })
  if (mode === 'lend') r.release?.()
  else if (mode === 'detach') for (const t of Object.values(r.outputs)) if (ArrayBuffer.isView(t.data)) releaseBytes(t.data)
}
// Warm-up: past the start's own GCs (the heap grows while modules load and the first runs compile).
const warm: number[] = []
for (let i = 0; i < WARM_RUNS; i++) {
  await bareModel.session.run(feeds)
  const t0 = performance.now()
  await daemonRun()
  warm.push(performance.now() - t0)
}
const warmMs = median(warm)
observer.observe({ entryTypes: ['gc'] })
const timed = async (once: () => Promise<unknown>): Promise<number[]> => {
  const out: number[] = []
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now()
    await once()
    out.push(performance.now() - t0)
  }
  return out
}
const kinds = {
  wrapped: async () => await watch(async () => await timed(daemonRun)),
  bare: async () => await watch(async () => await timed(async () => await bareModel.session.run(feeds))),
  idle: async () => await watch(async () => { await new Promise(resolve => setTimeout(resolve, runs * warmMs)); return [] })
}
const names = Object.keys(kinds) as Array<keyof typeof kinds>
const blocks: Record<keyof typeof kinds, Block[]> = { wrapped: [], bare: [], idle: [] }
for (let r = 0; r < rounds; r++) {
  for (let k = 0; k < names.length; k++) {
    const name = names[(r + k) % names.length] as keyof typeof kinds
    blocks[name].push(await kinds[name]())
  }
}
observer.disconnect()
await bareModel.release()
await daemon.stop('latency bench done')
await rm(dir, { recursive: true, force: true })
const all = [...blocks.wrapped, ...blocks.bare, ...blocks.idle]
const heapUsedMiB = median(all.map(b => b.heapUsed)) / 1048576
const majorMs = Math.max(0, ...all.flatMap(b => b.gcs.filter(g => g.kind === 'major').map(g => g.ms)))
const out: ChildFigures = {
  execArgv: process.execArgv,
  outputs: mode,
  rounds,
  runsPerBlock: runs,
  wrapped: figures(blocks.wrapped),
  bare: figures(blocks.bare),
  idle: figures(blocks.idle, median(blocks.wrapped.flatMap(b => b.runsMs))),
  heapUsedMiB,
  majorMsPerHeapMiB: majorMs / heapUsedMiB
}
process.stdout.write(JSON.stringify(out) + '\n')
