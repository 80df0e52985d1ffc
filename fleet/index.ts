/**
 * The fleet CLI as a library: its program (for tests and for embedding in other tools) and the
 * pieces other tools may reuse (broker files, model identity of a file, retained publishing).
 */
export { FLEET_PROGRAM, FLEET_VERSION } from './program.js'
export { FleetError, type FleetErrorCode } from './errors.js'
export {
  aclLines, hashMosquittoPassword, checkMosquittoPassword, assertBrokerUsername, upsertBrokerUser, removeBrokerUser,
  BROKER_ROLES, MOSQUITTO_PBKDF2_ITERATIONS, type BrokerRole, type BrokerUserChange, type UpsertBrokerUserOptions
} from './broker-files.js'
export { identifyModelFile, MAX_MODEL_BYTES, type ModelIdentity } from './model-file.js'
export { publishRetained, DEFAULT_MQTT_CONNECT_TIMEOUT_MS, type RetainedPublishOptions } from './mqtt-publish.js'
export { FLEET_KEY_ENV, POLICY_KEY_ENV, MQTT_PASSWORD_ENV, ROLE_OPTION_NAMES, type RoleOptionName } from './names.js'
