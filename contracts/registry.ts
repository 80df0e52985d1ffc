/**
 * Typed ethers v6 bindings of ProvenanceRegistry: one method per contract call, plain TS objects
 * in and out, every revert turned into a RegistryError carrying the decoded custom error.
 * uint64 values come back as bigint (exact); block numbers as number, like ethers.
 */

import { createHash } from 'node:crypto'
import {
  Contract, ContractFactory, Interface, ZeroHash, getAddress, getBytes, hexlify, id, isError,
  type BytesLike, type ContractRunner, type ContractTransactionReceipt, type EventLog, type Log, type Signer
} from 'ethers'
import artifact from './build/ProvenanceRegistry.json' with { type: 'json' }
import { RegistryError, type DecodedRevert } from './errors.js'
import { ContractCalls, contractError } from './contract-calls.js'
import { waitForReceipt } from './receipt.js'

/** ABI and creation bytecode of the committed build (contracts/build/ProvenanceRegistry.json). */
export const REGISTRY_ABI: readonly unknown[] = artifact.abi
export const REGISTRY_BYTECODE: string = artifact.bytecode
export const registryInterface = new Interface(artifact.abi)

/** Role ids, as the contract computes them (DEFAULT_ADMIN_ROLE is 0x00…00). */
export const REGISTRY_ROLES = {
  admin: ZeroHash,
  deviceRegistrar: id('DEVICE_REGISTRAR_ROLE'),
  modelPublisher: id('MODEL_PUBLISHER_ROLE'),
  anchorer: id('ANCHORER_ROLE')
} as const
export type RoleName = keyof typeof REGISTRY_ROLES

/** Model statuses in contract enum order; a status only moves to a later one. */
export const MODEL_STATUSES = ['none', 'registered', 'approved', 'deprecated', 'revoked'] as const
export type ModelStatus = typeof MODEL_STATUSES[number]

export const MAX_UINT64 = (1n << 64n) - 1n

/** Outcome of a mined transaction. */
export interface TxResult {
  txHash: string
  blockNumber: number
  gasUsed: bigint
}

export interface RegistryDeployment extends TxResult {
  registry: RegistryClient
  address: string
}

export interface DeviceRegistration {
  /** bytes32: sha256(utf8(device id string)), see deviceIdOf(). */
  deviceId: BytesLike
  /** Raw Ed25519 public key, exactly 32 bytes. */
  publicKey: BytesLike
  /** Device time (unix ms) from which the key is valid. */
  validFromMs: number | bigint
}

export interface DeviceInfo {
  deviceId: string
  registeredAtSec: bigint
  revoked: boolean
  /** Device time from which the device is revoked; undefined while not revoked. */
  revokedFromMs: bigint | undefined
  keyCount: number
}

export interface KeyPeriod {
  publicKey: string
  validFromMs: bigint
  /** Exclusive end: the next key's validFromMs; undefined for the current key. */
  validUntilMs: bigint | undefined
}

export interface KeyAtResult {
  /** Undefined when `timeMs` precedes the device's first key. */
  publicKey: string | undefined
  validFromMs: bigint | undefined
  /** True when the device was revoked at or before `timeMs`. */
  revoked: boolean
}

export interface ModelRegistration {
  /** sha256 of the model file bytes. */
  modelHash: BytesLike
  name: string
  version: string
  /** Hash of the parent model (must be registered); omit for none. */
  parentHash?: BytesLike
  /** Hash of the per-initializer tensor manifest; omit for none. */
  manifestHash?: BytesLike
  metadataURI?: string
}

export interface ModelInfo {
  modelHash: string
  name: string
  version: string
  parentHash: string | undefined
  manifestHash: string
  metadataURI: string
  publisher: string
  registeredAtSec: bigint
  status: ModelStatus
}

export interface ModelStatusChange extends TxResult {
  from: ModelStatus
  to: ModelStatus
}

export interface LineageResult {
  /** The model first, then its parent, grandparent, … */
  chain: string[]
  /** False when the walk stopped at `maxDepth` before reaching a model without parent. */
  complete: boolean
}

export interface AnchorInput {
  /** RFC 6962 Merkle root of the batch. */
  root: BytesLike
  /** Number of records (leaves), >= 1. */
  size: number | bigint
  firstRecordTimeMs: number | bigint
  lastRecordTimeMs: number | bigint
  /** Hash of off-chain batch metadata; omit for none. */
  metadataHash?: BytesLike
}

export interface AnchorResult extends TxResult {
  batchId: bigint
}

/** What the contract stores per root. */
export interface StoredAnchor {
  root: string
  batchId: bigint
  size: bigint
  blockNumber: number
  anchoredAtSec: bigint
}

