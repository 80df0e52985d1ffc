/**
 * Pieces of the forensics command line: argument parsing and progress on stderr.
 */
export { argsOf, stringFlag, timeFlag, intFlag, UsageError, type ParsedArgs } from './args.js'
export { createProgress, DEFAULT_PROGRESS_LINE_INTERVAL_MS, type ProgressReporter, type ProgressStream, type ProgressOptions } from './progress.js'
