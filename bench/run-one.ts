/**
 * One bench of `npm run bench` in a process of its own (bench/run.ts spawns it with the same
 * arguments it was given): imports bench/<BENCH_PART>.ts, runs its main() and writes what it
 * returns, as JSON, to the file BENCH_RESULT_FILE names. A process per bench, so that none
 * measures in a heap, threads or files another one left behind: in one process, the forensics
 * part right after the gateway part measured 0.62 of raw node:crypto's CPU per record, alone 0.67
 * (40 000 records, the same quiet machine minutes apart, 2026-12-02).
 */
import { writeFile } from 'node:fs/promises'

const part = process.env.BENCH_PART
const resultFile = process.env.BENCH_RESULT_FILE
if (part === undefined || !/^[a-z][a-z-]*$/.test(part) || resultFile === undefined) {
  console.error('bench/run-one.ts: set BENCH_PART (a bench name) and BENCH_RESULT_FILE; npm run bench runs it')
  process.exit(2)
}
const mod = await import(`./${part}.js`) as { main: () => Promise<unknown> }
const result = await mod.main()
await writeFile(resultFile, JSON.stringify(result ?? null))
// Benches leave handles (pools, timers) that their own entry points end by exiting.
process.exit(0)
