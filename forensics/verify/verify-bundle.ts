/**
 * End-to-end verification of an incident bundle: every signature (node:crypto on every core by
 * default; @noble/ed25519, independent of OpenSSL, on request), the hash chain with its honest gaps, the key valid at each
 * record's time, the registry's facts about each model, and each record's inclusion proof against
 * an anchored root whose SIZE comes from the chain facts (the bundle's offline, JSON-RPC online),
 * never from the proof file: an inclusion proof does not commit to the tree size.
 * The result is a verdict, not an exception: each failure names its record by seq and a reason.
 */
import { performance } from 'node:perf_hooks'
import { assertBundle, type Bundle, type ChainResult, type VerifierBackend } from '../../protocol/index.js'
import { judgeCompleteness, type Completeness } from './completeness.js'
import { offlineFacts, onlineFacts } from './facts.js'
import type { Finding, FindingReason } from './reasons.js'
import { Run } from './run.js'

// The split (issue #17): facts.ts reads the chain, run.ts walks the records, record-checks.ts and
// statement-checks.ts judge them, findings.ts tallies; this file is the entry point and its types.
export { DEFAULT_MAX_FINDINGS } from './findings.js'
export { DEFAULT_PARALLEL_MIN_RECORDS } from './run.js'

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
   * Worker threads that verify signatures and judge proofs; the calling thread, besides walking
   * the chain, answers batches the workers have not started whenever it would otherwise wait for
   * one. 0 verifies on the calling thread alone. Default: one per core but one (at least one) for
   * bundles of DEFAULT_PARALLEL_MIN_RECORDS records or more, else 0.
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
