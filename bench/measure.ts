/**
 * Shared measuring for the benches: interleaved rounds of a measure and its baseline (so that load
 * and CPU frequency treat both alike), medians with min–max, CPU time beside wall time (children
 * included, for baselines that are other processes), and the machine the figures came from.
 */
import { cpus, loadavg, totalmem } from 'node:os'
import { readdirSync, readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'

/** Median, min and max of a sample. */
export interface Spread { median: number, min: number, max: number }

export function spread (xs: readonly number[]): Spread {
  const s = [...xs].sort((a, b) => a - b)
  if (s.length === 0) return { median: NaN, min: NaN, max: NaN }
  const mid = s.length >> 1
  const median = s.length % 2 === 1 ? s[mid] as number : ((s[mid - 1] as number) + (s[mid] as number)) / 2
  return { median, min: s[0] as number, max: s[s.length - 1] as number }
}

/** Wall and CPU milliseconds of one timed call; CPU includes this process's threads and waited-for children. */
export interface Timing { wallMs: number, cpuMs: number }

const TICKS_PER_SECOND = 100

/** CPU ms of this process (all threads) plus its reaped children, from /proc (Linux). */
export function processCpuMs (): number {
  const usage = process.cpuUsage()
  let childrenMs = 0
  try {
    // Fields 16 and 17 of /proc/self/stat: cutime and cstime, in clock ticks (USER_HZ = 100).
    const stat = readFileSync('/proc/self/stat', 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    childrenMs = (Number(fields[13]) + Number(fields[14])) * 1000 / TICKS_PER_SECOND
  } catch {}
  return (usage.user + usage.system) / 1000 + childrenMs
}

export async function time (fn: () => unknown): Promise<Timing> {
  const c0 = processCpuMs()
  const t0 = performance.now()
  await fn()
  return { wallMs: performance.now() - t0, cpuMs: processCpuMs() - c0 }
}

/** Runs `rounds` rounds, each timing every named function once, in rotating order. */
export async function interleave (rounds: number, fns: Record<string, () => unknown>): Promise<Record<string, Timing[]>> {
  const names = Object.keys(fns)
  const out: Record<string, Timing[]> = Object.fromEntries(names.map(n => [n, []]))
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(r + k) % names.length] as string
      out[name]?.push(await time(fns[name] as () => unknown))
    }
  }
  return out
}

/** Per-round ratios a/b of a quantity (e.g. throughput), summarised. */
export function ratios (a: readonly number[], b: readonly number[]): Spread {
  return spread(a.map((x, i) => x / (b[i] as number)))
}

export interface Machine {
  cpu: string
  cores: number
  memoryGiB: number
  node: string
  /** 1-minute load average when the bench started and ended: above the core count means figures under load. */
  loadStart: number
  loadEnd?: number
}

export function describeMachine (): Machine {
  const list = cpus()
  return {
    cpu: list[0]?.model ?? 'unknown',
    cores: list.length,
    memoryGiB: Math.round(totalmem() / 1024 ** 3 * 10) / 10,
    node: process.version,
    loadStart: loadavg()[0] as number
  }
}

export function fmt (x: number, digits = 2): string {
  return Number.isFinite(x) ? x.toFixed(digits) : String(x)
}

/** "median (min–max)" */
export function fmtSpread (s: Spread, digits = 2): string {
  return `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`
}

/**
 * CPU ms of each live child process of this process (Linux /proc), by command name (summed when
 * several share one): what runs beside a measured process on the same cores (a broker, a chain,
 * a publisher), so a bench can say how much of the machine they took.
 */
