/**
 * The option values a runner gets and the readers the runners share. Apart from args.ts, which
 * parses with the program: a runner imported by the program must not import the program back.
 */
import { UsageError } from '../../common/index.js'

export type OptionValues = Record<string, string | boolean | undefined>

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
