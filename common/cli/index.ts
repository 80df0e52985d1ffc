/**
 * The command-line scaffold every bin shares: commands as data, node:util parseArgs, --help on
 * stdout, --version, --json, --dry-run on mutating commands, exit codes 0/1/2/78.
 */
export {
  EXIT_CODES, JSON_OPTION, HELP_OPTION, VERSION_OPTION, DRY_RUN_OPTION, optionsOf,
  type CliOptionSpec, type CliPositionalSpec, type CliValues, type CliIo, type CliResult, type CliContext, type CliCommandSpec, type CliProgram
} from './spec.js'
export { parseCommandLine, findCommand, groupsOf, type ParsedCommandLine } from './parse.js'
export { formatHelp } from './help.js'
export { runProgram, runMain, exitCodeOf, formatErrorLine } from './run.js'
