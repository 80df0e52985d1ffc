/**
 * The agent's configuration: a JSON file (--config or $PROVENANCE_AGENT_CONFIG) with every field
 * overridable by a PROVENANCE_AGENT_* environment variable, validated in one pass that names
 * every bad field. Relative paths resolve against the config file's folder (or the working
 * folder for values from the environment).
 */
import { promises as fs } from 'node:fs'
import { dirname, isAbsolute, resolve } from 'node:path'
import { DEVICE_ID_PATTERN, LIMITS } from '../../protocol/index.js'
import { MODEL_NAME_PATTERN } from '../daemon/index.js'
import { ConfigError } from '../../common/index.js'
import { CliError } from './errors.js'
import { CONFIG_ENV, CONFIG_FIELDS, LOG_LEVELS, type AgentConfig, type LogLevel } from './config-fields.js'

export { CONFIG_ENV, CONFIG_FIELDS, LOG_LEVELS, type AgentConfig, type LogLevel }

const ENV_PREFIX = 'PROVENANCE_AGENT_'
const MAX_CONFIG_BYTES = 256 * 1024
const DEFAULTS = { logLevel: 'info', maxRequestBytes: 16 * 1024 * 1024, models: [] }

export interface LoadConfigOptions {
  /** --config. */
  configPath?: string
  env: Readonly<Record<string, string | undefined>>
  /** Folder for relative paths from the environment. Default process.cwd(). */
  cwd?: string
}

/**
 * Reads, merges and validates the configuration.
 * @throws CliError `CONFIG_UNREADABLE`, ConfigError `CONFIG_INVALID`.
 */
export async function loadConfig (options: LoadConfigOptions): Promise<{ config: AgentConfig, source: string | undefined }> {
  const env = options.env
  const cwd = options.cwd ?? process.cwd()
  const configPath = options.configPath ?? nonEmpty(env[CONFIG_ENV])
  const problems: string[] = []
  let fromFile: Record<string, unknown> = {}
  let source: string | undefined
  if (configPath !== undefined) {
    source = resolve(cwd, configPath)
    fromFile = await readConfigFile(source)
    resolvePaths(fromFile, dirname(source))
  }
  const fromEnv = readEnv(env, problems)
  resolvePaths(fromEnv, cwd)
  const stateDirectory = nonEmpty(env.STATE_DIRECTORY)?.split(':')[0]
  const merged: Record<string, unknown> = {
    ...DEFAULTS,
    ...(stateDirectory !== undefined ? { stateDir: stateDirectory } : {}),
    ...fromFile,
    ...fromEnv
  }
  const where = source !== undefined ? `config ${source}` : 'configuration (environment)'
  try {
    assertConfig(merged, problems)
  } catch (e) {
    throw new ConfigError(`${where}: ${(e as Error).message}`, { cause: e })
  }
  return { config: merged, source }
}

/**
 * Asserts a complete configuration, collecting every bad field (and earlier `problems`).
 * @throws ConfigError `CONFIG_INVALID`.
 */
