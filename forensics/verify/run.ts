/**
 * One verification run: the walk over the bundle's records in order, linking each into the hash
 * chain (segment by segment across breaks) and running the record checks, with signatures and
 * proofs checked ahead on worker threads when there is a pool. Judges against facts read before it
 * (facts.ts); reads no chain itself.
 */
import { ChainVerifier, LIMITS, peekEnvelope, verifyRecordSignature, type Bundle, type ChainPoint, type ChainResult, type KeyLookup, type ProvenanceRecord, type SignedRecord, type VerifierBackend } from '../../protocol/index.js'
import type { Completeness } from './completeness.js'
import { tryBase64Into, tryDecodeEnvelope } from './decode.js'
import { PROGRESS_EVERY, type Facts } from './facts.js'
import { DEFAULT_MAX_FINDINGS, Findings, bySeq } from './findings.js'
import { createKeyLookup } from './key-history.js'
import { ProofJudge, type ProofContext, type ProofJudgement } from './proof-check.js'
import type { FailureReason } from './reasons.js'
import { CheckpointJudge, RecordChecks, bundleNoteKeys } from './record-checks.js'
import { DEFAULT_SIGNATURE_WORKERS, SignatureBatchBuilder, SignaturePool, type BatchAnswer } from './signature-pool.js'
import { checkPrunings, checkShreddings } from './statement-checks.js'
import type { PrunedRange, ShreddedRange, Verdict, VerifyOptions, VerifyProgress } from './verify-bundle.js'

/** Bundles from this many records up verify their signatures on worker threads by default. */
export const DEFAULT_PARALLEL_MIN_RECORDS = 4096
/** Records per signature batch: large enough to amortise a message, small enough to keep all workers fed. */
const CHUNK_RECORDS = 1024

const NO_DISAGREEMENTS: readonly string[] = Object.freeze([])
const SIGNATURE_NOT_CHECKED: ReadonlySet<string> = new Set(['device-mismatch', 'unknown-key', 'identity-revoked'])
const SIGNATURE_FAILED: ReadonlySet<string> = new Set(['device-mismatch', 'unknown-key', 'identity-revoked', 'bad-signature', 'uncertified-key', 'bad-certification', 'certification-replayed', 'certification-expired'])

/**
 * Records read ahead of the chain walk, with their signature flags from the pool. Only their bytes
 * are kept: each is decoded when the walk reaches it, so that thousands of decoded records do not
 * sit in the young generation of the heap while the workers verify (every scavenge would copy them).
 */
interface PreparedChunk {
  readonly start: number
  readonly count: number
  /**
   * The records' envelopes back to back in one buffer, record j at [ends[j-1] or 0, ends[j]) and
   * none where ends[j] is -1 (its entry is not base64 of one): one object per chunk that young-
   * generation GCs copy while the chunk waits, not one per record.
   */
  readonly bytes: Buffer
  readonly ends: Int32Array
  /** Index of each record in its signature batch, -1 when not sent. */
  readonly at: Int32Array
  /** The key each sent record was checked under. */
  readonly keys: Array<Uint8Array | undefined>
  /** The seq and device time each sent record was judged with (its envelope's header, peekEnvelope). */
  readonly seqs: Float64Array
  readonly times: Float64Array
  readonly answer: Promise<BatchAnswer | undefined>
  /** The pool's id of the chunk's batch, when one was sent. */
  readonly batchId: number | undefined
}

/** Bytes a record entry can decode to (at most an envelope's limit; anything longer is refused before it is written). */
function roomFor (entry: unknown): number {
  return typeof entry === 'string' ? Math.min(Math.floor(entry.length / 4) * 3, MAX_ENVELOPE_ROOM) : 0
}
const MAX_ENVELOPE_ROOM = 3 * Math.ceil(LIMITS.envelopeBytes / 3)

