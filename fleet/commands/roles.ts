/**
 * `provenance-fleet role grant | revoke | check`: the registry's four roles by their CLI names
 * (admin, device-registrar, model-publisher, anchorer).
 */
import { UsageError, type CliCommandSpec, type CliContext } from '../../common/index.js'
import { ROLE_OPTION_NAMES, type RoleOptionName } from '../names.js'
import { CHAIN_READ, CHAIN_WRITE, addressShape } from '../options.js'

const ROLE_OPTIONS = [
  { name: 'role', type: 'string', value: '<role>', description: `One of ${Object.keys(ROLE_OPTION_NAMES).join(', ')}.` },
  { name: 'account', type: 'string', value: '<address>', description: 'The account (0x-hex address).' }
] as const

/** Checks the options, then loads ethers and the chain code (so usage errors stay fast). */
async function roleAndAccount (ctx: CliContext): Promise<{ role: RoleOptionName, roleId: string, account: string }> {
  const role = ctx.required('role')
  if (!Object.hasOwn(ROLE_OPTION_NAMES, role)) throw new UsageError(`--role must be one of ${Object.keys(ROLE_OPTION_NAMES).join(', ')}`)
  const account = addressShape(ctx.required('account'), '--account')
  const { getAddress, isAddress } = await import('ethers')
  const { REGISTRY_ROLES } = await import('../../contracts/index.js')
  if (!isAddress(account)) throw new UsageError('--account must be a 20-byte 0x-hex address (bad checksum)')
  const key = ROLE_OPTION_NAMES[role as RoleOptionName]
  return { role: role as RoleOptionName, roleId: REGISTRY_ROLES[key], account: getAddress(account) }
}

function roleChange (verb: 'grant' | 'revoke'): CliCommandSpec {
  const method = verb === 'grant' ? 'grantRole' : 'revokeRole'
  return {
    path: ['role', verb],
    summary: verb === 'grant' ? 'Grant a registry role to an account (admin only).' : 'Revoke a registry role from an account (admin only).',
    options: [...ROLE_OPTIONS, ...CHAIN_WRITE],
    mutating: true,
    run: async (ctx) => {
      const { role, roleId, account } = await roleAndAccount(ctx)
      const { openChain, transact } = await import('../chain.js')
      const chain = await openChain(ctx, { signer: true })
      try {
        const tx = await transact(ctx, chain, method, [roleId, account], async () => await chain.registry[method](roleId, account))
        const { result: _mined, ...value } = { ...tx, role, account }
        return { value, text: `${tx.dryRun ? 'dry run: would ' + verb : verb === 'grant' ? 'granted' : 'revoked'} ${role} ${verb === 'grant' ? 'to' : 'from'} ${account}${tx.txHash !== undefined ? ` (tx ${tx.txHash})` : ''}` }
      } finally {
        chain.close()
      }
    }
  }
}

export const ROLE_COMMANDS: readonly CliCommandSpec[] = [
  roleChange('grant'),
  roleChange('revoke'),
  {
    path: ['role', 'check'],
    summary: 'Whether an account holds a registry role.',
    options: [...ROLE_OPTIONS, ...CHAIN_READ],
    run: async (ctx) => {
      const { role, roleId, account } = await roleAndAccount(ctx)
      const { openChain } = await import('../chain.js')
      const { explainRegistryError } = await import('../explain.js')
      const chain = await openChain(ctx, { signer: false })
      try {
        const has = await chain.registry.hasRole(roleId, account).catch((e: unknown) => { throw explainRegistryError(e) })
        return { value: { role, account, hasRole: has }, text: `${account} ${has ? 'holds' : 'does not hold'} ${role}` }
      } finally {
        chain.close()
      }
    }
  }
]
