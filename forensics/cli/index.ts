/**
 * Pieces of the forensics command line: argument parsing and progress on stderr.
 */
export { parseArgs, argsOf, stringFlag, timeFlag, intFlag, UsageError, type FlagKind, type ParsedArgs } from './args.js'
export { createProgress, DEFAULT_PROGRESS_LINE_INTERVAL_MS, type ProgressReporter, type ProgressStream, type ProgressOptions } from './progress.js'
