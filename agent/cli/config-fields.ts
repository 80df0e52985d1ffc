/**
 * The fields of the agent's configuration, their environment variables and their meaning: the
 * table the loader (config.ts) and `--help` share. No heavy imports, so help stays fast.
 */

import { LOG_LEVELS, type LogLevel } from '../../common/logger.js'

export { LOG_LEVELS, type LogLevel }

export interface AgentConfig {
  deviceId: string
  stateDir: string
  /** Shipped profile name (firmware-profiles/<name>.json) or a path to a profile file. */
  profile: string
  overrideProfile?: string
  brokerUrl?: string
  /** MQTT version towards the broker: 5, or 4 (3.1.1) for the gateway's embedded aedes broker. */
  brokerMqttVersion?: 4 | 5
  brokerUsername?: string
  brokerPassword?: string
  /** Hex log keys (64 hex digits each) of the gateways whose signed acks may delete records; unset: nothing is deleted on acks. */
  gatewayPublicKeys?: string[]
  /** Hex of the fleet admin's Ed25519 public key (64 hex digits). */
  policyAdminPublicKey?: string
  fleetId?: string
  /** On-chain model registry, asked while a policy is in force. */
  registry?: { rpcUrl: string, address: string, timeoutMs?: number }
  models: Array<{ name: string, path: string }>
  /** Unix socket of the HTTP API (default <stateDir>/api.sock). */
  apiSocket?: string
  /** Mode of the socket: "0600" (default) or "0660". */
  apiSocketMode?: '0600' | '0660'
  /** Also serve the API on loopback TCP at this port, with the token of <stateDir>/api-token. Absent: the socket only. */
  statusPort?: number
  logLevel: LogLevel
  maxRequestBytes: number
}

/** Every config field: its environment variable and what it means (also printed by --help). */
export const CONFIG_FIELDS: Readonly<Record<keyof AgentConfig, { env: string, doc: string }>> = Object.freeze({
  deviceId: { env: 'PROVENANCE_AGENT_DEVICE_ID', doc: 'device id as registered in the fleet (required)' },
  stateDir: { env: 'PROVENANCE_AGENT_STATE_DIR', doc: 'folder of the record log, key, policy (default $STATE_DIRECTORY, set by systemd)' },
  profile: { env: 'PROVENANCE_AGENT_PROFILE', doc: 'firmware profile name or path (required)' },
  overrideProfile: { env: 'PROVENANCE_AGENT_OVERRIDE_PROFILE', doc: 'local profile override file, deep-merged into the profile' },
  brokerUrl: { env: 'PROVENANCE_AGENT_BROKER_URL', doc: 'MQTT broker of the gateway; unset: no uplink' },
  brokerMqttVersion: { env: 'PROVENANCE_AGENT_BROKER_MQTT_VERSION', doc: 'MQTT version: 5 (default), or 4 for the gateway\'s embedded broker' },
  brokerUsername: { env: 'PROVENANCE_AGENT_BROKER_USERNAME', doc: 'MQTT user name' },
  brokerPassword: { env: 'PROVENANCE_AGENT_BROKER_PASSWORD', doc: 'MQTT password (prefer the environment to the file)' },
  gatewayPublicKeys: { env: 'PROVENANCE_AGENT_GATEWAY_PUBLIC_KEYS', doc: 'hex Ed25519 log keys of the gateways whose signed acks may delete records (JSON array, or comma-separated); unset: acks delete nothing' },
  policyAdminPublicKey: { env: 'PROVENANCE_AGENT_POLICY_ADMIN_PUBLIC_KEY', doc: 'hex Ed25519 public key that signs model policies; unset: models are unchecked' },
  fleetId: { env: 'PROVENANCE_AGENT_FLEET_ID', doc: 'fleet of the device; policies for other fleets are refused' },
  registry: { env: 'PROVENANCE_AGENT_REGISTRY', doc: 'JSON {"rpcUrl","address","timeoutMs"?} of the on-chain model registry' },
  models: { env: 'PROVENANCE_AGENT_MODELS', doc: 'models to load: JSON [{"name","path"}] or name=path,name=path' },
  apiSocket: { env: 'PROVENANCE_AGENT_API_SOCKET', doc: 'unix socket of the HTTP API; its mode is the API\'s access control (default <stateDir>/api.sock)' },
  apiSocketMode: { env: 'PROVENANCE_AGENT_API_SOCKET_MODE', doc: '"0600": the service user only (default); "0660": and its group' },
  statusPort: { env: 'PROVENANCE_AGENT_STATUS_PORT', doc: 'also serve the API on 127.0.0.1:port (0 = chosen by the OS), bearer token in <stateDir>/api-token; unset: socket only' },
  logLevel: { env: 'PROVENANCE_AGENT_LOG_LEVEL', doc: `${LOG_LEVELS.join(', ')} (default info)` },
  maxRequestBytes: { env: 'PROVENANCE_AGENT_MAX_REQUEST_BYTES', doc: 'largest run request body in bytes (default 16777216)' }
})

export const CONFIG_ENV = 'PROVENANCE_AGENT_CONFIG'
