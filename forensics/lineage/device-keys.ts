/**
 * Device keys for lineage checks (data captures, federated contributions, trace): from a list given
 * on the command line (offline), or from the ProvenanceRegistry at the chain's latest block.
 * The registry is loaded on demand, so offline checks load no chain code.
 */
import { ForensicsError } from '../errors.js'
import type { CaptureAnchorFacts, DeviceKeyLookup } from './captures.js'

const HEX64 = /^[0-9a-f]{64}$/

/**
 * `ID=HEX[:revoked],...`: each device's one key, valid at every time; `:revoked` marks it revoked.
 * @throws TypeError naming the bad item (a usage error for the CLI).
 */
export function parseDeviceKeyList (text: string): DeviceKeyLookup {
  const keys = new Map<string, { publicKey: Uint8Array, revoked: boolean }>()
  for (const item of text.split(',').map(s => s.trim()).filter(s => s !== '')) {
    const m = /^([^=]+)=([0-9a-f]{64})(:revoked)?$/.exec(item)
    if (m === null || !HEX64.test(m[2] as string)) throw new TypeError(`--device-keys: expected ID=HEX64[:revoked], got ${JSON.stringify(item)}`)
    keys.set(m[1] as string, { publicKey: new Uint8Array(Buffer.from(m[2] as string, 'hex')), revoked: m[3] !== undefined })
  }
  return async (deviceId) => await Promise.resolve(keys.get(deviceId))
}

/**
 * Reads keys from the registry (`keyAt(sha256(id), time)`), caching per device and time.
 * The caller must call `close`.
 */
export async function registryDeviceKeys (rpcUrl: string, registryAddress: string): Promise<{ lookup: DeviceKeyLookup, close: () => void }> {
  const { RegistryClient, RegistryError, createRpcProvider, deviceIdOf } = await import('../../contracts/index.js')
  const provider = createRpcProvider(rpcUrl)
  const registry = new RegistryClient(registryAddress, provider)
  const cache = new Map<string, { publicKey: Uint8Array, revoked: boolean } | undefined>()
  const lookup: DeviceKeyLookup = async (deviceId, timeMs) => {
    const k = `${deviceId}@${timeMs}`
    if (cache.has(k)) return cache.get(k)
    try {
      const id = deviceIdOf(deviceId)
      const device = await registry.getDevice(id)
      const at = device === undefined ? undefined : await registry.keyAt(id, timeMs)
      const value = at?.publicKey === undefined ? undefined : { publicKey: new Uint8Array(Buffer.from(at.publicKey.slice(2), 'hex')), revoked: at.revoked }
      cache.set(k, value)
      return value
    } catch (e) {
      if (e instanceof RegistryError) throw new ForensicsError('RPC_FAILED', `registry: ${e.message}`, { cause: e })
      throw e
    }
  }
  return { lookup, close: () => { provider.destroy() } }
}

/**
 * Anchor facts read from the ProvenanceRegistry at the latest block (authoritative: a root the chain
 * does not hold is not anchored). The caller must call `close`.
 * @throws ForensicsError RPC_FAILED, REGISTRY_NOT_FOUND
 */
export async function registryAnchorFacts (rpcUrl: string, registryAddress: string): Promise<{ facts: CaptureAnchorFacts, close: () => void }> {
  const chain = await import('../chain/index.js')
  const reader = await chain.openChainReader(rpcUrl, registryAddress)
  const facts: CaptureAnchorFacts = {
    chainId: reader.chainId,
    registry: registryAddress,
    authoritative: true,
    read: async (roots) => await chain.readAnchorFacts(reader, roots, await chain.readLatestBlock(reader))
  }
  return { facts, close: reader.close }
}

/**
 * From the LineageRegistry: which of the envelope's key ids are registered, non-revoked trainer keys,
 * and the statement hash attached to `modelHash` (null: none).
 * @throws ForensicsError RPC_FAILED
 */
export async function lineageRunFacts (rpcUrl: string, lineageAddress: string, keyIds: readonly string[], modelHash: string): Promise<{ trainerKeys: Uint8Array[], registeredStatementHash: string | null }> {
  const { LineageClient, RegistryError, createRpcProvider } = await import('../../contracts/index.js')
  const provider = createRpcProvider(rpcUrl)
  try {
    const lineage = new LineageClient(lineageAddress, provider)
    const trainerKeys: Uint8Array[] = []
    for (const id of keyIds) {
      if (!HEX64.test(id)) continue
      const key = await lineage.getTrainerKey('0x' + id)
      if (key !== undefined && key.revokedAtSec === undefined) trainerKeys.push(new Uint8Array(Buffer.from(id, 'hex')))
    }
    const run = await lineage.getTrainingRun('0x' + modelHash)
    return { trainerKeys, registeredStatementHash: run === undefined ? null : run.statementHash.replace(/^0x/, '').toLowerCase() }
  } catch (e) {
    if (e instanceof RegistryError) throw new ForensicsError('RPC_FAILED', `lineage registry: ${e.message}`, { cause: e })
    throw e
  } finally {
    provider.destroy()
  }
}