export function childrenCpuMs (): Map<string, number> {
  const out = new Map<string, number>()
  let pids: string[] = []
  try {
    for (const tid of readdirSync('/proc/self/task')) {
      pids.push(...readFileSync(`/proc/self/task/${tid}/children`, 'utf8').split(' ').filter(p => p !== '' && p !== '\n'))
    }
  } catch {
    pids = []
  }
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid.trim()}/stat`, 'utf8')
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))
      // Fields 14 and 15: utime and stime, in clock ticks.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      const ms = (Number(fields[11]) + Number(fields[12])) * 1000 / TICKS_PER_SECOND
      out.set(name, (out.get(name) ?? 0) + ms)
    } catch {}
  }
  return out
}

/** CPU ms each child spent between two childrenCpuMs() samples (children gone by the second sample are left out). */
export function childrenCpuDelta (before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [name, ms] of after) out[name] = ms - (before.get(name) ?? 0)
  return out
}

/** CPU ms of this process's main thread (Linux /proc: the task whose id is the pid). */
export function mainThreadCpuMs (): number {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 1000 / TICKS_PER_SECOND
  } catch {
    return NaN
  }
}

/**
 * CPU ms of each thread of this process by thread id (Linux /proc). Node names every thread
 * "node", so a bench tells them apart by what they did: between two samples, the busiest besides
 * the main thread are its worker threads when those are what it keeps busy.
 */
export function threadCpuMs (): Map<number, number> {
  const out = new Map<number, number>()
  let tids: string[] = []
  try {
    tids = readdirSync('/proc/self/task')
  } catch {
    return out
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      out.set(Number(tid), (Number(fields[11]) + Number(fields[12])) * 1000 / TICKS_PER_SECOND)
    } catch {}
  }
  return out
}

/** CPU ms each thread spent between two threadCpuMs() samples, busiest first (threads born between them counted from 0). */
export function threadCpuDelta (before: Map<number, number>, after: Map<number, number>): Array<{ tid: number, ms: number }> {
  return [...after].map(([tid, ms]) => ({ tid, ms: ms - (before.get(tid) ?? 0) })).sort((a, b) => b.ms - a.ms)
}

/**
 * Prints `usage` and ends the process when the command line asks for help (`--help` or `-h`).
 * Every bench calls it where it starts as a program, before any work: without it, `--help` was
 * ignored by most and started a whole run (forensics: 100 000 records and anvil).
 */
export function exitOnHelp (usage: string): void {
  if (!process.argv.includes('--help') && !process.argv.includes('-h')) return
  process.stdout.write(usage.trim() + '\n')
  process.exit(0)
}

function wholeNumber (raw: string, what: string, min: number): number {
  const n = Number(raw)
  if (!/^[0-9]+$/.test(raw) || !Number.isSafeInteger(n) || n < min) throw new Error(`${what} takes ${min === 0 ? 'a whole number' : `an integer of at least ${min}`}, got '${raw}'`)
  return n
}

/**
 * The integer after `--name` on the command line, `fallback` when the option is absent. Anything
 * else (missing, not digits, below `min`) is an error that names the option: the benches used to
 * measure with their default when given `--records 40k`.
 */
export function intArg (name: string, fallback: number, min = 1): number {
  const at = process.argv.indexOf(`--${name}`)
  return at === -1 ? fallback : wholeNumber(process.argv[at + 1] ?? '', `--${name}`, min)
}

/** The integer in the environment variable `name`, `fallback` when unset or empty; anything else an error that names it. */
export function intEnv (name: string, fallback: number, min = 1): number {
  const raw = process.env[name]
  return raw === undefined || raw === '' ? fallback : wholeNumber(raw, name, min)
}

/** Minor page faults of this process so far, all threads (getrusage): pages the kernel had to map on first touch. */
export function minorFaults (): number {
  return process.resourceUsage().minorPageFault
}

/**
 * What one page fault costs on this machine, in CPU µs: fresh 16 MiB buffers written once (each
 * 4 KiB page faulted in) against the same buffer written again (no faults), median of 5. Call it
 * while nothing else in the process runs (process CPU counts every thread). On the 2-core bench
 * VM a fault cost ~9 µs (2026-12-02), the time of a SHA-256 of 6 KB: fresh memory is not free
 * there, and a figure of faults per record says what a path pays for it.
 */
export function faultCostUs (): number {
  const bytes = 16 * 1024 * 1024
  const costs: number[] = []
  for (let r = 0; r < 5; r++) {
    const f0 = minorFaults()
    let c0 = process.cpuUsage()
    const b = Buffer.allocUnsafeSlow(bytes)
    b.fill(r + 1)
    const first = process.cpuUsage(c0)
    const faults = minorFaults() - f0
    c0 = process.cpuUsage()
    b.fill(r + 2)
    const again = process.cpuUsage(c0)
    if (faults > 0) costs.push(Math.max(0, (first.user + first.system) - (again.user + again.system)) / faults)
  }
  return costs.length === 0 ? NaN : spread(costs).median
}
