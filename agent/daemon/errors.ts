/**
 * Errors of the device daemon and its loopback HTTP API. The API answers them as
 * `{ error: { code, message } }` with the HTTP status of HTTP_STATUS_BY_CODE.
 */
import { ProvenanceError } from '../../protocol/errors.js'

export type DaemonErrorCode =
  /** No model of that name is configured. */
  | 'MODEL_UNKNOWN'
  /** The model is configured but not loaded (its load failed or is in progress). */
  | 'MODEL_UNAVAILABLE'
  /** A request body is not what the API takes (the message names each bad field). */
  | 'REQUEST_INVALID'
  /** A request body is larger than `maxRequestBytes`. */
  | 'REQUEST_TOO_LARGE'
  /** A request body did not arrive in full within the API's body timeout (a stalled or slowloris client); the connection is closed. */
  | 'REQUEST_TIMEOUT'
  /** The bytes of request bodies in flight stayed at `maxInflightRequestBytes` for the whole admission wait: retry after `Retry-After` seconds. */
  | 'API_BUSY'
  /** A run request's `Accept` header takes neither answer form (application/json, application/octet-stream). */
  | 'NOT_ACCEPTABLE'
  /** The daemon is shutting down and takes no new runs. */
  | 'DAEMON_STOPPING'
  /** The HTTP API could not listen on its unix socket or loopback port (in use, not a socket, path too long, not permitted). */
  | 'LISTEN_FAILED'
  /** No such route in the HTTP API. */
  | 'ROUTE_UNKNOWN'
  /** Incident capture is turned off on this device. */
  | 'CAPTURE_DISABLED'
  /** A TCP request without `Authorization: Bearer <token>` (the unix socket needs none). */
  | 'UNAUTHENTICATED'
  /** A TCP request with a token that is not the daemon's. */
  | 'TOKEN_INVALID'
  /** A request target longer than the API reads. */
  | 'TARGET_TOO_LONG'
  /** The TCP API's token file cannot be created or read, or holds no usable token. */
  | 'API_TOKEN_UNUSABLE'

export class DaemonError extends ProvenanceError<DaemonErrorCode> {}

/** HTTP status for each error code the API can answer with; anything else is 500. */
export const HTTP_STATUS_BY_CODE: Readonly<Record<string, number>> = Object.freeze({
  REQUEST_INVALID: 400,
  UNAUTHENTICATED: 401,
  TOKEN_INVALID: 403,
  TARGET_TOO_LONG: 414,
  NOT_ACCEPTABLE: 406,
  INPUT_INVALID: 400,
  TENSOR_INVALID: 400,
  RECORD_INVALID: 400,
  MODEL_NOT_APPROVED: 403,
  MODEL_REVOKED: 403,
  MODEL_UNKNOWN: 404,
  ROUTE_UNKNOWN: 404,
  CAPTURE_NOT_FOUND: 404,
  CAPTURE_NAME_INVALID: 400,
  CAPTURE_DISABLED: 409,
  REQUEST_TOO_LARGE: 413,
  REQUEST_TIMEOUT: 408,
  API_BUSY: 503,
  INFERENCE_FAILED: 422,
  DAEMON_STOPPING: 503,
  MODEL_UNAVAILABLE: 503,
  AGENT_STOPPED: 503,
  LOG_CLOSED: 503,
  // The log refuses for now (full disk in fail-closed, or reopening after a write error): the
  // client may retry later; it is no server fault.
  LOG_DISK_FULL: 507,
  LOG_UNAVAILABLE: 503
})