/** An Anchored event: every field of a batch, with where it was logged. */
export interface AnchorEvent {
  batchId: bigint
  root: string
  anchorer: string
  size: bigint
  firstRecordTimeMs: bigint
  lastRecordTimeMs: bigint
  metadataHash: string
  blockNumber: number
  txHash: string
  logIndex: number
}

/** Block range of an event query; defaults: from block 0 to the latest. */
export interface BlockRange {
  fromBlock?: number
  toBlock?: number | 'latest'
}

/** bytes32 device id of a device id string: sha256 of its UTF-8 bytes, as 0x-hex. */
export function deviceIdOf (deviceName: string): string {
  if (typeof deviceName !== 'string' || deviceName.length === 0) throw new TypeError('device id must be a non-empty string')
  return '0x' + createHash('sha256').update(deviceName, 'utf8').digest('hex')
}

/**
 * Deploys a new registry whose DEFAULT_ADMIN_ROLE goes to `admin` (default: the signer).
 * @throws RegistryError DEPLOY_FAILED (wrapping the RPC or revert error)
 */
export async function deployRegistry (signer: Signer, admin?: string): Promise<RegistryDeployment> {
  try {
    const adminAddress = getAddress(admin ?? await signer.getAddress())
    const factory = new ContractFactory(registryInterface, artifact.bytecode, signer)
    const contract = await factory.deploy(adminAddress)
    const tx = contract.deploymentTransaction()
    const receipt = tx === null ? null : await waitForReceipt(tx)
    if (receipt == null || receipt.contractAddress == null) {
      throw new RegistryError('DEPLOY_FAILED', 'deployment produced no receipt')
    }
    const address = getAddress(receipt.contractAddress)
    return {
      registry: new RegistryClient(address, signer),
      address,
      txHash: receipt.hash,
      blockNumber: receipt.blockNumber,
      gasUsed: receipt.gasUsed
    }
  } catch (e) {
    if (e instanceof RegistryError) throw e
    throw new RegistryError('DEPLOY_FAILED', `deployment failed: ${(e as Error).message}`, { cause: e, revert: decodeRegistryRevert(e) })
  }
}

/**
 * The custom error inside an ethers CALL_EXCEPTION, decoded with the registry ABI (including
 * AccessControl's errors); undefined for other errors.
 */
export function decodeRegistryRevert (e: unknown): DecodedRevert | undefined {
  if (!isError(e, 'CALL_EXCEPTION')) return undefined
  if (e.revert != null) return { name: e.revert.name, args: toPlain(e.revert.args) }
  if (typeof e.data === 'string' && e.data.length >= 10) {
    try {
      const parsed = registryInterface.parseError(e.data)
      if (parsed !== null) return { name: parsed.name, args: toPlain(parsed.args) }
    } catch {
      // Not one of ours: fall through.
    }
  }
  return undefined
}

/**
 * A ProvenanceRegistry at `address`. Reads need a runner with a provider; writes need a Signer
 * holding the role the call requires.
 * Every method throws RegistryError: REGISTRY_UNAUTHORIZED (missing role), REGISTRY_REVERTED
 * (another custom error; see `.revert.name`), REGISTRY_RPC_FAILED (transport, nonce, funds …).
 */
export class RegistryClient {
  readonly address: string
  readonly contract: Contract
  readonly #calls: ContractCalls

  constructor (address: string, runner: ContractRunner) {
    this.address = getAddress(address)
    this.contract = new Contract(this.address, registryInterface, runner)
    this.#calls = new ContractCalls(this.contract, (e) => contractError(e, decodeRegistryRevert, 'registry'))
  }

  /** The same registry with another runner (e.g. another role's signer). */
  connect (runner: ContractRunner): RegistryClient {
    return new RegistryClient(this.address, runner)
  }

  // -------------------------------------------------------------------------- roles

  async hasRole (role: RoleName | BytesLike, account: string): Promise<boolean> {
    return await this.#calls.read<boolean>('hasRole', [roleId(role), getAddress(account)])
  }

  /** The role that administers `role` (DEFAULT_ADMIN_ROLE, 0x00…00, for all four). */
  async getRoleAdmin (role: RoleName | BytesLike): Promise<string> {
    return await this.#calls.read<string>('getRoleAdmin', [roleId(role)])
  }

  /** REGISTRY_VERSION of the deployed contract (1 for this ABI). */
  async registryVersion (): Promise<bigint> {
    return await this.#calls.read<bigint>('REGISTRY_VERSION', [])
  }

