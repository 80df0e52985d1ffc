// Runs provenance-fleet in-process (same code path as the bin, captured streams) for the fleet tests.
import { runProgram, type CliIo } from '../../common/index.js'
import { FLEET_PROGRAM } from '../../fleet/index.js'

export interface FleetRun {
  code: number
  stdout: string
  /** Progress lines, then at most one error line. */
  stderr: string
  /** The last line of stderr: the error line of a failed run. */
  last: string
  json: () => any
}

export async function fleet (argv: string[], env: Record<string, string | undefined> = {}): Promise<FleetRun> {
  let stdout = ''
  let stderr = ''
  const io: CliIo = { env, stdout: { write: (s) => { stdout += String(s) } }, stderr: { write: (s) => { stderr += String(s) } } }
  const code = await runProgram(FLEET_PROGRAM, argv, io)
  return { code, stdout, stderr, last: stderr.trimEnd().split('\n').pop() ?? '', json: () => JSON.parse(stdout) }
}
