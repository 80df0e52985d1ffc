/**
 * Start-up of `provenance-agent --version`: the compiled agent (dist/, built here into a temp
 * folder so a stale dist/ is never measured) against the TypeScript through tsx, with `node -e 0`
 * as the floor; interleaved rounds, median and min–max of wall time.
 */
import { execFile, spawn } from 'node:child_process'
import { mkdtemp, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { fmt, interleave, spread, type Spread, exitOnHelp, intEnv } from './measure.js'
import { isEntryPoint } from '../common/entry-point.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const ROUNDS = intEnv('BENCH_STARTUP_ROUNDS', 15)

async function runNode (args: readonly string[]): Promise<void> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, PROVENANCE_FROM_SOURCE: '' } })
  const code = await new Promise<number | null>(resolve => child.on('close', resolve))
  if (code !== 0) throw new Error(`node ${args.join(' ')} exited ${String(code)}`)
}

export async function main (): Promise<Record<string, Spread>> {
  const app = await mkdtemp(join(tmpdir(), 'bench-startup-'))
  try {
    await promisify(execFile)(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(app, 'dist')])
    await promisify(execFile)(process.execPath, [join(ROOT, 'scripts/copy-build-assets.mjs'), join(app, 'dist')])
    await symlink(join(ROOT, 'node_modules'), join(app, 'node_modules'))
    const rounds = await interleave(ROUNDS, {
      'node -e 0 (floor)': async () => { await runNode(['-e', '0']) },
      'compiled (dist)': async () => { await runNode([join(app, 'dist/agent/cli/main.js'), '--version']) },
      'tsx (source)': async () => { await runNode(['--import', 'tsx', join(ROOT, 'agent/cli/main.ts'), '--version']) }
    })
    const out: Record<string, Spread> = {}
    console.log(`provenance-agent --version, ${ROUNDS} interleaved rounds, wall ms: median (min–max)`)
    for (const [name, timings] of Object.entries(rounds)) {
      const s = spread(timings.map(t => t.wallMs))
      out[name] = s
      console.log(`  ${name.padEnd(20)} ${fmt(s.median, 0).padStart(6)}  (${fmt(s.min, 0)}–${fmt(s.max, 0)})`)
    }
    return out
  } finally {
    await rm(app, { recursive: true, force: true })
  }
}

const USAGE = `usage: node --import tsx bench/startup.ts

Start-up of provenance-agent --version, compiled (built into a temp folder) vs tsx, against
node -e 0; interleaved rounds, median and min-max wall time.

Environment: BENCH_STARTUP_ROUNDS (default 15).`

if (isEntryPoint(import.meta.url)) {
  exitOnHelp(USAGE)
  await main()
}
