/**
 * The parser: finds the command (one word, or a group and its subcommand), then parses its
 * options strictly with node:util parseArgs; absent options fall back to their environment variable.
 */
import { parseArgs } from 'node:util'
import { UsageError } from '../errors.js'
import { HELP_OPTION, VERSION_OPTION, optionsOf, type CliCommandSpec, type CliOptionSpec, type CliProgram, type CliValues } from './spec.js'

export type ParsedCommandLine =
  | { kind: 'help', topic: CliCommandSpec | string | undefined }
  | { kind: 'version' }
  | { kind: 'command', command: CliCommandSpec, values: CliValues, positionals: string[] }

/** Command groups (first words that only hold subcommands). */
export function groupsOf (program: CliProgram): string[] {
  return [...new Set(program.commands.filter(c => c.path.length > 1).map(c => c.path[0] as string))]
}

/**
 * Parses the arguments after the program name.
 * @throws UsageError
 */
export function parseCommandLine (program: CliProgram, argv: readonly string[], env: Readonly<Record<string, string | undefined>> = {}): ParsedCommandLine {
  const first = argv[0]
  const groups = groupsOf(program)
  if (first === undefined) throw new UsageError(`a command is needed: ${commandList(program)}`)
  if (first === 'help') return { kind: 'help', topic: topicOf(program, argv.slice(1)) }
  if (first.startsWith('-')) {
    const values = parseOptions([HELP_OPTION, VERSION_OPTION], argv, program.name, false, {}).values
    if (values.help === true) return { kind: 'help', topic: undefined }
    if (values.version === true) return { kind: 'version' }
    throw new UsageError(`a command is needed: ${commandList(program)}`)
  }
  let path = [first]
  let rest = argv.slice(1)
  if (groups.includes(first)) {
    const sub = argv[1]
    if (sub === undefined || sub.startsWith('-')) {
      if (argv.slice(1).some(a => a === '--help' || a === '-h')) return { kind: 'help', topic: first }
      throw new UsageError(`${first} needs a subcommand: ${subcommands(program, first).join(', ')}`)
    }
    path = [first, sub]
    rest = argv.slice(2)
  }
  const command = findCommand(program, path)
  if (command === undefined) {
    throw new UsageError(groups.includes(first)
      ? `unknown subcommand "${path.join(' ')}": ${first} takes ${subcommands(program, first).join(', ')}`
      : `unknown command "${first}": ${commandList(program)}`)
  }
  // --help wins over every other problem of the line, so a half-typed command still shows its help.
  if (rest.includes('--help') || rest.includes('-h')) return { kind: 'help', topic: command }
  const where = `${program.name} ${command.path.join(' ')}`
  const parsed = parseOptions(optionsOf(program, command), rest, where, (command.positionals?.length ?? 0) > 0, env, program.rejectRepeatedOptions === true)
  const max = command.positionals?.at(-1)?.variadic === true ? Infinity : command.positionals?.length ?? 0
  if (parsed.positionals.length > max) throw new UsageError(`${where}: unexpected argument "${parsed.positionals[max] ?? ''}"`)
  const missing = (command.positionals ?? []).slice(parsed.positionals.length).find(p => p.required === true)
  if (missing !== undefined) throw new UsageError(`${where}: <${missing.name}> is required`)
  return { kind: 'command', command, values: parsed.values, positionals: parsed.positionals }
}

function parseOptions (options: readonly CliOptionSpec[], args: readonly string[], where: string, allowPositionals: boolean,
  env: Readonly<Record<string, string | undefined>>, rejectRepeated = false): { values: CliValues, positionals: string[] } {
  const config: Record<string, { type: 'string' | 'boolean', short?: string, multiple?: boolean }> = {}
  for (const o of options) {
    config[o.name] = { type: o.type, ...(o.short !== undefined ? { short: o.short } : {}), ...(o.multiple === true ? { multiple: true } : {}) }
  }
  let parsed
  try {
    parsed = parseArgs({ args: [...args], options: config, strict: true, allowPositionals, tokens: true })
  } catch (e) {
    // parseArgs's messages are good but multi-line and mention `strict:false`: keep the first line.
    throw new UsageError(`${where}: ${((e as Error).message.split('\n')[0] ?? 'bad arguments').replace(/\. To specify a positional.*$/, '')}`, { cause: e })
  }
  if (rejectRepeated) {
    const seen = new Set<string>()
    for (const token of parsed.tokens) {
      if (token.kind !== 'option' || config[token.name]?.multiple === true) continue
      if (seen.has(token.name)) throw new UsageError(`${where}: --${token.name} given twice`)
      seen.add(token.name)
    }
  }
  const values = { ...parsed.values } as CliValues
  for (const o of options) {
    if (values[o.name] !== undefined || o.env === undefined) continue
    const fromEnv = env[o.env]
    if (fromEnv !== undefined && fromEnv !== '') values[o.name] = o.type === 'boolean' ? /^(1|true|yes)$/i.test(fromEnv) : fromEnv
  }
  return { values, positionals: parsed.positionals }
}

/** The command named by `path`, if any. */
export function findCommand (program: CliProgram, path: readonly string[]): CliCommandSpec | undefined {
  return program.commands.find(c => c.path.length === path.length && c.path.every((p, i) => p === path[i]))
}

function topicOf (program: CliProgram, words: readonly string[]): CliCommandSpec | string | undefined {
  if (words.length === 0) return undefined
  const command = findCommand(program, words.slice(0, 2)) ?? findCommand(program, words.slice(0, 1))
  if (command !== undefined) return command
  if (groupsOf(program).includes(words[0] as string)) return words[0]
  throw new UsageError(`no help on "${words.join(' ')}": ${commandList(program)}`)
}

function commandList (program: CliProgram): string {
  return program.commands.map(c => c.path.join(' ')).join(', ')
}

export function subcommands (program: CliProgram, group: string): string[] {
  return program.commands.filter(c => c.path[0] === group && c.path.length > 1).map(c => c.path[1] as string)
}