/** Record j's envelope in its chunk (a view), undefined when its entry is not base64 of one. */
function envelopeOf (chunk: PreparedChunk, j: number): Uint8Array | undefined {
  const end = chunk.ends[j] as number
  if (end < 0) return undefined
  let from = 0
  for (let k = j - 1; k >= 0; k--) {
    const e = chunk.ends[k] as number
    if (e >= 0) { from = e; break }
  }
  return new Uint8Array(chunk.bytes.buffer, chunk.bytes.byteOffset + from, end - from)
}

/** The point just before `r`, taken from its own header: where checking resumes after a break. */
function pointBefore (r: ProvenanceRecord): ChainPoint | undefined {
  if (r.seq === 0) return undefined
  return { seq: r.seq - 1, boot: r.body.kind === 'boot' ? r.boot - 1 : r.boot, hash: r.prev }
}

/** One verification: the record walk and everything it counts. */
export class Run {
  private readonly bundle: Bundle
  private readonly facts: Facts
  private readonly fromMs: number | undefined
  private readonly toMs: number | undefined
  private readonly keyAt: KeyLookup
  private readonly proofs: Map<number, string>
  private readonly findings: Findings
  private readonly checkpoints: CheckpointJudge
  private readonly checks: RecordChecks
  private readonly gaps: ChainResult['gaps'] = []
  private pruned: PrunedRange[] = []
  private prunedFromGenesis = false
  private shredded: ShreddedRange[] = []
  private firstPrev: Uint8Array | undefined
  /** Per record: seq and device time (NaN when it does not decode), for judging holes. */
  private readonly seqs: Float64Array
  private readonly times: Float64Array
  private firstSeq: number | null = null
  private lastSeq: number | null = null
  private fromGenesis = false
  private readonly verifier: VerifierBackend
  private readonly workers: number
  /** The chunk being walked and the index in it of the record being pushed: for checkSignature and workerJudgement. */
  private current: { chunk: PreparedChunk, answer: BatchAnswer | undefined, j: number, signed: SignedRecord | undefined } | undefined
  /** The facts proofs are judged against, sent with each batch. */
  private readonly proofContext: ProofContext
  /** The chain segment being walked; a new one starts after each break (`resync`). */
  private segment: ChainVerifier | undefined
  private resync = true
  /** The seq of the record that broke the chain last, if known. */
  private brokenSeq: number | undefined
  private lastDecodedSeq: number | undefined
  private readonly checkSignatureFn = (signed: SignedRecord, key: Uint8Array): boolean => this.checkSignature(signed, key)
  private completeness: Completeness = { status: 'unknown', message: 'not judged' }

  constructor (bundle: Bundle, facts: Facts, options: VerifyOptions) {
    this.verifier = options.verifier ?? 'node'
    this.workers = options.workers ?? (bundle.records.length >= DEFAULT_PARALLEL_MIN_RECORDS ? DEFAULT_SIGNATURE_WORKERS : 0)
    this.bundle = bundle
    this.facts = facts
    this.fromMs = options.fromMs
    this.toMs = options.toMs
    this.keyAt = createKeyLookup(bundle.device.id, facts.keys)
    this.proofs = new Map(bundle.proofs.map(p => [p.seq, p.proof]))
    this.proofContext = { anchors: [...facts.anchors], chainId: bundle.chain.chainId, registry: bundle.chain.registry }
    const n = bundle.records.length
    this.seqs = new Float64Array(n).fill(NaN)
    this.times = new Float64Array(n).fill(NaN)
    this.findings = new Findings(n, options.maxFindings ?? DEFAULT_MAX_FINDINGS)
    this.checkpoints = new CheckpointJudge(bundleNoteKeys(bundle), this.verifier)
    this.checks = new RecordChecks({
      facts,
      findings: this.findings,
      counts: this.findings.counts,
      proofs: this.proofs,
      proofJudge: new ProofJudge(this.proofContext),
      checkpoints: this.checkpoints,
      allowUnanchored: options.allowUnanchored ?? false,
      workerAnswers: { judgementOf: signed => this.workerJudgement(signed) }
    })
  }

