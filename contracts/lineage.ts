/**
 * Typed ethers v6 bindings of LineageRegistry (datasets, trainer keys, training runs), in the style
 * of registry.ts: plain objects in and out, every revert a RegistryError with the decoded custom
 * error (the lineage ABI first, then ProvenanceRegistry's for reverts bubbling up from it).
 */
import { Contract, ContractFactory, Interface, ZeroHash, getAddress, getBytes, hexlify, id, isError, type BytesLike, type ContractRunner, type ContractTransactionReceipt, type Signer } from 'ethers'
import artifact from './build/LineageRegistry.json' with { type: 'json' }
import { RegistryError, type DecodedRevert } from './errors.js'
import { ContractCalls, contractError } from './contract-calls.js'
import { registryInterface, type TxResult } from './registry.js'
import { waitForReceipt } from './receipt.js'

export const LINEAGE_ABI: readonly unknown[] = artifact.abi
export const LINEAGE_BYTECODE: string = artifact.bytecode
export const lineageInterface = new Interface(artifact.abi)

/**
 * Role ids of LineageRegistry. `modelPublisher` counts here or in the ProvenanceRegistry (held here
 * when only the LineageRegistry may register models there: docs/CONTRACTS.md §Requiring a training run).
 */
export const LINEAGE_ROLES = {
  admin: ZeroHash,
  dataCurator: id('DATA_CURATOR_ROLE'),
  trainerRegistrar: id('TRAINER_REGISTRAR_ROLE'),
  modelPublisher: id('MODEL_PUBLISHER_ROLE')
} as const
export type LineageRoleName = keyof typeof LINEAGE_ROLES

export interface LineageDeployment extends TxResult {
  lineage: LineageClient
  address: string
}

export interface DatasetRegistration {
  /** OMS manifest root digest of the dataset version. */
  datasetHash: BytesLike
  name: string
  version: string
  /** Previous version (must be registered and curated by the caller); omit for a first version. */
  parentHash?: BytesLike
  uri?: string
}

export interface DatasetInfo {
  datasetHash: string
  parentHash: string | undefined
  curator: string
  registeredAtSec: bigint
  name: string
  version: string
  uri: string
}

export interface TrainerKeyInfo {
  publicKey: string
  name: string
  registeredAtSec: bigint
  /** undefined while valid. */
  revokedAtSec: bigint | undefined
}

export interface TrainingRunAttachment {
  modelHash: BytesLike
  /** sha256 of the DSSE payload of the training-run statement. */
  statementHash: BytesLike
  /** Raw Ed25519 public key of the trainer that signed it (registered, not revoked). */
  trainerKey: BytesLike
  /** Registered datasets the statement names. */
  datasetHashes: BytesLike[]
}

export interface TrainingRunInfo {
  statementHash: string
  trainerKey: string
  publisher: string
  attachedAtSec: bigint
}

export interface TrainedModelRegistration extends TrainingRunAttachment {
  name: string
  version: string
  parentHash?: BytesLike
  manifestHash?: BytesLike
  metadataURI?: string
}

/**
 * Deploys a LineageRegistry for the ProvenanceRegistry at `registry`; DEFAULT_ADMIN_ROLE to `admin`.
 * @throws RegistryError DEPLOY_FAILED
 */
export async function deployLineage (signer: Signer, registry: string, admin?: string): Promise<LineageDeployment> {
  try {
    const adminAddress = getAddress(admin ?? await signer.getAddress())
    const factory = new ContractFactory(lineageInterface, artifact.bytecode, signer)
    const contract = await factory.deploy(adminAddress, getAddress(registry))
    const tx = contract.deploymentTransaction()
    const receipt = tx === null ? null : await waitForReceipt(tx)
    if (receipt == null || receipt.contractAddress == null) throw new RegistryError('DEPLOY_FAILED', 'deployment produced no receipt')
    const address = getAddress(receipt.contractAddress)
    return { lineage: new LineageClient(address, signer), address, txHash: receipt.hash, blockNumber: receipt.blockNumber, gasUsed: receipt.gasUsed }
  } catch (e) {
    if (e instanceof RegistryError) throw e
    throw new RegistryError('DEPLOY_FAILED', `deployment failed: ${(e as Error).message}`, { cause: e, revert: decodeLineageRevert(e) })
  }
}

/** The custom error of a CALL_EXCEPTION, decoded with the lineage ABI, then the registry's. */
export function decodeLineageRevert (e: unknown): DecodedRevert | undefined {
  if (!isError(e, 'CALL_EXCEPTION')) return undefined
  if (e.revert != null) return { name: e.revert.name, args: plain(e.revert.args) }
  if (typeof e.data === 'string' && e.data.length >= 10) {
    for (const iface of [lineageInterface, registryInterface]) {
      try {
        const parsed = iface.parseError(e.data)
        if (parsed !== null) return { name: parsed.name, args: plain(parsed.args) }
      } catch {
        // Not this ABI's error: try the next.
      }
    }
  }
  return undefined
}

const bytes32 = (value: BytesLike | undefined, what: string): string => {
  if (value === undefined) return ZeroHash
  let b: Uint8Array
  try { b = getBytes(value) } catch (e) { throw new TypeError(`${what} must be bytes or 0x-hex`, { cause: e }) }
  if (b.length !== 32) throw new RangeError(`${what} must be exactly 32 bytes, got ${b.length}`)
  return hexlify(b)
}

/**
 * A LineageRegistry at `address`. Every method throws RegistryError: REGISTRY_UNAUTHORIZED (missing
 * role, here or as publisher in the ProvenanceRegistry), REGISTRY_REVERTED (see `.revert.name`),
 * REGISTRY_RPC_FAILED.
 */
