/**
 * End-to-end verification of an incident bundle: every signature (node:crypto on every core by
 * default; @noble/ed25519, independent of OpenSSL, on request), the hash chain with its honest gaps, the key valid at each
 * record's time, the registry's facts about each model, and each record's inclusion proof against
 * an anchored root whose SIZE comes from the chain facts (the bundle's offline, JSON-RPC online),
 * never from the proof file: an inclusion proof does not commit to the tree size.
 * The result is a verdict, not an exception: each failure names its record by seq and a reason.
 */
import { performance } from 'node:perf_hooks'
import {
  ChainVerifier, ErasureError, ProtocolError, assertBundle, openCheckpoint, parseCheckpoint, parseTipProof, pruningExtensionLine, sha256, verifyPruningStatement, verifyShreddingStatement, noteKeyId, type NoteVerifierKey, decodeBundleRecord, decodeEnvelope, parseProof, toHex, fromHex,
  verifyRecordSignature, type VerifierBackend, type Bundle, type BundleAnchor, type BundleKey, type BundleModel, type ChainPoint, type ChainResult,
  type ProvenanceRecord, type SignedRecord, type TlogProof
} from '../../protocol/index.js'
import { ForensicsError } from '../errors.js'
import { judgeCompleteness, type Completeness } from './completeness.js'
import { findKeyDifference, createKeyLookup } from './key-history.js'
import type { FailureReason, Finding, FindingReason, WarningReason } from './reasons.js'
import { ProofJudge, type ProofContext, type ProofJudgement } from './proof-check.js'
import { DEFAULT_SIGNATURE_WORKERS, SignatureBatchBuilder, SignaturePool, type BatchAnswer } from './signature-pool.js'

export const DEFAULT_MAX_FINDINGS = 1000
/** Records between two progress reports. */
const PROGRESS_EVERY = 500
const ZERO_HEX = '0'.repeat(64)
/** Bundles from this many records up verify their signatures on worker threads by default. */
export const DEFAULT_PARALLEL_MIN_RECORDS = 4096
/** Records per signature batch: large enough to amortise a message, small enough to keep all workers fed. */
const CHUNK_RECORDS = 1024

export interface VerifyProgress {
  /** `scan`: reading the bundle for what to ask the chain; `facts`: reading the chain; `records`: verifying. */
  phase: 'scan' | 'facts' | 'records'
  done: number
  total: number
}

export interface VerifyOptions {
  /** Judge against the bundle's own facts and make no network call at all. Default: true unless `rpcUrl` is given. */
  offline?: boolean
  /** JSON-RPC endpoint of the chain the bundle names (online verification). */
  rpcUrl?: string
  /** Judge only records with device time >= fromMs (Unix ms). The chain is still checked from the bundle's first record. */
  fromMs?: number
  /** Judge only records with device time <= toMs (Unix ms). */
  toMs?: number
  /** Records not (yet) in an anchored batch are warnings instead of failures. Default false. */
  allowUnanchored?: boolean
  /** Most failures (and, separately, warnings) listed; counts stay exact. Default 1000. */
  maxFindings?: number
  onProgress?: (progress: VerifyProgress) => void
  /**
   * Ed25519 implementation: 'node' (node:crypto, OpenSSL; default) or 'noble' (@noble/ed25519, an
   * independent implementation). Both accept exactly the same signatures (protocol/ed25519.ts).
   */
  verifier?: VerifierBackend
  /**
   * Worker threads that verify signatures; 0 verifies on the calling thread. Default: one per
   * core for bundles of DEFAULT_PARALLEL_MIN_RECORDS records or more, else 0.
   */
  workers?: number
}

export interface VerifyCounts {
  /** Records in the bundle. */
  records: number
  /** Records in the window: what the verdict judges. */
  judged: number
  /** Records whose bytes do not decode. */
  malformed: number
  /** Signatures checked (with Verdict.verifier), and how many verified. */
  signaturesChecked: number
  signaturesValid: number
  /** Records the chain verifier accepted (signature, key, seq, boot and prev link). */
  chainLinked: number
  /** Inclusion proofs checked against an anchored root and size, and how many verified. */
  proofsChecked: number
  proofsValid: number
  /** Distinct anchored batches the judged records are in. */
  anchors: number
  /** Distinct models the judged records name. */
  models: number
  /** Judged records with at least one failure. */
  recordsFailed: number
  failures: number
  warnings: number
  /** Findings on records outside the window, not judged. */
  notJudged: number
}

export interface Verdict {
  verdict: 'valid' | 'invalid'
  mode: 'offline' | 'online'
  device: string
  window: { fromMs: number | null, toMs: number | null }
  /** Seqs of the bundle's first and last decodable records. */
  firstSeq: number | null
  lastSeq: number | null
  /** True when the first record is seq 0; otherwise the chain is checked from the first record's prev. */
  fromGenesis: boolean
  counts: VerifyCounts
  /** The Ed25519 implementation that checked the signatures. */
  verifier: VerifierBackend
  /** Number of findings per reason (failures and warnings, judged only). */
  reasons: Partial<Record<FindingReason, number>>
  failures: Finding[]
  warnings: Finding[]
  /** True when `failures` or `warnings` stopped at maxFindings. */
  truncated: boolean
  /** Honest gaps: ranges the device declared dropped, with signed gap records. */
  gaps: ChainResult['gaps']
  /**
   * Ranges a gateway pruned by its retention policy (valid signed pruning statements, PROTOCOL.md
   * §12.1): removal by policy, not loss. `links` when the range ends right before the bundle's
   * first record and its lastHash is that record's prev.
   */
  pruned: PrunedRange[]
  /** True when the bundle's records, with the pruned ranges before them, go back to seq 0. */
  prunedFromGenesis: boolean
  /** Records whose commitments can no longer be opened: their subject key was destroyed (PROTOCOL.md §12.2). */
  shredded: ShreddedRange[]
  chain: { chainId: number, registry: string, readAtBlock: number, checkedAtBlock: number | null }
  /** Whether the bundle reaches the device's anchored tip (PROTOCOL.md §7.10); judged online only. */
  completeness: Completeness
  elapsedMs: number
}

