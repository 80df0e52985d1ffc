/**
 * The checks `verify` runs on the bundle's erasure statements after the records: the gateways'
 * pruning statements (PROTOCOL.md §12.1) and the device's shredding statements (§12.2). Valid ones
 * become the verdict's pruned and shredded ranges; the others are findings about the bundle.
 */
import {
  ErasureError, ProtocolError, parseCheckpoint, pruningExtensionLine, sha256, toHex, verifyPruningStatement, verifyShreddingStatement,
  type Bundle, type KeyLookup, type VerifierBackend
} from '../../protocol/index.js'
import type { Facts } from './facts.js'
import type { FindingSink } from './findings.js'
import type { CheckpointJudge } from './record-checks.js'
import type { PrunedRange, ShreddedRange } from './verify-bundle.js'

/** What the statement checks read: the bundle, its facts and what the walk learnt about its records. */
export interface StatementCheckContext {
  readonly bundle: Bundle
  readonly facts: Facts
  readonly findings: FindingSink
  readonly checkpoints: CheckpointJudge
  readonly keyAt: KeyLookup
  readonly verifier: VerifierBackend
  /** The bundle's first decodable record: its seq and prev. */
  readonly firstSeq: number | null
  readonly firstPrev: Uint8Array | undefined
  /** Seq per record index, NaN where it does not decode. */
  readonly seqs: Float64Array
}

/**
 * The gateways' pruning statements: each must be signed by a gateway key of the bundle, be about
 * this device, and be committed by an anchored checkpoint (else a warning: the next seal commits
 * it). Valid ones are listed as pruned ranges; the one that ends before the first record must
 * link to it.
 */
export function checkPrunings (ctx: StatementCheckContext): { pruned: PrunedRange[], prunedFromGenesis: boolean } {
  const { bundle, findings } = ctx
  const trusted = ctx.checkpoints.noteKeys.map(k => k.publicKey)
  const pruned: PrunedRange[] = []
  bundle.prunings?.forEach((p, i) => {
    const at = `prunings[${i}]`
    let signed
    try {
      signed = verifyPruningStatement(Buffer.from(p.statement, 'base64'), trusted, ctx.verifier)
    } catch (e) {
      if (!(e instanceof ErasureError)) throw e
      findings.fail('pruning-invalid', true, { message: `${at}: ${e.code}: ${e.message}` })
      return
    }
    const s = signed.statement
    const hash = toHex(signed.hash)
    if (s.deviceId !== bundle.device.id) {
      findings.fail('pruning-invalid', true, { message: `${at}: statement ${hash.slice(0, 16)}… prunes device "${s.deviceId}", not "${bundle.device.id}"` })
      return
    }
    const links = ctx.firstSeq !== null && ctx.firstPrev !== undefined && s.lastSeq + 1 === ctx.firstSeq
    if (links && !equalHex(s.lastHash, ctx.firstPrev)) {
      findings.fail('pruning-invalid', true, { seq: s.lastSeq + 1, message: `${at}: statement ${hash.slice(0, 16)}… ends at seq ${s.lastSeq} with a hash that is not the prev of record ${s.lastSeq + 1}` })
      return
    }
    // Only anchored records may be pruned: each batch the statement names must be anchored.
    const unanchored = s.batches.filter(b => !ctx.facts.anchors.has(toHex(b.root)))
    if (unanchored.length > 0) {
      findings.fail('pruning-invalid', true, { message: `${at}: statement ${hash.slice(0, 16)}… names batch(es) ${unanchored.map(b => b.id).join(', ')} whose root is not anchored: only anchored records may be pruned` })
      return
    }
    const committed = pruningCommitted(ctx, p.checkpoint, signed.hash, at)
    if (committed === 'invalid') return
    if (!committed) findings.warn('pruning-uncommitted', true, { message: `${at}: statement ${hash.slice(0, 16)}… (seq ${s.firstSeq}..${s.lastSeq}) is signed but no anchored checkpoint of the bundle commits to it yet` })
    pruned.push({
      firstSeq: s.firstSeq, lastSeq: s.lastSeq, statement: hash, gatewayId: s.gatewayId, reason: s.reason, retentionDays: s.retentionDays,
      prunedAtMs: s.prunedAtMs, batches: s.batches.map(b => b.id), links, committed
    })
  })
  pruned.sort((a, b) => a.firstSeq - b.firstSeq)
  // Pruned ranges back to seq 0, contiguous, the last one linked to the first record.
  let next = 0
  for (const r of pruned) { if (r.firstSeq === next) next = r.lastSeq + 1 }
  return { pruned, prunedFromGenesis: ctx.firstSeq !== null && next === ctx.firstSeq && pruned.some(r => r.links) }
}

