/**
 * How every typed contract client (ProvenanceRegistry, LineageRegistry) sends, reads and turns
 * ethers' errors into RegistryError: one copy, with the decoder of the contract's own reverts.
 */
import { isError, type Contract, type ContractTransactionReceipt } from 'ethers'
import { waitForReceipt } from './receipt.js'
import { RegistryError, type DecodedRevert } from './errors.js'

/**
 * A RegistryError for anything a contract call threw: a decoded custom error (`REGISTRY_UNAUTHORIZED`
 * for a missing role, else `REGISTRY_REVERTED`), an undecodable revert, or a failed RPC.
 */
export function contractError (e: unknown, decodeRevert: (e: unknown) => DecodedRevert | undefined, label: string): RegistryError {
  if (e instanceof RegistryError) return e
  const revert = decodeRevert(e)
  if (revert !== undefined) {
    const code = revert.name === 'AccessControlUnauthorizedAccount' ? 'REGISTRY_UNAUTHORIZED' : 'REGISTRY_REVERTED'
    return new RegistryError(code, `${label} reverted: ${revert.name}`, { cause: e, revert })
  }
  if (isError(e, 'CALL_EXCEPTION')) return new RegistryError('REGISTRY_REVERTED', `${label} call failed: ${e.shortMessage}`, { cause: e })
  const message = (e as { shortMessage?: string, message?: string }).shortMessage ?? (e as Error).message
  return new RegistryError('REGISTRY_RPC_FAILED', `${label} RPC failed: ${String(message)}`, { cause: e })
}

/** Transactions and view calls of one contract, every failure as a RegistryError. */
export class ContractCalls {
  constructor (private readonly contract: Contract, private readonly toError: (e: unknown) => RegistryError) {}

  /** Sends `method` and waits for its receipt. */
  async send (method: string, args: unknown[]): Promise<ContractTransactionReceipt> {
    return await this.guard(async () => {
      const tx = await this.contract.getFunction(method).send(...args)
      const receipt = await waitForReceipt(tx)
      if (receipt === null) throw new RegistryError('REGISTRY_BAD_RESPONSE', `${method}: no receipt`)
      return receipt
    })
  }

  async read<T> (method: string, args: unknown[]): Promise<T> {
    return await this.guard(async () => await this.contract.getFunction(method).staticCall(...args) as T)
  }

  /** Like {@link read}, but undefined when the call reverts with `unknownError` ("no such entry"). */
  async readOrUndefined<T> (method: string, args: unknown[], unknownError: string): Promise<T | undefined> {
    try {
      return await this.read<T>(method, args)
    } catch (e) {
      if (e instanceof RegistryError && e.revert?.name === unknownError) return undefined
      throw e
    }
  }

  async guard<T> (fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (e) {
      throw this.toError(e)
    }
  }
}
