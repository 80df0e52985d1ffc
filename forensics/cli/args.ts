/**
 * Command-line parsing for the forensics CLI on node:util parseArgs, the parser every bin shares
 * (common/cli uses it too): `--name value`, `--name=value` and boolean `--name`, checked against
 * each subcommand's spec. Anything unexpected is a UsageError (exit 2).
 */
import { parseArgs as parseWithNode } from 'node:util'
import type { CliContext } from '../../common/index.js'
import { UsageError } from '../../common/index.js'

/** A mistake in the command line (exit 2): common's, so that the scaffold (common/cli) knows it too. */
export { UsageError }

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
  let tokens
  try {
    tokens = parseWithNode({
      args: [...argv],
      options: Object.fromEntries(Object.entries(spec).map(([name, type]) => [name, { type }])),
      strict: true,
      allowPositionals: true,
      tokens: true
    }).tokens
  } catch (e) {
    // parseArgs's messages are good but mention `strict:false`: keep the first sentence.
    throw new UsageError(((e as Error).message.split('\n')[0] ?? 'bad arguments').replace(/\. To specify a positional.*$/, ''), { cause: e })
  }
  const positional: string[] = []
  const flags = new Map<string, string | true>()
  for (const token of tokens) {
    if (token.kind === 'positional') { positional.push(token.value); continue }
    if (token.kind !== 'option') continue
    // node:util keeps the last of a repeated option; here twice is a mistake (`--from` given twice).
    if (flags.has(token.name)) throw new UsageError(`--${token.name} given twice`)
    if (spec[token.name] === 'boolean') { flags.set(token.name, true); continue }
    if (token.value === undefined || token.value === '') throw new UsageError(`--${token.name} needs a value`)
    flags.set(token.name, token.value)
  }
  return { positional, flags }
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
