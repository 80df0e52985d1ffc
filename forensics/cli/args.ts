/**
 * The parsed command line as the forensics commands read it: the scaffold's parse (common/cli) as
 * positionals and a flag map (argsOf), and readers of string, time and integer flags that refuse
 * malformed values with a UsageError (exit 2).
 */
import type { CliContext } from '../../common/index.js'
import { UsageError } from '../../common/index.js'

/** A mistake in the command line (exit 2): common's, so that the scaffold (common/cli) knows it too. */
export { UsageError }

export interface ParsedArgs {
  positional: string[]
  flags: Map<string, string | true>
}

/** The scaffold's parse of a command line (common/cli) in this file's shape, for the commands written against it. */
export function argsOf (ctx: Pick<CliContext, 'values' | 'positionals'>): ParsedArgs {
  const flags = new Map<string, string | true>()
  for (const [name, v] of Object.entries(ctx.values)) {
    if (typeof v === 'string') flags.set(name, v)
    else if (v === true) flags.set(name, true)
  }
  return { positional: [...ctx.positionals], flags }
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
