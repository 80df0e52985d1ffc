/**
 * The identity bench's measured side, a long-lived process run compiled (bench/agent.ts transpiles
 * it and measure.ts beside dist/, as the memory child) that imports agent/model and little else,
 * as the agent's model worker does. In the bench's own process the loads shared a heap with
 * every module of the bench: rec's 10 MiB buffer each load was promoted and freed by
 * mark-compacts (39 against 2 over ~100 loads, `--trace-gc`), 29-35 ms a load against 23-25 here
 * (2026-12-03, Xeon VM), a cost the agent's own worker, whose isolate holds only the model code,
 * does not have.
 *
 * One JSON command per stdin line, one JSON answer per stdout line:
 *   {"op":"settle","file":F,"loads":N,"ms":M}  loads F until N loads or M ms: {"loads":n}
 *   {"op":"load","file":F,"runs":N}            N identities of F: {"wallMs":..,"cpuMs":..} (all threads)
 *   {"op":"phases","file":F,"rounds":N}        each part of an identity alone, medians: IdentityPhases
 * Usage: node dist/bench/identity-child.js (ends at the end of stdin)
 */
import { createHash } from 'node:crypto'
import { open } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { DEFAULT_LOAD_CHUNK_BYTES, identifyModel } from '../agent/model/index.js'
import { prepareModelManifest } from '../protocol/model-manifest.js'
import { spread } from './measure.js'

type Command =
  | { op: 'settle', file: string, loads: number, ms: number }
  | { op: 'load', file: string, runs: number }
  | { op: 'phases', file: string, rounds: number }

/** Each part of an identity alone, median of `rounds`, on a file already in the page cache. */
async function phases (file: string, rounds: number): Promise<Record<string, number>> {
  const reads: number[] = []
  const fileShas: number[] = []
  const tensorShas: number[] = []
  const parses: number[] = []
  for (let r = 0; r < rounds; r++) {
    const handle = await open(file, 'r')
    let bytes: Buffer
    try {
      const size = (await handle.stat()).size
      const t0 = performance.now()
      bytes = Buffer.allocUnsafeSlow(size)
      for (let at = 0; at < size;) at += (await handle.read(bytes, at, Math.min(DEFAULT_LOAD_CHUNK_BYTES, size - at), at)).bytesRead
      reads.push(performance.now() - t0)
    } finally {
      await handle.close()
    }
    const t1 = performance.now()
    const fileHash = createHash('sha256').update(bytes).digest()
    fileShas.push(performance.now() - t1)
    const t2 = performance.now()
    const pending = prepareModelManifest(bytes, fileHash)
    parses.push(performance.now() - t2)
    // complete() with no known hash hashes every tensor here: the tensor SHA stream alone.
    const t3 = performance.now()
    pending.complete(new Map())
    tensorShas.push(performance.now() - t3)
  }
  return { readMs: spread(reads).median, fileShaMs: spread(fileShas).median, tensorShaMs: spread(tensorShas).median, parseMs: spread(parses).median, cores: availableParallelism() }
}

async function answer (c: Command): Promise<unknown> {
  switch (c.op) {
    case 'settle': {
      const until = performance.now() + c.ms
      let loads = 0
      while (loads < c.loads && performance.now() < until) { await identifyModel(c.file); loads++ }
      return { loads }
    }
    case 'load': {
      const c0 = process.cpuUsage()
      const t0 = performance.now()
      for (let i = 0; i < c.runs; i++) await identifyModel(c.file)
      const wallMs = performance.now() - t0
      const cpu = process.cpuUsage(c0)
      return { wallMs, cpuMs: (cpu.user + cpu.system) / 1000 }
    }
    case 'phases':
      return await phases(c.file, c.rounds)
  }
}

for await (const line of createInterface({ input: process.stdin })) {
  if (line.trim() === '') continue
  process.stdout.write(JSON.stringify(await answer(JSON.parse(line) as Command)) + '\n')
}
