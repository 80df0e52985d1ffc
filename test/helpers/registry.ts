/** Assertions shared by the registry tests: decoded custom-error reverts and a block's events. */
import type { Test } from 'tap'
import type { Provider } from 'ethers'
import { registryInterface, RegistryError } from '../../contracts/index.js'

/** Asserts that `promise` rejects with the registry's custom error `name` (and `args`, if given). */
export async function expectRevert (t: Test, promise: Promise<unknown>, name: string, args?: unknown[]): Promise<void> {
  const error = await promise.then(() => undefined, (e: unknown) => e)
  t.ok(error instanceof RegistryError, `${name}: RegistryError`)
  t.equal((error as RegistryError).code, 'REGISTRY_REVERTED', `${name}: code`)
  t.equal((error as RegistryError).revert?.name, name)
  if (args !== undefined) t.same((error as RegistryError).revert?.args, args, `${name}: args`)
}

/** Decoded registry events emitted at `address` in block `blockNumber`. */
export async function eventsIn (provider: Provider, address: string, blockNumber: number): Promise<Array<{ name: string, args: unknown[] }>> {
  const logs = await provider.getLogs({ address, fromBlock: blockNumber, toBlock: blockNumber })
  return logs.map(l => registryInterface.parseLog(l)).filter(e => e !== null).map(e => ({ name: e.name, args: [...e.args] }))
}
