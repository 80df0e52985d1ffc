/**
 * `--help` texts of `provenance-agent`: written by the shared scaffold (common/cli) from the
 * program's specs, so they list exactly the options the parser accepts.
 */
import { formatHelp as formatWith, type CliCommandSpec } from '../../common/index.js'
import { AGENT_PROGRAM } from './program.js'

/** Help of a command, of a group (`keys`), or of the program (undefined). */
export function formatHelp (topic: CliCommandSpec | string | undefined): string {
  return formatWith(AGENT_PROGRAM, topic)
}
