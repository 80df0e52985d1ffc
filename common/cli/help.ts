/**
 * `--help` texts written from the program's specs (spec.ts): the program, a group, a command,
 * each with the exit-code table every bin shares.
 */
import { groupsOf, subcommands } from './parse.js'
import { EXIT_CODES, HELP_OPTION, VERSION_OPTION, optionsOf, type CliCommandSpec, type CliOptionSpec, type CliProgram } from './spec.js'

const WIDTH = 100

/** Help of a command, of a group (a string), or of the program (undefined). */
export function formatHelp (program: CliProgram, topic: CliCommandSpec | string | undefined): string {
  if (topic === undefined) return formatProgramHelp(program)
  if (typeof topic === 'string') return formatGroupHelp(program, topic)
  const positionals = (topic.positionals ?? []).map(p => (p.required === true ? `<${p.name}>` : `[${p.name}]`) + (p.variadic === true ? '...' : '')).join(' ')
  const lines = [`Usage: ${program.name} ${topic.path.join(' ')} [options]${positionals !== '' ? ' ' + positionals : ''}`, '', topic.summary, '']
  for (const p of topic.description ?? []) lines.push(...wrap(p, WIDTH), '')
  if ((topic.positionals ?? []).length > 0) {
    lines.push('Arguments:', ...formatTable((topic.positionals ?? []).map(p => [`<${p.name}>`, p.description])), '')
  }
  lines.push('Options:', ...formatOptions(optionsOf(program, topic)), '', ...formatExitCodes())
  return lines.join('\n') + '\n'
}

function formatProgramHelp (program: CliProgram): string {
  return [
    `Usage: ${program.name} <command> [options]`,
    '',
    program.summary,
    '',
    'Commands:',
    ...formatTable(program.commands.map(c => [c.path.join(' '), c.summary])),
    '',
    'Options:',
    ...formatOptions([HELP_OPTION, VERSION_OPTION]),
    '',
    `Run \`${program.name} <command> --help\` for the options of a command; every command takes --json and --help${program.commands.some(c => c.mutating === true) ? ',' : '.'}`,
    // Only a program with a mutating command promises --dry-run.
    ...(program.commands.some(c => c.mutating === true) ? ['every command that changes something takes --dry-run.'] : []),
    '',
    ...(program.epilog ?? []).flatMap(p => [...wrap(p, WIDTH), '']),
    ...formatExitCodes()
  ].join('\n') + '\n'
}

function formatGroupHelp (program: CliProgram, group: string): string {
  const subs = program.commands.filter(c => c.path[0] === group && c.path.length > 1)
  if (!groupsOf(program).includes(group)) throw new RangeError(`${group} is not a command group`)
  return [
    `Usage: ${program.name} ${group} <${subcommands(program, group).join('|')}> [options]`,
    '',
    'Subcommands:',
    ...formatTable(subs.map(c => [c.path.join(' '), c.summary])),
    '',
    'Options:',
    ...formatOptions([HELP_OPTION]),
    '',
    `Run \`${program.name} ${group} <subcommand> --help\` for its options.`,
    '',
    ...formatExitCodes()
  ].join('\n') + '\n'
}

function formatOptions (options: readonly CliOptionSpec[]): string[] {
  return formatTable(options.map(o => [
    `${o.short !== undefined ? `-${o.short}, ` : '    '}--${o.name}${o.value !== undefined ? ` ${o.value}` : ''}`,
    o.description + (o.multiple === true ? ' May be repeated.' : '') + (o.env !== undefined ? ` Default: $${o.env}.` : '')
  ]))
}

function formatTable (rows: ReadonlyArray<readonly [string, string]>): string[] {
  const width = Math.max(0, ...rows.map(r => r[0].length))
  return rows.flatMap(([head, text]) => wrap(text, Math.max(40, WIDTH - width - 4))
    .map((t, j) => `  ${(j === 0 ? head : '').padEnd(width)}  ${t}`))
}

function formatExitCodes (): string[] {
  return [
    'Exit codes:',
    `  ${EXIT_CODES.ok}   ok (results on stdout, progress on stderr)`,
    `  ${EXIT_CODES.failure}   failure: "CODE: message" on stderr`,
    `  ${EXIT_CODES.usage}   usage error: "usage: message" on stderr; nothing was done`,
    `  ${EXIT_CODES.config}  configuration error (config, environment, key file): "CODE: message" on stderr`
  ]
}

function wrap (text: string, width: number): string[] {
  const out: string[] = []
  let line = ''
  for (const word of text.split(/\s+/)) {
    if (line !== '' && line.length + 1 + word.length > width) { out.push(line); line = word } else line = line === '' ? word : `${line} ${word}`
  }
  if (line !== '') out.push(line)
  return out.length > 0 ? out : ['']
}
