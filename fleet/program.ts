/**
 * `provenance-fleet`, the operator's command line: every bring-up step after the chain and the
 * broker are running (registry, roles, devices, gateway key, models, policy, broker users) without
 * TypeScript of one's own. Built on the shared scaffold (common/cli).
 */
import type { CliProgram } from '../common/index.js'
import pkg from '../package.json' with { type: 'json' }
import { BROKER_COMMANDS, DEPLOY_COMMAND, DEVICE_COMMANDS, MODEL_COMMANDS, POLICY_COMMANDS, ROLE_COMMANDS } from './commands/index.js'
import { FLEET_KEY_ENV, MQTT_PASSWORD_ENV, POLICY_KEY_ENV } from './names.js'

export const FLEET_VERSION: string = pkg.version

export const FLEET_PROGRAM: CliProgram = {
  name: 'provenance-fleet',
  version: FLEET_VERSION,
  summary: 'Provision an edge provenance fleet: registry, roles, devices, gateway key, models, model policy, broker users.',
  commands: [DEPLOY_COMMAND, ...ROLE_COMMANDS, ...DEVICE_COMMANDS, ...MODEL_COMMANDS, ...POLICY_COMMANDS, ...BROKER_COMMANDS],
  // Files and fields the operator must fix; retrying will not help.
  configErrorCodes: ['ENROLLMENT_INVALID', 'BROKER_FILE_INVALID'],
  epilog: [
    `Environment: PROVENANCE_RPC_URL and PROVENANCE_REGISTRY stand for --rpc-url and --registry; the operator's private key is --key-file (mode 0600, or PROVENANCE_FLEET_KEY_FILE) or $${FLEET_KEY_ENV}; the policy publisher's seed $${POLICY_KEY_ENV}; the broker password of \`policy publish\` $${MQTT_PASSWORD_ENV}. Only this CLI reads them; keys are never printed.`,
    'Bring-up order (docs/OPERATIONS.md): deploy → role grant → broker add-user (gateway, publisher) → gateway register → device register --enrollment (from `provenance-agent init`) → model register, model approve → policy keygen, policy sign, policy publish → start the agents.'
  ]
}
