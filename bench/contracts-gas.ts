/**
 * Gas of the ProvenanceRegistry calls, measured from receipts on a local anvil chain: anchor
 * (and the gas per record it implies for growing batches), device and model registry calls, and
 * the LineageRegistry calls (datasets, trainer keys, training runs) beside it.
 * Run: `node --import tsx bench/contracts-gas.ts`; the last stdout line is the figures as JSON.
 */

import { randomBytes } from 'node:crypto'
import { getBytes, hexlify } from 'ethers'
import { Wallet } from 'ethers'
import { startDevChain, deviceIdOf, deployLineage, type DevChain } from '../contracts/index.js'
import { isEntryPoint } from '../common/entry-point.js'
import { exitOnHelp } from './measure.js'

/** Batch sizes whose per-record cost is reported. */
export const ANCHOR_BATCH_SIZES = [1, 1_000, 65_536, 1_048_576] as const
/** EIP-2028 calldata prices and the cost of one fresh storage slot (EIP-2929 cold SSTORE 0→x). */
const CALLDATA_ZERO_GAS = 4
const CALLDATA_NONZERO_GAS = 16
const INTRINSIC_GAS = 21_000
const FRESH_SLOT_GAS = 22_100

export interface AnchorGas {
  size: number
  gasUsed: number
  gasPerRecord: number
  /** Lower bound for any design that stores something per root: intrinsic + calldata + one fresh slot. */
  floorGas: number
  /** gasUsed / floorGas. */
  ratioToFloor: number
}

export interface ContractsGasReport {
  bench: 'contracts-gas'
  deploy: number
  anchor: AnchorGas[]
  deviceRegistration: number
  keyRotation: number
  deviceRevocation: number
  modelRegistration: number
  modelApproval: number
  roleGrant: number
  /** LineageRegistry (a second contract: the figures above are unchanged by it). */
  lineage: {
    deploy: number
    datasetRegistration: number
    datasetVersion: number
    trainerKeyRegistration: number
    /** attachTrainingRun naming one registered dataset. */
    trainingRunAttach: number
    /** registerTrainedModel (model + run in one transaction, one dataset): compare with registerModel + attach. */
    trainedModelRegistration: number
  }
}

function calldataGas (data: string): number {
  let gas = 0
  for (const b of getBytes(data)) gas += b === 0 ? CALLDATA_ZERO_GAS : CALLDATA_NONZERO_GAS
  return gas
}

async function measureAnchor (chain: DevChain, size: number): Promise<AnchorGas> {
  const now = Date.now()
  const result = await chain.registryAs('anchorer').anchor({
    root: randomBytes(32), size, firstRecordTimeMs: now - 60_000, lastRecordTimeMs: now, metadataHash: randomBytes(32)
  })
  const tx = await chain.provider.getTransaction(result.txHash)
  const floorGas = INTRINSIC_GAS + calldataGas(tx?.data ?? '0x') + FRESH_SLOT_GAS
  const gasUsed = Number(result.gasUsed)
  return { size, gasUsed, gasPerRecord: gasUsed / size, floorGas, ratioToFloor: gasUsed / floorGas }
}

/** Runs the measurements on a fresh dev chain, prints a table and a JSON line, returns the figures. */
export async function main (): Promise<ContractsGasReport> {
  process.stderr.write('contracts-gas: starting anvil and deploying the registry\n')
  const chain = await startDevChain()
  try {
    const anchor: AnchorGas[] = []
    for (const size of ANCHOR_BATCH_SIZES) anchor.push(await measureAnchor(chain, size))

    const registrar = chain.registryAs('deviceRegistrar')
    const deviceId = deviceIdOf('bench-device-0001')
    const deviceRegistration = await registrar.registerDevice({ deviceId, publicKey: randomBytes(32), validFromMs: Date.now() })
    const keyRotation = await registrar.rotateDeviceKey({ deviceId, publicKey: randomBytes(32), validFromMs: Date.now() + 1 })
    const deviceRevocation = await registrar.revokeDevice(deviceId, Date.now() + 2)

    const publisher = chain.registryAs('modelPublisher')
    const modelHash = hexlify(randomBytes(32))
    const modelRegistration = await publisher.registerModel({
      modelHash,
      name: 'ch_PP-OCRv4_det_infer',
      version: '4.0.0',
      manifestHash: randomBytes(32),
      metadataURI: 'https://models.example/ocr/det/4.0.0.json'
    })
    const modelApproval = await publisher.approveModel(modelHash)
    const roleGrant = await chain.registryAs('admin').grantRole('anchorer', chain.wallets.outsider.address)
    const lineage = await measureLineage(chain, modelHash)

    const report: ContractsGasReport = {
      bench: 'contracts-gas',
      deploy: Number(chain.deployment.gasUsed),
      anchor,
      deviceRegistration: Number(deviceRegistration.gasUsed),
      keyRotation: Number(keyRotation.gasUsed),
      deviceRevocation: Number(deviceRevocation.gasUsed),
      modelRegistration: Number(modelRegistration.gasUsed),
      modelApproval: Number(modelApproval.gasUsed),
      roleGrant: Number(roleGrant.gasUsed),
      lineage
    }
    printReport(report)
    return report
  } finally {
    await chain.stop()
  }
}

