/**
 * Errors of the shared infrastructure (common/): the command-line scaffold and secret files.
 * Parts keep their own unions; these codes are the ones every CLI built on the scaffold shares.
 */

import { ProvenanceError } from '../protocol/errors.js'

/** Codes of common/ (listed in docs/ERRORS.md). */
export type CommonErrorCode =
  /** The command line is wrong: unknown command or option, missing or bad value (exit 2, printed as `usage: message`). */
  | 'USAGE'
  /** A command failed with an error that carries no code of its own (a bug): exit 1. */
  | 'INTERNAL'
  /** A configuration (file, environment variable or option value) is invalid; the message names each field (exit 78). */
  | 'CONFIG_INVALID'
  /** A secret (key file or environment variable) is not given (exit 78). */
  | 'SECRET_MISSING'
  /** A secret file cannot be read (exit 78). */
  | 'SECRET_UNREADABLE'
  /** A secret file may be read by its group or others: it must be mode 0600 or stricter (exit 78). */
  | 'SECRET_INSECURE'
  /** A secret is not of the expected form (its value is never printed) (exit 78). */
  | 'SECRET_INVALID'

export class CommonError extends ProvenanceError<CommonErrorCode> {}

/** An invalid configuration (`CONFIG_INVALID`): exit 78, restarting will not help. */
export class ConfigError extends CommonError {
  constructor (message: string, options?: { cause?: unknown }) {
    super('CONFIG_INVALID', message, options)
  }
}

/** A usage error: exit 2, one `usage: message` line and a pointer to `--help`. */
export class UsageError extends CommonError {
  constructor (message: string, options?: { cause?: unknown }) {
    super('USAGE', message, options)
  }
}
