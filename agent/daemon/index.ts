/**
 * The device daemon: agent, profile, key ring, model policy, uplink and the loopback HTTP API,
 * started in an order that leaves no trace when the configuration is bad.
 */
export {
  Daemon, DEFAULT_MAX_REQUEST_BYTES, MODEL_NAME_PATTERN, RUNTIME_FILE,
  type DaemonOptions, type DaemonModelConfig, type DaemonStatus, type DaemonRunResult, type ModelStatusEntry, type ProviderWarning, type UplinkLike, type UplinkFactory
} from './daemon.js'
export { DaemonError, HTTP_STATUS_BY_CODE, type DaemonErrorCode } from './errors.js'
export { createApiServer, parseRunRequest, MAX_RECORDS_PER_REQUEST, type ApiServer, type ApiServerOptions } from './http-api.js'
export { decodeTensorJson, encodeTensorJson, TENSOR_JSON_TYPES, type TensorJson } from './tensor-json.js'
