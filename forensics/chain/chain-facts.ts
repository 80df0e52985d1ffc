/**
 * Reads the registry's facts about one device, its models and the anchored roots, at a given
 * block, in the bundle's own JSON shapes, so that export writes them and online verification
 * compares them field by field. The only module of forensics that talks JSON-RPC: verify loads it
 * lazily, so offline verification never even constructs a provider.
 */
import { isError, type JsonRpcProvider } from 'ethers'
import { createRpcProvider, decodeRegistryRevert, deviceIdOf, RegistryClient, RegistryError } from '../../contracts/index.js'
import type { BundleAnchor, BundleDevice, BundleKey, BundleModel, BundleModelStatus } from '../../protocol/index.js'
import { ForensicsError } from '../errors.js'

/** A block number, or `latest`. */
export type BlockTag = number | 'latest'

/** A read-only connection to one registry on one node. */
export interface ChainReader {
  readonly provider: JsonRpcProvider
  readonly registry: RegistryClient
  readonly chainId: number
  /** Releases the provider (its polling timer), so the process can exit. */
  close: () => void
}

export interface ChainReaderOptions {
  /** Refuse a node of another chain (CHAIN_MISMATCH). */
  expectChainId?: number
}

const ZERO_HASH_HEX = '0'.repeat(64)
const STATUSES: readonly BundleModelStatus[] = ['none', 'registered', 'approved', 'deprecated', 'revoked']

/**
 * Connects to `rpcUrl`, asks its chain id once and checks that a contract lives at `registry`.
 * @throws ForensicsError `RPC_FAILED`, `CHAIN_MISMATCH`, `REGISTRY_NOT_FOUND`.
 */
export async function openChainReader (rpcUrl: string, registry: string, options: ChainReaderOptions = {}): Promise<ChainReader> {
  const provider = createRpcProvider(rpcUrl)
  const close = (): void => { provider.destroy() }
  try {
    const chainId = Number(await rpc(async () => (await provider.getNetwork()).chainId, 'eth_chainId'))
    if (options.expectChainId !== undefined && chainId !== options.expectChainId) {
      throw new ForensicsError('CHAIN_MISMATCH', `the node serves chain ${chainId}, the bundle names chain ${options.expectChainId}`)
    }
    const code = await rpc(async () => await provider.getCode(registry), 'eth_getCode')
    if (code === '0x') throw new ForensicsError('REGISTRY_NOT_FOUND', `no contract at ${registry} on chain ${chainId}`)
    return { provider, registry: new RegistryClient(registry, provider), chainId, close }
  } catch (e) {
    close()
    throw e
  }
}

/** The latest block number. @throws ForensicsError `RPC_FAILED` */
export async function readLatestBlock (reader: ChainReader): Promise<number> {
  return await rpc(async () => await reader.provider.getBlockNumber(), 'eth_blockNumber')
}

/** The hash of a block, 0x-hex; undefined when the node has no such block. @throws ForensicsError `RPC_FAILED` */
export async function readBlockHash (reader: ChainReader, blockNumber: number): Promise<string | undefined> {
  const block = await rpc(async () => await reader.provider.getBlock(blockNumber), 'eth_getBlockByNumber')
  return block?.hash ?? undefined
}

/**
 * The device's key history and revocation at `blockTag`; undefined when it is not registered.
 * @throws ForensicsError `RPC_FAILED`
 */
export async function readDeviceFacts (reader: ChainReader, deviceName: string, blockTag: BlockTag): Promise<BundleDevice | undefined> {
  const id = deviceIdOf(deviceName)
  const info = await call<{ revoked: boolean, revokedFromMs: bigint }>(reader, 'getDevice', [id], blockTag, 'UnknownDevice')
  if (info === undefined) return undefined
  const raw = await call<Array<{ publicKey: string, validFromMs: bigint }>>(reader, 'deviceKeys', [id], blockTag)
  const periods = Array.from(raw ?? [], k => ({ publicKey: k.publicKey, validFromMs: k.validFromMs }))
  const keys: BundleKey[] = periods.map((k, i) => {
    const next = periods[i + 1]
    const key: BundleKey = { publicKey: bare(k.publicKey), validFromMs: toMs(k.validFromMs) }
    if (next !== undefined) key.validUntilMs = toMs(next.validFromMs)
    return key
  })
  const device: BundleDevice = { id: deviceName, keys }
  if (info.revoked) device.revokedFromMs = toMs(info.revokedFromMs)
  return device
}

/**
 * The registry's entry of each model hash (hex) at `blockTag`; status `none` for unknown hashes.
 * @throws ForensicsError `RPC_FAILED`
 */
