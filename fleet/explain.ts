/**
 * Turns a registry revert into an operator's sentence: the custom error's name and arguments
 * (decoded with the contract ABI, contracts/errors.ts) plus what to do about it, keeping the
 * RegistryError code (REGISTRY_REVERTED, REGISTRY_UNAUTHORIZED) that scripts branch on.
 */
import { REGISTRY_ROLES, RegistryError, decodeRegistryRevert, type DecodedRevert } from '../contracts/index.js'
import { ProvenanceError } from '../protocol/errors.js'
import { ROLE_OPTION_NAMES } from './names.js'

const STATUS_NAMES = ['none', 'registered', 'approved', 'deprecated', 'revoked']


/** The RegistryError for `e`, its message explained when it is a known custom error. */
export function explainRegistryError (e: unknown): unknown {
  let error: unknown = e
  if (!(e instanceof RegistryError)) {
    const revert = decodeRegistryRevert(e)
    if (revert === undefined) return wrapOther(e)
    error = new RegistryError(revert.name === 'AccessControlUnauthorizedAccount' ? 'REGISTRY_UNAUTHORIZED' : 'REGISTRY_REVERTED', `registry reverted: ${revert.name}`, { cause: e, revert })
  }
  const r = error as RegistryError
  if (r.revert === undefined) return r
  return new RegistryError(r.code, `${formatRevert(r.revert)}: ${hintOf(r.revert)}`, { cause: r.cause ?? r, revert: r.revert })
}

function wrapOther (e: unknown): unknown {
  // Our own errors keep their code; ethers' codes (NETWORK_ERROR, …) are not ours to print.
  if (e instanceof ProvenanceError) return e
  const message = (e as { shortMessage?: string }).shortMessage ?? (e as Error).message
  return new RegistryError('REGISTRY_RPC_FAILED', `registry RPC failed: ${String(message)}`, { cause: e })
}

/** `Name(arg, arg)` with bytes32 and addresses as they are and statuses by name. */
export function formatRevert (r: DecodedRevert): string {
  const args = r.name === 'InvalidStatusTransition'
    ? [String(r.args[0]), STATUS_NAMES[Number(r.args[1])] ?? String(r.args[1]), STATUS_NAMES[Number(r.args[2])] ?? String(r.args[2])]
    : r.args.map(a => String(a))
  return `${r.name}(${args.join(', ')})`
}

function roleName (id: unknown): string {
  const found = Object.entries(ROLE_OPTION_NAMES).find(([, key]) => REGISTRY_ROLES[key] === String(id).toLowerCase())
  return found?.[0] ?? String(id)
}

function hintOf (r: DecodedRevert): string {
  const a = r.args
  switch (r.name) {
    case 'AccessControlUnauthorizedAccount': return `account ${String(a[0])} lacks the ${roleName(a[1])} role; an admin grants it with \`provenance-fleet role grant --role ${roleName(a[1])} --account ${String(a[0])}\``
    case 'AccessControlBadConfirmation': return 'an account may only renounce its own roles'
    case 'DeviceAlreadyRegistered': return 'this device id is already registered; a new key goes through `provenance-fleet device rotate`'
    case 'UnknownDevice': return 'this device id is not registered; register it first (`provenance-fleet device register`)'
    case 'DeviceAlreadyRevoked': return 'this device is revoked, which is final; enroll the hardware under a new device id'
    case 'KeyUnchanged': return 'that public key is already the device\'s current key'
    case 'KeyValidityNotIncreasing': return `the new key must be valid from after ${String(a[0])} (the current key's validFromMs); got ${String(a[1])}`
    case 'InvalidPublicKey': return 'the public key is not a usable Ed25519 key (all zeros)'
    case 'ZeroDeviceId': return 'the device id hash is zero'
    case 'ZeroAddress': return 'the account is the zero address'
    case 'ModelAlreadyRegistered': return 'this model file is already registered; change its status with approve, deprecate or revoke'
    case 'UnknownModel': return 'no model with this hash is registered (for --parent: register the parent first)'
    case 'InvalidStatusTransition': return 'a model status only moves forward: registered → approved → deprecated → revoked (revoked is final)'
    case 'ZeroModelHash': return 'the model hash is zero'
    case 'EmptyName': return '--name must not be empty'
    case 'EmptyVersion': return '--model-version must not be empty'
    default: return 'the registry refused the call'
  }
}