export interface PrunedRange {
  firstSeq: number
  lastSeq: number
  /** sha256 of the statement envelope, hex: "PRUNED by statement <hash>". */
  statement: string
  gatewayId: string
  reason: string
  retentionDays: number
  prunedAtMs: number
  /** The pruned records' batches (gateway ids). */
  batches: number[]
  links: boolean
  /** An anchored checkpoint of the bundle commits to the statement. */
  committed: boolean
}

export interface ShreddedRange {
  firstSeq: number
  lastSeq: number
  statement: string
  /** The subject's pseudonym, hex. */
  subjectRef: string
  reason: string
  shreddedAtMs: number
  /** Records of the bundle in the range. */
  records: number
}

/** The facts a verdict is judged against, and the bundle-level disagreements found while reading them. */
interface Facts {
  keys: readonly BundleKey[]
  revokedFromMs: number | undefined
  models: Map<string, BundleModel>
  anchors: Map<string, BundleAnchor>
  checkedAtBlock: number | null
  /** Device time from which the bundle's key history disagrees with the registry's. */
  keyMismatch: { fromMs: number, message: string } | undefined
  modelMismatch: Map<string, string>
  anchorMismatch: Map<string, string>
  /** Findings about the bundle as a whole (no record). */
  failures: Array<{ reason: FailureReason, message: string }>
  warnings: Array<{ reason: WarningReason, message: string }>
}

/**
 * Verifies a bundle, offline (against its own facts, no network) or online (against the chain).
 * @throws BundleError when `bundle` is not a well-formed bundle.
 * @throws ForensicsError `RPC_FAILED`, `CHAIN_MISMATCH`, `REGISTRY_NOT_FOUND` (online only).
 * @throws TypeError / RangeError for contradictory options (offline with an rpcUrl, online without).
 */
export async function verifyBundle (bundle: Bundle, options: VerifyOptions = {}): Promise<Verdict> {
  const started = performance.now()
  const offline = options.offline ?? options.rpcUrl === undefined
  if (offline && options.rpcUrl !== undefined) throw new TypeError('offline verification takes no rpcUrl')
  if (!offline && (typeof options.rpcUrl !== 'string' || options.rpcUrl === '')) throw new TypeError('online verification needs an rpcUrl')
  if (options.verifier !== undefined && options.verifier !== 'node' && options.verifier !== 'noble') throw new TypeError("verifier must be 'node' or 'noble'")
  for (const k of ['fromMs', 'toMs', 'maxFindings', 'workers'] as const) {
    const v = options[k]
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) throw new RangeError(`${k} must be a non-negative safe integer`)
  }
  if (options.fromMs !== undefined && options.toMs !== undefined && options.toMs < options.fromMs) throw new RangeError('toMs is before fromMs')
  assertBundle(bundle)

  const progress = options.onProgress ?? (() => {})
  const facts = offline ? offlineFacts(bundle) : await onlineFacts(bundle, options.rpcUrl as string, progress)
  const run = new Run(bundle, facts, options)
  await run.verifyRecords(progress)
  const mode = offline ? 'offline' : 'online'
  run.noteCompleteness(judgeCompleteness({
    bundle, mode, anchors: facts.anchors, windowed: options.fromMs !== undefined || options.toMs !== undefined, verifier: options.verifier ?? 'node'
  }))
  return run.verdict(mode, performance.now() - started)
}

// ---------------------------------------------------------------------------------------------
// Facts

function offlineFacts (bundle: Bundle): Facts {
  return {
    keys: bundle.device.keys,
    revokedFromMs: bundle.device.revokedFromMs,
    models: new Map(bundle.models.map(m => [m.hash, m])),
    anchors: new Map(bundle.anchors.map(a => [a.root, a])),
    checkedAtBlock: null,
    keyMismatch: undefined,
    modelMismatch: new Map(),
    anchorMismatch: new Map(),
    failures: [],
    warnings: []
  }
}

/** What the records and proofs name, so that the chain is asked about exactly that. */
function scanBundle (bundle: Bundle, progress: (p: VerifyProgress) => void): { models: Set<string>, roots: Set<string> } {
  const models = new Set(bundle.models.map(m => m.hash))
  const roots = new Set(bundle.anchors.map(a => a.root))
  const total = bundle.records.length
  bundle.records.forEach((b64, i) => {
    const signed = tryDecode(b64)
    const body = signed?.record.body
    if (body?.kind === 'model-load' || body?.kind === 'inference') models.add(toHex(body.modelHash))
    if ((i + 1) % PROGRESS_EVERY === 0) progress({ phase: 'scan', done: i + 1, total })
  })
  for (const p of bundle.proofs) {
    const proof = tryParseProof(p.proof)
    if (proof !== undefined) roots.add(toHex(proof.checkpoint.rootHash))
  }
  // The checkpoints that commit pruning statements, and the batches the pruned records were in:
  // their anchors are asked for too.
  const gatewayKeys = (bundle.gateways ?? []).map(g => fromHex(g.publicKey))
  for (const p of bundle.prunings ?? []) {
    try {
      for (const b of verifyPruningStatement(Buffer.from(p.statement, 'base64'), gatewayKeys).statement.batches) roots.add(toHex(b.root))
    } catch { /* judged by checkPrunings */ }
    if (p.checkpoint === undefined) continue
    try {
      roots.add(toHex(parseCheckpoint(p.checkpoint.slice(0, p.checkpoint.indexOf('\n\n') + 2)).rootHash))
    } catch { /* judged by checkPrunings */ }
  }
  // The tip proof's batch too (§7.10): its anchor is what completeness is judged at.
  if (bundle.tip !== undefined) {
    try {
      roots.add(toHex(parseCheckpoint(parseTipProof(bundle.tip.proof).checkpoint).rootHash))
    } catch {
      // judged (and named) by judgeCompleteness
    }
  }
  progress({ phase: 'scan', done: total, total })
  return { models, roots }
}

