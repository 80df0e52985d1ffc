/**
 * Shared infrastructure for the services and CLIs (agent, gateway, forensics, fleet): what every
 * part needs but protocol/ must not do, because it does I/O. Imports protocol/ only.
 */
export { CommonError, ConfigError, UsageError, type CommonErrorCode } from './errors.js'
export { backoffDelayMs, type BackoffOptions } from './backoff.js'
export { SILENT_LOGGER, LOG_LEVELS, type Logger, type LogFn, type LogLevel } from './logger.js'
// The pino factory (log-factory.ts) and the LevelDB handle (level.ts) are imported by path, not from
// here: loading the index (every CLI's --help does) must not load pino or LevelDB.
export { isEntryPoint } from './entry-point.js'
export { JSON_CONTENT_TYPE, sendBody, sendJson, sendError, replyUnreadable, readBody, readBodyChunks, type UnreadableRequestCodes } from './http.js'
export { redactUrl } from './redact-url.js'
export { releaseBytes } from './release-bytes.js'
export { writeFileAtomic, syncDir, type WriteFileAtomicOptions } from './atomic-file.js'
export {
  readSecret, parseHexSecret32, readOwnerOnlyFile, MAX_SECRET_FILE_BYTES,
  type ReadSecretOptions, type ReadOwnerOnlyFileOptions, type OwnerOnlyFileProblem
} from './secret-file.js'
export {
  EXIT_CODES, JSON_OPTION, HELP_OPTION, VERSION_OPTION, DRY_RUN_OPTION, optionsOf, parseCommandLine, findCommand, groupsOf, formatHelp,
  runProgram, runMain, exitCodeOf, formatErrorLine,
  type CliOptionSpec, type CliPositionalSpec, type CliValues, type CliIo, type CliResult, type CliContext, type CliCommandSpec, type CliProgram,
  type ParsedCommandLine
} from './cli/index.js'
