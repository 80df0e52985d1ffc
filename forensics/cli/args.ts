/**
 * Command-line parsing for the forensics CLI: `--name value`, `--name=value` and boolean
 * `--name`, checked against each subcommand's spec. Anything unexpected is a UsageError (exit 2).
 */

/** A mistake in the command line: the CLI prints it with the usage and exits 2. */
export class UsageError extends Error {}

export type FlagKind = 'string' | 'boolean'

export interface ParsedArgs {
  positional: string[]
  flags: Map<string, string | true>
}

/**
 * Parses `argv` (after the subcommand) against `spec`.
 * @throws UsageError for an unknown flag, a missing value, or a flag given twice.
 */
export function parseArgs (argv: readonly string[], spec: Readonly<Record<string, FlagKind>>): ParsedArgs {
  const positional: string[] = []
  const flags = new Map<string, string | true>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '--') { positional.push(...argv.slice(i + 1)); break }
    if (!arg.startsWith('--') || arg === '--') { positional.push(arg); continue }
    const eq = arg.indexOf('=')
    const name = arg.slice(2, eq === -1 ? undefined : eq)
    const kind = spec[name]
    if (kind === undefined) throw new UsageError(`unknown option --${name}`)
    if (flags.has(name)) throw new UsageError(`--${name} given twice`)
    if (kind === 'boolean') {
      if (eq !== -1) throw new UsageError(`--${name} takes no value`)
      flags.set(name, true)
    } else {
      const value = eq !== -1 ? arg.slice(eq + 1) : argv[++i]
      if (value === undefined || value === '') throw new UsageError(`--${name} needs a value`)
      flags.set(name, value)
    }
  }
  return { positional, flags }
}

/** The string value of a flag, if given. */
export function stringFlag (args: ParsedArgs, name: string): string | undefined {
  const v = args.flags.get(name)
  return typeof v === 'string' ? v : undefined
}

/**
 * A time flag: Unix milliseconds (digits) or an ISO 8601 date-time (e.g. 2024-05-01T12:00:00Z).
 * @throws UsageError for anything else.
 */
export function timeFlag (args: ParsedArgs, name: string): number | undefined {
  const v = stringFlag(args, name)
  if (v === undefined) return undefined
  const ms = /^[0-9]+$/.test(v) ? Number(v) : /^\d{4}-\d{2}-\d{2}/.test(v) ? Date.parse(v) : NaN
  if (!Number.isSafeInteger(ms) || ms < 0) throw new UsageError(`--${name} must be Unix milliseconds or an ISO 8601 time, got ${JSON.stringify(v)}`)
  return ms
}

/**
 * A positive integer flag.
 * @throws UsageError for anything else.
 */
export function intFlag (args: ParsedArgs, name: string): number | undefined {
  const v = stringFlag(args, name)
  if (v === undefined) return undefined
  const n = /^[0-9]+$/.test(v) ? Number(v) : NaN
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`--${name} must be a positive integer`)
  return n
}
