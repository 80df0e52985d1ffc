/**
 * The command-line parser: finds the command, then parses its options strictly with node:util's
 * parseArgs from the specs in commands.ts (an unknown option or a missing value is a usage error).
 */
import { parseArgs } from 'node:util'
import { COMMANDS, GROUPS, TOP_OPTIONS, findCommand, type CommandSpec, type OptionSpec } from './commands.js'
import { CliError } from './errors.js'

export type OptionValues = Record<string, string | boolean | undefined>

export type ParsedCommandLine =
  | { kind: 'help', topic: CommandSpec | string | undefined }
  | { kind: 'version' }
  | { kind: 'command', command: CommandSpec, values: OptionValues }

/**
 * Parses the arguments after `provenance-agent`.
 * @throws CliError `USAGE`.
 */
export function parseCommandLine (argv: readonly string[]): ParsedCommandLine {
  const first = argv[0]
  if (first === undefined) throw new CliError('USAGE', `a command is needed: ${commandList()}`)
  if (first.startsWith('-')) {
    const values = parseOptions(TOP_OPTIONS, argv, 'provenance-agent')
    if (values.help === true) return { kind: 'help', topic: undefined }
    if (values.version === true) return { kind: 'version' }
    throw new CliError('USAGE', `a command is needed: ${commandList()}`)
  }
  let path = [first]
  let rest = argv.slice(1)
  if (GROUPS.includes(first)) {
    const sub = argv[1]
    if (sub === undefined || sub.startsWith('-')) {
      if (argv.slice(1).some(a => a === '--help' || a === '-h')) return { kind: 'help', topic: first }
      throw new CliError('USAGE', `${first} needs a subcommand: ${subcommands(first).join(', ')}`)
    }
    path = [first, sub]
    rest = argv.slice(2)
  }
  const command = findCommand(path)
  if (command === undefined) {
    throw new CliError('USAGE', GROUPS.includes(first)
      ? `unknown subcommand "${path.join(' ')}": ${first} takes ${subcommands(first).join(', ')}`
      : `unknown command "${first}": ${commandList()}`)
  }
  const values = parseOptions(command.options, rest, command.path.join(' '))
  if (values.help === true) return { kind: 'help', topic: command }
  return { kind: 'command', command, values }
}

function parseOptions (options: readonly OptionSpec[], args: readonly string[], where: string): OptionValues {
  const config: Record<string, { type: 'string' | 'boolean', short?: string }> = {}
  for (const o of options) config[o.name] = { type: o.type, ...(o.short !== undefined ? { short: o.short } : {}) }
  try {
    return parseArgs({ args: [...args], options: config, strict: true, allowPositionals: false }).values as OptionValues
  } catch (e) {
    throw new CliError('USAGE', `${where}: ${(e as Error).message.split('\n')[0] ?? 'bad arguments'}`, { cause: e })
  }
}

/**
 * A non-negative integer option (seq numbers, ports), or `fallback` when absent.
 * @throws CliError `USAGE`.
 */
export function integerOption (values: OptionValues, name: string, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = values[name]
  if (v === undefined) return fallback
  if (typeof v !== 'string' || !/^\d{1,16}$/.test(v) || Number(v) > max) throw new CliError('USAGE', `--${name} must be an integer in 0..${max}`)
  return Number(v)
}

function commandList (): string {
  return COMMANDS.map(c => c.path.join(' ')).join(', ')
}

function subcommands (group: string): string[] {
  return COMMANDS.filter(c => c.path[0] === group && c.path.length > 1).map(c => c.path[1] as string)
}