async function onlineFacts (bundle: Bundle, rpcUrl: string, progress: (p: VerifyProgress) => void): Promise<Facts> {
  const named = scanBundle(bundle, progress)
  // Loaded here only: offline verification never loads ethers nor constructs a provider.
  const chain = await import('../chain/index.js')
  progress({ phase: 'facts', done: 0, total: 4 })
  const reader = await chain.openChainReader(rpcUrl, bundle.chain.registry, { expectChainId: bundle.chain.chainId })
  try {
    const facts = offlineFacts(bundle)
    facts.anchors = new Map()
    const latest = await chain.readLatestBlock(reader)
    facts.checkedAtBlock = latest

    // The bundle's facts must be the chain's facts at the bundle's block.
    const at = bundle.chain.readAtBlock
    let then: number | 'latest' = at
    if (at > latest) {
      facts.failures.push({ reason: 'chain-mismatch', message: `the bundle was read at block ${at}, beyond this chain's latest block ${latest}` })
      then = 'latest'
    } else if (bundle.chain.readAtBlockHash !== undefined) {
      const hash = await chain.readBlockHash(reader, at)
      if (hash?.toLowerCase() !== bundle.chain.readAtBlockHash.toLowerCase()) {
        facts.failures.push({ reason: 'chain-mismatch', message: `block ${at} of this chain has hash ${String(hash)}, the bundle names ${bundle.chain.readAtBlockHash}` })
      }
    }
    progress({ phase: 'facts', done: 1, total: 4 })
    const bundleModelHashes = bundle.models.map(m => m.hash)
    let deviceThen, modelsThen
    try {
      deviceThen = await chain.readDeviceFacts(reader, bundle.device.id, then)
      modelsThen = await chain.readModelFacts(reader, bundleModelHashes, then)
    } catch (e) {
      if (!(e instanceof ForensicsError) || then === 'latest') throw e
      // A node that prunes old state cannot answer at the bundle's block: compare with today's facts.
      facts.warnings.push({ reason: 'facts-not-historic', message: `the node cannot read state at block ${at} (${e.message}); facts compared at block ${latest}` })
      deviceThen = await chain.readDeviceFacts(reader, bundle.device.id, latest)
      modelsThen = await chain.readModelFacts(reader, bundleModelHashes, latest)
    }
    progress({ phase: 'facts', done: 2, total: 4 })

    // Judged against the facts of today: a revocation after the export counts.
    const deviceNow = await chain.readDeviceFacts(reader, bundle.device.id, latest)
    if (deviceNow === undefined) facts.failures.push({ reason: 'device-unknown', message: `the registry does not know device "${bundle.device.id}"` })
    facts.keys = deviceNow?.keys ?? []
    facts.revokedFromMs = deviceNow?.revokedFromMs
    const keyDiff = findKeyDifference(bundle.device.keys, deviceThen?.keys ?? [])
    if (keyDiff !== undefined) {
      facts.keyMismatch = {
        fromMs: keyDiff.fromMs,
        message: deviceThen === undefined
          ? `the bundle lists keys of a device the registry did not know at block ${String(then)}`
          : `key ${keyDiff.index} of the bundle differs from the registry's at block ${String(then)} (from device time ${keyDiff.fromMs})`
      }
    }
    const revokedThen = deviceThen?.revokedFromMs
    if (revokedThen !== bundle.device.revokedFromMs) {
      const fromMs = Math.min(...[revokedThen, bundle.device.revokedFromMs].filter((v): v is number => v !== undefined))
      if (facts.keyMismatch === undefined || fromMs < facts.keyMismatch.fromMs) {
        facts.keyMismatch = { fromMs, message: `the bundle's revocation (${String(bundle.device.revokedFromMs ?? 'none')}) differs from the registry's (${String(revokedThen ?? 'none')})` }
      }
    }

    const byHash = new Map(modelsThen.map(m => [m.hash, m]))
    for (const m of bundle.models) {
      const c = byHash.get(m.hash)
      const diff = c === undefined ? ['entry'] : (Object.keys(m) as Array<keyof BundleModel>).filter(k => m[k] !== c[k])
      if (diff.length > 0) facts.modelMismatch.set(m.hash, `the bundle's ${diff.join(', ')} of model ${m.hash.slice(0, 16)}… differ from the registry's at block ${String(then)}`)
    }
    facts.models = new Map((await chain.readModelFacts(reader, named.models, latest)).map(m => [m.hash, m]))
    progress({ phase: 'facts', done: 3, total: 4 })

    // Anchors never change once written: the latest block answers for the bundle's block too.
    facts.anchors = await chain.readAnchorFacts(reader, named.roots, latest)
    const listed = new Set<string>()
    for (const a of bundle.anchors) {
      listed.add(a.root)
      const c = facts.anchors.get(a.root)
      if (c === undefined) {
        facts.anchorMismatch.set(a.root, `the bundle lists an anchor of root ${a.root.slice(0, 16)}… that the chain does not have`)
        continue
      }
      const diff = (Object.keys(a) as Array<keyof BundleAnchor>).filter(k => !sameValue(a[k], c[k]))
      if (diff.length > 0) facts.anchorMismatch.set(a.root, `the bundle's ${diff.join(', ')} of anchor ${a.root.slice(0, 16)}… differ from the chain's`)
    }
    for (const [root, c] of facts.anchors) {
      // Anchored after the bundle's block: the bundle could not know it.
      if (!listed.has(root) && c.blockNumber <= at) facts.anchorMismatch.set(root, `the bundle leaves out the anchor of root ${root.slice(0, 16)}…, which the chain had at block ${at}`)
    }
    // The gateways' log keys: each must be registered on chain under its gateway id (§7.8).
    for (const g of bundle.gateways ?? []) {
      const registered = await chain.readDeviceFacts(reader, g.id, latest)
      // Never registered: nothing on chain to compare with, as for an unsigned checkpoint (the
      // anchors still decide). Registered with another key: someone swapped the key in the bundle.
      if (registered === undefined) facts.warnings.push({ reason: 'gateway-key-unregistered', message: `the registry knows no key of gateway "${g.id}": its checkpoint signatures are checked against the bundle's key only` })
      else if (!registered.keys.some(k => k.publicKey.toLowerCase() === g.publicKey)) {
        facts.failures.push({ reason: 'gateway-key-mismatch', message: `the bundle's log key ${g.publicKey.slice(0, 16)}… of gateway "${g.id}" is not registered on chain under it` })
      }
    }
    progress({ phase: 'facts', done: 4, total: 4 })
    return facts
  } finally {
    reader.close()
  }
}

