/**
 * The investigator's command line: `provenance verify|timeline|export|report|trace|compliance`,
 * `replay` and the lineage groups `dataset`, `training`, `fl`, on the scaffold every bin shares
 * (common/cli; the commands in cli/program.ts). Run as
 * `node --import tsx forensics/cli.ts <command> …` too. Offline verification loads no chain code.
 */
import { runProgram, type CliIo as ScaffoldIo } from '../common/index.js'
import { isEntryPoint } from '../common/entry-point.js'
import { defaultIo, type CliIo } from './cli/io.js'
import { forensicsProgram } from './cli/program.js'

export { FORENSICS_VERSION } from './cli/program.js'
export { RPC_URL_ENV, GATEWAY_TOKEN_ENV, type CliIo } from './cli/io.js'
export { formatVerdict, formatTimeline } from './cli/format.js'

/**
 * Runs one CLI invocation; resolves to the exit code (0 ok / valid verdict, 1 failure or invalid
 * verdict, 2 usage error). Never throws: errors are printed.
 */
export async function runCli (argv: readonly string[], io: CliIo = defaultIo): Promise<number> {
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
