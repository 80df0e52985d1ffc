/**
 * Dataset hashing throughput: `hashTree` with 1 and 2 worker threads against `openssl dgst -sha256`
 * (1 process, and 2 processes on halves of the list) over the same files of mixed sizes, in
 * interleaved rounds from the page cache. Median and min-max MB/s, CPU time beside wall time.
 * Run: `node --import tsx bench/lineage.ts` (LINEAGE_BENCH_MIB, LINEAGE_BENCH_ROUNDS to change).
 */
import { spawn } from 'node:child_process'
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { isEntryPoint } from '../common/entry-point.js'
import { exitOnHelp, intEnv } from './measure.js'
import { hashTree, listTree } from '../forensics/lineage/index.js'

/** Tree size in MiB and rounds; small defaults keep it short on a shared machine. */
export const DEFAULT_TREE_MIB = 256
export const DEFAULT_ROUNDS = 3
/** Mix of file sizes, by share of the bytes: a few large, many medium, very many small. */
const MIX: Array<{ sizeBytes: number, share: number }> = [
  { sizeBytes: 32 * 1024 * 1024, share: 0.5 },
  { sizeBytes: 1024 * 1024, share: 0.25 },
  { sizeBytes: 64 * 1024, share: 0.15 },
  { sizeBytes: 4 * 1024, share: 0.1 }
]

interface Sample { wallMs: number, cpuMs: number }
interface Variant { name: string, run: () => Promise<void> }
export interface LineageBenchRow { name: string, mbPerS: { median: number, min: number, max: number }, wallMs: number, cpuMs: number, ratioToOpenssl1: number, cpuRatioToOpenssl1: number }
export interface LineageBenchReport { bench: 'lineage', treeBytes: number, files: number, rounds: number, underLoad: true, loadAverage: { start: number, end: number }, rows: LineageBenchRow[] }

/** User+system CPU of this process (all threads) and of its waited-for children, ms (Linux /proc). */
function cpuMs (): number {
  const self = process.cpuUsage()
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]?.split(' ') ?? []
  // Fields after the command: index 13, 14 are cutime, cstime (clock ticks, 100 per second here).
  const children = (Number(fields[13]) + Number(fields[14])) * 10
  return (self.user + self.system) / 1000 + children
}

async function openssl (files: readonly string[]): Promise<void> {
  // Chunks keep the argument list under the kernel's limit.
  for (let i = 0; i < files.length; i += 2000) {
    await new Promise<void>((resolve, reject) => {
      const child = spawn('openssl', ['dgst', '-sha256', ...files.slice(i, i + 2000)], { stdio: ['ignore', 'ignore', 'inherit'] })
      child.on('error', reject)
      child.on('exit', code => { if (code === 0) resolve(); else reject(new Error(`openssl exited ${String(code)}`)) })
    })
  }
}

async function makeTree (dir: string, totalBytes: number): Promise<void> {
  const block = randomBytes(1024 * 1024)
  let n = 0
  for (const { sizeBytes, share } of MIX) {
    const count = Math.max(1, Math.round(totalBytes * share / sizeBytes))
    const sub = join(dir, `s${sizeBytes}`)
    await mkdir(sub)
    for (let i = 0; i < count; i++) {
      const parts: Buffer[] = []
      for (let left = sizeBytes; left > 0; left -= block.length) parts.push(block.subarray(0, Math.min(left, block.length)))
      // Each file differs in its first bytes, so no two digests are equal.
      const data = Buffer.concat(parts)
      data.writeUInt32LE(n++, 0)
      await writeFile(join(sub, `f${i}`), data)
    }
  }
}

const median = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)] as number }

