/**
 * Errors of the device's model policy: refusals of models and of policies. Decoding and signature
 * failures of a policy are the protocol's PolicyError (`POLICY_MALFORMED`, `POLICY_SIGNATURE_INVALID`).
 */
import { ProvenanceError } from '../../protocol/errors.js'

export type ModelPolicyErrorCode =
  /** Enforce mode: the model's file hash is not on the fleet's allowlist. Nothing was loaded. */
  | 'MODEL_NOT_APPROVED'
  /** Enforce mode: the on-chain model registry marks the model revoked. Nothing was loaded. */
  | 'MODEL_REVOKED'
  /** A policy with a lower version than the one in force, or the same version with other content. */
  | 'POLICY_STALE'
  /** A policy signed for another fleet than the device's. */
  | 'POLICY_WRONG_FLEET'
  /** A policy arrived (or is stored) but no fleet admin key is configured to verify it. */
  | 'POLICY_NOT_CONFIGURED'
  /** The accepted policy could not be stored, or the stored one could not be read. */
  | 'POLICY_STORE_FAILED'
  /** A policy is required (an admin key is configured) and none is in force yet: nothing is loaded. */
  | 'POLICY_AWAITED'

export class ModelPolicyError extends ProvenanceError<ModelPolicyErrorCode> {}
