/**
 * Agent benchmarks (issue: records and agent core), each a ratio against a baseline measured in
 * the same run: model hashing vs sha256sum, signed-and-durable records vs raw node:crypto signs,
 * provenance-wrapper latency vs bare onnxruntime on PaddleOCR detection, and agent RSS.
 */
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, open } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import ort from 'onnxruntime-node'
import { createSigner, sha256, type RecordBody } from '../protocol/index.js'
import { RecordLog } from '../agent/log/index.js'
import { hashModelFile } from '../agent/model/index.js'
import { ProvenanceAgent } from '../agent/session/index.js'
import { makeTextLikeImage, paddleOcrModelPaths } from '../agent/input/index.js'

export interface AgentBenchResult {
  hashing: { oursMiBps: number, sha256sumMiBps: number, ratio: number }
  records: { durablePerSec: number, rawSignsPerSec: number, ratio: number }
  wrapper: { bareMedianMs: number, wrappedMedianMs: number, addedPct: number, rssMiB: number }
}

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)] as number
}

async function benchHashing (dir: string): Promise<AgentBenchResult['hashing']> {
  const file = join(dir, 'model.bin')
  const handle = await open(file, 'w')
  const chunk = randomBytes(16 * 1024 * 1024)
  for (let i = 0; i < 16; i++) await handle.write(chunk)
  await handle.close()
  const mib = 256
  let best = Infinity
  let bestOurs = Infinity
  // Alternate the two so page cache and CPU frequency treat them alike; keep the best of three.
  for (let i = 0; i < 3; i++) {
    let t0 = performance.now()
    const r = spawnSync('sha256sum', [file], { encoding: 'utf8' })
    if (r.status !== 0) throw new Error(`sha256sum failed: ${r.stderr}`)
    best = Math.min(best, performance.now() - t0)
    t0 = performance.now()
    await hashModelFile(file)
    bestOurs = Math.min(bestOurs, performance.now() - t0)
  }
  const oursMiBps = mib / (bestOurs / 1000)
  const sha256sumMiBps = mib / (best / 1000)
  return { oursMiBps, sha256sumMiBps, ratio: oursMiBps / sha256sumMiBps }
}

async function benchRecords (dir: string): Promise<AgentBenchResult['records']> {
  const signer = createSigner(new Uint8Array(32).fill(9))
  const msg = new Uint8Array(230).fill(1)
  let n = 0
  let t0 = performance.now()
  while (performance.now() - t0 < 2000) { for (let i = 0; i < 100; i++) signer.sign(msg); n += 100 }
  const rawSignsPerSec = n / ((performance.now() - t0) / 1000)

  const log = await RecordLog.open({ dir: join(dir, 'log'), deviceId: 'bench-device', signer, syncWrites: true })
  await log.appendBoot({ agentVersion: 'bench', profile: 'bench' })
  const modelHash = sha256(new Uint8Array([1]))
  const hash = sha256(new Uint8Array([2]))
  const body = (): RecordBody => ({ kind: 'inference', modelHash, inputs: [{ name: 'x', hash }], outputs: [{ name: 'y', hash }], latencyUs: 1234, decision: 'label-3' })
  // Many callers in flight, as on a device serving several streams: group commit shares syncs.
  const total = 40_000
  const window = 1000
  t0 = performance.now()
  for (let done = 0; done < total; done += window) {
    await Promise.all(Array.from({ length: window }, async () => await log.append(body)))
  }
  const durablePerSec = total / ((performance.now() - t0) / 1000)
  await log.close()
  return { durablePerSec, rawSignsPerSec, ratio: durablePerSec / rawSignsPerSec }
}

async function benchWrapper (dir: string): Promise<AgentBenchResult['wrapper']> {
  const modelPath = paddleOcrModelPaths().detection
  const agent = await ProvenanceAgent.start({ stateDir: join(dir, 'agent'), deviceId: 'bench-device', syncWrites: true })
  const model = await agent.loadModel(modelPath, { name: 'ppocr-det' })
  const input = model.inputNames[0] as string
  const image = makeTextLikeImage({ width: 320, height: 320, seed: 1 }).data
  const feeds = { [input]: new ort.Tensor('float32', image, [1, 3, 320, 320]) }
  for (let i = 0; i < 3; i++) { await model.loaded.session.run(feeds); await model.run(feeds) }
  const bare: number[] = []
  const wrapped: number[] = []
  for (let i = 0; i < 25; i++) {
    let t0 = performance.now()
    await model.loaded.session.run(feeds)
    bare.push(performance.now() - t0)
    t0 = performance.now()
    await model.run(feeds)
    wrapped.push(performance.now() - t0)
  }
  const rssMiB = process.memoryUsage().rss / 1024 / 1024
  await agent.stop()
  const bareMedianMs = median(bare)
  const wrappedMedianMs = median(wrapped)
  return { bareMedianMs, wrappedMedianMs, addedPct: (wrappedMedianMs - bareMedianMs) / bareMedianMs * 100, rssMiB }
}

export async function main (): Promise<AgentBenchResult> {
  const dir = await mkdtemp(join(tmpdir(), 'prov-bench-'))
  try {
    process.stderr.write('agent bench: model hashing (256 MiB)…\n')
    const hashing = await benchHashing(dir)
    process.stderr.write('agent bench: signed and durable records…\n')
    const records = await benchRecords(dir)
    process.stderr.write('agent bench: wrapper latency on PaddleOCR detection…\n')
    const wrapper = await benchWrapper(dir)
    const result = { hashing, records, wrapper }
    const f = (x: number): string => x.toFixed(2)
    console.log(`model hashing      ${f(hashing.oursMiBps)} MiB/s vs sha256sum ${f(hashing.sha256sumMiBps)} MiB/s   ratio ${f(hashing.ratio)} (target >= 0.9)`)
    console.log(`durable records    ${f(records.durablePerSec)}/s vs raw Ed25519 signs ${f(records.rawSignsPerSec)}/s   ratio ${f(records.ratio)} (target >= 0.6)`)
    console.log(`wrapper latency    median ${f(wrapper.wrappedMedianMs)} ms vs bare ${f(wrapper.bareMedianMs)} ms   added ${f(wrapper.addedPct)} % (target <= 3 %)   RSS ${f(wrapper.rssMiB)} MiB`)
    console.log(JSON.stringify({ agent: result }))
    return result
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch(e => { console.error(e); process.exit(1) })
}