export async function readModelFacts (reader: ChainReader, hashes: Iterable<string>, blockTag: BlockTag): Promise<BundleModel[]> {
  const out: BundleModel[] = []
  for (const hash of new Set(hashes)) {
    const status = STATUSES[Number(await call<bigint>(reader, 'modelStatus', ['0x' + hash], blockTag))]
    if (status === undefined) throw new ForensicsError('RPC_FAILED', `registry answered an unknown model status for ${hash}`)
    if (status === 'none') {
      out.push({ hash, name: '', version: '', parentHash: null, manifestHash: ZERO_HASH_HEX, status, metadataUri: '' })
      continue
    }
    const m = await call<{ parentHash: string, manifestHash: string, name: string, version: string, metadataURI: string }>(
      reader, 'getModel', ['0x' + hash], blockTag)
    if (m === undefined) throw new ForensicsError('RPC_FAILED', `registry lost model ${hash} between two calls`)
    const parent = bare(m.parentHash)
    out.push({
      hash,
      name: m.name,
      version: m.version,
      parentHash: parent === ZERO_HASH_HEX ? null : parent,
      manifestHash: bare(m.manifestHash),
      status,
      metadataUri: m.metadataURI
    })
  }
  return out
}

/**
 * The anchoring of each root (hex) at `blockTag`: the stored size and the Anchored event, with the
 * hash of its block. Roots not anchored at that block are absent from the map.
 * @throws ForensicsError `RPC_FAILED`
 */
export async function readAnchorFacts (reader: ChainReader, roots: Iterable<string>, blockTag: BlockTag): Promise<Map<string, BundleAnchor>> {
  const out = new Map<string, BundleAnchor>()
  const blockHashes = new Map<number, string | undefined>()
  for (const root of new Set(roots)) {
    const stored = await call<{ batchId: bigint, size: bigint, blockNumber: bigint }>(reader, 'getAnchor', ['0x' + root], blockTag)
    if (stored === undefined || stored.batchId === 0n) continue
    const blockNumber = Number(stored.blockNumber)
    // Logs never change once mined: the event is read from the block the contract recorded.
    const events = await rpc(async () => await reader.registry.listAnchors({ fromBlock: blockNumber, toBlock: blockNumber }, { root: '0x' + root }), 'eth_getLogs')
    const event = events.find(e => e.batchId === stored.batchId)
    if (event === undefined) throw new ForensicsError('RPC_FAILED', `no Anchored event for root ${root} in block ${blockNumber}`)
    if (!blockHashes.has(blockNumber)) blockHashes.set(blockNumber, await readBlockHash(reader, blockNumber))
    const blockHash = blockHashes.get(blockNumber)
    if (blockHash === undefined) throw new ForensicsError('RPC_FAILED', `the node has no block ${blockNumber}`)
    out.set(root, {
      root,
      size: toMs(stored.size),
      onChainBatchId: stored.batchId.toString(),
      txHash: event.txHash,
      blockNumber,
      blockHash,
      firstRecordTimeMs: toMs(event.firstRecordTimeMs),
      lastRecordTimeMs: toMs(event.lastRecordTimeMs),
      metadataHash: bare(event.metadataHash)
    })
  }
  return out
}

// A view call at a block. `unknownError`: the custom error that means "no such entry" (undefined).
async function call<T> (reader: ChainReader, method: string, args: unknown[], blockTag: BlockTag, unknownError?: string): Promise<T | undefined> {
  try {
    return await reader.registry.contract.getFunction(method).staticCall(...args, { blockTag }) as T
  } catch (e) {
    if (unknownError !== undefined && decodeRegistryRevert(e)?.name === unknownError) return undefined
    throw new ForensicsError('RPC_FAILED', `registry ${method} at block ${String(blockTag)} failed: ${describe(e)}`, { cause: e })
  }
}

async function rpc<T> (fn: () => Promise<T>, what: string): Promise<T> {
  try {
    return await fn()
  } catch (e) {
    if (e instanceof ForensicsError) throw e
    throw new ForensicsError('RPC_FAILED', `${what} failed: ${describe(e)}`, { cause: e })
  }
}

function describe (e: unknown): string {
  if (e instanceof RegistryError) return e.message
  if (isError(e, 'CALL_EXCEPTION')) return e.shortMessage
  const m = e as { shortMessage?: unknown, message?: unknown }
  return String(m.shortMessage ?? m.message ?? e)
}

function bare (hex: string): string {
  return hex.toLowerCase().replace(/^0x/, '')
}

// uint64 from the chain as a JSON-safe number. Device times and sizes above 2^53 - 1 can only be
// registrar mistakes; no record can carry such a time, so the clamp changes no lookup.
function toMs (v: bigint): number {
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v)
}
