/**
 * The checks `verify` runs on each record besides its chain link: the key valid at its time, the
 * registry's facts about its model, its inclusion proof against an anchored root, and the note
 * signature of that proof's checkpoint. Each reports into the run's findings; none reads the chain.
 */
import { ProtocolError, fromHex, noteKeyId, openCheckpoint, toHex, type Bundle, type NoteVerifierKey, type SignedRecord, type VerifierBackend } from '../../protocol/index.js'
import type { Facts } from './facts.js'
import type { FindingSink } from './findings.js'
import type { ProofJudge, ProofJudgement } from './proof-check.js'
import type { VerifyCounts } from './verify-bundle.js'

const ZERO_HEX = '0'.repeat(64)

/** A checkpoint's note-signature problem, or null when it verifies under a gateway key of the bundle. */
export type CheckpointOutcome = { reason: 'checkpoint-signature-invalid' | 'checkpoint-unsigned', message: string } | null

/** The gateways' note verifier keys (§7.8), from the bundle. */
export function bundleNoteKeys (bundle: Bundle): NoteVerifierKey[] {
  return (bundle.gateways ?? []).map(g => {
    const publicKey = fromHex(g.publicKey)
    return { name: g.keyName, keyId: noteKeyId(g.keyName, publicKey), publicKey }
  })
}

/**
 * Judges checkpoint note signatures against the bundle's gateway keys. An unsigned checkpoint
 * (proofs from before signing) or one no key can be checked for is a warning: the anchor on chain,
 * not the signature, is what authenticates a root (§7.4).
 */
export class CheckpointJudge {
  /** Outcome per distinct checkpoint note: a batch's checkpoint is checked once, not once per record. */
  private readonly outcomes = new Map<string, CheckpointOutcome>()
  private readonly reported = new Set<string>()

  constructor (readonly noteKeys: readonly NoteVerifierKey[], private readonly verifier: VerifierBackend) {}

  /** The outcome for one checkpoint note (signature lines included). */
  judge (note: string): CheckpointOutcome {
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

  /**
   * Reports the note signature of a proof's checkpoint once per checkpoint (a batch's records share
   * it), at the first judged record whose proof carries it.
   */
  report (proofText: string, at: { seq: number, index: number }, judged: boolean, findings: FindingSink): void {
    // A parsed proof has an empty line before its checkpoint: the checkpoint note is what follows.
    const note = proofText.slice(proofText.indexOf('\n\n') + 2)
    let outcome = this.outcomes.get(note)
    if (outcome === undefined) {
      outcome = this.judge(note)
      this.outcomes.set(note, outcome)
    }
    if (outcome === null || !judged || this.reported.has(note)) return
    this.reported.add(note)
    const message = `seq ${at.seq}: ${outcome.message}`
    if (outcome.reason === 'checkpoint-unsigned') findings.warn('checkpoint-unsigned', judged, { ...at, message })
    else findings.fail('checkpoint-signature-invalid', judged, { ...at, message })
  }
}

/** What the record checks read and report into. */
export interface RecordCheckContext {
  /** Mutable: a bundle-level mismatch is cleared once a judged record has reported it. */
  readonly facts: Facts
  readonly findings: FindingSink
  readonly counts: VerifyCounts
  /** Proof text per seq. */
  readonly proofs: ReadonlyMap<number, string>
  readonly proofJudge: ProofJudge
  readonly checkpoints: CheckpointJudge
  readonly allowUnanchored: boolean
  /** The proof judgements workers already made (the walk knows which record is being checked). */
  readonly workerAnswers: WorkerAnswers
}

/** Looks up a worker's judgement of a record's proof, if a worker judged it. */
export interface WorkerAnswers {
  judgementOf: (signed: SignedRecord) => ProofJudgement | undefined
}

/** The per-record checks, with what they remember across records (models warned about, anchors and models used). */
export class RecordChecks {
  readonly anchorsUsed = new Set<string>()
  readonly modelsUsed = new Set<string>()
  private readonly warnedModels = new Set<string>()

  constructor (private readonly ctx: RecordCheckContext) {}

  /** Runs the checks on one decoded record, in the order their findings are listed. */
  check (signed: SignedRecord, index: number, judged: boolean): void {
    this.checkKey(signed, index, judged)
    this.checkModel(signed, index, judged)
    this.checkProof(signed, index, judged)
  }