export function assertConfig (value: unknown, problems: string[] = []): asserts value is AgentConfig {
  const c = value as Record<string, unknown> | null
  if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new ConfigError('the configuration must be a JSON object')
  const str = (name: string, required: boolean, test?: (s: string) => boolean, why = 'must be a non-empty string'): void => {
    const v = c[name]
    if (v === undefined) { if (required) problems.push(`${name}: is missing (or set ${CONFIG_FIELDS[name as keyof AgentConfig].env})`); return }
    if (typeof v !== 'string' || v === '' || (test !== undefined && !test(v))) problems.push(`${name}: ${why}`)
  }
  const int = (name: string, min: number, max: number): void => {
    const v = c[name]
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) problems.push(`${name}: must be an integer in ${min}..${max}`)
  }
  str('deviceId', true, s => DEVICE_ID_PATTERN.test(s) && s.length <= LIMITS.deviceIdChars, `must match ${DEVICE_ID_PATTERN.source} (at most ${LIMITS.deviceIdChars} characters)`)
  str('stateDir', true)
  str('profile', true)
  str('overrideProfile', false)
  str('brokerUrl', false, isBrokerUrl, 'must be an mqtt://, mqtts://, ws:// or wss:// URL')
  str('brokerUsername', false)
  str('brokerPassword', false)
  str('policyAdminPublicKey', false, s => /^[0-9a-fA-F]{64}$/.test(s), 'must be 64 hex digits (an Ed25519 public key)')
  str('fleetId', false, s => Buffer.byteLength(s) <= 256, 'must be a string of at most 256 bytes')
  if (c.gatewayPublicKeys !== undefined && (!Array.isArray(c.gatewayPublicKeys) || c.gatewayPublicKeys.length === 0 || c.gatewayPublicKeys.length > 64 ||
    !c.gatewayPublicKeys.every((k: unknown) => typeof k === 'string' && /^[0-9a-fA-F]{64}$/.test(k)))) {
    problems.push('gatewayPublicKeys: must be a list of 1..64 Ed25519 public keys of 64 hex digits each')
  }
  if (c.brokerMqttVersion !== undefined && c.brokerMqttVersion !== 4 && c.brokerMqttVersion !== 5) problems.push('brokerMqttVersion: must be 4 or 5')
  if (c.statusPort !== undefined) int('statusPort', 0, 65535)
  str('apiSocket', false)
  if (c.apiSocketMode !== undefined && c.apiSocketMode !== '0600' && c.apiSocketMode !== '0660') problems.push('apiSocketMode: must be "0600" or "0660"')
  int('maxRequestBytes', 1024, 1024 ** 3)
  if (!(LOG_LEVELS as readonly unknown[]).includes(c.logLevel)) problems.push(`logLevel: must be one of ${LOG_LEVELS.join(', ')}`)
  if (!Array.isArray(c.models)) {
    problems.push('models: must be an array of { "name", "path" }')
  } else {
    const names = new Set<unknown>()
    c.models.forEach((m: unknown, i) => {
      const model = m as Record<string, unknown> | null
      if (typeof model !== 'object' || model === null || Array.isArray(model)) { problems.push(`models[${i}]: must be an object { "name", "path" }`); return }
      if (typeof model.name !== 'string' || !MODEL_NAME_PATTERN.test(model.name)) problems.push(`models[${i}].name: must match ${MODEL_NAME_PATTERN.source}`)
      else if (names.has(model.name)) problems.push(`models[${i}].name: "${model.name}" appears twice`)
      names.add(model.name)
      if (typeof model.path !== 'string' || model.path === '') problems.push(`models[${i}].path: must be a non-empty string`)
      for (const k of Object.keys(model)) if (k !== 'name' && k !== 'path') problems.push(`models[${i}].${k}: is not a model field`)
    })
  }
  if (c.registry !== undefined) {
    const r = c.registry as Record<string, unknown> | null
    if (typeof r !== 'object' || r === null || Array.isArray(r)) {
      problems.push('registry: must be an object { "rpcUrl", "address", "timeoutMs"? }')
    } else {
      if (typeof r.rpcUrl !== 'string' || !/^(https?|wss?):\/\//.test(r.rpcUrl)) problems.push('registry.rpcUrl: must be an http(s):// or ws(s):// URL')
      if (typeof r.address !== 'string' || !/^0x[0-9a-fA-F]{40}$/.test(r.address)) problems.push('registry.address: must be a 0x-prefixed 20-byte hex address')
      if (r.timeoutMs !== undefined && (typeof r.timeoutMs !== 'number' || !Number.isSafeInteger(r.timeoutMs) || r.timeoutMs < 1 || r.timeoutMs > 60_000)) problems.push('registry.timeoutMs: must be an integer in 1..60000')
      for (const k of Object.keys(r)) if (!['rpcUrl', 'address', 'timeoutMs'].includes(k)) problems.push(`registry.${k}: is not a registry field`)
    }
  }
  // A misspelt field must not silently fall back to a default.
  for (const k of Object.keys(c)) if (!Object.hasOwn(CONFIG_FIELDS, k)) problems.push(`${k}: is not a config field`)
  if (problems.length > 0) throw new ConfigError(problems.join('; '))
}

