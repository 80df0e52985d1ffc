/**
 * The fleet CLI's way to the chain: an RPC provider, the operator's account from a key file
 * (0600) or $PROVENANCE_FLEET_KEY, the registry client, and one `transact` that sends a call or,
 * under --dry-run, simulates it with eth_call from the same account (so a missing role or a
 * duplicate registration shows up without a transaction).
 */
import { Wallet, getAddress, isAddress } from 'ethers'
import { parseHexSecret32, readSecret, UsageError, type CliContext } from '../common/index.js'
import { RegistryClient, createRpcProvider, decodeRegistryRevert, fetchChainId, RegistryError, type TxResult } from '../contracts/index.js'
import { FleetError } from './errors.js'
import { explainRegistryError } from './explain.js'
import { FLEET_KEY_ENV } from './names.js'
import { rpcUrlOf } from './options.js'

export { FLEET_KEY_ENV }

export interface Chain {
  rpcUrl: string
  chainId: number
  /** The operator's account (undefined for read-only commands without a key). */
  wallet: Wallet | undefined
  registry: RegistryClient
  close: () => void
}

/**
 * Opens the chain named by --rpc-url, the registry by --registry and (with `signer`) the key.
 * @throws UsageError; CommonError `SECRET_*`; RegistryError `REGISTRY_RPC_FAILED`; FleetError `FLEET_NO_REGISTRY`.
 */
export async function openChain (ctx: CliContext, options: { signer: boolean }): Promise<Chain> {
  const rpcUrl = rpcUrlOf(ctx)
  const address = registryAddressOf(ctx)
  const wallet = options.signer ? new Wallet(await readOperatorKey(ctx)) : undefined
  const chainId = await fetchChainId(rpcUrl)
  const provider = createRpcProvider(rpcUrl, { chainId })
  try {
    const connected = wallet?.connect(provider)
    if (await provider.getCode(address) === '0x') {
      throw new FleetError('FLEET_NO_REGISTRY', `no contract at ${address} on chain ${chainId} (${rpcUrl}): deploy one with \`provenance-fleet deploy\` or check --registry`)
    }
    return {
      rpcUrl,
      chainId,
      wallet: connected,
      registry: new RegistryClient(address, connected ?? provider),
      close: () => provider.destroy()
    }
  } catch (e) {
    provider.destroy()
    if (e instanceof FleetError) throw e
    throw explainRegistryError(e)
  }
}

function registryAddressOf (ctx: CliContext): string {
  const address = ctx.required('registry')
  if (!isAddress(address)) throw new UsageError('--registry must be a 20-byte 0x-hex address')
  return getAddress(address)
}

/** The operator's private key from --key-file or $PROVENANCE_FLEET_KEY (never printed). */
export async function readOperatorKey (ctx: CliContext): Promise<string> {
  const raw = await readSecret({ file: ctx.string('key-file'), envName: FLEET_KEY_ENV, env: ctx.io.env, what: 'operator key', fileOption: '--key-file' })
  return '0x' + parseHexSecret32(raw, 'the operator key')
}

/** A planned or mined transaction, as commands print it. */
export interface TxOutcome {
  dryRun: boolean
  /** Who sends (or would send) it. */
  from: string
  method: string
  txHash?: string
  blockNumber?: number
  gasUsed?: string
}

/**
 * Sends `method` through `send`, or under --dry-run simulates it with `args` (already normalized
 * for the ABI) and sends nothing.
 * @throws RegistryError with an explained message (REGISTRY_REVERTED, REGISTRY_UNAUTHORIZED, …).
 */
export async function transact<T extends TxResult> (ctx: CliContext, chain: Chain, method: string, args: unknown[], send: () => Promise<T>): Promise<TxOutcome & { result?: T }> {
  const from = chain.wallet?.address ?? ''
  try {
    if (ctx.dryRun) {
      ctx.progress(`dry run: simulating ${method} from ${from}`)
      await chain.registry.contract.getFunction(method).staticCall(...args)
      return { dryRun: true, from, method }
    }
    ctx.progress(`sending ${method} from ${from} …`)
    const result = await send()
    return { dryRun: false, from, method, txHash: result.txHash, blockNumber: result.blockNumber, gasUsed: result.gasUsed.toString(), result }
  } catch (e) {
    throw explainRegistryError(e)
  }
}

export { RegistryError, decodeRegistryRevert }
