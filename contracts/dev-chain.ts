/**
 * A ready-to-use local chain for tests, benchmarks and the demo: anvil started, a registry
 * deployed, and each role handed to its own well-known dev account, so callers can act as any role.
 */

import { Wallet, type JsonRpcProvider } from 'ethers'
import { startAnvil, type AnvilInstance, type AnvilOptions } from './anvil.js'
import { createRpcProvider } from './provider.js'
import { deployRegistry, RegistryClient, type RegistryDeployment } from './registry.js'

/** Who acts in a dev chain: the admin (deployer), one holder per role, and an account with no role. */
export type DevActor = 'admin' | 'deviceRegistrar' | 'modelPublisher' | 'anchorer' | 'outsider'
export const DEV_ACTORS: readonly DevActor[] = ['admin', 'deviceRegistrar', 'modelPublisher', 'anchorer', 'outsider']

export interface DevChain {
  anvil: AnvilInstance
  provider: JsonRpcProvider
  deployment: RegistryDeployment
  /** Dev account i of anvil acts as DEV_ACTORS[i]. */
  wallets: Record<DevActor, Wallet>
  /** A client of the deployed registry signing as `actor`. */
  registryAs: (actor: DevActor) => RegistryClient
  /** Stops the provider and anvil. Safe to call more than once. */
  stop: () => Promise<void>
}

/**
 * Starts anvil, deploys a registry (admin: account 0) and grants DEVICE_REGISTRAR_ROLE,
 * MODEL_PUBLISHER_ROLE and ANCHORER_ROLE to accounts 1, 2 and 3. Account 4 holds no role.
 * @throws RegistryError ANVIL_NOT_FOUND, ANVIL_START_FAILED, DEPLOY_FAILED, REGISTRY_RPC_FAILED
 */
export async function startDevChain (options: AnvilOptions = {}): Promise<DevChain> {
  const anvil = await startAnvil({ ...options, accountCount: Math.max(options.accountCount ?? 10, DEV_ACTORS.length) })
  const provider = createRpcProvider(anvil.rpcUrl, { chainId: anvil.chainId, pollingIntervalMs: 50 })
  const stop = async (): Promise<void> => {
    provider.destroy()
    await anvil.stop()
  }
  try {
    const wallets = Object.fromEntries(DEV_ACTORS.map((actor, i) => {
      const account = anvil.accounts[i]
      if (account === undefined) throw new RangeError(`anvil has no account ${i}`)
      return [actor, new Wallet(account.privateKey, provider)]
    })) as Record<DevActor, Wallet>
    const deployment = await deployRegistry(wallets.admin)
    const admin = deployment.registry
    await admin.grantRole('deviceRegistrar', wallets.deviceRegistrar.address)
    await admin.grantRole('modelPublisher', wallets.modelPublisher.address)
    await admin.grantRole('anchorer', wallets.anchorer.address)
    return {
      anvil,
      provider,
      deployment,
      wallets,
      registryAs: (actor) => admin.connect(wallets[actor]),
      stop
    }
  } catch (e) {
    await stop()
    throw e
  }
}
