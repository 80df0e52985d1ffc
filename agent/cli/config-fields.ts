/**
 * The agent's configuration as one zod schema: each field's check and message, its environment
 * variable and its meaning. The AgentConfig type, the loader's validation (config.ts), --help and
 * the table in docs/OPERATIONS.md (scripts/gen-config-doc.ts) all come from it.
 */
import { z } from 'zod'
import { DEVICE_ID_PATTERN, LIMITS } from '../../protocol/record.js'
import { LOG_LEVELS, type LogLevel } from '../../common/logger.js'
import { MODEL_NAME_PATTERN } from '../daemon/model-name.js'
import { ADMISSION_TIMEOUT_RANGE_MS, BODY_TIMEOUT_RANGE_MS } from '../daemon/admission.js'

export { LOG_LEVELS, type LogLevel }

export const CONFIG_ENV = 'PROVENANCE_AGENT_CONFIG'

/** What a field's meta holds: its environment variable and its meaning (markdown; --help drops the backticks). */
export interface ConfigFieldMeta { env: string, doc: string }

/**
 * A field checked by `test`, with one message for any bad value (and `is missing (or set ENV)`
 * when a required field is absent).
 */
function field<T> (env: string, doc: string, message: string, test: (v: unknown) => boolean): z.ZodType<T> {
  return z.custom<T>(test, { error: iss => iss.input === undefined ? `is missing (or set ${env})` : message }).meta({ env, doc })
}
function optional<T> (env: string, doc: string, message: string, test: (v: unknown) => boolean): z.ZodOptional<z.ZodType<T>> {
  return z.custom<T>(test, { error: message }).optional().meta({ env, doc })
}
const nonEmpty = (v: unknown): v is string => typeof v === 'string' && v !== ''
const hexKey = (v: unknown): boolean => typeof v === 'string' && /^[0-9a-fA-F]{64}$/.test(v)
const intIn = (min: number, max: number) => (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max
function isBrokerUrl (v: unknown): boolean {
  if (typeof v !== 'string') return false
  try {
    return ['mqtt:', 'mqtts:', 'ws:', 'wss:', 'tcp:', 'ssl:'].includes(new URL(v).protocol)
  } catch {
    return false
  }
}
const NON_EMPTY = 'must be a non-empty string'
const P = 'PROVENANCE_AGENT_'

const MODEL_SCHEMA = z.strictObject({
  name: z.custom<string>(v => typeof v === 'string' && MODEL_NAME_PATTERN.test(v), { error: `must match ${MODEL_NAME_PATTERN.source}` }),
  path: z.custom<string>(nonEmpty, { error: NON_EMPTY })
}, { error: 'must be an object { "name", "path" }' })

const REGISTRY_SCHEMA = z.strictObject({
  rpcUrl: z.custom<string>(v => typeof v === 'string' && /^(https?|wss?):\/\//.test(v), { error: 'must be an http(s):// or ws(s):// URL' }),
  address: z.custom<string>(v => typeof v === 'string' && /^0x[0-9a-fA-F]{40}$/.test(v), { error: 'must be a 0x-prefixed 20-byte hex address' }),
  timeoutMs: z.custom<number>(intIn(1, 60_000), { error: 'must be an integer in 1..60000' }).optional()
}, { error: 'must be an object { "rpcUrl", "address", "timeoutMs"? }' })

/** The agent's configuration, field by field (the order of --help and of the docs table). */
export const AGENT_CONFIG_SCHEMA = z.strictObject({
  deviceId: field<string>(`${P}DEVICE_ID`, 'device id as registered in the fleet (required)',
    `must match ${DEVICE_ID_PATTERN.source} (at most ${LIMITS.deviceIdChars} characters)`, v => typeof v === 'string' && DEVICE_ID_PATTERN.test(v) && v.length <= LIMITS.deviceIdChars),
  stateDir: field<string>(`${P}STATE_DIR`, 'record log, key, policy; default `$STATE_DIRECTORY` (set by systemd)', NON_EMPTY, nonEmpty),
  profile: field<string>(`${P}PROFILE`, 'firmware profile name (`firmware-profiles/<name>.json`) or path (required)', NON_EMPTY, nonEmpty),
  overrideProfile: optional<string>(`${P}OVERRIDE_PROFILE`, 'local override file, deep-merged into the profile', NON_EMPTY, nonEmpty),
  brokerUrl: optional<string>(`${P}BROKER_URL`, 'gateway\'s MQTT broker (`mqtt(s)://`, `ws(s)://`); unset: no uplink', 'must be an mqtt://, mqtts://, ws:// or wss:// URL', isBrokerUrl),
  brokerMqttVersion: optional<4 | 5>(`${P}BROKER_MQTT_VERSION`, '`5` (default), or `4` (MQTT 3.1.1) for a gateway\'s embedded aedes broker', 'must be 4 or 5', v => v === 4 || v === 5),
  brokerUsername: optional<string>(`${P}BROKER_USERNAME`, 'MQTT user name', NON_EMPTY, nonEmpty),
  brokerPassword: optional<string>(`${P}BROKER_PASSWORD`, 'MQTT password (prefer the environment, e.g. a systemd drop-in with `EnvironmentFile=`)', NON_EMPTY, nonEmpty),
  gatewayPublicKeys: optional<string[]>(`${P}GATEWAY_PUBLIC_KEYS`, 'hex Ed25519 log keys of the gateways whose signed acks may delete records (variable: JSON array or comma-separated); unset: acks delete nothing (§Signed acks)',
    'must be a list of 1..64 Ed25519 public keys of 64 hex digits each', v => Array.isArray(v) && v.length > 0 && v.length <= 64 && v.every(hexKey)),
  policyAdminPublicKey: optional<string>(`${P}POLICY_ADMIN_PUBLIC_KEY`, 'hex Ed25519 key that signs model policies; unset: every model is `unchecked`', 'must be 64 hex digits (an Ed25519 public key)', hexKey),
  fleetId: optional<string>(`${P}FLEET_ID`, 'the device\'s fleet; a policy for another fleet is refused', 'must be a string of at most 256 bytes', v => nonEmpty(v) && Buffer.byteLength(v) <= 256),
  registry: REGISTRY_SCHEMA.optional().meta({ env: `${P}REGISTRY`, doc: '`{ rpcUrl, address, timeoutMs? }` of the on-chain model registry (variable: JSON)' }),
  // The duplicate check runs even when other models are bad (`when`): every problem in one message.
  models: z.array(MODEL_SCHEMA, { error: 'must be an array of { "name", "path" }' }).check(z.superRefine((models: unknown[], ctx) => {
    const seen = new Set<unknown>()
    models.forEach((m, i) => {
      const name = (m as { name?: unknown } | null)?.name
      if (typeof name !== 'string' || !MODEL_NAME_PATTERN.test(name)) return
      if (seen.has(name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `"${name}" appears twice`, input: name })
      seen.add(name)
    })
  }, { when: payload => Array.isArray(payload.value) })).meta({ env: `${P}MODELS`, doc: '`[{ name, path }]` (variable: JSON, or `name=path,name=path`)' }),
  apiSocket: optional<string>(`${P}API_SOCKET`, 'unix socket of the HTTP API, default `<stateDir>/api.sock` (at most 107 bytes); its mode is the API\'s access control', NON_EMPTY, nonEmpty),
  apiSocketMode: optional<'0600' | '0660'>(`${P}API_SOCKET_MODE`, '`"0600"` (default: the service user only) or `"0660"` (and its group)', 'must be "0600" or "0660"', v => v === '0600' || v === '0660'),
  statusPort: optional<number>(`${P}STATUS_PORT`, 'also serve the API on 127.0.0.1:port (0 = OS-chosen), bearer token in `<stateDir>/api-token`; unset (default): socket only', 'must be an integer in 0..65535', intIn(0, 65535)),
  logLevel: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).meta({ env: `${P}LOG_LEVEL`, doc: `${LOG_LEVELS.map(l => `\`${l}\``).join(', ')}; default \`info\`` }),
  maxRequestBytes: z.custom<number>(intIn(1024, 1024 ** 3), { error: `must be an integer in 1024..${1024 ** 3}` }).meta({ env: `${P}MAX_REQUEST_BYTES`, doc: 'largest run request body in bytes, default 16777216 (16 MiB)' }),
  maxInflightRequestBytes: optional<number>(`${P}MAX_INFLIGHT_REQUEST_BYTES`, 'bytes of API request bodies admitted at once (requests beyond wait unread, then 503 `API_BUSY`); default 8388608 (8 MiB); a request larger than it is admitted alone', `must be an integer in 1024..${1024 ** 3}`, intIn(1024, 1024 ** 3)),
  apiAdmissionTimeoutMs: optional<number>(`${P}API_ADMISSION_TIMEOUT_MS`, 'longest wait of an API request for room under `maxInflightRequestBytes`, ms, then 503 `API_BUSY`; default 30000; `0`: no wait', `must be an integer in ${ADMISSION_TIMEOUT_RANGE_MS.min}..${ADMISSION_TIMEOUT_RANGE_MS.max} (milliseconds)`, intIn(ADMISSION_TIMEOUT_RANGE_MS.min, ADMISSION_TIMEOUT_RANGE_MS.max)),
  apiBodyTimeoutMs: optional<number>(`${P}API_BODY_TIMEOUT_MS`, 'longest time an admitted API request body may take to arrive, ms, then 408 `REQUEST_TIMEOUT` and the connection closes; a run\'s answer must be read within it too; default 30000', `must be an integer in ${BODY_TIMEOUT_RANGE_MS.min}..${BODY_TIMEOUT_RANGE_MS.max} (milliseconds)`, intIn(BODY_TIMEOUT_RANGE_MS.min, BODY_TIMEOUT_RANGE_MS.max))
})

