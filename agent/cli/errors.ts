/**
 * Errors of the `provenance-agent` command line and the exit code of every error code: the one
 * table `--help` and docs/OPERATIONS.md describe.
 */
import { ProvenanceError } from '../../protocol/errors.js'

/** Codes of the agent CLI; `USAGE` and `CONFIG_INVALID` are common/'s (UsageError, ConfigError). */
export type CliErrorCode =
  /** The config file cannot be read. */
  | 'CONFIG_UNREADABLE'
  /** No daemon answers on its socket (or loopback port). */
  | 'DAEMON_NOT_RUNNING'
  /** The daemon's socket is not open to this user, or its TCP API refused the token. */
  | 'DAEMON_ACCESS_DENIED'
  /** The daemon answered with an error. */
  | 'DAEMON_REQUEST_FAILED'
  /** The export file could not be written. */
  | 'EXPORT_FAILED'

export class CliError extends ProvenanceError<CliErrorCode> {}

/** Process exit codes. */
export const EXIT_CODES = {
  /** Success. */
  ok: 0,
  /** The command failed (`CODE: message` on stderr): a broken chain, no daemon, a locked or failing log. */
  failure: 1,
  /** The command line is wrong (nothing was done). */
  usage: 2,
  /**
   * The configuration is wrong: config file, environment, firmware profile, key file, a model file,
   * the stored policy. Restarting will not help, so the systemd unit does not restart on it
   * (RestartPreventExitStatus=78; 78 is EX_CONFIG of sysexits.h).
   */
  config: 78
} as const

/** Error codes that mean "the configuration is wrong" (exit 78). */
export const CONFIG_ERROR_CODES: readonly string[] = Object.freeze([
  'CONFIG_INVALID', 'CONFIG_UNREADABLE',
  'PROFILE_NOT_FOUND', 'PROFILE_UNREADABLE', 'PROFILE_INVALID',
  'KEY_UNREADABLE', 'KEY_INVALID', 'KEY_INSECURE', 'TPM_KEY_UNUSABLE',
  'MODEL_UNREADABLE', 'MODEL_TOO_LARGE', 'MODEL_NOT_ONNX', 'MODEL_CORRUPT', 'MODEL_EXTERNAL_DATA', 'MODEL_SESSION_FAILED',
  'POLICY_MALFORMED', 'POLICY_SIGNATURE_INVALID', 'POLICY_NOT_CONFIGURED', 'POLICY_WRONG_FLEET', 'POLICY_STORE_FAILED'
])

/** The exit code for an error: 2 for usage, 78 for configuration, 1 for everything else. */
export function exitCodeFor (e: unknown): number {
  const code = (e as { code?: unknown })?.code
  if (code === 'USAGE') return EXIT_CODES.usage
  if (typeof code === 'string' && CONFIG_ERROR_CODES.includes(code)) return EXIT_CODES.config
  return EXIT_CODES.failure
}

/** `CODE: message`, the one line a failing command prints on stderr. */
export function formatError (e: unknown): string {
  const code = (e as { code?: unknown })?.code
  const message = e instanceof Error ? e.message : String(e)
  return `${typeof code === 'string' && /^[A-Z][A-Z0-9_]*$/.test(code) ? code : 'INTERNAL'}: ${message.replace(/\s*\n\s*/g, ' ')}`
}
