/**
 * Forensics benchmark (issues 6 and 11): `verify` throughput in records per second against raw
 * node:crypto verifications of the same messages on the same cores (one worker thread per core),
 * measured in interleaved rounds of the same run; noble's figures beside it (the independent
 * backend, `--verifier noble`); the extrapolation to a device with 1 M records, and the size of a
 * bundle per 1 000 records; with --cli-records N, N records through `provenance verify` bundle by
 * bundle. Run: node --import tsx bench/forensics.ts [--records N] [--online N] [--rounds N] [--cli-records N] [--sources]
 * The verifier measured is the compiled one in dist/ (what `provenance verify` runs; `npm run build`
 * first), unless dist/ is missing or older than the sources or --sources is given: from sources,
 * each signature worker loads TypeScript through tsx, ~4× the start-up CPU of a compiled one.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import * as noble from '@noble/ed25519'
import {
  BUNDLE_FORMAT, BUNDLE_LIMITS, MerkleTree, RECORD_SIGNING_PREFIX, concat, decodeBundle, encodeBundle, encodeBundleRecord, formatCheckpoint, formatProof,
  hashLeaf, sha256, toHex, verifySignature, type Bundle, type ProofExtra, type SignedRecord
} from '../protocol/index.js'
import { startDevChain, deviceIdOf } from '../contracts/index.js'
import { verifyBundle as verifyFromSources } from '../forensics/verify/index.js'
import { buildTimeline } from '../forensics/timeline/index.js'
import { createProgress } from '../forensics/cli/index.js'
import { ChainBuilder, fakeHash, sampleBody } from '../test/helpers/records.js'
import { fmtSpread, interleave, spread, time, type Spread, type Timing, exitOnHelp, intArg, faultCostUs, minorFaults } from './measure.js'
import { isEntryPoint } from '../common/entry-point.js'

/** The gateway's default batch size (gateway/batch: DEFAULT_BATCH_MAX_RECORDS). */
const BATCH_RECORDS = 10_000
const ONE_MILLION = 1_000_000

export interface ForensicsBenchResult {
  records: number
  /** The verifier measured: dist/'s (as shipped) or the sources' under tsx. */
  verifier: 'compiled' | 'sources'
  cores: number
  verify: { offlineRecordsPerSec: number, perRecordMs: number, onlineRecords: number, onlineRecordsPerSec: number }
  /** Interleaved rounds: verify --offline (node:crypto on every core) against raw node:crypto verifies on as many worker threads. */
  parallel: {
    verifyPerSec: Spread, rawNodeVerifiesPerSec: Spread, ratio: Spread, cpuRatio: Spread, verifyCpuMsPerRecord: Spread, rawCpuMsPerVerify: Spread, nobleVerifyPerSec: number
    /** Minor page faults of the process per record verified in the rounds, and what one costs here (faultCostUs, before the run). */
    faultsPerRecord: number
    faultCostUs: number
  }
  noble: { rawVerifiesPerSec: number, strictVerifiesPerSec: number, ratioToRaw: number, ratioToStrict: number }
  extrapolation: { oneMillionRecordsMin: number }
  /** `--cli-records N`: the whole history through the command line, bundle by bundle (absent without the option). */
  cli?: CliRunResult
  bundle: { bytesPer1kRecords: number, recordBytesPer1k: number, proofBytesPer1k: number, oneMillionRecordsMiB: number, recordsPerMaxBundle: number }
  timeline: { recordsPerSec: number }
}


/** One device's history: boot, model load, then inferences, signed with node:crypto like the agent. */
export function makeHistory (count: number): ChainBuilder {
  const b = new ChainBuilder({ deviceId: 'bench-device-0001', stepMs: 50 })
  b.append(sampleBody('boot'))
  b.append(sampleBody('model-load', 0))
  while (b.records.length < count) b.appendInference()
  return b
}

