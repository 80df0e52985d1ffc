/**
 * The device's model policy: signed allowlists from the fleet admin, verified, stored and used to
 * judge every model before it loads (enforce refuses, audit records `unapproved`).
 */
export { ModelPolicyError, type ModelPolicyErrorCode } from './errors.js'
export {
  ModelGuard, DEFAULT_REGISTRY_TIMEOUT_MS,
  type ModelGuardOptions, type ModelRegistryLookup, type ModelCheck, type PolicyStatus
} from './model-guard.js'