async function readConfigFile (path: string): Promise<Record<string, unknown>> {
  let text: string
  try {
    const handle = await fs.open(path, 'r')
    try {
      const stat = await handle.stat()
      if (!stat.isFile()) throw new Error('not a regular file')
      if (stat.size > MAX_CONFIG_BYTES) throw new ConfigError(`config ${path} is ${stat.size} bytes, more than ${MAX_CONFIG_BYTES}`)
      text = await handle.readFile('utf8')
    } finally {
      await handle.close()
    }
  } catch (e) {
    if (e instanceof ConfigError) throw e
    throw new CliError('CONFIG_UNREADABLE', `cannot read config ${path}: ${(e as Error).message}`, { cause: e })
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (cause) {
    throw new ConfigError(`config ${path} is not JSON: ${(cause as Error).message}`, { cause })
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new ConfigError(`config ${path} must be a JSON object`)
  return doc as Record<string, unknown>
}

function readEnv (env: Readonly<Record<string, string | undefined>>, problems: string[]): Record<string, unknown> {
  const byEnv = new Map(Object.entries(CONFIG_FIELDS).map(([field, spec]) => [spec.env, field as keyof AgentConfig]))
  const out: Record<string, unknown> = {}
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || name === CONFIG_ENV || raw === undefined) continue
    const field = byEnv.get(name)
    if (field === undefined) { problems.push(`${name}: is not a PROVENANCE_AGENT_* variable the agent knows`); continue }
    if (raw === '') continue
    switch (field) {
      case 'statusPort': case 'maxRequestBytes': case 'brokerMqttVersion':
        out[field] = /^\d{1,16}$/.test(raw) ? Number(raw) : raw
        break
      case 'models': out[field] = parseModelsEnv(raw, name, problems); break
      case 'gatewayPublicKeys':
        if (raw.trimStart().startsWith('[')) {
          try { out[field] = JSON.parse(raw) } catch { problems.push(`${name}: not valid JSON`) }
        } else {
          out[field] = raw.split(',').map(k => k.trim()).filter(k => k !== '')
        }
        break
      case 'registry':
        try { out[field] = JSON.parse(raw) } catch { problems.push(`${name}: must be JSON {"rpcUrl","address"}`) }
        break
      default: out[field] = raw
    }
  }
  return out
}

function parseModelsEnv (raw: string, name: string, problems: string[]): unknown {
  if (raw.trimStart().startsWith('[')) {
    try { return JSON.parse(raw) } catch { problems.push(`${name}: not valid JSON`); return [] }
  }
  return raw.split(',').filter(p => p.trim() !== '').map((pair) => {
    const at = pair.indexOf('=')
    if (at <= 0) { problems.push(`${name}: "${pair}" is not name=path`); return { name: '', path: '' } }
    return { name: pair.slice(0, at).trim(), path: pair.slice(at + 1).trim() }
  })
}

/** Makes relative paths absolute against `base` (config file folder or working folder). */
function resolvePaths (c: Record<string, unknown>, base: string): void {
  const abs = (p: unknown): unknown => typeof p === 'string' && p !== '' && !isAbsolute(p) ? resolve(base, p) : p
  if (typeof c.stateDir === 'string') c.stateDir = abs(c.stateDir)
  if (typeof c.overrideProfile === 'string') c.overrideProfile = abs(c.overrideProfile)
  if (typeof c.apiSocket === 'string') c.apiSocket = abs(c.apiSocket)
  // A profile is a path when it looks like one; a bare name refers to firmware-profiles/.
  if (typeof c.profile === 'string' && (c.profile.includes('/') || c.profile.endsWith('.json'))) c.profile = abs(c.profile)
  if (Array.isArray(c.models)) {
    c.models = c.models.map((m: unknown) => {
      const model = m as Record<string, unknown> | null
      return typeof model === 'object' && model !== null && typeof model.path === 'string' ? { ...model, path: abs(model.path) } : m
    })
  }
}

function isBrokerUrl (s: string): boolean {
  try {
    return ['mqtt:', 'mqtts:', 'ws:', 'wss:', 'tcp:', 'ssl:'].includes(new URL(s).protocol)
  } catch {
    return false
  }
}

function nonEmpty (s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s
}