function equalHex (a: Uint8Array, b: Uint8Array): boolean {
  return toHex(a) === toHex(b)
}

function sameValue (a: unknown, b: unknown): boolean {
  // 0x-hex from the chain may be checksummed or not: compare hex text case-insensitively.
  return typeof a === 'string' && typeof b === 'string' ? a.toLowerCase() === b.toLowerCase() : a === b
}

// ---------------------------------------------------------------------------------------------
// Records

function tryDecode (b64: string): SignedRecord | undefined {
  try {
    return decodeEnvelope(decodeBundleRecord(b64))
  } catch {
    return undefined
  }
}

function tryParseProof (text: string): TlogProof | undefined {
  try {
    return parseProof(text)
  } catch {
    return undefined
  }
}

/** The point just before `r`, taken from its own header: where checking resumes after a break. */
function pointBefore (r: ProvenanceRecord): ChainPoint | undefined {
  if (r.seq === 0) return undefined
  return { seq: r.seq - 1, boot: r.body.kind === 'boot' ? r.boot - 1 : r.boot, hash: r.prev }
}

const NO_DISAGREEMENTS: readonly string[] = Object.freeze([])
const SIGNATURE_NOT_CHECKED: ReadonlySet<string> = new Set(['device-mismatch', 'unknown-key'])
const SIGNATURE_FAILED: ReadonlySet<string> = new Set(['device-mismatch', 'unknown-key', 'bad-signature'])

/** One verification: the record loop and everything it counts. */
class Run {
  private readonly bundle: Bundle
  private readonly facts: Facts
  private readonly fromMs: number | undefined
  private readonly toMs: number | undefined
  private readonly allowUnanchored: boolean
  private readonly maxFindings: number
  private readonly keyAt
  private readonly proofs: Map<number, string>
  /** The gateways' note verifier keys (§7.8), from the bundle. */
  private readonly noteKeys: NoteVerifierKey[]
  /** Outcome per distinct checkpoint note: a batch's checkpoint is checked once, not once per record. */
  private readonly checkpointsReported = new Set<string>()
  private readonly checkpointOutcomes = new Map<string, { reason: 'checkpoint-signature-invalid' | 'checkpoint-unsigned', message: string } | null>()
  private readonly counts: VerifyCounts
  private readonly reasons: Partial<Record<FindingReason, number>> = {}
  private readonly failures: Finding[] = []
  private readonly warnings: Finding[] = []
  private truncated = false
  private readonly gaps: ChainResult['gaps'] = []
  private readonly pruned: PrunedRange[] = []
  private prunedFromGenesis = false
  private readonly shredded: ShreddedRange[] = []
  private firstPrev: Uint8Array | undefined
  private readonly anchorsUsed = new Set<string>()
  private readonly modelsUsed = new Set<string>()
  /** Per record: seq and device time (NaN when it does not decode), for judging holes. */
  private readonly seqs: Float64Array
  private readonly times: Float64Array
  private readonly failed: Uint8Array
  private readonly warnedModels = new Set<string>()
  private firstSeq: number | null = null
  private lastSeq: number | null = null
  private fromGenesis = false
  private readonly verifier: VerifierBackend
  private readonly workers: number
  /** The chunk being walked and the index in it of the record being pushed: for checkSignature and checkProof. */
  private current: { chunk: PreparedChunk, answer: BatchAnswer | undefined, j: number } | undefined
  /** The facts proofs are judged against, sent with each batch; and the judge of proofs no worker judged. */
  private readonly proofContext: ProofContext
  private readonly proofJudge: ProofJudge

  constructor (bundle: Bundle, facts: Facts, options: VerifyOptions) {
    this.verifier = options.verifier ?? 'node'
    this.workers = options.workers ?? (bundle.records.length >= DEFAULT_PARALLEL_MIN_RECORDS ? DEFAULT_SIGNATURE_WORKERS : 0)
    this.bundle = bundle
    this.facts = facts
    this.fromMs = options.fromMs
    this.toMs = options.toMs
    this.allowUnanchored = options.allowUnanchored ?? false
    this.maxFindings = options.maxFindings ?? DEFAULT_MAX_FINDINGS
    this.keyAt = createKeyLookup(bundle.device.id, facts.keys)
    this.proofs = new Map(bundle.proofs.map(p => [p.seq, p.proof]))
    this.proofContext = { anchors: [...facts.anchors], chainId: bundle.chain.chainId, registry: bundle.chain.registry }
    this.proofJudge = new ProofJudge(this.proofContext)
    this.noteKeys = (bundle.gateways ?? []).map(g => {
      const publicKey = fromHex(g.publicKey)
      return { name: g.keyName, keyId: noteKeyId(g.keyName, publicKey), publicKey }
    })
    const n = bundle.records.length
    this.seqs = new Float64Array(n).fill(NaN)
    this.times = new Float64Array(n).fill(NaN)
    this.failed = new Uint8Array(n)
    this.counts = {
      records: n, judged: 0, malformed: 0, signaturesChecked: 0, signaturesValid: 0, chainLinked: 0, proofsChecked: 0, proofsValid: 0,
      anchors: 0, models: 0, recordsFailed: 0, failures: 0, warnings: 0, notJudged: 0
    }
  }

  private inWindow (timeMs: number): boolean {
    return (this.fromMs === undefined || timeMs >= this.fromMs) && (this.toMs === undefined || timeMs <= this.toMs)
  }

  private fail (reason: FailureReason, judged: boolean, finding: Omit<Finding, 'reason'>): void {
    if (!judged) { this.counts.notJudged++; return }
    this.reasons[reason] = (this.reasons[reason] ?? 0) + 1
    this.counts.failures++
    if (finding.index !== undefined) this.failed[finding.index] = 1
    if (this.failures.length < this.maxFindings) this.failures.push({ reason, ...finding })
    else this.truncated = true
  }

  private warn (reason: WarningReason, judged: boolean, finding: Omit<Finding, 'reason'>): void {
    if (!judged) { this.counts.notJudged++; return }
    this.reasons[reason] = (this.reasons[reason] ?? 0) + 1
    this.counts.warnings++
    if (this.warnings.length < this.maxFindings) this.warnings.push({ reason, ...finding })
    else this.truncated = true
  }

