/**
 * The `provenance-agent` command line: commands and options as data, the parser, help, the
 * configuration loader and the exit-code table.
 */
export { runCli, type CliIo } from './run.js'
export { parseCommandLine, integerOption, type ParsedCommandLine, type OptionValues } from './args.js'
export { COMMANDS, COMMON_OPTIONS, TOP_OPTIONS, GROUPS, findCommand, type CommandSpec, type OptionSpec } from './commands.js'
export { formatHelp } from './help.js'
export { loadConfig, assertConfig, CONFIG_FIELDS, CONFIG_ENV, LOG_LEVELS, type AgentConfig, type LoadConfigOptions, type LogLevel } from './config.js'
export { CliError, EXIT_CODES, CONFIG_ERROR_CODES, exitCodeFor, formatError, type CliErrorCode } from './errors.js'
export { verifyLog, type LogVerdict, type VerifyLogOptions } from './verify-log.js'
export { openRecordSource, type RecordSource } from './record-source.js'
export { createLogger } from './logger.js'