/** Batches of BATCH_RECORDS leaves with proofs as the gateway formats them (anchoring extra lines included). */
export function makeBundle (b: ChainBuilder, anchorsOf: (batch: { root: Uint8Array, size: number, first: number, last: number, checkpoint: string }, i: number) => Bundle['anchors'][number], chain: Bundle['chain'], firstBatch = 0): Bundle {
  const proofs: Bundle['proofs'] = []
  const anchors: Bundle['anchors'] = []
  for (let at = 0, i = firstBatch; at < b.records.length; at += BATCH_RECORDS, i++) {
    const batch: SignedRecord[] = b.records.slice(at, at + BATCH_RECORDS)
    const tree = new MerkleTree(batch.map(r => hashLeaf(r.envelope)))
    const checkpoint = { origin: `bench-gateway/batch/${i + 1}`, size: tree.size, rootHash: tree.root() }
    const anchor = anchorsOf({ root: tree.root(), size: tree.size, first: batch[0]?.record.timeMs as number, last: batch[batch.length - 1]?.record.timeMs as number, checkpoint: formatCheckpoint(checkpoint) }, i)
    anchors.push(anchor)
    batch.forEach((r, index) => {
      const extra: ProofExtra[] = [
        { key: 'device', value: b.deviceId }, { key: 'seq', value: String(r.record.seq) }, { key: 'gateway-batch', value: String(i + 1) },
        { key: 'chain-id', value: String(chain.chainId) }, { key: 'contract', value: chain.registry }, { key: 'batch-id', value: anchor.onChainBatchId },
        { key: 'tx-hash', value: anchor.txHash }, { key: 'block', value: String(anchor.blockNumber) }, { key: 'block-hash', value: anchor.blockHash }
      ]
      proofs.push({ seq: r.record.seq, proof: formatProof({ index, hashes: tree.proveInclusion(index), checkpoint, extra }) })
    })
  }
  return {
    format: BUNDLE_FORMAT,
    createdAtMs: Date.now(),
    device: { id: b.deviceId, keys: [{ publicKey: toHex(b.signer.publicKey), validFromMs: 0 }] },
    chain,
    models: [{ hash: toHex(fakeHash('model/0')), name: 'detector', version: '1.0.0', parentHash: null, manifestHash: toHex(fakeHash('manifest/0')), status: 'approved', metadataUri: '' }],
    records: b.records.map(r => encodeBundleRecord(r.envelope)),
    proofs,
    anchors
  }
}

function rate (count: number, ms: number): number {
  return count / (ms / 1000)
}

// Plain JavaScript, so that the baseline's workers start as fast as they can.
const RAW_VERIFY_WORKER = `
const { parentPort, workerData } = require('node:worker_threads')
const { createPublicKey, verify } = require('node:crypto')
const { spki, items, count } = workerData
const key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' })
let ok = 0
for (let i = 0; i < count; i++) { const m = items[i % items.length]; if (verify(null, m.msg, key, m.sig)) ok++ }
parentPort.postMessage(ok)
`

/** Raw node:crypto verifies of `total` signatures split over `workers` threads (the per-core floor). */
async function rawNodeVerifies (items: Array<{ sig: Uint8Array, msg: Uint8Array }>, publicKey: Uint8Array, total: number, workers: number): Promise<void> {
  const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), publicKey])
  await Promise.all(Array.from({ length: workers }, async (_, w) => {
    const count = Math.floor(total / workers) + (w < total % workers ? 1 : 0)
    const worker = new Worker(RAW_VERIFY_WORKER, { eval: true, workerData: { spki, items, count } })
    const ok = await new Promise<number>((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject) })
    await worker.terminate()
    if (ok !== count) throw new Error('raw verify rejected a signature')
  }))
}

/** dist/'s verifier when it is there and no older than any source it is built from, else undefined. */
function compiledVerifierUrl (): URL | undefined {
  if (process.argv.includes('--sources')) return undefined
  const entry = new URL('../dist/forensics/verify/index.js', import.meta.url)
  if (!existsSync(entry)) return undefined
  for (const dir of ['forensics/verify', 'protocol']) {
    const src = fileURLToPath(new URL(`../${dir}/`, import.meta.url))
    for (const f of readdirSync(src).filter(n => n.endsWith('.ts'))) {
      const built = fileURLToPath(new URL(`../dist/${dir}/${f.replace(/\.ts$/, '.js')}`, import.meta.url))
      if (!existsSync(built) || statSync(built).mtimeMs < statSync(`${src}${f}`).mtimeMs) return undefined
    }
  }
  return entry
}

