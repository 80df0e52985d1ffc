/**
 * `--help` texts, written from the command specs (commands.ts) and the config field table, so
 * they list exactly the options the parser accepts.
 */
import { COMMANDS, COMMON_OPTIONS, TOP_OPTIONS, type CommandSpec, type OptionSpec } from './commands.js'
import { CONFIG_ENV, CONFIG_FIELDS } from './config-fields.js'
import { EXIT_CODES } from './errors.js'

const WIDTH = 100

/** Help of a command, of a group (`keys`), or of the program (undefined). */
export function formatHelp (topic: CommandSpec | string | undefined): string {
  if (topic === undefined) return formatTopHelp()
  if (typeof topic === 'string') return formatGroupHelp(topic)
  const lines = [`Usage: provenance-agent ${topic.path.join(' ')} [options]`, '', topic.summary, '']
  for (const p of topic.description) lines.push(...wrap(p, WIDTH), '')
  lines.push('Options:', ...formatOptions(topic.options), '')
  if (topic.path[0] === 'start') lines.push(...formatConfig(), '')
  lines.push(...formatExitCodes())
  return lines.join('\n') + '\n'
}

function formatTopHelp (): string {
  const width = Math.max(...COMMANDS.map(c => c.path.join(' ').length))
  return [
    'Usage: provenance-agent <command> [options]',
    '',
    'The edge provenance agent: signs a hash-chained record of every model inference on this device.',
    '',
    'Commands:',
    ...COMMANDS.map(c => `  ${c.path.join(' ').padEnd(width)}  ${c.summary}`),
    '',
    'Options:',
    ...formatOptions(TOP_OPTIONS),
    '',
    'Options every command takes:',
    ...formatOptions(COMMON_OPTIONS),
    '',
    'Run `provenance-agent <command> --help` for the options of a command.',
    '',
    ...formatConfig(),
    '',
    ...formatExitCodes()
  ].join('\n') + '\n'
}

function formatGroupHelp (group: string): string {
  const subs = COMMANDS.filter(c => c.path[0] === group && c.path.length > 1)
  const width = Math.max(...subs.map(c => c.path.join(' ').length))
  return [
    `Usage: provenance-agent ${group} <${subs.map(c => c.path[1]).join('|')}> [options]`,
    '',
    'Subcommands:',
    ...subs.map(c => `  ${c.path.join(' ').padEnd(width)}  ${c.summary}`),
    '',
    'Options:',
    ...formatOptions(COMMON_OPTIONS.filter(o => o.name === 'help')),
    '',
    `Run \`provenance-agent ${group} <subcommand> --help\` for its options.`,
    '',
    ...formatExitCodes()
  ].join('\n') + '\n'
}

function formatOptions (options: readonly OptionSpec[]): string[] {
  const heads = options.map(o => `${o.short !== undefined ? `-${o.short}, ` : '    '}--${o.name}${o.value !== undefined ? ` ${o.value}` : ''}`)
  const width = Math.max(...heads.map(h => h.length))
  return options.flatMap((o, i) => {
    const text = wrap(o.description, WIDTH - width - 6)
    return text.map((t, j) => `  ${j === 0 ? (heads[i] as string).padEnd(width) : ' '.repeat(width)}  ${t}`)
  })
}

function formatConfig (): string[] {
  const width = Math.max(...Object.keys(CONFIG_FIELDS).map(k => k.length))
  return [
    `Configuration (JSON file given by --config or $${CONFIG_ENV}; each field can be overridden by its`,
    'environment variable; relative paths resolve against the config file\'s folder):',
    ...Object.entries(CONFIG_FIELDS).flatMap(([name, f]) => [`  ${name.padEnd(width)}  ${f.env}`, `  ${' '.repeat(width)}  ${f.doc}`])
  ]
}

function formatExitCodes (): string[] {
  return [
    'Exit codes:',
    `  ${EXIT_CODES.ok}   ok`,
    `  ${EXIT_CODES.failure}   failure; "CODE: message" on stderr (e.g. CHAIN_BROKEN, DAEMON_NOT_RUNNING, LOG_LOCKED)`,
    `  ${EXIT_CODES.usage}   usage error (unknown command or option, bad option value)`,
    `  ${EXIT_CODES.config}  configuration error: config, environment, firmware profile, key file, model file or stored`,
    '      policy (CONFIG_*, PROFILE_*, KEY_*, MODEL_*, POLICY_*); systemd does not restart on it'
  ]
}

function wrap (text: string, width: number): string[] {
  const out: string[] = []
  let line = ''
  for (const word of text.split(/\s+/)) {
    if (line !== '' && line.length + 1 + word.length > width) { out.push(line); line = word } else line = line === '' ? word : `${line} ${word}`
  }
  if (line !== '') out.push(line)
  return out
}
