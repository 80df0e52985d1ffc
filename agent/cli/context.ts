/**
 * What every command needs first: the validated configuration, the resolved firmware profile and
 * the paths derived from them (key file, record log, runtime file).
 */
import { isAbsolute, join } from 'node:path'
import { resolveProfile, type ResolvedProfile } from '../profile/index.js'
import { API_SOCKET_FILE, API_TOKEN_FILE, RUNTIME_FILE } from '../daemon/index.js'
import { loadConfig, type AgentConfig } from './config.js'
import type { OptionValues } from './options.js'

/** Streams and environment of one CLI run (the process's, or a test's). */
export interface CliIo {
  env: Readonly<Record<string, string | undefined>>
  stdout: { write: (s: string | Uint8Array) => unknown }
  stderr: { write: (s: string | Uint8Array) => unknown }
  cwd?: string
  /** Where `start` listens for SIGTERM, SIGINT and SIGHUP. Default: the process. */
  signals?: NodeJS.EventEmitter
}

export interface AgentSetup {
  config: AgentConfig
  configSource: string | undefined
  profile: ResolvedProfile
  keyPath: string
  logDir: string
  runtimeFile: string
  /** The daemon API's unix socket: apiSocket, else <stateDir>/api.sock. */
  apiSocket: string
  /** The token file of the daemon's TCP API. */
  apiTokenFile: string
}

/**
 * Loads the configuration and the profile.
 * @throws CliError `CONFIG_*`; ProfileError `PROFILE_*`.
 */
export async function prepare (values: OptionValues, io: CliIo): Promise<AgentSetup> {
  const { config, source } = await loadConfig({
    ...(typeof values.config === 'string' ? { configPath: values.config } : {}),
    env: io.env,
    ...(io.cwd !== undefined ? { cwd: io.cwd } : {})
  })
  const profile = await resolveProfile(config.profile, config.overrideProfile)
  const keyPath = isAbsolute(profile.profile.keys.path) ? profile.profile.keys.path : join(config.stateDir, profile.profile.keys.path)
  return { config, configSource: source, profile, keyPath, logDir: join(config.stateDir, 'records'), runtimeFile: join(config.stateDir, RUNTIME_FILE),
    apiSocket: config.apiSocket ?? join(config.stateDir, API_SOCKET_FILE),
    apiTokenFile: join(config.stateDir, API_TOKEN_FILE)
  }
}

/** Prints a result: JSON with --json, else the human lines. */
export function printResult (io: CliIo, json: boolean, value: unknown, human: () => string[]): void {
  io.stdout.write(json ? JSON.stringify(value) + '\n' : human().join('\n') + '\n')
}