/** What `--cli-records` measured: `provenance verify --offline` run on each bundle of a long history. */
export interface CliRunResult {
  records: number
  bundles: number
  /** Bytes of all the bundle files. */
  bundleBytes: number
  /** Wall and CPU (the processes') of every `provenance verify` in turn, process starts included. */
  wallMs: number
  cpuMs: number
  /** Raw node:crypto verifies on as many threads as cores, timed right before and right after. */
  rawVerifiesPerSec: Spread
  rawCpuMsPerVerify: Spread
  /** records/s ÷ raw verifies/s; raw CPU per verify ÷ CPU per record. */
  ratio: number
  cpuRatio: number
}

const BENCH_CHAIN_FACTS = { chainId: 31337, registry: '0x5FbDB2315678afecb367f032d93F642f64180aa3', readAtBlock: 1 }

/** The offline facts of a bench batch: anchored as the gateway would, at block i + 2. */
function benchAnchor (b: { root: Uint8Array, size: number, first: number, last: number, checkpoint: string }, i: number): Bundle['anchors'][number] {
  return {
    root: toHex(b.root), size: b.size, onChainBatchId: String(i + 1), txHash: '0x' + toHex(sha256(b.root)), blockNumber: i + 2,
    blockHash: '0x' + toHex(sha256(sha256(b.root))), firstRecordTimeMs: b.first, lastRecordTimeMs: b.last, metadataHash: toHex(sha256(new TextEncoder().encode(b.checkpoint)))
  }
}

/**
 * `--cli-records N` (issue 11: "1 M records in under 5 minutes"): one device's chain of N records
 * written as bundle files of at most BUNDLE_LIMITS.bundleBytes (the later ones starting mid-chain,
 * as `provenance export --from` writes them), then `provenance verify --offline --quiet` on each
 * file in a process of its own, one after the other, as an investigator runs them: reading and
 * decoding every file and each process's start are in the time. Against raw node:crypto verifies
 * of record messages on as many threads as cores, right before and right after (two samples, not
 * interleaved rounds: one pass over 10^6 records takes minutes).
 */
