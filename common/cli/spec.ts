/**
 * A CLI described as data: commands, their options and positionals. The parser accepts exactly
 * these and `--help` is written from them, so the help cannot promise what the parser refuses.
 */

/** Process exit codes every bin shares (STYLE.md §16; 78 is EX_CONFIG of sysexits.h). */
export const EXIT_CODES = {
  /** Success. */
  ok: 0,
  /** The command failed: `CODE: message` on stderr. */
  failure: 1,
  /** The command line is wrong: `usage: message` on stderr; nothing was done. */
  usage: 2,
  /** The configuration is wrong (config file, environment, key file): retrying will not help. */
  config: 78
} as const

export interface CliOptionSpec {
  /** Long name without dashes, e.g. `rpc-url`. */
  readonly name: string
  readonly type: 'string' | 'boolean'
  readonly short?: string
  /** Placeholder of the value in the help, e.g. `<url>`. */
  readonly value?: string
  readonly description: string
  /** May be given more than once (values collect into an array). */
  readonly multiple?: boolean
  /** Environment variable used when the option is absent (named in the help). */
  readonly env?: string
}

export interface CliPositionalSpec {
  readonly name: string
  readonly description: string
  /** Default false. */
  readonly required?: boolean
  /** The last positional only: takes every remaining argument (`<name>...` in the help). */
  readonly variadic?: boolean
}

/** Option values after parsing (and after the environment fallbacks). */
export type CliValues = Record<string, string | boolean | string[] | undefined>

/** Streams and environment of one run (the process's, or a test's). */
export interface CliIo {
  env: Readonly<Record<string, string | undefined>>
  stdout: { write: (s: string | Uint8Array) => unknown }
  stderr: { write: (s: string | Uint8Array) => unknown }
  /** Folder relative paths resolve against. Default process.cwd(). */
  cwd?: string
}

/** What a command hands to the scaffold to print: `value` as JSON with --json, else `text`. */
export interface CliResult {
  value: unknown
  /** Lines for humans; default: `value` as indented JSON. */
  text?: string | readonly string[]
  /**
   * The command ran and its result is printed, but what it found is a failure (an invalid
   * verdict): exit 1, with `code: message` on stderr after the result.
   */
  failure?: { code: string, message: string }
}

export interface CliContext {
  readonly values: CliValues
  readonly positionals: readonly string[]
  readonly json: boolean
  /** --dry-run was given (only mutating commands take it): check everything, change nothing. */
  readonly dryRun: boolean
  readonly io: CliIo
  /** One line of progress on stderr (never on stdout, which holds results only). */
  progress: (message: string) => void
  /** A string option, or undefined. @throws UsageError when it was given as a flag or more than once. */
  string: (name: string) => string | undefined
  /** A string option that must be present. @throws UsageError */
  required: (name: string) => string
  /** Every value of a `multiple` option. */
  list: (name: string) => string[]
  /** A boolean option. */
  flag: (name: string) => boolean
}

export interface CliCommandSpec {
  /** Words after the program name, e.g. ['device', 'register']. */
  readonly path: readonly string[]
  readonly summary: string
  /** Paragraphs of the command's help. */
  readonly description?: readonly string[]
  readonly options?: readonly CliOptionSpec[]
  readonly positionals?: readonly CliPositionalSpec[]
  /** Changes something (chain, files, broker): the command takes --dry-run. */
  readonly mutating?: boolean
  /** Runs the command; throw to fail (UsageError → 2, a config code → 78, other → 1). */
  readonly run: (ctx: CliContext) => Promise<CliResult | undefined>
}

export interface CliProgram {
  /** The bin's name, e.g. `provenance-fleet`. */
  readonly name: string
  readonly version: string
  /** One line on what the program is for. */
  readonly summary: string
  readonly commands: readonly CliCommandSpec[]
  /** Options every command takes besides --json, --help (and --dry-run on mutating ones). */
  readonly commonOptions?: readonly CliOptionSpec[]
  /** Error codes that mean "the configuration is wrong" (exit 78), besides common's SECRET_*. */
  readonly configErrorCodes?: readonly string[]
  /** Paragraphs at the end of the program's help (environment, files). */
  readonly epilog?: readonly string[]
  /** An option given twice is a usage error (`--from` twice is a mistake). Default false: the last one wins, as node:util parses. */
  readonly rejectRepeatedOptions?: boolean
}

export const JSON_OPTION: CliOptionSpec = { name: 'json', type: 'boolean', description: 'Print the result as one JSON document on stdout (for machines).' }
export const HELP_OPTION: CliOptionSpec = { name: 'help', short: 'h', type: 'boolean', description: 'Show this help on stdout and exit 0.' }
export const VERSION_OPTION: CliOptionSpec = { name: 'version', type: 'boolean', description: 'Print the version and exit 0.' }
export const DRY_RUN_OPTION: CliOptionSpec = {
  name: 'dry-run',
  type: 'boolean',
  description: 'Check the inputs and simulate the change (a chain call is simulated with eth_call); change nothing.'
}

/** Every option a command accepts, in help order. A command may describe --json itself (what it prints then). */
export function optionsOf (program: CliProgram, command: CliCommandSpec): CliOptionSpec[] {
  const own = command.options ?? []
  return [
    ...own,
    ...(program.commonOptions ?? []),
    ...(command.mutating === true ? [DRY_RUN_OPTION] : []),
    ...(own.some(o => o.name === JSON_OPTION.name) ? [] : [JSON_OPTION]),
    HELP_OPTION
  ]
}
