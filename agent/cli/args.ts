/**
 * The command line of `provenance-agent`, parsed by the shared scaffold (common/cli, node:util
 * parseArgs) from the program of program.ts; the option readers the runners share are in options.ts.
 */
import { parseCommandLine as parseWith, type ParsedCommandLine } from '../../common/index.js'
import { AGENT_PROGRAM } from './program.js'

export { integerOption, type OptionValues } from './options.js'
export type { ParsedCommandLine }

/**
 * Parses the arguments after `provenance-agent`.
 * @throws UsageError (code `USAGE`).
 */
export function parseCommandLine (argv: readonly string[], env: Readonly<Record<string, string | undefined>> = {}): ParsedCommandLine {
  return parseWith(AGENT_PROGRAM, argv, env)
}