async function cliEndToEnd (total: number, bytesPerRecord: number, cores: number, compiled: boolean, log: (s: string) => void): Promise<CliRunResult> {
  // Whole batches per bundle, with room to spare under the limit.
  const perBundle = Math.max(BATCH_RECORDS, Math.floor(BUNDLE_LIMITS.bundleBytes * 0.9 / bytesPerRecord / BATCH_RECORDS) * BATCH_RECORDS)
  const dir = mkdtempSync(join(tmpdir(), 'prov-bench-cli-'))
  try {
    const files: string[] = []
    let bundleBytes = 0
    const b = makeHistory(Math.min(total, perBundle))
    let written = 0
    let batch = 0
    for (;;) {
      const bundle = makeBundle(b, benchAnchor, BENCH_CHAIN_FACTS, batch)
      const text = encodeBundle(bundle)
      const file = join(dir, `bundle-${files.length + 1}.json`)
      writeFileSync(file, text)
      files.push(file)
      bundleBytes += Buffer.byteLength(text)
      written += b.records.length
      batch += Math.ceil(b.records.length / BATCH_RECORDS)
      log(`cli: wrote ${written} of ${total} records (${files.length} bundle${files.length === 1 ? '' : 's'})`)
      if (written >= total) break
      // The next bundle goes on with the same chain: its first record links to the last one written.
      b.records.length = 0
      const next = Math.min(perBundle, total - written)
      while (b.records.length < next) b.appendInference()
    }
    const sample = makeHistory(2_000)
    const messages = sample.records.map(r => ({ sig: r.signature, msg: concat(RECORD_SIGNING_PREFIX, r.recordBytes) }))
    const rawCount = Math.min(total, 200_000)
    const raw = async (): Promise<Timing> => await time(async () => { await rawNodeVerifies(messages, sample.signer.publicKey, rawCount, cores) })
    const before = await raw()
    const bin = fileURLToPath(new URL('../forensics/bin.mjs', import.meta.url))
    const run = await time(async () => {
      for (const [i, file] of files.entries()) {
        log(`cli: provenance verify --offline bundle ${i + 1} of ${files.length}…`)
        const code = await new Promise<number | null>((resolve, reject) => {
          // The same verifier as the in-process part: dist/'s, or the sources' when dist/ is stale.
          const env = compiled ? process.env : { ...process.env, PROVENANCE_FROM_SOURCE: '1' }
          const child = spawn(process.execPath, [bin, 'verify', '--offline', '--quiet', file], { stdio: ['ignore', 'ignore', 'inherit'], env })
          child.once('error', reject)
          child.once('exit', resolve)
        })
        if (code !== 0) throw new Error(`provenance verify --offline ${file} exited ${String(code)}`)
      }
    })
    const after = await raw()
    const rawRates = [before, after].map(t => rawCount / (t.wallMs / 1000))
    const rawCpu = [before, after].map(t => t.cpuMs / rawCount)
    const rawVerifiesPerSec = spread(rawRates)
    const rawCpuMsPerVerify = spread(rawCpu)
    return {
      records: written,
      bundles: files.length,
      bundleBytes,
      wallMs: run.wallMs,
      cpuMs: run.cpuMs,
      rawVerifiesPerSec,
      rawCpuMsPerVerify,
      ratio: (written / (run.wallMs / 1000)) / rawVerifiesPerSec.median,
      cpuRatio: rawCpuMsPerVerify.median / (run.cpuMs / written)
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

export async function main (): Promise<ForensicsBenchResult> {
  // Before anything else runs in this process: process CPU counts every thread.
  const faultCost = faultCostUs()
  const compiled = compiledVerifierUrl()
  const verifyBundle = compiled === undefined ? verifyFromSources : (await import(compiled.href) as { verifyBundle: typeof verifyFromSources }).verifyBundle
  const count = intArg('records', 100_000)
  const onlineCount = intArg('online', 2_000)
  const log = (s: string): void => { process.stderr.write(s + '\n') }

  // Baseline: noble's own verification of the same messages, in this run.
  const sample = makeHistory(Math.min(count, 2_000))
  const messages = sample.records.map(r => ({ sig: r.signature, msg: concat(RECORD_SIGNING_PREFIX, r.recordBytes) }))
  const key = sample.signer.publicKey
  const n = Math.min(messages.length, 1_000)
  let t0 = performance.now()
  for (let i = 0; i < n; i++) { const m = messages[i]; if (m === undefined || !noble.verify(m.sig, m.msg, key, { zip215: false })) throw new Error('noble rejected a record') }
  const rawVerifiesPerSec = rate(n, performance.now() - t0)
  t0 = performance.now()
  for (let i = 0; i < n; i++) { const m = messages[i]; if (m === undefined || !verifySignature(m.sig, m.msg, key, 'noble')) throw new Error('rejected') }
  const strictVerifiesPerSec = rate(n, performance.now() - t0)
  log(`noble: ${rawVerifiesPerSec.toFixed(0)} raw verifies/s, ${strictVerifiesPerSec.toFixed(0)} with the strict point checks of docs/PROTOCOL.md §4`)

  // Offline verification of `count` records.
  log(`building ${count} signed records and their proofs...`)
  // The signed history is not kept beyond the bundle made of it: `provenance verify` holds the
  // bundle only, and a heap of 10^5 decoded records beside it would make every GC of the verifier
  // mark them (~5–10 % of the CPU measured per record). Through its JSON text and back, as
  // `provenance verify` gets it from a file: made here, each proof was a string of concatenated
  // parts that the first verification had to flatten (a copy per proof, ~1 KiB, that the CLI never makes).
  const bundle = decodeBundle(encodeBundle(makeBundle(makeHistory(count), benchAnchor, BENCH_CHAIN_FACTS)))
  const progress = createProgress(process.stderr, { label: 'verify --offline' })
  t0 = performance.now()
  const verdict = await verifyBundle(bundle, { offline: true, onProgress: p => progress.update(p.phase, p.done, p.total) })
  const offlineMs = performance.now() - t0
  progress.finish()
  if (verdict.verdict !== 'valid') throw new Error(`bench bundle did not verify: ${JSON.stringify(verdict.failures.slice(0, 3))}`)
  const offlineRecordsPerSec = rate(count, offlineMs)

  // The floor on the same cores: raw node:crypto verifies of as many signatures, one thread per core.
  const cores = availableParallelism()
  log(`interleaved rounds: verify --offline vs raw node:crypto verifies on ${cores} threads...`)
  let oursFaults = 0
  const rounds = await interleave(intArg('rounds', 5), {
    ours: async () => {
      const f0 = minorFaults()
      const v = await verifyBundle(bundle, { offline: true })
      oursFaults += minorFaults() - f0
      if (v.verdict !== 'valid') throw new Error('bench bundle did not verify')
    },
    raw: async () => { await rawNodeVerifies(messages, key, count, cores) }
  })
  const ours = (rounds.ours ?? []).map(x => rate(count, x.wallMs))
  const raw = (rounds.raw ?? []).map(x => rate(count, x.wallMs))
  // CPU time of all threads (the pool's and the baseline's workers included): what a loaded machine does not distort.
  const oursCpu = (rounds.ours ?? []).map(x => x.cpuMs / count)
  const rawCpu = (rounds.raw ?? []).map(x => x.cpuMs / count)
  const nobleCount = Math.min(count, 5_000)
  const nobleBundle = { ...bundle, records: bundle.records.slice(0, nobleCount), proofs: bundle.proofs.slice(0, nobleCount) }
  t0 = performance.now()
  await verifyBundle(nobleBundle, { offline: true, verifier: 'noble', allowUnanchored: true })
  const nobleVerifyPerSec = rate(nobleCount, performance.now() - t0)
  const parallel = {
    verifyPerSec: spread(ours),
    rawNodeVerifiesPerSec: spread(raw),
    ratio: spread(ours.map((x, i) => x / (raw[i] as number))),
    cpuRatio: spread(rawCpu.map((x, i) => x / (oursCpu[i] as number))),
    verifyCpuMsPerRecord: spread(oursCpu),
    rawCpuMsPerVerify: spread(rawCpu),
    nobleVerifyPerSec,
    faultsPerRecord: oursFaults / ((rounds.ours ?? []).length * count),
    faultCostUs: faultCost
  }

  // Sizes.
  const text = encodeBundle(bundle)
  const bytes = Buffer.byteLength(text)
  const recordBytes = bundle.records.reduce((s, r) => s + r.length + 6, 0)
  const proofBytes = bundle.proofs.reduce((s, p) => s + JSON.stringify(p).length + 4, 0)

  t0 = performance.now()
  buildTimeline(bundle)
  const timelinePerSec = rate(count, performance.now() - t0)

  // Online verification: the same work plus the chain's facts over JSON-RPC (a local anvil).
  const chain = await startDevChain()
  let onlineRecordsPerSec = 0
  try {
    const small = makeHistory(onlineCount)
    await chain.registryAs('deviceRegistrar').registerDevice({ deviceId: deviceIdOf(small.deviceId), publicKey: small.signer.publicKey, validFromMs: 0 })
    await chain.registryAs('modelPublisher').registerModel({ modelHash: fakeHash('model/0'), name: 'detector', version: '1.0.0', manifestHash: fakeHash('manifest/0') })
    await chain.registryAs('modelPublisher').approveModel(fakeHash('model/0'))
    const anchored: Bundle['anchors'] = []
    const onlineChain = { chainId: chain.anvil.chainId, registry: chain.deployment.address, readAtBlock: 0 }
    const pending = makeBundle(small, (b, i) => {
      const a = { root: toHex(b.root), size: b.size, onChainBatchId: String(i + 1), txHash: '0x' + '00'.repeat(32), blockNumber: 0, blockHash: '0x' + '00'.repeat(32), firstRecordTimeMs: b.first, lastRecordTimeMs: b.last, metadataHash: toHex(sha256(new TextEncoder().encode(b.checkpoint))) }
      anchored.push(a)
      return a
    }, onlineChain)
    const registry = chain.registryAs('anchorer')
    for (const a of anchored) {
      const r = await registry.anchor({ root: '0x' + a.root, size: a.size, firstRecordTimeMs: a.firstRecordTimeMs, lastRecordTimeMs: a.lastRecordTimeMs, metadataHash: '0x' + a.metadataHash })
      a.onChainBatchId = r.batchId.toString()
      a.txHash = r.txHash
      a.blockNumber = r.blockNumber
      a.blockHash = (await chain.provider.getBlock(r.blockNumber))?.hash as string
    }
    const online = { ...pending, anchors: anchored, chain: { ...onlineChain, readAtBlock: await chain.provider.getBlockNumber() }, proofs: pending.proofs.map(p => ({ seq: p.seq, proof: p.proof })) }
    // The proofs' extra lines were written before the anchoring: drop them, the facts are the chain's.
    online.proofs = makeBundle(small, (_b, i) => anchored[i] as Bundle['anchors'][number], online.chain).proofs
    t0 = performance.now()
    const v = await verifyBundle(online, { rpcUrl: chain.anvil.rpcUrl })
    const onlineMs = performance.now() - t0
    if (v.verdict !== 'valid') throw new Error(`online bench bundle did not verify: ${JSON.stringify(v.failures.slice(0, 3))}`)
    onlineRecordsPerSec = rate(onlineCount, onlineMs)
  } finally {
    await chain.stop()
  }

  const cliRecords = process.argv.includes('--cli-records') ? intArg('cli-records', 0) : 0
  const cli = cliRecords > 0 ? await cliEndToEnd(cliRecords, bytes / count, cores, compiled !== undefined, log) : undefined

  const result: ForensicsBenchResult = {
    records: count,
    verifier: compiled === undefined ? 'sources' : 'compiled',
    cores,
    parallel,
    verify: { offlineRecordsPerSec, perRecordMs: offlineMs / count, onlineRecords: onlineCount, onlineRecordsPerSec },
    noble: { rawVerifiesPerSec, strictVerifiesPerSec, ratioToRaw: offlineRecordsPerSec / rawVerifiesPerSec, ratioToStrict: offlineRecordsPerSec / strictVerifiesPerSec },
    extrapolation: { oneMillionRecordsMin: ONE_MILLION / parallel.verifyPerSec.median / 60 },
    bundle: {
      bytesPer1kRecords: (bytes / count) * 1000,
      recordBytesPer1k: (recordBytes / count) * 1000,
      proofBytesPer1k: (proofBytes / count) * 1000,
      oneMillionRecordsMiB: (bytes / count) * ONE_MILLION / 2 ** 20,
      recordsPerMaxBundle: Math.floor(BUNDLE_LIMITS.bundleBytes / (bytes / count))
    },
    timeline: { recordsPerSec: timelinePerSec },
    ...(cli === undefined ? {} : { cli })
  }

  const f = (x: number, d = 0): string => x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d })
  console.log(`forensics bench, ${count} records (${Math.ceil(count / BATCH_RECORDS)} batches of ≤ ${BATCH_RECORDS}), one run, verifier ${compiled === undefined ? 'from sources (tsx; dist/ missing, stale or --sources)' : 'compiled (dist/)'}
| measure | value |
| --- | ---: |
| verify --offline, node:crypto on ${cores} threads, interleaved rounds | ${fmtSpread(parallel.verifyPerSec, 0)} records/s |
| raw node:crypto verifies, same messages, ${cores} threads | ${fmtSpread(parallel.rawNodeVerifiesPerSec, 0)} /s |
| verify / raw node:crypto, same cores, wall (target ≥ 0.7) | ${fmtSpread(parallel.ratio)} |
| verify / raw node:crypto, CPU time (raw CPU per verify ÷ verify CPU per record) | ${fmtSpread(parallel.cpuRatio)} (${fmtSpread(parallel.verifyCpuMsPerRecord, 3)} vs ${fmtSpread(parallel.rawCpuMsPerVerify, 3)} ms) |
| page faults of verify --offline (pages first touched, all threads) | ${f(parallel.faultsPerRecord, 2)} per record, at ${f(parallel.faultCostUs, 1)} µs each here: ~${f(parallel.faultsPerRecord * parallel.faultCostUs, 1)} µs of the CPU per record |
| verify --offline, first run (pool start-up included) | ${f(offlineRecordsPerSec)} records/s (${f(result.verify.perRecordMs, 3)} ms/record) |
| verify --offline --verifier noble, ${cores} threads, ${nobleCount} records | ${f(nobleVerifyPerSec)} records/s |
| verify online (anvil, ${onlineCount} records) | ${f(onlineRecordsPerSec)} records/s |
| noble raw verify | ${f(rawVerifiesPerSec)} /s |
| noble verify + strict point checks (§4) | ${f(strictVerifiesPerSec)} /s |
| verify / noble raw | ${f(result.noble.ratioToRaw, 2)} |
| verify / noble strict | ${f(result.noble.ratioToStrict, 2)} |
| 1 M records, extrapolated | ${f(result.extrapolation.oneMillionRecordsMin, 1)} min on ${cores} cores (target < 5) |
| bundle size | ${f(result.bundle.bytesPer1kRecords / 1024, 1)} KiB per 1 000 records (records ${f(result.bundle.recordBytesPer1k / 1024, 1)} KiB, proofs ${f(result.bundle.proofBytesPer1k / 1024, 1)} KiB) |
| 1 M records in bundles | ${f(result.bundle.oneMillionRecordsMiB)} MiB: ≥ ${Math.ceil(ONE_MILLION / result.bundle.recordsPerMaxBundle)} bundles of ≤ ${BUNDLE_LIMITS.bundleBytes / 2 ** 20} MiB (${f(result.bundle.recordsPerMaxBundle)} records each) |
| timeline | ${f(timelinePerSec)} records/s |`)
  if (cli !== undefined) {
    const min = cli.wallMs / 60_000
    console.log(`| ${f(cli.records)} records through the command line (${compiled === undefined ? 'from sources' : 'compiled'}): provenance verify --offline on each of ${cli.bundles} bundles (${f(cli.bundleBytes / 2 ** 20)} MiB), one process each, one after the other | ${f(min, 1)} min wall, ${f(cli.cpuMs / 60_000, 1)} min CPU (target for 1 M: < 5 min) |
| … ÷ raw node:crypto verifies on ${cores} threads, right before and after | wall ${f(cli.ratio, 2)} (raw ${fmtSpread(cli.rawVerifiesPerSec, 0)} /s), CPU ${f(cli.cpuRatio, 2)} (${f(cli.cpuMs / cli.records, 3)} vs ${fmtSpread(cli.rawCpuMsPerVerify, 3)} ms) |`)
  }
  return result
}

const USAGE = `usage: node --import tsx bench/forensics.ts [--records N] [--online N] [--rounds N] [--cli-records N] [--sources]

verify --offline (node:crypto on every core) against raw node:crypto verifies of the same messages
on as many worker threads, in interleaved rounds; noble's figures beside it; verify online against
anvil; the 1 M-record extrapolation and the bundle size per 1 000 records. Measures the compiled
verifier in dist/ (npm run build first) unless dist/ is missing or stale.

  --records N   records of the offline history (default 100000)
  --online N    records verified online against anvil (default 2000)
  --rounds N    interleaved rounds (default 5)
  --cli-records N
                also write a history of N records (e.g. 1000000) as bundle files of at most
                256 MiB in a temp dir and time provenance verify --offline on each, one process
                per file, against raw verifies right before and after (not run by default)
  --sources     measure the TypeScript under tsx, not dist/`

if (isEntryPoint(import.meta.url)) {
  exitOnHelp(USAGE)
  main().catch(e => { console.error(e); process.exit(1) })
}