export async function main (): Promise<LineageBenchReport> {
  const mib = intEnv('LINEAGE_BENCH_MIB', DEFAULT_TREE_MIB)
  const rounds = intEnv('LINEAGE_BENCH_ROUNDS', DEFAULT_ROUNDS)
  const dir = await mkdtemp(join(tmpdir(), 'lineage-bench-'))
  try {
    process.stderr.write(`lineage: writing a ${mib} MiB tree of mixed file sizes\n`)
    await makeTree(dir, mib * 1024 * 1024)
    const files = await listTree(dir)
    const paths = files.map(f => f.path)
    const treeBytes = files.reduce((n, f) => n + f.sizeBytes, 0)
    // Warm the page cache so every variant reads memory, not disk.
    for (const p of paths) await readFile(p)
    const half = Math.ceil(paths.length / 2)
    const variants: Variant[] = [
      { name: 'openssl dgst -sha256, 1 process', run: async () => { await openssl(paths) } },
      { name: 'openssl dgst -sha256, 2 processes', run: async () => { await Promise.all([openssl(paths.slice(0, half)), openssl(paths.slice(half))]) } },
      { name: 'hashTree, 1 worker', run: async () => { await hashTree(dir, { workers: 1 }) } },
      { name: 'hashTree, 2 workers', run: async () => { await hashTree(dir, { workers: 2 }) } }
    ]
    const samples = new Map<string, Sample[]>(variants.map(v => [v.name, []]))
    const loadStart = loadavg()[0] as number
    for (let r = 0; r < rounds; r++) {
      // Interleaved: each round runs every variant once, in a rotated order, so load drifts hit all alike.
      for (let k = 0; k < variants.length; k++) {
        const v = variants[(k + r) % variants.length] as Variant
        const c0 = cpuMs()
        const t0 = performance.now()
        await v.run()
        samples.get(v.name)?.push({ wallMs: performance.now() - t0, cpuMs: cpuMs() - c0 })
      }
    }
    const mbps = (s: Sample): number => treeBytes / 1e6 / (s.wallMs / 1000)
    const base = median((samples.get(variants[0]?.name as string) ?? []).map(mbps))
    // CPU (user + system, all threads or processes) per byte: openssl's over ours, so 1.00 = as cheap.
    const baseCpu = median((samples.get(variants[0]?.name as string) ?? []).map(x => x.cpuMs))
    const rows: LineageBenchRow[] = variants.map(v => {
      const s = samples.get(v.name) ?? []
      const m = s.map(mbps)
      const cpu = median(s.map(x => x.cpuMs))
      return { name: v.name, mbPerS: { median: median(m), min: Math.min(...m), max: Math.max(...m) }, wallMs: median(s.map(x => x.wallMs)), cpuMs: cpu, ratioToOpenssl1: median(m) / base, cpuRatioToOpenssl1: baseCpu / cpu }
    })
    const loadAverage = { start: loadStart, end: loadavg()[0] as number }
    const report: LineageBenchReport = { bench: 'lineage', treeBytes, files: files.length, rounds, underLoad: true, loadAverage, rows }
    const lines = [`dataset hashing, ${(treeBytes / 2 ** 20).toFixed(0)} MiB in ${files.length} files, ${rounds} interleaved rounds, load average ${loadStart.toFixed(1)} -> ${loadAverage.end.toFixed(1)} (1 min)`,
      '  variant                               MB/s median (min-max)    wall ms   cpu ms   MB/s vs openssl x1   CPU vs openssl x1']
    for (const r of rows) {
      lines.push(`  ${r.name.padEnd(36)} ${r.mbPerS.median.toFixed(0).padStart(6)} (${r.mbPerS.min.toFixed(0)}-${r.mbPerS.max.toFixed(0)})`.padEnd(64) +
        `${r.wallMs.toFixed(0).padStart(8)} ${r.cpuMs.toFixed(0).padStart(8)} ${r.ratioToOpenssl1.toFixed(2).padStart(20)} ${r.cpuRatioToOpenssl1.toFixed(2).padStart(19)}`)
    }
    lines.push(JSON.stringify(report))
    process.stdout.write(lines.join('\n') + '\n')
    return report
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

const USAGE = `usage: node --import tsx bench/lineage.ts

Dataset hashing (hashTree, 1 and 2 worker threads) against openssl dgst -sha256 (1 and 2
processes) over the same files, interleaved rounds from the page cache; MB/s and CPU time.

Environment: LINEAGE_BENCH_MIB (tree size, default 256), LINEAGE_BENCH_ROUNDS (default 3).`

if (isEntryPoint(import.meta.url)) {
  exitOnHelp(USAGE)
  try {
    await main()
  } catch (e) {
    process.stderr.write(`${(e as { code?: string }).code ?? 'BENCH_FAILED'}: ${(e as Error).message}\n`)
    process.exitCode = 1
  }
}
