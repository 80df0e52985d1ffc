/**
 * A fresh process for the memory bench, run compiled (bench/agent.ts transpiles it beside dist/):
 * `bare` loads PaddleOCR detection into onnxruntime and runs it; `daemon` starts an agent daemon
 * with the same model and profile threads, then serves runs that the bench posts to its API.
 */
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import ort from 'onnxruntime-node'
import { Daemon } from '../agent/daemon/index.js'
import { profileThreadOptions, resolveProfile } from '../agent/profile/index.js'
import { makeTextLikeImage, paddleOcrModelPaths } from '../agent/input/index.js'

/** Runs of a burst: this many rounds of BURST_CONCURRENCY at once (the capture ring, 16 runs, fills). */
export const BURST_ROUNDS = 10
export const BURST_CONCURRENCY = 4
/** The profile both modes follow: the daemon's threads as the profile says, bare onnxruntime's the same. */
export const MEMORY_BENCH_PROFILE = 'generic-x86_64'

/** Resident and peak resident set of this process, MiB, as the kernel counts them (every page, every thread). */
function rss (): { rssMiB: number, hwmMiB: number } {
  const status = readFileSync('/proc/self/status', 'utf8')
  const kib = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN)
  return { rssMiB: kib('VmRSS') / 1024, hwmMiB: kib('VmHWM') / 1024 }
}

/** RSS once collected garbage is given back: what the process holds idle. */
async function settle (): Promise<number> {
  for (let i = 0; i < 3; i++) {
    (globalThis as { gc?: () => void }).gc?.()
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  return rss().rssMiB
}

/** One line of JSON on stdout, which the bench reads. */
function report (o: object): void { process.stdout.write(JSON.stringify(o) + '\n') }

const mode = process.argv[2]
const modelPath = paddleOcrModelPaths().detection
const image = makeTextLikeImage({ width: 320, height: 320, seed: 1 }).data

if (mode === 'bare') {
  const threads = profileThreadOptions((await resolveProfile(MEMORY_BENCH_PROFILE)).profile.threads)
  const session = await ort.InferenceSession.create(modelPath, {
    ...(threads.intraOpNumThreads !== undefined ? { intraOpNumThreads: threads.intraOpNumThreads } : {}),
    ...(threads.interOpNumThreads !== undefined ? { interOpNumThreads: threads.interOpNumThreads } : {})
  })
  const feeds = { [session.inputNames[0] as string]: new ort.Tensor('float32', image, [1, 3, 320, 320]) }
  await session.run(feeds)
  const idleMiB = await settle()
  for (let i = 0; i < BURST_ROUNDS * BURST_CONCURRENCY; i++) await session.run(feeds)
  report({ idleMiB, peakMiB: rss().hwmMiB })
} else if (mode === 'daemon') {
  const dir = await mkdtemp(join(tmpdir(), 'prov-mem-'))
  const daemon = await Daemon.start({ deviceId: 'bench-device', stateDir: dir, profile: await resolveProfile(MEMORY_BENCH_PROFILE), models: [{ name: 'det', path: modelPath }] })
  const inputName = (await daemon.status()).models[0]?.inputs?.[0]?.name ?? 'x'
  const feeds = { [inputName]: new ort.Tensor('float32', image, [1, 3, 320, 320]) }
  await daemon.run('det', feeds)
  const idleMiB = await settle()
  report({ ready: true, socket: daemon.socketPath, inputName, idleMiB, loadPeakMiB: rss().hwmMiB })
  // `burst`: runs called in this process, 4 at a time (the daemon's own memory: agent, worker,
  // log, capture ring); then the bench posts runs to the API (adding its JSON and base64) and
  // writes `done`: report the peak and stop.
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() === 'burst') {
      for (let i = 0; i < BURST_ROUNDS; i++) await Promise.all(Array.from({ length: BURST_CONCURRENCY }, async () => await daemon.run('det', feeds)))
      report({ burstPeakMiB: rss().hwmMiB })
    }
    if (line.trim() === 'done') break
  }
  const { hwmMiB, rssMiB } = rss()
  const m = process.memoryUsage()
  await daemon.stop('memory bench done')
  await rm(dir, { recursive: true, force: true })
  // Where the memory is once the burst is over, to tell garbage from what is held.
  report({ peakMiB: hwmMiB, afterMiB: rssMiB, heapMiB: m.heapTotal / 1048576, externalMiB: m.external / 1048576, arrayBuffersMiB: m.arrayBuffers / 1048576 })
} else {
  console.error('usage: memory-child.js bare|daemon')
  process.exit(2)
}
