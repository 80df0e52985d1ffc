/**
 * `npm run bench`: every benchmark in one run, each a ratio against a baseline measured in the
 * same run (never against a number from elsewhere). `npm run bench -- agent gateway` runs some.
 * Each prints its table; all results, with the machine and its load, go to bench/out/*.json.
 */
import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { fileURLToPath } from 'node:url'
import { describeMachine } from './measure.js'

const ALL = ['agent', 'contracts-gas', 'gateway', 'gateway-postgres', 'agent-service', 'forensics', 'lineage', 'startup', 'tips', 'identity'] as const
// Bench names are words; options (`--records 40000`, `--parts identity`) and their values go to
// the benches, so a word right after an option is its value, not a bench name (flags without a
// value, such as forensics' `--sources`, go after the bench names).
const args = process.argv.slice(2)
const chosen = args.filter((a, i) => /^[a-z][a-z-]*$/.test(a) && !(args[i - 1]?.startsWith('--') ?? false))
const names = chosen.length > 0 ? chosen : [...ALL]
let failed = false
const machine = describeMachine()
const results: Record<string, unknown> = {}
for (const name of names) {
  const file = fileURLToPath(new URL(`./${name}.ts`, import.meta.url))
  if (!existsSync(file)) {
    console.error(`bench ${name}: no such benchmark (have: ${ALL.join(', ')})`)
    failed = true
    continue
  }
  console.log(`\n== ${name} ==`)
  try {
    const mod = await import(`./${name}.js`) as { main: () => Promise<unknown> }
    results[name] = await mod.main()
  } catch (e) {
    failed = true
    console.error(`bench ${name} failed: ${(e as Error).stack ?? String(e)}`)
  }
}
machine.loadEnd = loadavg()[0] ?? 0
const outDir = fileURLToPath(new URL('./out/', import.meta.url))
await mkdir(outDir, { recursive: true })
const report = JSON.stringify({ at: new Date().toISOString(), machine, underLoad: Math.max(machine.loadStart, machine.loadEnd) > machine.cores, results }, null, 2)
const file = `${outDir}bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`
await writeFile(file, report)
await writeFile(`${outDir}latest.json`, report)
console.log(`\nmachine: ${machine.cpu}, ${machine.cores} cores, load ${machine.loadStart.toFixed(1)} → ${machine.loadEnd.toFixed(1)}; results in ${file}`)
process.exitCode = failed ? 1 : 0
