/**
 * A fresh process for the memory bench: `bare` loads PaddleOCR detection into onnxruntime and runs
 * it, `agent` does the same through a ProvenanceAgent (worker thread, record log). Prints RSS in
 * MiB once idle after the first runs and at its peak during a burst of runs, as one JSON line.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import { ProvenanceAgent } from '../agent/session/index.js'
import { makeTextLikeImage, paddleOcrModelPaths } from '../agent/input/index.js'

const mode = process.argv[2]
const modelPath = paddleOcrModelPaths().detection
const image = makeTextLikeImage({ width: 320, height: 320, seed: 1 }).data
const mib = (): number => process.memoryUsage.rss() / 1024 / 1024
let peak = 0
const sampler = setInterval(() => { peak = Math.max(peak, mib()) }, 5)

async function settle (): Promise<number> {
  for (let i = 0; i < 3; i++) {
    (globalThis as { gc?: () => void }).gc?.()
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  return mib()
}

if (mode === 'bare') {
  const session = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: 1 })
  const feeds = { [session.inputNames[0] as string]: new ort.Tensor('float32', image, [1, 3, 320, 320]) }
  await session.run(feeds)
  const idleMiB = await settle()
  for (let i = 0; i < 20; i++) await session.run(feeds)
  peak = Math.max(peak, mib())
  clearInterval(sampler)
  console.log(JSON.stringify({ idleMiB, peakMiB: peak }))
} else if (mode === 'agent') {
  const dir = await mkdtemp(join(tmpdir(), 'prov-mem-'))
  const agent = await ProvenanceAgent.start({ stateDir: dir, deviceId: 'bench-device', intraOpNumThreads: 1 })
  const model = await agent.loadModel(modelPath)
  const feeds = { [model.inputNames[0] as string]: new ort.Tensor('float32', image, [1, 3, 320, 320]) }
  await model.run(feeds)
  const idleMiB = await settle()
  // Several runs in flight at once, as under load from the API.
  for (let i = 0; i < 5; i++) await Promise.all(Array.from({ length: 4 }, async () => await model.run(feeds)))
  peak = Math.max(peak, mib())
  clearInterval(sampler)
  await agent.stop()
  await rm(dir, { recursive: true, force: true })
  console.log(JSON.stringify({ idleMiB, peakMiB: peak }))
} else {
  console.error('usage: memory-child.ts bare|agent')
  process.exit(2)
}