  async verifyRecords (progress: (p: VerifyProgress) => void): Promise<void> {
    const { bundle, facts } = this
    for (const f of facts.failures) this.fail(f.reason, true, { message: f.message })
    for (const w of facts.warnings) this.warn(w.reason, true, { message: w.message })

    const total = bundle.records.length
    let verifier: ChainVerifier | undefined
    // Set after a break: the next record starts a new segment, linked from its own prev.
    let resync = true
    let brokenSeq: number | undefined
    let lastDecodedSeq: number | undefined
    const pool = this.workers > 0 ? new SignaturePool(this.workers) : undefined
    // Chunks decoded and handed to the pool ahead of the walk, so that every worker stays busy.
    const ahead = pool === undefined ? 1 : pool.size * 2
    const inflight: PreparedChunk[] = []
    let nextChunk = 0
    const checkSignature = (signed: SignedRecord, key: Uint8Array): boolean => this.checkSignature(signed, key)
    try {
      while (inflight.length > 0 || nextChunk < total) {
        while (inflight.length < ahead && nextChunk < total) {
          inflight.push(this.prepareChunk(nextChunk, Math.min(total, nextChunk + CHUNK_RECORDS), pool))
          nextChunk += CHUNK_RECORDS
        }
        const chunk = inflight.shift() as PreparedChunk
        const answer = await chunk.answer
        for (let j = 0; j < chunk.signed.length; j++) {
          const i = chunk.start + j
          const signed = chunk.signed[j]
          this.current = { chunk, answer, j }
          if (signed === undefined) {
            this.counts.malformed++
            // Its time is unknown: a record nobody can read is judged whatever the window.
            const seq = lastDecodedSeq === undefined ? undefined : lastDecodedSeq + 1
            this.fail('record-malformed', true, { index: i, ...(seq === undefined ? {} : { seq }), message: `record ${i} of the bundle is not a well-formed envelope` })
            if (seq !== undefined) lastDecodedSeq = seq
            resync = true
            brokenSeq = seq
            continue
          }
          const r = signed.record
          this.seqs[i] = r.seq
          this.times[i] = r.timeMs
          if (this.firstSeq === null) { this.firstSeq = r.seq; this.fromGenesis = r.seq === 0; this.firstPrev = r.prev }
          this.lastSeq = r.seq
          lastDecodedSeq = r.seq
          const judged = this.inWindow(r.timeMs)
          if (judged) this.counts.judged++

          if (resync) {
            if (verifier !== undefined) this.closeSegment(verifier, brokenSeq)
            // A segment opens a window (the bundle's start, an export --from, or the record after
            // a break already reported): a gap record there declares a range before the segment,
            // which nothing in it can settle (PROTOCOL.md §6, inputs that start after the genesis).
            verifier = new ChainVerifier({ deviceId: bundle.device.id, keyAt: this.keyAt, after: pointBefore(r), backend: this.verifier, checkSignature, windowStart: true })
            resync = false
          }
          const failure = (verifier as ChainVerifier).push(signed)
          if (failure === undefined) this.counts.chainLinked++
          if (failure === undefined || !SIGNATURE_NOT_CHECKED.has(failure.reason)) this.counts.signaturesChecked++
          if (failure === undefined || !SIGNATURE_FAILED.has(failure.reason)) this.counts.signaturesValid++
          if (failure !== undefined) {
            this.fail(failure.reason, judged, { seq: r.seq, index: i, message: failure.message })
            resync = true
            brokenSeq = r.seq
          }

          this.checkKey(signed, i, judged)
          this.checkModel(signed, i, judged)
          this.checkProof(signed, i, judged)
          if (this.counts.records > PROGRESS_EVERY && (i + 1) % PROGRESS_EVERY === 0) {
            progress({ phase: 'records', done: i + 1, total })
            // Let timers and signals run during long verifications.
            await new Promise(resolve => setImmediate(resolve))
          }
        }
      }
    } finally {
      this.current = undefined
      await pool?.close()
    }
    if (verifier !== undefined) this.closeSegment(verifier, resync ? brokenSeq : undefined)
    progress({ phase: 'records', done: total, total })

    this.checkPrunings()
    this.checkShreddings()

    // Bundle-level disagreements no judged record pointed at.
    if (facts.keyMismatch !== undefined) this.fail('key-mismatch', true, { message: facts.keyMismatch.message })
    for (const message of facts.modelMismatch.values()) this.fail('model-mismatch', true, { message })
    for (const message of facts.anchorMismatch.values()) this.fail('anchor-mismatch', true, { message })
    if (this.counts.judged === 0 && this.counts.malformed === 0) {
      this.fail('no-records', true, { message: this.counts.records === 0 ? 'the bundle holds no record' : 'no record of the bundle lies in the window' })
    }
  }

