/**
 * The commands of `provenance-fleet`, one file per subject; each is a spec (options, help) whose
 * `run` loads the heavy modules it needs on first use.
 */
export { DEPLOY_COMMAND } from './deploy.js'
export { ROLE_COMMANDS } from './roles.js'
export { DEVICE_COMMANDS } from './devices.js'
export { MODEL_COMMANDS } from './models.js'
export { POLICY_COMMANDS } from './policy.js'
export { BROKER_COMMANDS } from './broker.js'
