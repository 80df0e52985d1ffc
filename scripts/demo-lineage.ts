/**
 * The lineage story of `npm run demo` (docs/LINEAGE.md): the demo device keeps field samples
 * (data-capture records), a curator registers them as a dataset, a trainer trains a small model on
 * them and signs the run, the model is registered with its run and loaded by the device; after the
 * export, one decision of that model is traced back to the dataset files and the device records
 * behind them, each record's inclusion proof checked against the anchored root on chain.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import { deployLineage, type DevChain } from '../contracts/index.js'
import type { ProvenanceAgent, ProvenanceModel } from '../agent/session/index.js'
import { buildModelManifest } from '../agent/model/index.js'
import { createSigner, toHex, type Bundle, type SignedRecord } from '../protocol/index.js'
import { attachCaptureProofs, buildCaptures, type CapturesFile } from '../forensics/lineage/captures.js'
import { buildLogisticModel, trainLogistic } from '../forensics/lineage/fl-model.js'
import { encodeManifest, hashTree } from '../forensics/lineage/manifest.js'
import { buildTrainingStatement, signTrainingStatement } from '../forensics/lineage/training.js'
import { lineageRunFacts, registryDeviceKeys } from '../forensics/lineage/device-keys.js'
import { formatTrace, traceRecord, type TraceResult } from '../forensics/lineage/trace.js'

/** Field samples: speed and length of a vehicle, label 1 = truck. */
const SAMPLES: Array<[number, number, number]> = [[0.9, 0.2, 0], [0.3, 0.9, 1], [0.8, 0.1, 0], [0.2, 0.8, 1], [0.7, 0.3, 0], [0.4, 0.95, 1]]

export interface LineageDemo {
  model: ProvenanceModel
  lineageAddress: string
  /** Runs the model once; resolves to the inference record's seq. */
  decide: () => Promise<number>
  /** Adds each capture record's inclusion proof (the gateway's, by seq); resolves to how many have one. */
  attachProofs: (proofOf: (seq: number) => Promise<string | undefined>) => Promise<number>
  /** Writes the manifest, captures file and training run for `provenance trace`; resolves to their names. */
  writeFiles: (dir: string) => Promise<string[]>
  /** Traces a record of the exported bundle against the chain. */
  trace: (bundle: Bundle, seq: number, rpcUrl: string) => Promise<TraceResult>
}

