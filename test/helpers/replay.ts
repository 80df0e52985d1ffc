/**
 * Shared pieces of the replay tests: a real agent with a capture ring that runs a model on given
 * feeds and freezes a capture, and capture surgery (decode, alter one byte, re-encode).
 * (No tests here: tap lists this file as skipped.)
 */
import { join } from 'node:path'
import { writeFile } from 'node:fs/promises'
import ort from 'onnxruntime-node'
import { ProvenanceAgent } from '../../agent/session/index.js'
import { CaptureRing, type FrozenCapture } from '../../agent/capture/index.js'
import { decodeCapture, encodeCapture, type Capture, type SignedRecord } from '../../protocol/index.js'
import { makeTempDir } from './tmp.js'

export interface Scenario {
  dir: string
  modelPath: string
  modelHashHex: string
  frozen: FrozenCapture
  /** Every record the agent wrote, boot to shutdown. */
  records: SignedRecord[]
  publicKey: Uint8Array
  deviceId: string
}

/**
 * Starts an agent with a capture ring, loads `model` (bytes written to a file), runs it once per
 * feed, freezes on request and stops. Everything is real: onnxruntime, LevelDB log, key file.
 */
export async function runScenario (
  t: { teardown: (fn: () => unknown) => void },
  model: Uint8Array | string,
  feeds: Array<Record<string, ort.Tensor>>,
  deviceId = 'dev-replay-1'
): Promise<Scenario> {
  const dir = await makeTempDir(t, 'prov-replay-')
  let modelPath: string
  if (typeof model === 'string') {
    modelPath = model
  } else {
    modelPath = join(dir, 'model.onnx')
    await writeFile(modelPath, model)
  }
  const stateDir = join(dir, 'state')
  const ring = new CaptureRing({ stateDir, deviceId })
  const agent = await ProvenanceAgent.start({ stateDir, deviceId, syncWrites: false, watchRun: (inputs, hold) => ring.watch(inputs, hold) })
  const loaded = await agent.loadModel(modelPath)
  for (const f of feeds) await loaded.run(f)
  const frozen = await ring.freeze('investigator request')
  const modelHashHex = Buffer.from(loaded.fileHash).toString('hex')
  const publicKey = agent.publicKey
  await agent.stop('test done')
  const again = await ProvenanceAgent.start({ stateDir, deviceId, syncWrites: false })
  const records = await again.log.range(0, 1000)
  await again.stop()
  return { dir, modelPath, modelHashHex, frozen, records, publicKey, deviceId }
}

/** The capture with `edit` applied to its decoded form, re-encoded canonically. */
export function editCapture (bytes: Uint8Array, edit: (c: Capture) => void): Uint8Array {
  const c = decodeCapture(bytes)
  edit(c)
  return encodeCapture(c)
}

/** Flips the lowest bit of one byte of `data` in place. */
export function flipByte (data: Uint8Array, index = 0): void {
  data[index] = (data[index] as number) ^ 1
}