export class LineageClient {
  readonly address: string
  readonly contract: Contract
  readonly #calls: ContractCalls

  constructor (address: string, runner: ContractRunner) {
    this.address = getAddress(address)
    this.contract = new Contract(this.address, lineageInterface, runner)
    this.#calls = new ContractCalls(this.contract, (e) => contractError(e, decodeLineageRevert, 'lineage registry'))
  }

  connect (runner: ContractRunner): LineageClient {
    return new LineageClient(this.address, runner)
  }

  async registryAddress (): Promise<string> {
    return await this.#calls.read<string>('registry', [])
  }

  async hasRole (role: LineageRoleName, account: string): Promise<boolean> {
    return await this.#calls.read<boolean>('hasRole', [LINEAGE_ROLES[role], getAddress(account)])
  }

  async grantRole (role: LineageRoleName, account: string): Promise<TxResult> {
    return txResult(await this.#calls.send('grantRole', [LINEAGE_ROLES[role], getAddress(account)]))
  }

  async registerDataset (input: DatasetRegistration): Promise<TxResult> {
    return txResult(await this.#calls.send('registerDataset', [
      bytes32(input.datasetHash, 'datasetHash'), bytes32(input.parentHash, 'parentHash'), input.name, input.version, input.uri ?? ''
    ]))
  }

  /** undefined when the dataset is not registered. */
  async getDataset (datasetHash: BytesLike): Promise<DatasetInfo | undefined> {
    const hash = bytes32(datasetHash, 'datasetHash')
    const d = await this.#calls.readOrUndefined<{ parentHash: string, curator: string, registeredAt: bigint, name: string, version: string, uri: string }>('getDataset', [hash], 'UnknownDataset')
    if (d === undefined) return undefined
    return { datasetHash: hash, parentHash: d.parentHash === ZeroHash ? undefined : d.parentHash, curator: d.curator, registeredAtSec: d.registeredAt, name: d.name, version: d.version, uri: d.uri }
  }

  async registerTrainerKey (publicKey: BytesLike, name: string): Promise<TxResult> {
    return txResult(await this.#calls.send('registerTrainerKey', [bytes32(publicKey, 'publicKey'), name]))
  }

  async revokeTrainerKey (publicKey: BytesLike): Promise<TxResult> {
    return txResult(await this.#calls.send('revokeTrainerKey', [bytes32(publicKey, 'publicKey')]))
  }

  /** undefined when the key was never registered. */
  async getTrainerKey (publicKey: BytesLike): Promise<TrainerKeyInfo | undefined> {
    const key = bytes32(publicKey, 'publicKey')
    const k = await this.#calls.readOrUndefined<{ registeredAt: bigint, revokedAt: bigint, name: string }>('getTrainerKey', [key], 'UnknownTrainerKey')
    if (k === undefined) return undefined
    return { publicKey: key, name: k.name, registeredAtSec: k.registeredAt, revokedAtSec: k.revokedAt === 0n ? undefined : k.revokedAt }
  }

  async attachTrainingRun (input: TrainingRunAttachment): Promise<TxResult> {
    return txResult(await this.#calls.send('attachTrainingRun', [
      bytes32(input.modelHash, 'modelHash'), bytes32(input.statementHash, 'statementHash'), bytes32(input.trainerKey, 'trainerKey'),
      input.datasetHashes.map((h, i) => bytes32(h, `datasetHashes[${i}]`))
    ]))
  }

  /** Registers the model in the ProvenanceRegistry through this contract, with its training run. */
  async registerTrainedModel (input: TrainedModelRegistration): Promise<TxResult> {
    return txResult(await this.#calls.send('registerTrainedModel', [{
      modelHash: bytes32(input.modelHash, 'modelHash'),
      name: input.name,
      version: input.version,
      parentHash: bytes32(input.parentHash, 'parentHash'),
      manifestHash: bytes32(input.manifestHash, 'manifestHash'),
      metadataURI: input.metadataURI ?? '',
      statementHash: bytes32(input.statementHash, 'statementHash'),
      trainerKey: bytes32(input.trainerKey, 'trainerKey'),
      datasetHashes: input.datasetHashes.map((h, i) => bytes32(h, `datasetHashes[${i}]`))
    }]))
  }

  /** Model status changes through this contract (for publishers holding their role here). */
  async approveModel (modelHash: BytesLike): Promise<TxResult> {
    return txResult(await this.#calls.send('approveModel', [bytes32(modelHash, 'modelHash')]))
  }

  async deprecateModel (modelHash: BytesLike): Promise<TxResult> {
    return txResult(await this.#calls.send('deprecateModel', [bytes32(modelHash, 'modelHash')]))
  }

  async revokeModel (modelHash: BytesLike): Promise<TxResult> {
    return txResult(await this.#calls.send('revokeModel', [bytes32(modelHash, 'modelHash')]))
  }

  /** undefined when no run is attached to the model. */
  async getTrainingRun (modelHash: BytesLike): Promise<TrainingRunInfo | undefined> {
    const r = await this.#calls.read<{ statementHash: string, trainerKey: string, publisher: string, attachedAt: bigint }>('getTrainingRun', [bytes32(modelHash, 'modelHash')])
    if (r.statementHash === ZeroHash) return undefined
    return { statementHash: r.statementHash, trainerKey: r.trainerKey, publisher: r.publisher, attachedAtSec: r.attachedAt }
  }

}

function txResult (receipt: ContractTransactionReceipt): TxResult {
  return { txHash: receipt.hash, blockNumber: receipt.blockNumber, gasUsed: receipt.gasUsed }
}

function plain (value: unknown): unknown[] {
  const convert = (v: unknown): unknown => Array.isArray(v) ? Array.from(v, convert) : v
  return Array.from(value as ArrayLike<unknown>, convert)
}