  /**
   * The gateways' pruning statements: each must be signed by a gateway key of the bundle, be about
   * this device, and be committed by an anchored checkpoint (else a warning: the next seal commits
   * it). Valid ones are listed as pruned ranges; the one that ends before the first record must
   * link to it.
   */
  private checkPrunings (): void {
    const trusted = this.noteKeys.map(k => k.publicKey)
    this.bundle.prunings?.forEach((p, i) => {
      const at = `prunings[${i}]`
      let signed
      try {
        signed = verifyPruningStatement(Buffer.from(p.statement, 'base64'), trusted, this.verifier)
      } catch (e) {
        if (!(e instanceof ErasureError)) throw e
        this.fail('pruning-invalid', true, { message: `${at}: ${e.code}: ${e.message}` })
        return
      }
      const s = signed.statement
      const hash = toHex(signed.hash)
      if (s.deviceId !== this.bundle.device.id) {
        this.fail('pruning-invalid', true, { message: `${at}: statement ${hash.slice(0, 16)}… prunes device "${s.deviceId}", not "${this.bundle.device.id}"` })
        return
      }
      const links = this.firstSeq !== null && this.firstPrev !== undefined && s.lastSeq + 1 === this.firstSeq
      if (links && !equalHex(s.lastHash, this.firstPrev as Uint8Array)) {
        this.fail('pruning-invalid', true, { seq: s.lastSeq + 1, message: `${at}: statement ${hash.slice(0, 16)}… ends at seq ${s.lastSeq} with a hash that is not the prev of record ${s.lastSeq + 1}` })
        return
      }
      // Only anchored records may be pruned: each batch the statement names must be anchored.
      const unanchored = s.batches.filter(b => !this.facts.anchors.has(toHex(b.root)))
      if (unanchored.length > 0) {
        this.fail('pruning-invalid', true, { message: `${at}: statement ${hash.slice(0, 16)}… names batch(es) ${unanchored.map(b => b.id).join(', ')} whose root is not anchored: only anchored records may be pruned` })
        return
      }
      const committed = this.pruningCommitted(p.checkpoint, signed.hash, at)
      if (committed === 'invalid') return
      if (!committed) this.warn('pruning-uncommitted', true, { message: `${at}: statement ${hash.slice(0, 16)}… (seq ${s.firstSeq}..${s.lastSeq}) is signed but no anchored checkpoint of the bundle commits to it yet` })
      this.pruned.push({
        firstSeq: s.firstSeq, lastSeq: s.lastSeq, statement: hash, gatewayId: s.gatewayId, reason: s.reason, retentionDays: s.retentionDays,
        prunedAtMs: s.prunedAtMs, batches: s.batches.map(b => b.id), links, committed
      })
    })
    this.pruned.sort((a, b) => a.firstSeq - b.firstSeq)
    // Pruned ranges back to seq 0, contiguous, the last one linked to the first record.
    let next = 0
    for (const r of this.pruned) { if (r.firstSeq === next) next = r.lastSeq + 1 }
    this.prunedFromGenesis = this.firstSeq !== null && next === this.firstSeq && this.pruned.some(r => r.links)
  }

  /** True when `checkpoint` commits to the statement and is anchored; 'invalid' after a failure. */
  private pruningCommitted (checkpoint: string | undefined, statementHash: Uint8Array, at: string): boolean | 'invalid' {
    if (checkpoint === undefined) return false
    const unsigned = checkpoint.slice(0, checkpoint.indexOf('\n\n') + 2)
    let parsed
    try {
      parsed = parseCheckpoint(unsigned)
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e
      this.fail('pruning-invalid', true, { message: `${at}: malformed checkpoint: ${e.message}` })
      return 'invalid'
    }
    if (!(parsed.extensions ?? []).includes(pruningExtensionLine(statementHash))) {
      this.fail('pruning-invalid', true, { message: `${at}: the checkpoint given does not commit to the statement` })
      return 'invalid'
    }
    const outcome = this.judgeCheckpoint(checkpoint)
    if (outcome?.reason === 'checkpoint-signature-invalid') {
      this.fail('pruning-invalid', true, { message: `${at}: ${outcome.message}` })
      return 'invalid'
    }
    const anchor = this.facts.anchors.get(toHex(parsed.rootHash))
    if (anchor === undefined) return false
    if (anchor.metadataHash !== toHex(sha256(new TextEncoder().encode(unsigned))) || anchor.size !== parsed.size) {
      this.fail('pruning-invalid', true, { message: `${at}: the anchor of root ${anchor.root.slice(0, 16)}… does not commit to this checkpoint (metadata hash or size differ)` })
      return 'invalid'
    }
    return true
  }

  /** The device's shredding statements, each signed by the device key valid at its time. */
  private checkShreddings (): void {
    this.bundle.shreddings?.forEach((b64, i) => {
      const at = `shreddings[${i}]`
      let signed
      try {
        signed = verifyShreddingStatement(Buffer.from(b64, 'base64'), this.keyAt, this.verifier)
      } catch (e) {
        if (!(e instanceof ErasureError)) throw e
        this.fail('shredding-invalid', true, { message: `${at}: ${e.code}: ${e.message}` })
        return
      }
      const s = signed.statement
      if (s.deviceId !== this.bundle.device.id) {
        this.fail('shredding-invalid', true, { message: `${at}: statement shreds records of device "${s.deviceId}", not "${this.bundle.device.id}"` })
        return
      }
      for (const r of s.ranges) {
        let records = 0
        for (const seq of this.seqs) if (seq >= r.firstSeq && seq <= r.lastSeq) records++
        this.shredded.push({ firstSeq: r.firstSeq, lastSeq: r.lastSeq, statement: toHex(signed.hash), subjectRef: toHex(s.subjectRef), reason: s.reason, shreddedAtMs: s.shreddedAtMs, records })
      }
    })
    this.shredded.sort((a, b) => a.firstSeq - b.firstSeq)
  }

  /** Decodes records [start, end) and, with a pool, sends their signatures to be verified and their proofs to be judged. */
  private prepareChunk (start: number, end: number, pool: SignaturePool | undefined): PreparedChunk {
    const deviceId = this.bundle.device.id
    const signed: Array<SignedRecord | undefined> = []
    const at = new Int32Array(end - start).fill(-1)
    const keys: Array<Uint8Array | undefined> = []
    const builder = pool === undefined ? undefined : new SignatureBatchBuilder(deviceId, this.proofContext)
    for (let i = start; i < end; i++) {
      const s = tryDecode(this.bundle.records[i] as string)
      signed.push(s)
      if (builder === undefined || s === undefined || s.record.deviceId !== deviceId) continue
      const key = this.keyAt(deviceId, s.record.timeMs)
      if (key === undefined) continue
      const text = this.proofs.get(s.record.seq)
      at[i - start] = builder.add(s.signature, s.recordBytes, key, text === undefined ? undefined : { text, envelope: s.envelope, seq: s.record.seq, timeMs: s.record.timeMs })
      keys[i - start] = key
    }
    // A failed pool only means the walk verifies those signatures and proofs itself.
    const answer = pool === undefined || builder === undefined || builder.count === 0
      ? Promise.resolve(undefined)
      : pool.verify(builder, this.verifier).catch(() => undefined)
    return { start, signed, at, keys, answer }
  }