export type AgentConfig = z.output<typeof AGENT_CONFIG_SCHEMA>

/** Every config field: its environment variable and what it means (from the schema's meta). */
export const CONFIG_FIELDS: Readonly<Record<keyof AgentConfig, ConfigFieldMeta>> = Object.freeze(Object.fromEntries(
  Object.entries(AGENT_CONFIG_SCHEMA.shape).map(([name, schema]) => [name, schema.meta() as unknown as ConfigFieldMeta])
) as Record<keyof AgentConfig, ConfigFieldMeta>)

/** The docs/OPERATIONS.md table of the fields (scripts/gen-config-doc.ts writes it; a test compares). */
export function configDocTable (): string {
  const rows = Object.entries(CONFIG_FIELDS).map(([name, f]) => `| \`${name}\` | \`${f.env}\` | ${f.doc} |`)
  return ['| field | variable | meaning |', '|---|---|---|', ...rows].join('\n') + '\n'
}

/**
 * The schema's issues as the loader's problems, `path: message` each (`models[0].name: …`); an
 * unknown key is named with what it is not (a config, registry or model field).
 */
export function configProblems (issues: readonly z.core.$ZodIssue[]): string[] {
  const at = (path: readonly PropertyKey[]): string => path.map((p, i) => typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`).join('')
  const out: string[] = []
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      const what = issue.path.length === 0 ? 'config' : issue.path[0] === 'registry' ? 'registry' : 'model'
      for (const k of issue.keys) out.push(`${at([...issue.path, k])}: is not a ${what} field`)
    } else {
      out.push(`${at(issue.path)}: ${issue.message}`)
    }
  }
  return out
}