async function measureLineage (chain: DevChain, registeredModel: string): Promise<ContractsGasReport['lineage']> {
  const deployed = await deployLineage(chain.wallets.admin, chain.deployment.address)
  const admin = deployed.lineage
  const curator = new Wallet((chain.anvil.accounts[5] as { privateKey: string }).privateKey, chain.provider)
  await admin.grantRole('dataCurator', curator.address)
  await admin.grantRole('trainerRegistrar', chain.wallets.admin.address)
  const v1 = hexlify(randomBytes(32))
  const datasetRegistration = await admin.connect(curator).registerDataset({ datasetHash: v1, name: 'street-photos', version: '1.0.0', uri: 's3://datasets/street-photos/1.0.0' })
  const datasetVersion = await admin.connect(curator).registerDataset({ datasetHash: randomBytes(32), parentHash: v1, name: 'street-photos', version: '1.1.0', uri: 's3://datasets/street-photos/1.1.0' })
  const trainerKey = hexlify(randomBytes(32))
  const trainerKeyRegistration = await admin.registerTrainerKey(trainerKey, 'ci-trainer-01')
  const publisher = admin.connect(chain.wallets.modelPublisher)
  const trainingRunAttach = await publisher.attachTrainingRun({ modelHash: registeredModel, statementHash: randomBytes(32), trainerKey, datasetHashes: [v1] })
  await chain.registryAs('admin').grantRole('modelPublisher', deployed.address)
  const trainedModelRegistration = await publisher.registerTrainedModel({
    modelHash: randomBytes(32), name: 'ch_PP-OCRv4_det_infer', version: '4.1.0', manifestHash: randomBytes(32),
    metadataURI: 'https://models.example/ocr/det/4.1.0.json', statementHash: randomBytes(32), trainerKey, datasetHashes: [v1]
  })
  return {
    deploy: Number(deployed.gasUsed),
    datasetRegistration: Number(datasetRegistration.gasUsed),
    datasetVersion: Number(datasetVersion.gasUsed),
    trainerKeyRegistration: Number(trainerKeyRegistration.gasUsed),
    trainingRunAttach: Number(trainingRunAttach.gasUsed),
    trainedModelRegistration: Number(trainedModelRegistration.gasUsed)
  }
}

function printReport (r: ContractsGasReport): void {
  const lines: string[] = []
  lines.push('anchor (one transaction per batch; gas includes the 21 000 intrinsic)')
  lines.push('  records     gas      gas/record   floor   gas/floor')
  for (const a of r.anchor) {
    lines.push(`  ${String(a.size).padStart(9)}  ${String(a.gasUsed).padStart(6)}  ${a.gasPerRecord.toPrecision(4).padStart(11)}  ${String(a.floorGas).padStart(6)}  ${a.ratioToFloor.toFixed(3).padStart(9)}`)
  }
  lines.push('registry calls                gas')
  const rows: Array<[string, number]> = [
    ['deploy', r.deploy],
    ['registerDevice', r.deviceRegistration],
    ['rotateDeviceKey', r.keyRotation],
    ['revokeDevice', r.deviceRevocation],
    ['registerModel (21-char name)', r.modelRegistration],
    ['approveModel', r.modelApproval],
    ['grantRole', r.roleGrant]
  ]
  for (const [name, gas] of rows) lines.push(`  ${name.padEnd(28)}${String(gas).padStart(8)}`)
  lines.push('lineage registry calls        gas')
  const lineageRows: Array<[string, number]> = [
    ['deploy LineageRegistry', r.lineage.deploy],
    ['registerDataset', r.lineage.datasetRegistration],
    ['registerDataset (version)', r.lineage.datasetVersion],
    ['registerTrainerKey', r.lineage.trainerKeyRegistration],
    ['attachTrainingRun (1 ds)', r.lineage.trainingRunAttach],
    ['registerTrainedModel (1 ds)', r.lineage.trainedModelRegistration]
  ]
  for (const [name, gas] of lineageRows) lines.push(`  ${name.padEnd(28)}${String(gas).padStart(8)}`)
  lines.push(JSON.stringify(r))
  process.stdout.write(lines.join('\n') + '\n')
}

const USAGE = `usage: node --import tsx bench/contracts-gas.ts

Gas of the registry calls on a local anvil (anchor per batch size, device, model and lineage
registry calls) against the calldata + storage floor; the last stdout line is the figures as JSON.
No options.`

if (isEntryPoint(import.meta.url)) {
  exitOnHelp(USAGE)
  try {
    await main()
  } catch (e) {
    process.stderr.write(`${(e as { code?: string }).code ?? 'BENCH_FAILED'}: ${(e as Error).message}\n`)
    process.exitCode = 1
  }
}