  private checkKey (signed: SignedRecord, index: number, judged: boolean): void {
    const r = signed.record
    const { facts, findings } = this.ctx
    if (facts.revokedFromMs !== undefined && r.timeMs >= facts.revokedFromMs) {
      findings.fail('key-revoked', judged, { seq: r.seq, index, message: `seq ${r.seq}: signed at ${r.timeMs}, at or after the device's revocation from ${facts.revokedFromMs}` })
    }
    if (facts.keyMismatch !== undefined && judged && r.timeMs >= facts.keyMismatch.fromMs) {
      findings.fail('key-mismatch', true, { seq: r.seq, index, message: `seq ${r.seq}: ${facts.keyMismatch.message}` })
      facts.keyMismatch = undefined
    }
    const body = r.body
    if (body.kind === 'key-rotation') {
      const key = toHex(body.newPublicKey)
      if (!facts.keys.some(k => k.publicKey === key && k.validFromMs === body.validFromMs)) {
        findings.warn('rotation-unregistered', judged, { seq: r.seq, index, message: `seq ${r.seq}: the device rotated to a key valid from ${body.validFromMs} that the registry does not list` })
      }
    }
  }

  private checkModel (signed: SignedRecord, index: number, judged: boolean): void {
    const r = signed.record
    const body = r.body
    if (body.kind !== 'model-load' && body.kind !== 'inference') return
    const { facts, findings } = this.ctx
    const hash = toHex(body.modelHash)
    if (judged) this.modelsUsed.add(hash)
    const mismatch = facts.modelMismatch.get(hash)
    if (mismatch !== undefined && judged) {
      findings.fail('model-mismatch', true, { seq: r.seq, index, message: `seq ${r.seq}: ${mismatch}` })
      facts.modelMismatch.delete(hash)
    }
    const m = facts.models.get(hash)
    const what = body.kind === 'model-load' ? 'loads' : 'runs'
    const at = { seq: r.seq, index }
    if (m === undefined || m.status === 'none') {
      findings.fail('model-unknown', judged, { ...at, message: `seq ${r.seq}: ${what} model ${hash.slice(0, 16)}…, which the registry does not know` })
      return
    }
    const label = `${m.name} ${m.version}`
    if (m.status === 'revoked') findings.fail('model-revoked', judged, { ...at, message: `seq ${r.seq}: ${what} ${label}, revoked in the registry` })
    // Warnings once per model and boot: a model runs thousands of times.
    const once = `${hash}/${r.boot}`
    if ((m.status === 'deprecated' || m.status === 'registered') && !this.warnedModels.has(once)) {
      this.warnedModels.add(once)
      if (m.status === 'deprecated') findings.warn('model-deprecated', judged, { ...at, message: `seq ${r.seq}: ${what} ${label}, deprecated in the registry` })
      else findings.warn('model-not-approved', judged, { ...at, message: `seq ${r.seq}: ${what} ${label}, registered but never approved` })
    }
    if (body.kind === 'model-load' && m.manifestHash !== ZERO_HEX && m.manifestHash !== toHex(body.manifestHash)) {
      findings.fail('manifest-mismatch', judged, { ...at, message: `seq ${r.seq}: loads weights whose manifest differs from the registered ${label}` })
    }
  }

  private checkProof (signed: SignedRecord, index: number, judged: boolean): void {
    const r = signed.record
    const { facts, findings, counts } = this.ctx
    const at = { seq: r.seq, index }
    const text = this.ctx.proofs.get(r.seq)
    if (text === undefined) {
      const message = `seq ${r.seq}: no inclusion proof (not in an anchored batch)`
      if (this.ctx.allowUnanchored) findings.warn('record-not-anchored', judged, { ...at, message })
      else findings.fail('record-not-anchored', judged, { ...at, message })
      return
    }
    const judgement = this.ctx.workerAnswers.judgementOf(signed) ?? this.ctx.proofJudge.judge(text, signed.envelope, r)
    if (judgement.kind === 'malformed') {
      findings.fail('proof-invalid', judged, { ...at, message: `seq ${r.seq}: ${judgement.message}` })
      return
    }
    this.ctx.checkpoints.report(text, at, judged, findings)
    const root = judgement.root
    const mismatch = facts.anchorMismatch.get(root)
    if (mismatch !== undefined && judged) {
      findings.fail('anchor-mismatch', true, { ...at, message: `seq ${r.seq}: ${mismatch}` })
      facts.anchorMismatch.delete(root)
    }
    if (judgement.kind === 'unanchored') {
      findings.fail('root-not-anchored', judged, { ...at, message: `seq ${r.seq}: root ${root.slice(0, 16)}… is not anchored` })
      return
    }
    if (judged) this.anchorsUsed.add(root)
    counts.proofsChecked++
    if (judgement.inclusion === undefined) counts.proofsValid++
    else findings.fail(judgement.inclusion.reason, judged, { ...at, message: `seq ${r.seq}: ${judgement.inclusion.message}` })
    if (judgement.disagreements.length > 0) findings.fail('anchor-mismatch', judged, { ...at, message: `seq ${r.seq}: ${judgement.disagreements.join('; ')}` })
  }
}
