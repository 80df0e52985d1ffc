/**
 * `provenance-agent` as a program of the shared CLI scaffold (common/cli): the command specs of
 * commands.ts, each bound to its runner, so parsing, --help, --version, --json and the exit codes
 * are the ones every bin shares.
 */
import { type CliOptionSpec, type CliProgram } from '../../common/index.js'
import { AGENT_VERSION } from '../session/version.js'
import type { OptionValues } from './options.js'
import { COMMANDS, CONFIG_OPTION, type CommandSpec } from './commands.js'
import { CONFIG_ENV, CONFIG_FIELDS } from './config-fields.js'
import type { CliIo } from './context.js'
import { CONFIG_ERROR_CODES } from './errors.js'

type Runner = (values: OptionValues, io: CliIo) => Promise<number>

// Runners load their modules on demand: --help, --version and usage errors stay fast.
const RUNNERS: Record<string, () => Promise<Runner>> = {
  init: async () => (await import('./run-init.js')).runInit,
  start: async () => (await import('./run-start.js')).runStart,
  status: async () => (await import('./run-status.js')).runStatus,
  'keys show': async () => (await import('./run-keys.js')).runKeysShow,
  'keys rotate': async () => (await import('./run-keys.js')).runKeysRotate,
  'verify-log': async () => (await import('./run-verify-log.js')).runVerifyLog,
  export: async () => (await import('./run-export.js')).runExport,
  'capture freeze': async () => (await import('./run-capture.js')).runCaptureFreeze,
  'capture list': async () => (await import('./run-capture.js')).runCaptureList,
  'capture sample': async () => (await import('./run-data-capture.js')).runCaptureSample,
  oversight: async () => (await import('./run-statement.js')).runOversight,
  'session start': async () => (await import('./run-statement.js')).runSessionStart,
  'session end': async () => (await import('./run-statement.js')).runSessionEnd,
  shred: async () => (await import('./run-capture.js')).runShred
}

/** The configuration fields with their environment variables, one paragraph each (for --help). */
export function configHelp (): string[] {
  return [
    `Configuration: a JSON file given by --config or $${CONFIG_ENV}; each field can be overridden by its environment variable; relative paths resolve against the config file's folder.`,
    ...Object.entries(CONFIG_FIELDS).map(([name, f]) => `${name} ($${f.env}): ${f.doc}`)
  ]
}

/** Options a command lists itself: --config, --json and --help come from the scaffold. */
function ownOptions (c: CommandSpec): CliOptionSpec[] {
  return c.options.filter(o => o.name !== 'config' && o.name !== 'json' && o.name !== 'help')
}

/**
 * The program. A runner prints its own result (it knows its --json form) and throws to fail; the
 * scaffold turns the error into the exit code and the one `CODE: message` (or `usage:`) line.
 */
export const AGENT_PROGRAM: CliProgram = {
  name: 'provenance-agent',
  version: AGENT_VERSION,
  summary: 'The edge provenance agent: signs a hash-chained record of every model inference on this device.',
  commonOptions: [CONFIG_OPTION],
  configErrorCodes: CONFIG_ERROR_CODES,
  epilog: [
    `Every command takes --config <path> (default: $${CONFIG_ENV}; without either, the configuration comes from PROVENANCE_AGENT_* variables alone).`,
    ...configHelp()
  ],
  commands: COMMANDS.map(c => ({
    path: c.path,
    summary: c.summary,
    description: c.path[0] === 'start' ? [...c.description, ...configHelp()] : c.description,
    options: ownOptions(c),
    run: async (ctx) => {
      const runner = await (RUNNERS[c.path.join(' ')] as () => Promise<Runner>)()
      // ctx.io is the io runCli was given (the agent's CliIo, with its signal source).
      await runner(ctx.values as OptionValues, ctx.io)
      return undefined
    }
  }))
}
