/**
 * The investigator's command line: `provenance verify|timeline|export|report|trace|compliance`
 * and `replay` on the scaffold every bin shares (common/cli; the commands in cli/program.ts), and
 * `dataset`, `training`, `fl`, which still parse their own arguments. Run as
 * `node --import tsx forensics/cli.ts <command> …` too. Offline verification loads no chain code.
 */
import { runProgram, type CliIo as ScaffoldIo } from '../common/index.js'
import { isEntryPoint } from '../common/entry-point.js'
import { ProvenanceError } from '../protocol/index.js'
import { defaultIo, type CliIo } from './cli/io.js'
import { OWN_PARSER_COMMANDS, forensicsProgram } from './cli/program.js'
import { runFlCli } from './lineage/fl-cli.js'
import { runLineageCli } from './lineage/cli.js'

export { FORENSICS_VERSION } from './cli/program.js'
export { RPC_URL_ENV, GATEWAY_TOKEN_ENV, type CliIo } from './cli/io.js'
export { formatVerdict, formatTimeline } from './cli/format.js'

/**
 * Runs one CLI invocation; resolves to the exit code (0 ok / valid verdict, 1 failure or invalid
 * verdict, 2 usage error). Never throws: errors are printed.
 */
export async function runCli (argv: readonly string[], io: CliIo = defaultIo): Promise<number> {
  const [command, ...rest] = argv
  // `help dataset hash`: the help of a command with its own parser is its own.
  if (command === 'help' && OWN_PARSER_COMMANDS.some(c => c.name === rest[0])) return await runCli([...rest, '--help'], io)
  if (command === 'dataset' || command === 'training' || command === 'fl') {
    try {
      return command === 'fl' ? await runFlCli(rest, io) : await runLineageCli(command, rest, io)
    } catch (e) {
      if (e instanceof ProvenanceError) { io.stderr.write(`${e.code}: ${e.message}\n`); return 1 }
      io.stderr.write(`INTERNAL: ${(e as Error)?.stack ?? String(e)}\n`)
      return 1
    }
  }
  const text = (s: string | Uint8Array): string => typeof s === 'string' ? s : Buffer.from(s).toString('utf8')
  const scaffoldIo: ScaffoldIo = {
    env: io.env,
    stdout: { write: s => { io.stdout(text(s)) } },
    stderr: { write: s => io.stderr.write(text(s)) }
  }
  return await runProgram(forensicsProgram(io), argv, scaffoldIo)
}

if (isEntryPoint(import.meta.url)) {
  runCli(process.argv.slice(2)).then(code => { process.exitCode = code }, (e: unknown) => {
    process.stderr.write(`INTERNAL: ${String(e)}\n`)
    process.exitCode = 1
  })
}
