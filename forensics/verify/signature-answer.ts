/**
 * What a signature batch gets as its answer: each Ed25519 signature verified with the backend it
 * names (node:crypto by default, noble on request) and, when the batch carries a proof context,
 * each record's inclusion proof judged (proof-check.ts). The same code runs in the signature
 * workers (signature-worker.ts) and, for the batches the calling thread takes on itself while it
 * would otherwise wait for them (signature-pool.ts `helpOnce`), on the calling thread. The key
 * checks and imports are done once per key and kept (protocol/ed25519.ts caches them); each
 * anchored tree's shared nodes once.
 */
// The protocol modules it needs, not the barrel: a worker starts for every verification, and
// loading all of protocol/ (CBOR, records, bundles…) was most of its start-up.
import { keyVerifier, verifySignature } from '../../protocol/ed25519.js'
import { ProofJudge, type ProofContext, type ProofJudgement } from './proof-check.js'
import type { ProofResults, SignatureBatch, SignatureBatchResult } from './signature-pool.js'

// One judge per context: a verification sends the same context object with every batch, and a
// worker lives for one verification, so keeping the last one keeps its trees' checkers warm.
let judge: { key: string, judge: ProofJudge } | undefined

function judgeFor (context: ProofContext): ProofJudge {
  const key = JSON.stringify(context)
  if (judge?.key !== key) judge = { key, judge: new ProofJudge(context) }
  return judge.judge
}

function judgeProofs (batch: SignatureBatch, context: ProofContext): ProofResults {
  const j = judgeFor(context)
  const { count, proofKinds, proofTexts, proofOffsets, otherProofs, envelopes, envelopeOffsets, seqs, times, deviceId } = batch
  const texts = Buffer.from(proofTexts.buffer, proofTexts.byteOffset, proofTexts.byteLength)
  const codes = new Uint8Array(count)
  const rootIndex = new Int32Array(count).fill(-1)
  const roots: string[] = []
  const rootIds = new Map<string, number>()
  const details = new Map<number, ProofJudgement>()
  for (let i = 0; i < count; i++) {
    const kind = proofKinds[i]
    if (kind !== 1 && kind !== 2) continue
    // Each text made from its ASCII bytes when its turn comes, and dropped after (latin1 of ASCII
    // bytes gives back the very code units that were written).
    const text = kind === 1 ? texts.toString('latin1', proofOffsets[i], proofOffsets[i + 1]) : otherProofs.get(i) as string
    const envelope = envelopes.subarray(envelopeOffsets[i], envelopeOffsets[i + 1])
    const judgement = j.judge(text, envelope, { deviceId, seq: seqs[i] as number, timeMs: times[i] as number })
    if (judgement.kind === 'checked' && judgement.inclusion === undefined && judgement.disagreements.length === 0) {
      let r = rootIds.get(judgement.root)
      if (r === undefined) {
        r = roots.length
        roots.push(judgement.root)
        rootIds.set(judgement.root, r)
      }
      codes[i] = 1
      rootIndex[i] = r
    } else {
      codes[i] = 2
      details.set(i, judgement)
    }
  }
  return { codes, rootIndex, roots, details }
}

/** The answer to one batch: a flag per signature, and the proof judgements when it asks for them. */
export function answerBatch (batch: SignatureBatch): SignatureBatchResult {
  const { count, keyIndex, keys, signatures, messages, offsets, backend } = batch
  const valid = new Uint8Array(count)
  // node:crypto: each key checked and imported once per batch (keyVerifier answers as verifySignature does).
  const verifiers = backend === 'node' ? keys.map(keyVerifier) : undefined
  for (let i = 0; i < count; i++) {
    const k = keyIndex[i] as number
    const signature = signatures.subarray(i * 64, i * 64 + 64)
    const message = messages.subarray(offsets[i], offsets[i + 1])
    const ok = verifiers !== undefined ? (verifiers[k] as (s: Uint8Array, m: Uint8Array) => boolean)(signature, message) : verifySignature(signature, message, keys[k] as Uint8Array, backend)
    valid[i] = ok ? 1 : 0
  }
  const proofs = batch.proofContext === undefined ? undefined : judgeProofs(batch, batch.proofContext)
  return proofs === undefined ? { id: batch.id, valid } : { id: batch.id, valid, proofs }
}
