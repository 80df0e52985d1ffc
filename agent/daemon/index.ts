/**
 * The device daemon: agent, profile, key ring, model policy, uplink and the local HTTP API (unix socket, optional TCP),
 * started in an order that leaves no trace when the configuration is bad.
 */
export {
  Daemon, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_CAPTURE_MAX_ENTRIES, DEFAULT_CAPTURE_MAX_BYTES, DEFAULT_API_SOCKET_MODE, MODEL_NAME_PATTERN, RUNTIME_FILE,
  type DaemonApi, type DaemonOptions, type DaemonModelConfig, type DaemonStatus, type RegistrationStatus, type DaemonRunResult, type DaemonRunOptions, type ModelStatusEntry, type ProviderWarning, type UplinkLike, type UplinkFactory
} from './daemon.js'
export { DaemonError, HTTP_STATUS_BY_CODE, type DaemonErrorCode } from './errors.js'
export {
  createApiServer, loadOrCreateApiToken, parseRunRequest, parseStatementRequest, MAX_RECORDS_PER_REQUEST, MAX_RECORDS_RESPONSE_BYTES, MAX_TARGET_CHARS, MAX_HEADER_BYTES,
  API_TOKEN_FILE, API_SOCKET_FILE, DEFAULT_MAX_INFLIGHT_REQUEST_BYTES, DEFAULT_ADMISSION_TIMEOUT_MS, DEFAULT_BODY_TIMEOUT_MS,
  RUN_BINARY_ANSWER_TYPE, chooseAnswerForm,
  type ApiServer, type ApiServerOptions, type ApiListenOptions
} from './http-api.js'
export { BodyBudget, ADMISSION_TIMEOUT_RANGE_MS, BODY_TIMEOUT_RANGE_MS, type Admission } from './admission.js'
export { RunBodyDecoder, decodeRunBody, encodeBinaryRunBody, decodeBinaryRunAnswer, RUN_BINARY_CONTENT_TYPE, RUN_TENSOR_TYPES, MAX_RUN_INPUTS, MAX_RUN_JSON_DEPTH, type RunRequest } from './run-body.js'
export { decodeTensorJson, encodeTensorJson, TENSOR_JSON_TYPES, type TensorJson } from './tensor-json.js'
