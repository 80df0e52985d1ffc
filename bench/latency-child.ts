/**
 * A fresh process for the event-loop part of the latency bench, run compiled (bench/agent.ts
 * transpiles it beside dist/, as the memory child): the agent as the daemon runs it (Daemon.start
 * with the generic-x86_64 profile's threads, runs called in this process), against bare runs of
 * the same model in a worker of its own (same threads) and idle waits, in rotating blocks. A 1 ms
 * interval timer measures how late each tick comes (the event loop's stalls); the GC pauses of
 * this thread (PerformanceObserver 'gc') are matched against them. Prints one JSON line.
 * Usage: node [v8 flags] dist/bench/latency-child.js [rounds] [runs per block] [outputs]
 * `outputs` says what the daemon runs do with their outputs: `lend` (default: lent and released
 * once the run resolved, as the API answers), `keep` (given, then dropped for the GC, as a library
 * caller that keeps them), `detach` (given, then freed at once by transfer to a sink, as the API
 * did before lending).
 */
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

const GC_KINDS: Record<number, string> = { 1: 'minor', 4: 'major', 8: 'incremental', 16: 'weak callbacks' }

interface Block { ticks: number[], gcs: Array<{ at: number, ms: number, kind: string }>, runsMs: number[], histMaxMs: number, heapUsed: number }

const gcs: Array<{ at: number, ms: number, kind: string }> = []
const observer = new PerformanceObserver(list => {
  for (const e of list.getEntries()) gcs.push({ at: e.startTime, ms: e.duration, kind: GC_KINDS[(e as { detail?: { kind?: number } }).detail?.kind ?? 0] ?? 'other' })
})

/** Runs `work` while a 1 ms interval timer records when each tick came. */
async function watch (work: () => Promise<number[]>): Promise<Block> {
  const histogram = monitorEventLoopDelay({ resolution: 1 })
  const ticks: number[] = []
  const timer = setInterval(() => { ticks.push(performance.now()) }, TICK_MS)
  histogram.enable()
  await new Promise(resolve => setTimeout(resolve, 5))
  histogram.reset()
  ticks.length = 0
  ticks.push(performance.now())
  const runsMs = await work()
  ticks.push(performance.now())
  clearInterval(timer)
  histogram.disable()
  await new Promise(resolve => setImmediate(resolve))
  const t0 = ticks[0] as number
  const t1 = ticks[ticks.length - 1] as number
  return { ticks, gcs: gcs.filter(g => g.at >= t0 && g.at <= t1), runsMs, histMaxMs: histogram.max / 1e6, heapUsed: getHeapStatistics().used_heap_size }
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
      if (!b.gcs.some(g => g.at < to && g.at + g.ms > from)) stallNoGcMaxMs = Math.max(stallNoGcMaxMs, late)
    }
    blockStallMs.push(blockMax)
    stallMaxMs = Math.max(stallMaxMs, blockMax)
    for (const g of b.gcs) {
      gcCounts[g.kind] = (gcCounts[g.kind] ?? 0) + 1
      if (g.ms > gcMax.ms) gcMax = g
    }
  }
  return {
    stallMaxMs,
    blockStallMs: blockStallMs.sort((a, b) => a - b),
    stallNoGcMaxMs,
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