  private inWindow (timeMs: number): boolean {
    return (this.fromMs === undefined || timeMs >= this.fromMs) && (this.toMs === undefined || timeMs <= this.toMs)
  }

  /** The facts' findings, the walk over the records, then the checks of the bundle as a whole. */
  async verifyRecords (progress: (p: VerifyProgress) => void): Promise<void> {
    const { facts, findings } = this
    const counts = findings.counts
    for (const f of facts.failures) findings.fail(f.reason, true, { message: f.message })
    for (const w of facts.warnings) findings.warn(w.reason, true, { message: w.message })

    await this.walk(progress)

    const statementContext = {
      bundle: this.bundle, facts, findings, checkpoints: this.checkpoints, keyAt: this.keyAt, verifier: this.verifier,
      firstSeq: this.firstSeq, firstPrev: this.firstPrev, seqs: this.seqs
    }
    ;({ pruned: this.pruned, prunedFromGenesis: this.prunedFromGenesis } = checkPrunings(statementContext))
    this.shredded = checkShreddings(statementContext)

    // Bundle-level disagreements no judged record pointed at.
    if (facts.keyMismatch !== undefined) findings.fail('key-mismatch', true, { message: facts.keyMismatch.message })
    for (const message of facts.modelMismatch.values()) findings.fail('model-mismatch', true, { message })
    for (const message of facts.anchorMismatch.values()) findings.fail('anchor-mismatch', true, { message })
    if (counts.judged === 0 && counts.malformed === 0) {
      findings.fail('no-records', true, { message: counts.records === 0 ? 'the bundle holds no record' : 'no record of the bundle lies in the window' })
    }
  }