  /** Admin only (the role's admin role, DEFAULT_ADMIN_ROLE for all four). */
  async grantRole (role: RoleName | BytesLike, account: string): Promise<TxResult> {
    return txResult(await this.#calls.send('grantRole', [roleId(role), getAddress(account)]))
  }

  async revokeRole (role: RoleName | BytesLike, account: string): Promise<TxResult> {
    return txResult(await this.#calls.send('revokeRole', [roleId(role), getAddress(account)]))
  }

  /** The caller gives up one of its own roles; `account` must be the caller. */
  async renounceRole (role: RoleName | BytesLike, account: string): Promise<TxResult> {
    return txResult(await this.#calls.send('renounceRole', [roleId(role), getAddress(account)]))
  }

  // -------------------------------------------------------------------------- devices

  /** DEVICE_REGISTRAR_ROLE. @throws RangeError for a key that is not 32 bytes */
  async registerDevice (input: DeviceRegistration): Promise<TxResult> {
    return txResult(await this.#calls.send('registerDevice', [
      toBytes32(input.deviceId, 'deviceId'), toBytes32(input.publicKey, 'publicKey'), toUint64(input.validFromMs, 'validFromMs')
    ]))
  }

  /** DEVICE_REGISTRAR_ROLE. `validFromMs` must be later than the current key's. */
  async rotateDeviceKey (input: DeviceRegistration): Promise<TxResult & { keyIndex: number }> {
    const receipt = await this.#calls.send('rotateDeviceKey', [
      toBytes32(input.deviceId, 'deviceId'), toBytes32(input.publicKey, 'publicKey'), toUint64(input.validFromMs, 'validFromMs')
    ])
    const event = findEvent(receipt, 'DeviceKeyRotated')
    return { ...txResult(receipt), keyIndex: Number(event.args.getValue('keyIndex')) }
  }

  /** DEVICE_REGISTRAR_ROLE. Final: records at device times >= `revokedFromMs` count as revoked. */
  async revokeDevice (deviceId: BytesLike, revokedFromMs: number | bigint): Promise<TxResult> {
    return txResult(await this.#calls.send('revokeDevice', [toBytes32(deviceId, 'deviceId'), toUint64(revokedFromMs, 'revokedFromMs')]))
  }

  /** The device, or undefined when it was never registered. */
  async getDevice (deviceId: BytesLike): Promise<DeviceInfo | undefined> {
    const id32 = toBytes32(deviceId, 'deviceId')
    const d = await this.#calls.readOrUndefined<{ registeredAt: bigint, revoked: boolean, revokedFromMs: bigint, keyCount: bigint }>(
      'getDevice', [id32], 'UnknownDevice')
    if (d === undefined) return undefined
    return {
      deviceId: id32,
      registeredAtSec: d.registeredAt,
      revoked: d.revoked,
      revokedFromMs: d.revoked ? d.revokedFromMs : undefined,
      keyCount: Number(d.keyCount)
    }
  }

  /** The full key history, oldest first. @throws RegistryError REGISTRY_REVERTED (UnknownDevice) */
  async getDeviceKeys (deviceId: BytesLike): Promise<KeyPeriod[]> {
    const result = await this.#calls.read<Array<{ publicKey: string, validFromMs: bigint }>>('deviceKeys', [toBytes32(deviceId, 'deviceId')])
    // An ethers Result throws on out-of-range indexes: copy it into a plain array first.
    const keys = Array.from(result)
    return keys.map((k, i) => ({ publicKey: k.publicKey, validFromMs: k.validFromMs, validUntilMs: keys[i + 1]?.validFromMs }))
  }

  /** The key valid at device time `timeMs`. @throws RegistryError REGISTRY_REVERTED (UnknownDevice) */
  async keyAt (deviceId: BytesLike, timeMs: number | bigint): Promise<KeyAtResult> {
    const [publicKey, validFromMs, revoked] = await this.#calls.read<[string, bigint, boolean]>(
      'keyAt', [toBytes32(deviceId, 'deviceId'), toUint64(timeMs, 'timeMs')])
    const none = publicKey === ZeroHash
    return { publicKey: none ? undefined : publicKey, validFromMs: none ? undefined : validFromMs, revoked }
  }

  // -------------------------------------------------------------------------- models

  /** MODEL_PUBLISHER_ROLE. The model starts as 'registered'. */
  async registerModel (input: ModelRegistration): Promise<TxResult> {
    return txResult(await this.#calls.send('registerModel', [
      toBytes32(input.modelHash, 'modelHash'),
      input.name,
      input.version,
      toBytes32(input.parentHash ?? ZeroHash, 'parentHash'),
      toBytes32(input.manifestHash ?? ZeroHash, 'manifestHash'),
      input.metadataURI ?? ''
    ]))
  }

  /** MODEL_PUBLISHER_ROLE: registered → approved. */
  async approveModel (modelHash: BytesLike): Promise<ModelStatusChange> {
    return await this.#changeStatus('approveModel', modelHash)
  }

  /** MODEL_PUBLISHER_ROLE: registered | approved → deprecated. */
  async deprecateModel (modelHash: BytesLike): Promise<ModelStatusChange> {
    return await this.#changeStatus('deprecateModel', modelHash)
  }

  /** MODEL_PUBLISHER_ROLE: any but revoked → revoked (final). */
  async revokeModel (modelHash: BytesLike): Promise<ModelStatusChange> {
    return await this.#changeStatus('revokeModel', modelHash)
  }

  /** The model, or undefined when the hash was never registered. */
  async getModel (modelHash: BytesLike): Promise<ModelInfo | undefined> {
    const hash = toBytes32(modelHash, 'modelHash')
    const m = await this.#calls.readOrUndefined<{
      parentHash: string, manifestHash: string, publisher: string, registeredAt: bigint, status: bigint,
      name: string, version: string, metadataURI: string
    }>('getModel', [hash], 'UnknownModel')
    if (m === undefined) return undefined
    return {
      modelHash: hash,
      name: m.name,
      version: m.version,
      parentHash: m.parentHash === ZeroHash ? undefined : m.parentHash,
      manifestHash: m.manifestHash,
      metadataURI: m.metadataURI,
      publisher: m.publisher,
      registeredAtSec: m.registeredAt,
      status: toStatus(m.status)
    }
  }

  /** The status; 'none' for an unregistered hash. */
  async modelStatus (modelHash: BytesLike): Promise<ModelStatus> {
    return toStatus(await this.#calls.read<bigint>('modelStatus', [toBytes32(modelHash, 'modelHash')]))
  }

  /**
   * The model and its ancestors, child first, at most `maxDepth` (default 1024) entries; walks
   * in pages of the contract's MAX_LINEAGE_DEPTH. @throws RegistryError REGISTRY_REVERTED (UnknownModel)
   */
  async lineage (modelHash: BytesLike, maxDepth = 1024): Promise<LineageResult> {
    if (!Number.isSafeInteger(maxDepth) || maxDepth < 1) throw new RangeError('maxDepth must be a positive integer')
    const chain: string[] = []
    let next = toBytes32(modelHash, 'modelHash')
    for (;;) {
      const [page, complete] = await this.#calls.read<[string[], boolean]>('lineage', [next, Math.min(64, maxDepth - chain.length)])
      chain.push(...page)
      if (complete) return { chain, complete: true }
      if (chain.length >= maxDepth) return { chain, complete: false }
      const last = await this.getModel(chain[chain.length - 1] as string)
      if (last?.parentHash === undefined) throw new RegistryError('REGISTRY_BAD_RESPONSE', 'lineage page ended without a parent')
      next = last.parentHash
    }
  }

  // -------------------------------------------------------------------------- anchors

  /** ANCHORER_ROLE. Anchors a batch root; a root is accepted once only. */
  async anchor (input: AnchorInput): Promise<AnchorResult> {
    const receipt = await this.#calls.send('anchor', [
      toBytes32(input.root, 'root'),
      toUint64(input.size, 'size'),
      toUint64(input.firstRecordTimeMs, 'firstRecordTimeMs'),
      toUint64(input.lastRecordTimeMs, 'lastRecordTimeMs'),
      toBytes32(input.metadataHash ?? ZeroHash, 'metadataHash')
    ])
    const event = findEvent(receipt, 'Anchored')
    return { ...txResult(receipt), batchId: event.args.getValue('batchId') as bigint }
  }

  /** What the contract stores for `root`, or undefined when it was never anchored. */
  async getAnchor (root: BytesLike): Promise<StoredAnchor | undefined> {
    const r = toBytes32(root, 'root')
    const a = await this.#calls.read<{ batchId: bigint, size: bigint, blockNumber: bigint, anchoredAt: bigint }>('getAnchor', [r])
    if (a.batchId === 0n) return undefined
    return { root: r, batchId: a.batchId, size: a.size, blockNumber: Number(a.blockNumber), anchoredAtSec: a.anchoredAt }
  }

  /** The full Anchored event of `root` (looked up in the block the contract recorded), or undefined. */
  async getAnchorEvent (root: BytesLike): Promise<AnchorEvent | undefined> {
    const stored = await this.getAnchor(root)
    if (stored === undefined) return undefined
    const events = await this.listAnchors({ fromBlock: stored.blockNumber, toBlock: stored.blockNumber }, { root: stored.root })
    const event = events.find((e) => e.batchId === stored.batchId)
    if (event === undefined) {
      throw new RegistryError('REGISTRY_BAD_RESPONSE', `no Anchored event for batch ${stored.batchId} in block ${stored.blockNumber}`)
    }
    return event
  }

  /** Anchored events in a block range, oldest first, optionally for one root or batch id. */
  async listAnchors (range: BlockRange = {}, filter: { root?: BytesLike, batchId?: number | bigint } = {}): Promise<AnchorEvent[]> {
    const batchId = filter.batchId === undefined ? null : toUint64(filter.batchId, 'batchId')
    const root = filter.root === undefined ? null : toBytes32(filter.root, 'root')
    const logs = await this.#calls.guard(async () => await this.contract.queryFilter(
      this.contract.filters.Anchored!(batchId, root, null), range.fromBlock ?? 0, range.toBlock ?? 'latest'))
    return logs.map(toAnchorEvent)
  }

  /** Number of batches anchored so far (= the last batch id). */
  async batchCount (): Promise<bigint> {
    return await this.#calls.read<bigint>('batchCount', [])
  }

  // -------------------------------------------------------------------------- internals

  async #changeStatus (method: string, modelHash: BytesLike): Promise<ModelStatusChange> {
    const receipt = await this.#calls.send(method, [toBytes32(modelHash, 'modelHash')])
    const event = findEvent(receipt, 'ModelStatusChanged')
    return { ...txResult(receipt), from: toStatus(event.args.getValue('from')), to: toStatus(event.args.getValue('to')) }
  }

}

