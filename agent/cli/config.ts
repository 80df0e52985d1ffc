/**
 * The agent's configuration: a JSON file (--config or $PROVENANCE_AGENT_CONFIG) with every field
 * overridable by a PROVENANCE_AGENT_* environment variable, validated in one pass that names
 * every bad field. Relative paths resolve against the config file's folder (or the working
 * folder for values from the environment).
 */
import { promises as fs } from 'node:fs'
import { dirname, isAbsolute, resolve } from 'node:path'
import { ConfigError } from '../../common/index.js'
import { CliError } from './errors.js'
import { AGENT_CONFIG_SCHEMA, CONFIG_ENV, CONFIG_FIELDS, LOG_LEVELS, configProblems, type AgentConfig, type LogLevel } from './config-fields.js'

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
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError('the configuration must be a JSON object')
  const parsed = AGENT_CONFIG_SCHEMA.safeParse(value)
  if (!parsed.success) problems.push(...configProblems(parsed.error.issues))
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
      case 'statusPort': case 'maxRequestBytes': case 'maxInflightRequestBytes': case 'apiAdmissionTimeoutMs': case 'apiBodyTimeoutMs': case 'brokerMqttVersion':
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

function nonEmpty (s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s
}