  /** Every record in bundle order, chunks decoded (and, with a pool, verified) ahead of the walk. */
  private async walk (progress: (p: VerifyProgress) => void): Promise<void> {
    const total = this.bundle.records.length
    const pool = this.workers > 0 ? new SignaturePool(this.workers) : undefined
    // Chunks decoded and handed to the pool ahead of the walk: two posted to each worker, so that it
    // stays busy, and six more queued for this thread to answer while it would wait (with two, it
    // ran out of queued batches and waited: 1 worker and this thread took 6 % more wall time than 2
    // workers, 40 000 records alternated; with six, the same wall time).
    const ahead = pool === undefined ? 1 : pool.size * 2 + 6
    const inflight: PreparedChunk[] = []
    let nextChunk = 0
    try {
      while (inflight.length > 0 || nextChunk < total) {
        while (inflight.length < ahead && nextChunk < total) {
          inflight.push(this.prepareChunk(nextChunk, Math.min(total, nextChunk + CHUNK_RECORDS), pool))
          nextChunk += CHUNK_RECORDS
        }
        const chunk = inflight.shift() as PreparedChunk
        if (pool !== undefined && chunk.batchId !== undefined) {
          // Rather than wait for this chunk's answer, this thread answers a queued batch itself (this
          // one if no worker has it yet), letting the workers' answers in between.
          while (!pool.settled(chunk.batchId) && pool.helpOnce(chunk.batchId)) await new Promise(resolve => setImmediate(resolve))
        }
        const answer = await chunk.answer
        for (let j = 0; j < chunk.count; j++) {
          const i = chunk.start + j
          // decodeEnvelope copies what it keeps: the view dies here.
          const signed = tryDecodeEnvelope(envelopeOf(chunk, j))
          this.current = { chunk, answer, j, signed }
          this.walkRecord(signed, i)
          if (this.findings.counts.records > PROGRESS_EVERY && (i + 1) % PROGRESS_EVERY === 0) {
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
    if (this.segment !== undefined) this.closeSegment(this.segment, this.resync ? this.brokenSeq : undefined)
    progress({ phase: 'records', done: total, total })
  }

  /** One record of the walk: its chain link (a new segment after a break), then its checks. */
  private walkRecord (signed: SignedRecord | undefined, i: number): void {
    const { findings } = this
    const counts = findings.counts
    if (signed === undefined) {
      counts.malformed++
      // Its time is unknown: a record nobody can read is judged whatever the window.
      const seq = this.lastDecodedSeq === undefined ? undefined : this.lastDecodedSeq + 1
      findings.fail('record-malformed', true, { index: i, ...(seq === undefined ? {} : { seq }), message: `record ${i} of the bundle is not a well-formed envelope` })
      if (seq !== undefined) this.lastDecodedSeq = seq
      this.resync = true
      this.brokenSeq = seq
      return
    }
    const r = signed.record
    this.seqs[i] = r.seq
    this.times[i] = r.timeMs
    if (this.firstSeq === null) { this.firstSeq = r.seq; this.fromGenesis = r.seq === 0; this.firstPrev = r.prev }
    this.lastSeq = r.seq
    this.lastDecodedSeq = r.seq
    const judged = this.inWindow(r.timeMs)
    if (judged) counts.judged++

    if (this.resync) this.openSegment(r)
    const failure = (this.segment as ChainVerifier).push(signed)
    if (failure === undefined) counts.chainLinked++
    if (failure === undefined || !SIGNATURE_NOT_CHECKED.has(failure.reason)) counts.signaturesChecked++
    if (failure === undefined || !SIGNATURE_FAILED.has(failure.reason)) counts.signaturesValid++
    if (failure !== undefined) {
      findings.fail(failure.reason, judged, { seq: r.seq, index: i, message: failure.message })
      this.resync = true
      this.brokenSeq = r.seq
    }
    this.checks.check(signed, i, judged)
  }

  /** Closes the segment being walked (if any) and opens one at `r`, linked from its own prev. */
  private openSegment (r: ProvenanceRecord): void {
    const previous = this.segment
    // A TPM-rooted device stays one across a break, and the records after a broken one of
    // the same certified boot still verify under that boot's key (PROTOCOL.md §13).
    const certified = previous?.certifiedKey()
    const identityRooted = previous?.isIdentityRooted() === true
    if (previous !== undefined) this.closeSegment(previous, this.brokenSeq)
    // A segment opens a window (the bundle's start, an export --from, or the record after
    // a break already reported): a gap record there declares a range before the segment,
    // which nothing in it can settle (PROTOCOL.md §6, inputs that start after the genesis).
    this.segment = new ChainVerifier({
      deviceId: this.bundle.device.id, keyAt: this.keyAt, after: pointBefore(r), backend: this.verifier, checkSignature: this.checkSignatureFn, windowStart: true,
      identityRooted, ...(certified !== undefined ? { certified } : {})
    })
    this.resync = false
  }

  /**
   * Reads the envelopes of records [start, end) and, with a pool, sends their signatures to be
   * verified and their proofs to be judged, as their headers (peekEnvelope) name them; the walk
   * decodes each record in full when it gets there, and uses an answer only for the record it was
   * sent for (sentFor).
   */
  private prepareChunk (start: number, end: number, pool: SignaturePool | undefined): PreparedChunk {
    const deviceId = this.bundle.device.id
    const records = this.bundle.records
    let room = 0
    for (let i = start; i < end; i++) room += roomFor(records[i])
    const bytes = Buffer.allocUnsafeSlow(room)
    const ends = new Int32Array(end - start)
    let written = 0
    const at = new Int32Array(end - start).fill(-1)
    const keys: Array<Uint8Array | undefined> = []
    const seqs = new Float64Array(end - start)
    const times = new Float64Array(end - start)
    const builder = pool === undefined ? undefined : new SignatureBatchBuilder(deviceId, this.proofContext)
    for (let i = start; i < end; i++) {
      const envelope = tryBase64Into(records[i] as string, bytes, written)
      ends[i - start] = envelope === undefined ? -1 : (written += envelope.byteLength)
      if (builder === undefined || envelope === undefined) continue
      const head = peekEnvelope(envelope)
      if (head === undefined || head.deviceId !== deviceId) continue
      const key = this.keyAt(deviceId, head.timeMs)
      if (key === undefined) continue
      const text = this.proofs.get(head.seq)
      at[i - start] = builder.add(head.signature, head.recordBytes, key, text === undefined ? undefined : { text, envelope, seq: head.seq, timeMs: head.timeMs })
      keys[i - start] = key
      seqs[i - start] = head.seq
      times[i - start] = head.timeMs
    }
    // A failed pool only means the walk verifies those signatures and proofs itself.
    const submitted = pool === undefined || builder === undefined || builder.count === 0 ? undefined : pool.submit(builder, this.verifier)
    const answer = submitted === undefined ? Promise.resolve(undefined) : submitted.answer.catch(() => undefined)
    return { start, count: end - start, bytes, ends, at, keys, seqs, times, answer, batchId: submitted?.id }
  }

  /**
   * The index in its batch of the record being walked when the pool was sent exactly this record:
   * the walk's decoded record is `signed` and has the seq and time its header was sent with (which
   * a record that decodes always has: peekEnvelope reads as decodeEnvelope does). Else -1.
   */
  private sentFor (signed: SignedRecord): number {
    const c = this.current
    if (c === undefined || c.answer === undefined || c.signed !== signed) return -1
    const b = c.chunk.at[c.j] as number
    if (b < 0 || c.chunk.seqs[c.j] !== signed.record.seq || c.chunk.times[c.j] !== signed.record.timeMs) return -1
    return b
  }

  /** The pool's answer for the record being pushed, when it checked that record under that key. */
  private checkSignature (signed: SignedRecord, key: Uint8Array): boolean {
    const c = this.current
    const b = this.sentFor(signed)
    if (b >= 0 && c !== undefined && c.answer !== undefined && c.chunk.keys[c.j] === key) return c.answer.valid[b] === 1
    return verifyRecordSignature(signed, key, this.verifier)
  }

  /** The pool's judgement of the proof of the record being pushed, when a worker judged it. */
  private workerJudgement (signed: SignedRecord): ProofJudgement | undefined {
    const c = this.current
    const proofs = c?.answer?.proofs
    const b = this.sentFor(signed)
    if (c === undefined || proofs === undefined || b < 0) return undefined
    const code = proofs.codes[b]
    if (code === 1) return { kind: 'checked', root: proofs.roots[proofs.rootIndex[b] as number] as string, disagreements: NO_DISAGREEMENTS }
    if (code === 2) return proofs.details.get(b)
    return undefined
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
      this.findings.fail('seq-gap', judged, {
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

  /** Completeness as judged after the records; its findings are the bundle's (no record index). */
  noteCompleteness (judged: { completeness: Completeness, findings: Array<{ reason: FailureReason, message: string, seq?: number, lastSeq?: number }> }): void {
    this.completeness = judged.completeness
    for (const f of judged.findings) {
      this.findings.fail(f.reason, true, { message: f.message, ...(f.seq === undefined ? {} : { seq: f.seq }), ...(f.lastSeq === undefined ? {} : { lastSeq: f.lastSeq }) })
    }
  }

  verdict (mode: 'offline' | 'online', elapsedMs: number): Verdict {
    const { findings } = this
    const counts = findings.counts
    counts.recordsFailed = findings.recordsFailed()
    counts.anchors = this.checks.anchorsUsed.size
    counts.models = this.checks.modelsUsed.size
    return {
      verdict: counts.failures === 0 ? 'valid' : 'invalid',
      mode,
      device: this.bundle.device.id,
      window: { fromMs: this.fromMs ?? null, toMs: this.toMs ?? null },
      firstSeq: this.firstSeq,
      lastSeq: this.lastSeq,
      fromGenesis: this.fromGenesis,
      counts,
      verifier: this.verifier,
      reasons: findings.reasons,
      failures: bySeq(findings.failures),
      warnings: bySeq(findings.warnings),
      truncated: findings.truncated,
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
