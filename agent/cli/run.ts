/**
 * The CLI's dispatcher: the shared scaffold (common/cli) runs the agent's program, so the exit
 * codes (0 ok, 1 failure, 2 usage, 78 configuration) and the one error line are every bin's.
 */
import { runProgram } from '../../common/index.js'
import type { CliIo } from './context.js'
import { AGENT_PROGRAM } from './program.js'

export type { CliIo } from './context.js'

/** Runs `provenance-agent <argv>`; resolves with the exit code. */
export async function runCli (argv: readonly string[], io: CliIo): Promise<number> {
  return await runProgram(AGENT_PROGRAM, argv, io)
}
