/**
 * Errors of the contracts part: compiling, the local anvil chain, deploying, and calls to the
 * ProvenanceRegistry. A contract revert keeps its decoded custom error in `revert`.
 */

import { ProvenanceError } from '../protocol/errors.js'

/** Codes of the contracts part (listed in docs/CONTRACTS.md and docs/ERRORS.md). */
export type RegistryErrorCode =
  /** solc reported errors compiling contracts/ProvenanceRegistry.sol. */
  | 'CONTRACT_COMPILE_FAILED'
  /** contracts/build/ProvenanceRegistry.json is missing, unreadable or not an artifact of this contract. */
  | 'CONTRACT_ARTIFACT_INVALID'
  /** The anvil binary of @foundry-rs/anvil is not installed for this platform. */
  | 'ANVIL_NOT_FOUND'
  /** anvil did not start or did not answer JSON-RPC in time. */
  | 'ANVIL_START_FAILED'
  /** The caller lacks the role the function needs (AccessControlUnauthorizedAccount). */
  | 'REGISTRY_UNAUTHORIZED'
  /** The contract reverted; `revert` holds the decoded custom error. */
  | 'REGISTRY_REVERTED'
  /** The JSON-RPC endpoint failed or could not be reached. */
  | 'REGISTRY_RPC_FAILED'
  /** The chain answered with something the client cannot read (no contract at the address, bad log). */
  | 'REGISTRY_BAD_RESPONSE'
  /** deploy: no key given (PROVENANCE_DEPLOYER_KEY or --key-file). */
  | 'DEPLOY_KEY_MISSING'
  /** deploy: the key is not a 32-byte hex private key. */
  | 'DEPLOY_KEY_INVALID'
  /** deploy: the deployment transaction failed. */
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