  /** The pool's answer for the record being pushed, when it checked that record under that key. */
  private checkSignature (signed: SignedRecord, key: Uint8Array): boolean {
    const c = this.current
    if (c !== undefined && c.answer !== undefined && c.chunk.signed[c.j] === signed && c.chunk.keys[c.j] === key) {
      const b = c.chunk.at[c.j] as number
      if (b >= 0) return c.answer.valid[b] === 1
    }
    return verifyRecordSignature(signed, key, this.verifier)
  }

  /** Ends a chain segment: its honest gaps, and its holes no gap record explained (deleted records). */
  private closeSegment (verifier: ChainVerifier, brokenSeq: number | undefined): void {
    this.gaps.push(...verifier.result().gaps)
    for (const hole of verifier.openHoles()) {
      // A record that broke the chain inside the hole stands in it (two records swapped): the
      // break already names it.
      if (brokenSeq !== undefined && hole.firstSeq <= brokenSeq && brokenSeq <= hole.lastSeq) continue
      const after = this.indexOfSeqAbove(hole.lastSeq)
      const before = this.indexOfSeqBelow(hole.firstSeq)
      const tAfter = after === undefined ? Infinity : this.times[after] as number
      const tBefore = before === undefined ? -Infinity : this.times[before] as number
      const judged = (this.fromMs === undefined || tAfter >= this.fromMs) && (this.toMs === undefined || tBefore <= this.toMs)
      const range = hole.firstSeq === hole.lastSeq ? `record ${hole.firstSeq} is` : `records ${hole.firstSeq}..${hole.lastSeq} are`
      this.fail('seq-gap', judged, {
        seq: hole.firstSeq,
        lastSeq: hole.lastSeq,
        ...(after === undefined ? {} : { index: after }),
        message: `${range} missing and no gap record accounts for them`
      })
    }
  }

  private indexOfSeqAbove (seq: number): number | undefined {
    let best: number | undefined
    this.seqs.forEach((s, i) => { if (s > seq && (best === undefined || s < (this.seqs[best] as number))) best = i })
    return best
  }

  private indexOfSeqBelow (seq: number): number | undefined {
    let best: number | undefined
    this.seqs.forEach((s, i) => { if (s < seq && (best === undefined || s > (this.seqs[best] as number))) best = i })
    return best
  }

  private checkKey (signed: SignedRecord, index: number, judged: boolean): void {
    const r = signed.record
    const { facts } = this
    if (facts.revokedFromMs !== undefined && r.timeMs >= facts.revokedFromMs) {
      this.fail('key-revoked', judged, { seq: r.seq, index, message: `seq ${r.seq}: signed at ${r.timeMs}, at or after the device's revocation from ${facts.revokedFromMs}` })
    }
    if (facts.keyMismatch !== undefined && judged && r.timeMs >= facts.keyMismatch.fromMs) {
      this.fail('key-mismatch', true, { seq: r.seq, index, message: `seq ${r.seq}: ${facts.keyMismatch.message}` })
      facts.keyMismatch = undefined
    }
    const body = r.body
    if (body.kind === 'key-rotation') {
      const key = toHex(body.newPublicKey)
      if (!facts.keys.some(k => k.publicKey === key && k.validFromMs === body.validFromMs)) {
        this.warn('rotation-unregistered', judged, { seq: r.seq, index, message: `seq ${r.seq}: the device rotated to a key valid from ${body.validFromMs} that the registry does not list` })
      }
    }
  }

  private checkModel (signed: SignedRecord, index: number, judged: boolean): void {
    const r = signed.record
    const body = r.body
    if (body.kind !== 'model-load' && body.kind !== 'inference') return
    const hash = toHex(body.modelHash)
    if (judged) this.modelsUsed.add(hash)
    const mismatch = this.facts.modelMismatch.get(hash)
    if (mismatch !== undefined && judged) {
      this.fail('model-mismatch', true, { seq: r.seq, index, message: `seq ${r.seq}: ${mismatch}` })
      this.facts.modelMismatch.delete(hash)
    }
    const m = this.facts.models.get(hash)
    const what = body.kind === 'model-load' ? 'loads' : 'runs'
    const at = { seq: r.seq, index }
    if (m === undefined || m.status === 'none') {
      this.fail('model-unknown', judged, { ...at, message: `seq ${r.seq}: ${what} model ${hash.slice(0, 16)}…, which the registry does not know` })
      return
    }
    const label = `${m.name} ${m.version}`
    if (m.status === 'revoked') this.fail('model-revoked', judged, { ...at, message: `seq ${r.seq}: ${what} ${label}, revoked in the registry` })
    // Warnings once per model and boot: a model runs thousands of times.
    const once = `${hash}/${r.boot}`
    if ((m.status === 'deprecated' || m.status === 'registered') && !this.warnedModels.has(once)) {
      this.warnedModels.add(once)
      if (m.status === 'deprecated') this.warn('model-deprecated', judged, { ...at, message: `seq ${r.seq}: ${what} ${label}, deprecated in the registry` })
      else this.warn('model-not-approved', judged, { ...at, message: `seq ${r.seq}: ${what} ${label}, registered but never approved` })
    }
    if (body.kind === 'model-load' && m.manifestHash !== ZERO_HEX && m.manifestHash !== toHex(body.manifestHash)) {
      this.fail('manifest-mismatch', judged, { ...at, message: `seq ${r.seq}: loads weights whose manifest differs from the registered ${label}` })
    }
  }

  private checkProof (signed: SignedRecord, index: number, judged: boolean): void {
    const r = signed.record
    const at = { seq: r.seq, index }
    const text = this.proofs.get(r.seq)
    if (text === undefined) {
      const message = `seq ${r.seq}: no inclusion proof (not in an anchored batch)`
      if (this.allowUnanchored) this.warn('record-not-anchored', judged, { ...at, message })
      else this.fail('record-not-anchored', judged, { ...at, message })
      return
    }
    const judgement = this.workerJudgement(signed) ?? this.proofJudge.judge(text, signed.envelope, r)
    if (judgement.kind === 'malformed') {
      this.fail('proof-invalid', judged, { ...at, message: `seq ${r.seq}: ${judgement.message}` })
      return
    }
    this.checkCheckpointSignature(text, at, judged)
    const root = judgement.root
    const mismatch = this.facts.anchorMismatch.get(root)
    if (mismatch !== undefined && judged) {
      this.fail('anchor-mismatch', true, { ...at, message: `seq ${r.seq}: ${mismatch}` })
      this.facts.anchorMismatch.delete(root)
    }
    if (judgement.kind === 'unanchored') {
      this.fail('root-not-anchored', judged, { ...at, message: `seq ${r.seq}: root ${root.slice(0, 16)}… is not anchored` })
      return
    }
    if (judged) this.anchorsUsed.add(root)
    this.counts.proofsChecked++
    if (judgement.inclusion === undefined) this.counts.proofsValid++
    else this.fail(judgement.inclusion.reason, judged, { ...at, message: `seq ${r.seq}: ${judgement.inclusion.message}` })
    if (judgement.disagreements.length > 0) this.fail('anchor-mismatch', judged, { ...at, message: `seq ${r.seq}: ${judgement.disagreements.join('; ')}` })
  }

