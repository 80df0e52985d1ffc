/**
 * `provenance-fleet deploy`: a new ProvenanceRegistry (the contracts part's deploy, shared with
 * contracts/deploy.ts), its admin the operator or --admin.
 */
import { UsageError, type CliCommandSpec } from '../../common/index.js'
import { KEY_FILE, RPC_URL, addressShape, rpcUrlOf } from '../options.js'

export const DEPLOY_COMMAND: CliCommandSpec = {
  path: ['deploy'],
  summary: 'Deploy a new ProvenanceRegistry; prints its address.',
  description: ['The operator\'s account pays and, unless --admin names another account, receives DEFAULT_ADMIN_ROLE (which grants the other roles). Keep the address: every other command takes it as --registry ($PROVENANCE_REGISTRY).'],
  options: [RPC_URL, KEY_FILE, { name: 'admin', type: 'string', value: '<address>', description: 'Account that receives DEFAULT_ADMIN_ROLE. Default: the operator.' }],
  mutating: true,
  run: async (ctx) => {
    const rpcUrl = rpcUrlOf(ctx)
    const adminOption = ctx.string('admin')
    const admin = adminOption === undefined ? undefined : addressShape(adminOption, '--admin')
    // ethers and the contracts load only now: --help and usage errors stay fast.
    const { ContractFactory, Wallet, getAddress, isAddress } = await import('ethers')
    const { REGISTRY_BYTECODE, createRpcProvider, deployToRpc, fetchChainId, registryInterface } = await import('../../contracts/index.js')
    const { readOperatorKey } = await import('../chain.js')
    const { explainRegistryError } = await import('../explain.js')
    if (admin !== undefined && !isAddress(admin)) throw new UsageError('--admin must be a 20-byte 0x-hex address (bad checksum)')
    const key = await readOperatorKey(ctx)
    const deployer = new Wallet(key).address
    const adminAddress = getAddress(admin ?? deployer)
    if (ctx.dryRun) {
      const chainId = await fetchChainId(rpcUrl)
      const provider = createRpcProvider(rpcUrl, { chainId })
      try {
        const tx = await new ContractFactory(registryInterface, REGISTRY_BYTECODE).getDeployTransaction(adminAddress)
        const gas = await provider.estimateGas({ ...tx, from: deployer }).catch((e: unknown) => { throw explainRegistryError(e) })
        const value = { dryRun: true, chainId, deployer, admin: adminAddress, estimatedGas: gas.toString() }
        return { value, text: `dry run: would deploy a registry on chain ${chainId} from ${deployer} (admin ${adminAddress}, about ${gas} gas)` }
      } finally {
        provider.destroy()
      }
    }
    ctx.progress(`deploying a registry from ${deployer} …`)
    const d = await deployToRpc(rpcUrl, key, adminAddress)
    const value = { dryRun: false, ...d, gasUsed: d.gasUsed.toString() }
    return { value, text: d.address }
  }
}
