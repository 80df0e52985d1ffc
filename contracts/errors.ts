/**
 * Errors of the contracts part: compiling, the local anvil chain, deploying, and calls to the
 * ProvenanceRegistry. A contract revert keeps its decoded custom error in `revert`.
 */

import { ProvenanceError } from '../protocol/errors.js'

/** Codes of the contracts part (listed in docs/CONTRACTS.md and docs/ERRORS.md). */
export type RegistryErrorCode =
  | 'CONTRACT_COMPILE_FAILED'
  | 'CONTRACT_ARTIFACT_INVALID'
  | 'ANVIL_NOT_FOUND'
  | 'ANVIL_START_FAILED'
  | 'REGISTRY_UNAUTHORIZED'
  | 'REGISTRY_REVERTED'
  | 'REGISTRY_RPC_FAILED'
  | 'REGISTRY_BAD_RESPONSE'
  | 'DEPLOY_KEY_MISSING'
  | 'DEPLOY_KEY_INVALID'
  | 'DEPLOY_FAILED'

/** A contract custom error decoded with the registry ABI, e.g. `{ name: 'ZeroRoot', args: [] }`. */
export interface DecodedRevert {
  name: string
  args: unknown[]
}

export class RegistryError extends ProvenanceError<RegistryErrorCode> {
  /** The decoded custom error when the contract reverted (codes REGISTRY_REVERTED/UNAUTHORIZED). */
  readonly revert: DecodedRevert | undefined

  constructor (code: RegistryErrorCode, message: string, options?: { cause?: unknown, revert?: DecodedRevert }) {
    super(code, message, options)
    this.revert = options?.revert
  }
}