function roleId (role: RoleName | BytesLike): string {
  if (typeof role === 'string' && role in REGISTRY_ROLES) return REGISTRY_ROLES[role as RoleName]
  return toBytes32(role, 'role')
}

function toBytes32 (value: BytesLike, what: string): string {
  let bytes: Uint8Array
  try {
    bytes = getBytes(value)
  } catch (e) {
    throw new TypeError(`${what} must be bytes or 0x-hex`, { cause: e })
  }
  if (bytes.length !== 32) throw new RangeError(`${what} must be exactly 32 bytes, got ${bytes.length}`)
  return hexlify(bytes)
}

function toUint64 (value: number | bigint, what: string): bigint {
  if (typeof value === 'number' && !Number.isSafeInteger(value)) throw new RangeError(`${what} must be an integer`)
  if (typeof value !== 'number' && typeof value !== 'bigint') throw new TypeError(`${what} must be a number or bigint`)
  const v = BigInt(value)
  if (v < 0n || v > MAX_UINT64) throw new RangeError(`${what} must fit in uint64`)
  return v
}

function toStatus (value: unknown): ModelStatus {
  const status = MODEL_STATUSES[Number(value)]
  if (status === undefined) throw new RegistryError('REGISTRY_BAD_RESPONSE', `unknown model status ${String(value)}`)
  return status
}