  /** The pool's judgement of the proof of the record being pushed, when a worker judged it. */
  private workerJudgement (signed: SignedRecord): ProofJudgement | undefined {
    const c = this.current
    const proofs = c?.answer?.proofs
    if (c === undefined || proofs === undefined || c.chunk.signed[c.j] !== signed) return undefined
    const b = c.chunk.at[c.j] as number
    if (b < 0) return undefined
    const code = proofs.codes[b]
    if (code === 1) return { kind: 'checked', root: proofs.roots[proofs.rootIndex[b] as number] as string, disagreements: NO_DISAGREEMENTS }
    if (code === 2) return proofs.details.get(b)
    return undefined
  }

  /**
   * The note signature of the proof's checkpoint (§7.8), against the bundle's gateway keys. An
   * unsigned checkpoint (proofs from before signing) or one no key can be checked for is a warning:
   * the anchor on chain, not the signature, is what authenticates a root (§7.4). Reported once per
   * checkpoint, at the first judged record whose proof carries it.
   */
  private checkCheckpointSignature (proofText: string, at: { seq: number, index: number }, judged: boolean): void {
    // A parsed proof has an empty line before its checkpoint: the checkpoint note is what follows.
    const note = proofText.slice(proofText.indexOf('\n\n') + 2)
    let outcome = this.checkpointOutcomes.get(note)
    if (outcome === undefined) {
      outcome = this.judgeCheckpoint(note)
      this.checkpointOutcomes.set(note, outcome)
    }
    // Once per checkpoint (a batch's records share it), at the first judged record that relies on it.
    if (outcome === null || !judged || this.checkpointsReported.has(note)) return
    this.checkpointsReported.add(note)
    const message = `seq ${at.seq}: ${outcome.message}`
    if (outcome.reason === 'checkpoint-unsigned') this.warn('checkpoint-unsigned', judged, { ...at, message })
    else this.fail('checkpoint-signature-invalid', judged, { ...at, message })
  }

  private judgeCheckpoint (note: string): { reason: 'checkpoint-signature-invalid' | 'checkpoint-unsigned', message: string } | null {
    // The checkpoint ends at its first empty line (no extension lines are empty): nothing after it, no signature.
    const signed = note.indexOf('\n\n') + 2 < note.length
    if (!signed) return { reason: 'checkpoint-unsigned', message: 'the checkpoint carries no signature' }
    if (this.noteKeys.length === 0) return { reason: 'checkpoint-unsigned', message: 'the checkpoint is signed, but the bundle names no gateway key to check it with' }
    try {
      openCheckpoint(note, this.noteKeys, this.verifier)
      return null
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e
      return { reason: 'checkpoint-signature-invalid', message: `checkpoint signature: ${e.code}: ${e.message}` }
    }
  }

  private completeness: Completeness = { status: 'unknown', message: 'not judged' }

  /** Completeness as judged after the records; its findings are the bundle's (no record index). */
  noteCompleteness (judged: { completeness: Completeness, findings: Array<{ reason: FailureReason, message: string, seq?: number, lastSeq?: number }> }): void {
    this.completeness = judged.completeness
    for (const f of judged.findings) {
      this.fail(f.reason, true, { message: f.message, ...(f.seq === undefined ? {} : { seq: f.seq }), ...(f.lastSeq === undefined ? {} : { lastSeq: f.lastSeq }) })
    }
  }

  verdict (mode: 'offline' | 'online', elapsedMs: number): Verdict {
    let recordsFailed = 0
    for (const f of this.failed) recordsFailed += f
    this.counts.recordsFailed = recordsFailed
    this.counts.anchors = this.anchorsUsed.size
    this.counts.models = this.modelsUsed.size
    return {
      verdict: this.counts.failures === 0 ? 'valid' : 'invalid',
      mode,
      device: this.bundle.device.id,
      window: { fromMs: this.fromMs ?? null, toMs: this.toMs ?? null },
      firstSeq: this.firstSeq,
      lastSeq: this.lastSeq,
      fromGenesis: this.fromGenesis,
      counts: this.counts,
      verifier: this.verifier,
      reasons: this.reasons,
      failures: bySeq(this.failures),
      warnings: bySeq(this.warnings),
      truncated: this.truncated,
      gaps: this.gaps,
      pruned: this.pruned,
      prunedFromGenesis: this.prunedFromGenesis,
      shredded: this.shredded,
      chain: { chainId: this.bundle.chain.chainId, registry: this.bundle.chain.registry, readAtBlock: this.bundle.chain.readAtBlock, checkedAtBlock: this.facts.checkedAtBlock },
      completeness: this.completeness,
      elapsedMs: Math.round(elapsedMs)
    }
  }
}

/** Records decoded ahead of the chain walk, with their signature flags from the pool. */
interface PreparedChunk {
  readonly start: number
  readonly signed: Array<SignedRecord | undefined>
  /** Index of each record in its signature batch, -1 when not sent. */
  readonly at: Int32Array
  /** The key each sent record was checked under. */
  readonly keys: Array<Uint8Array | undefined>
  readonly answer: Promise<BatchAnswer | undefined>
}

/** Findings in seq order (stable: a record's findings keep the order they were found in); bundle-level ones last. */
function bySeq (findings: Finding[]): Finding[] {
  return [...findings].sort((a, b) => (a.seq ?? Infinity) - (b.seq ?? Infinity))
}