/** True when `checkpoint` commits to the statement and is anchored; 'invalid' after a failure. */
function pruningCommitted (ctx: StatementCheckContext, checkpoint: string | undefined, statementHash: Uint8Array, at: string): boolean | 'invalid' {
  if (checkpoint === undefined) return false
  const { findings } = ctx
  const unsigned = checkpoint.slice(0, checkpoint.indexOf('\n\n') + 2)
  let parsed
  try {
    parsed = parseCheckpoint(unsigned)
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e
    findings.fail('pruning-invalid', true, { message: `${at}: malformed checkpoint: ${e.message}` })
    return 'invalid'
  }
  if (!(parsed.extensions ?? []).includes(pruningExtensionLine(statementHash))) {
    findings.fail('pruning-invalid', true, { message: `${at}: the checkpoint given does not commit to the statement` })
    return 'invalid'
  }
  const outcome = ctx.checkpoints.judge(checkpoint)
  if (outcome?.reason === 'checkpoint-signature-invalid') {
    findings.fail('pruning-invalid', true, { message: `${at}: ${outcome.message}` })
    return 'invalid'
  }
  const anchor = ctx.facts.anchors.get(toHex(parsed.rootHash))
  if (anchor === undefined) return false
  if (anchor.metadataHash !== toHex(sha256(new TextEncoder().encode(unsigned))) || anchor.size !== parsed.size) {
    findings.fail('pruning-invalid', true, { message: `${at}: the anchor of root ${anchor.root.slice(0, 16)}… does not commit to this checkpoint (metadata hash or size differ)` })
    return 'invalid'
  }
  return true
}

/** The device's shredding statements, each signed by the device key valid at its time. */
export function checkShreddings (ctx: StatementCheckContext): ShreddedRange[] {
  const { bundle, findings } = ctx
  const shredded: ShreddedRange[] = []
  bundle.shreddings?.forEach((b64, i) => {
    const at = `shreddings[${i}]`
    let signed
    try {
      signed = verifyShreddingStatement(Buffer.from(b64, 'base64'), ctx.keyAt, ctx.verifier)
    } catch (e) {
      if (!(e instanceof ErasureError)) throw e
      findings.fail('shredding-invalid', true, { message: `${at}: ${e.code}: ${e.message}` })
      return
    }
    const s = signed.statement
    if (s.deviceId !== bundle.device.id) {
      findings.fail('shredding-invalid', true, { message: `${at}: statement shreds records of device "${s.deviceId}", not "${bundle.device.id}"` })
      return
    }
    for (const r of s.ranges) {
      let records = 0
      for (const seq of ctx.seqs) if (seq >= r.firstSeq && seq <= r.lastSeq) records++
      shredded.push({ firstSeq: r.firstSeq, lastSeq: r.lastSeq, statement: toHex(signed.hash), subjectRef: toHex(s.subjectRef), reason: s.reason, shreddedAtMs: s.shreddedAtMs, records })
    }
  })
  shredded.sort((a, b) => a.firstSeq - b.firstSeq)
  return shredded
}

function equalHex (a: Uint8Array, b: Uint8Array): boolean {
  return toHex(a) === toHex(b)
}
