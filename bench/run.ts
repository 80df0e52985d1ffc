/**
 * `npm run bench`: every benchmark in one run, each a ratio against a baseline measured in the
 * same run (never against a number from elsewhere). `npm run bench -- agent gateway` runs some.
 * Each prints its table; all results, with the machine and its load, go to bench/out/*.json.
 * Each runs in a process of its own (bench/run-one.ts), so none measures what another left behind.
 */
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describeMachine } from './measure.js'

const ALL = ['agent', 'contracts-gas', 'gateway', 'gateway-postgres', 'agent-service', 'forensics', 'lineage', 'startup', 'tips', 'identity'] as const
// Bench names are words; options (`--records 40000`, `--parts identity`) and their values go to
// the benches, so a word right after an option is its value, not a bench name (flags without a
// value, such as forensics' `--sources`, go after the bench names).
const args = process.argv.slice(2)
const chosen = args.filter((a, i) => /^[a-z][a-z-]*$/.test(a) && !(args[i - 1]?.startsWith('--') ?? false))
const names = chosen.length > 0 ? chosen : [...ALL]

/** What each bench measures, against what, and the options and variables it reads (its header comment says more). */
const ABOUT: Record<(typeof ALL)[number], string> = {
  agent: 'model identity vs openssl dgst, durable records vs raw signs, inference latency and event loop vs bare session.run, RSS vs bare ORT',
  'contracts-gas': 'gas of anchoring and of the registry calls on anvil, against the calldata + storage floor; no options',
  gateway: 'verified + stored records/s through Mosquitto vs raw verifies on as many threads as cores',
  'gateway-postgres': 'the PostgreSQL tier vs raw verifies; one vs two gateway processes; a backlog drain (env PROV_BENCH_PG_DEVICES, _RECORDS, _ROUNDS, _BACKLOG)',
  'agent-service': 'backlog drain through Mosquitto vs raw verifies; agent CPU and RSS at 100 inferences/s vs bare ORT (env BENCH_DRAIN_RECORDS)',
  forensics: 'verify --offline vs raw verifies on the same cores: --records N, --online N, --rounds N, --sources (measure the TypeScript, not dist/)',
  lineage: 'dataset hashing vs openssl dgst, 1 and 2 processes (env LINEAGE_BENCH_MIB, LINEAGE_BENCH_ROUNDS)',
  startup: 'provenance-agent --version, compiled vs tsx, against node -e 0 (env BENCH_STARTUP_ROUNDS)',
  tips: 'moving device tips of a sealed batch vs building its Merkle tree (env TIPS_BENCH_ROUNDS)',
  identity: 'agent boot and records/s with a TPM-certified boot key vs the file key, on swtpm (env BENCH_IDENTITY_ROUNDS, BENCH_IDENTITY_RECORDS)'
}

if (args.includes('--help') || args.includes('-h')) {
  // Every bench reads --help where it starts (bench/measure.ts exitOnHelp); before, only agent and
  // gateway did and `npm run bench -- --help` ran contracts-gas on anvil.
  console.log('npm run bench [-- NAME… [OPTIONS]]   (node --import tsx bench/run.ts)\n' +
    'Runs the named benches (default: all) one after the other, prints a table per bench and writes\n' +
    'every figure, with the machine and its load average, to bench/out/latest.json. Every figure is a\n' +
    'ratio against a baseline measured in the same run. Options go after the names, to every bench.\n' +
    'On a shared machine, run it under a lock: flock /tmp/bench.lock npm run bench -- …\n')
  for (const name of ALL) console.log(`  ${name.padEnd(17)}${ABOUT[name]}`)
  for (const name of names) {
    console.log(`\n== ${name} ==`)
    // As its own process: each reads --help where it starts, not in its main().
    spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL(`./${name}.ts`, import.meta.url)), '--help'], { stdio: 'inherit' })
  }
  process.exit(0)
}
let failed = false
const machine = describeMachine()
const results: Record<string, unknown> = {}
const tmp = await mkdtemp(join(tmpdir(), 'prov-bench-'))
for (const name of names) {
  const file = fileURLToPath(new URL(`./${name}.ts`, import.meta.url))
  if (!existsSync(file)) {
    console.error(`bench ${name}: no such benchmark (have: ${ALL.join(', ')})`)
    failed = true
    continue
  }
  console.log(`\n== ${name} ==`)
  // Each bench in a fresh process (bench/run-one.ts), with this one's arguments.
  const resultFile = join(tmp, `${name}.json`)
  const child = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./run-one.ts', import.meta.url)), ...args],
    { stdio: 'inherit', env: { ...process.env, BENCH_PART: name, BENCH_RESULT_FILE: resultFile } })
  if (child.status === 0 && existsSync(resultFile)) {
    results[name] = JSON.parse(await readFile(resultFile, 'utf8')) as unknown
  } else {
    failed = true
    console.error(`bench ${name} failed: exit ${child.status ?? child.signal ?? child.error?.message}`)
  }
}
await rm(tmp, { recursive: true, force: true })
machine.loadEnd = loadavg()[0] ?? 0
const outDir = fileURLToPath(new URL('./out/', import.meta.url))
await mkdir(outDir, { recursive: true })
const report = JSON.stringify({ at: new Date().toISOString(), machine, underLoad: Math.max(machine.loadStart, machine.loadEnd) > machine.cores, results }, null, 2)
const file = `${outDir}bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`
await writeFile(file, report)
await writeFile(`${outDir}latest.json`, report)
console.log(`\nmachine: ${machine.cpu}, ${machine.cores} cores, load ${machine.loadStart.toFixed(1)} → ${machine.loadEnd.toFixed(1)}; results in ${file}`)
process.exitCode = failed ? 1 : 0
