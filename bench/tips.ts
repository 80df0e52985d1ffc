/**
 * What the tip tree (PROTOCOL.md §7.10) costs a batch: moving the tips of a sealed batch's records
 * and hashing the new root, in trees of 10 k and 100 k devices, against building that batch's
 * RFC 9162 tree in the same run (interleaved rounds; the ratio is the figure).
 */
import { randomBytes } from 'node:crypto'
import { MerkleBuilder, TipTree } from '../protocol/index.js'
import { interleave, ratios, spread, fmt, fmtSpread, type Spread, exitOnHelp, intEnv } from './measure.js'
import { isEntryPoint } from '../common/entry-point.js'

/** [devices, records per batch]: the default batch (10 k records) in fleets of 10 k and 100 k, and a batch that moves every tip of 100 k. */
const CASES: Array<[number, number]> = [[10_000, 10_000], [100_000, 10_000], [100_000, 100_000]]
const ROUNDS = intEnv('TIPS_BENCH_ROUNDS', 7)

export interface TipsBenchRow {
  devices: number
  batchRecords: number
  /** Distinct devices whose tip a batch moves. */
  devicesMoved: number
  tipUpdateMs: Spread
  merkleBuildMs: Spread
  /** tip update / batch tree build, per round. */
  ratio: Spread
}

export async function main (): Promise<{ bench: 'tips', rows: TipsBenchRow[] }> {
  const rows: TipsBenchRow[] = []
  for (const [devices, BATCH_RECORDS] of CASES) {
    const ids = Array.from({ length: devices }, (_, i) => `device-${String(i).padStart(6, '0')}`)
    const tree = new TipTree()
    const seqs = new Int32Array(devices)
    for (const id of ids) tree.set(id, 0, randomBytes(32))
    tree.root()
    const leaves = Array.from({ length: BATCH_RECORDS }, () => new Uint8Array(randomBytes(32)))
    const hashes = Array.from({ length: BATCH_RECORDS }, () => new Uint8Array(randomBytes(32)))
    // A batch of 10 k records from a fleet at 1 inference/s: records of distinct devices, round robin.
    let next = 0
    const moved = Math.min(devices, BATCH_RECORDS)
    const samples = await interleave(ROUNDS, {
      tips: () => {
        for (let i = 0; i < BATCH_RECORDS; i++) {
          const d = next
          next = (next + 1) % devices
          seqs[d] = (seqs[d] ?? 0) + 1
          tree.set(ids[d] as string, seqs[d] ?? 0, hashes[i] as Uint8Array)
        }
        tree.snapshot()
        tree.root()
      },
      merkle: () => {
        const b = new MerkleBuilder()
        for (const l of leaves) b.append(l)
        b.root()
      }
    })
    const tipMs = (samples.tips ?? []).map(s => s.wallMs)
    const merkleMs = (samples.merkle ?? []).map(s => s.wallMs)
    rows.push({ devices, batchRecords: BATCH_RECORDS, devicesMoved: moved, tipUpdateMs: spread(tipMs), merkleBuildMs: spread(merkleMs), ratio: ratios(tipMs, merkleMs) })
  }
  const lines = [`tip tree update per sealed batch vs the batch's RFC 9162 tree, ${ROUNDS} interleaved rounds`,
    '  devices records   tip update ms median (min-max)   batch tree ms median (min-max)   ratio median (min-max)']
  for (const r of rows) {
    lines.push(`  ${String(r.devices).padStart(7)} ${String(r.batchRecords).padStart(7)}   ${fmtSpread(r.tipUpdateMs, 1).padEnd(32)} ${fmtSpread(r.merkleBuildMs, 1).padEnd(32)} ${fmtSpread(r.ratio)}`)
  }
  for (const r of rows) lines.push(`  ${r.devices} devices, ${r.batchRecords}-record batch: ${fmt(r.tipUpdateMs.median * 1000 / r.batchRecords, 1)} µs of tip update per record`)
  process.stdout.write(lines.join('\n') + '\n')
  return { bench: 'tips', rows }
}

const USAGE = `usage: node --import tsx bench/tips.ts

Moving the device tips of a sealed batch (PROTOCOL.md §7.10) in fleets of 10 k and 100 k devices,
against building that batch's Merkle tree in the same run; interleaved rounds.

Environment: TIPS_BENCH_ROUNDS (default 7).`

if (isEntryPoint(import.meta.url)) {
  exitOnHelp(USAGE)
  await main()
}