function txResult (receipt: ContractTransactionReceipt): TxResult {
  return { txHash: receipt.hash, blockNumber: receipt.blockNumber, gasUsed: receipt.gasUsed }
}

function findEvent (receipt: ContractTransactionReceipt, name: string): EventLog {
  for (const log of receipt.logs) {
    if ('eventName' in log && log.eventName === name) return log
  }
  throw new RegistryError('REGISTRY_BAD_RESPONSE', `transaction ${receipt.hash} has no ${name} event`)
}

function toAnchorEvent (log: EventLog | Log): AnchorEvent {
  const parsed = 'args' in log ? log : null
  const args = parsed?.args ?? registryInterface.parseLog(log)?.args
  if (args == null) throw new RegistryError('REGISTRY_BAD_RESPONSE', `undecodable log ${log.transactionHash}:${log.index}`)
  return {
    batchId: args.getValue('batchId') as bigint,
    root: args.getValue('root') as string,
    anchorer: args.getValue('anchorer') as string,
    size: args.getValue('size') as bigint,
    firstRecordTimeMs: args.getValue('firstRecordTimeMs') as bigint,
    lastRecordTimeMs: args.getValue('lastRecordTimeMs') as bigint,
    metadataHash: args.getValue('metadataHash') as string,
    blockNumber: log.blockNumber,
    txHash: log.transactionHash,
    logIndex: log.index
  }
}

/** ethers Result → plain arrays (nested), so errors and tests compare with plain values. */
function toPlain (value: unknown): unknown[] {
  const convert = (v: unknown): unknown => Array.isArray(v) ? Array.from(v, convert) : v
  return Array.from(value as ArrayLike<unknown>, convert)
}