export async function setUpLineage (chain: DevChain, agent: ProvenanceAgent, work: string, log: (text: string) => void): Promise<LineageDemo> {
  const { lineage, address } = await deployLineage(chain.wallets.admin, chain.deployment.address)
  await lineage.grantRole('dataCurator', chain.wallets.admin.address)
  await lineage.grantRole('trainerRegistrar', chain.wallets.admin.address)
  await chain.registryAs('admin').grantRole('modelPublisher', address)
  log(`  LineageRegistry ${address}`)
  // The device keeps its samples: one data-capture record each, in its signed log.
  const dir = join(work, 'dataset')
  await mkdir(dir, { recursive: true })
  const receipts: Array<{ name: string, record: SignedRecord, salt: Uint8Array }> = []
  for (const [i, [speed, length, truck]] of SAMPLES.entries()) {
    const bytes = new TextEncoder().encode(`speed,length,truck\n${speed},${length},${truck}\n`)
    const name = `sample-${i}.csv`
    await writeFile(join(dir, name), bytes)
    const r = await agent.recordDataCapture(bytes, { dataset: 'roadside', label: truck === 1 ? 'truck' : 'car' })
    receipts.push({ name, record: r.record, salt: r.salt })
  }
  const manifest = await hashTree(dir, { name: 'roadside', workers: 1 })
  const manifestBytes = new TextEncoder().encode(encodeManifest(manifest))
  const datasetHash = manifest.subject[0].digest.sha256
  await lineage.registerDataset({ datasetHash: '0x' + datasetHash, name: 'roadside', version: '1.0.0' })
  log(`  device kept ${SAMPLES.length} samples (data-capture records); dataset roadside 1.0.0 ${datasetHash.slice(0, 16)}… registered by the curator`)
  // The trainer: logistic regression on the dataset, a signed training-run statement.
  const trainer = createSigner(createHash('sha256').update('demo trainer key').digest())
  await lineage.registerTrainerKey(trainer.publicKey, 'demo-trainer')
  const weights = trainLogistic({ inputSize: 2, W: new Float32Array(4), b: new Float32Array(2) }, SAMPLES.map(s => [s[0], s[1]]), SAMPLES.map(s => s[2]), { epochs: 200, learningRate: 1 })
  const modelBytes = buildLogisticModel(weights)
  const modelHash = createHash('sha256').update(modelBytes).digest('hex')
  const run = signTrainingStatement(buildTrainingStatement({
    datasets: [{ name: 'roadside', version: '1.0.0', digest: { sha256: datasetHash } }], baseModelHash: null,
    outputModel: { name: 'truck-detector', hash: modelHash, manifestHash: buildModelManifest(modelBytes).manifestHash },
    hyperparameters: { epochs: 200, learningRate: 1 }, codeRevision: 'demo:fl-model.ts', environment: { node: process.version },
    startedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), finishedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z')
  }), trainer)
  const runBytes = new TextEncoder().encode(JSON.stringify(run))
  const statementHash = createHash('sha256').update(Buffer.from(run.payload, 'base64')).digest('hex')
  const publisher = lineage.connect(chain.wallets.modelPublisher)
  await publisher.registerTrainedModel({
    modelHash: '0x' + modelHash, name: 'truck-detector', version: '1.0.0', manifestHash: '0x' + buildModelManifest(modelBytes).manifestHash,
    statementHash: '0x' + statementHash, trainerKey: trainer.publicKey, datasetHashes: ['0x' + datasetHash]
  })
  await publisher.approveModel('0x' + modelHash)
  log(`  trainer ${toHex(trainer.publicKey).slice(0, 16)}… trained truck-detector ${modelHash.slice(0, 16)}…; registered with its training run ${statementHash.slice(0, 16)}…`)
  const path = join(work, 'truck-detector.onnx')
  await writeFile(path, modelBytes)
  const model = await agent.loadModel(path, { name: 'truck-detector' })
  log(`  device ${agent.deviceId} loaded truck-detector (a model-load record names its hash)`)
  let captures: CapturesFile = buildCaptures(receipts)
  return {
    model,
    lineageAddress: address,
    attachProofs: async (proofOf) => {
      const { captures: proved, missing } = await attachCaptureProofs(captures, async (_device, seq) => await proofOf(seq))
      captures = proved
      return proved.captures.length - missing.length
    },
    writeFiles: async (out) => {
      const files: Array<[string, Uint8Array | string]> = [
        ['roadside.manifest.json', manifestBytes], ['roadside.captures.json', JSON.stringify(captures, null, 2) + '\n'], ['truck-detector.run.dsse.json', runBytes]
      ]
      for (const [name, bytes] of files) await writeFile(join(out, name), bytes)
      return files.map(f => f[0])
    },
    decide: async () => {
      const { record } = await model.run({ x: new ort.Tensor('float32', Float32Array.from([0.35, 0.9]), [1, 2]) }, {
        decide: out => ((out.probs?.data as Float32Array)[1] ?? 0) > 0.5 ? 'truck' : 'car'
      })
      return record.record.seq
    },
    trace: async (bundle, seq, rpcUrl) => {
      const keys = await registryDeviceKeys(rpcUrl, bundle.chain.registry)
      try {
        return await traceRecord({
          bundle, seq, verify: { rpcUrl }, statements: [runBytes], keyAt: keys.lookup,
          lineageFacts: async (keyIds, hash) => await lineageRunFacts(rpcUrl, address, keyIds, hash),
          datasets: [{ name: 'roadside', manifest: manifestBytes, dir, captures }]
        })
      } finally { keys.close() }
    }
  }
}

export { formatTrace }
