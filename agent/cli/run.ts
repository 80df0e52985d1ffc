/**
 * The CLI's dispatcher: parses the command line, runs the command, and turns every outcome into
 * an exit code (0 ok, 1 failure, 2 usage, 78 configuration) and at most one `CODE: message` line.
 */
import { parseCommandLine } from './args.js'
import type { CliIo } from './context.js'
import { formatErrorLine } from '../../common/index.js'
import { EXIT_CODES, exitCodeFor } from './errors.js'
import { formatHelp } from './help.js'

export type { CliIo } from './context.js'

/** Runs `provenance-agent <argv>`; resolves with the exit code. */
export async function runCli (argv: readonly string[], io: CliIo): Promise<number> {
  let parsed
  try {
    parsed = parseCommandLine(argv)
  } catch (e) {
    io.stderr.write(`${formatErrorLine(e)}\nRun \`provenance-agent --help\` for usage.\n`)
    return exitCodeFor(e)
  }
  if (parsed.kind === 'help') { io.stdout.write(formatHelp(parsed.topic)); return EXIT_CODES.ok }
  if (parsed.kind === 'version') { io.stdout.write(`${(await import('../session/version.js')).AGENT_VERSION}\n`); return EXIT_CODES.ok }
  const { command, values } = parsed
  try {
    // Commands load their modules on demand: --help and usage errors stay fast.
    switch (command.path.join(' ')) {
      case 'init': return await (await import('./run-init.js')).runInit(values, io)
      case 'start': return await (await import('./run-start.js')).runStart(values, io)
      case 'status': return await (await import('./run-status.js')).runStatus(values, io)
      case 'keys show': return await (await import('./run-keys.js')).runKeysShow(values, io)
      case 'keys rotate': return await (await import('./run-keys.js')).runKeysRotate(values, io)
      case 'verify-log': return await (await import('./run-verify-log.js')).runVerifyLog(values, io)
      case 'export': return await (await import('./run-export.js')).runExport(values, io)
      case 'capture freeze': return await (await import('./run-capture.js')).runCaptureFreeze(values, io)
      case 'capture list': return await (await import('./run-capture.js')).runCaptureList(values, io)
      default: throw new Error(`no runner for ${command.path.join(' ')}`)
    }
  } catch (e) {
    // One convention with every bin (common/cli): `usage: message` for usage errors, else `CODE: message`.
    io.stderr.write(formatErrorLine(e) + '\n')
    return exitCodeFor(e)
  }
}
