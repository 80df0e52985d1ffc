/**
 * The command line of `provenance-agent`, parsed by the shared scaffold (common/cli, node:util
 * parseArgs) from the program of program.ts, and the option readers the runners share.
 */
import { UsageError, parseCommandLine as parseWith, type ParsedCommandLine } from '../../common/index.js'
import { AGENT_PROGRAM } from './program.js'

export type OptionValues = Record<string, string | boolean | undefined>
export type { ParsedCommandLine }

/**
 * Parses the arguments after `provenance-agent`.
 * @throws UsageError (code `USAGE`).
 */
export function parseCommandLine (argv: readonly string[], env: Readonly<Record<string, string | undefined>> = {}): ParsedCommandLine {
  return parseWith(AGENT_PROGRAM, argv, env)
}

/**
 * A non-negative integer option (seq numbers, ports), or `fallback` when absent.
 * @throws UsageError `USAGE`.
 */
export function integerOption (values: OptionValues, name: string, fallback: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = values[name]
  if (v === undefined) return fallback
  if (typeof v !== 'string' || !/^\d{1,16}$/.test(v) || Number(v) > max) throw new UsageError(`--${name} must be an integer in 0..${max}`)
  return Number(v)
}
