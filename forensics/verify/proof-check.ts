/**
 * The per-record inclusion-proof check of `verify`, pure so that it runs where the signatures are
 * checked (signature-worker.ts) or, when there is no pool, on the calling thread, with one answer.
 * Each anchored tree is checked once: an InclusionChecker per (root, size) hashes the interior
 * nodes its records' paths share once, instead of ~14 hashes per record, and compares the proof's
 * hash lines as text with the ones it met (no decoding); each batch's checkpoint, repeated in
 * every proof of the batch, is parsed once (ProofParser).
 */
// Module by module, not the barrel: this also loads in every signature worker (see there).
import { ProofParser, decodeHashLine, type Checkpoint, type EncodedTlogProof } from '../../protocol/checkpoint.js'
import { InclusionChecker, hashLeaf } from '../../protocol/merkle.js'
import { ProtocolError } from '../../protocol/errors.js'
import { fromHex, toHex } from '../../protocol/hash.js'
import type { BundleAnchor } from '../../protocol/bundle.js'

/** What a proof is judged against: the anchor facts (by root hex) and the bundle's chain. */
export interface ProofContext {
  readonly anchors: ReadonlyArray<readonly [string, BundleAnchor]>
  readonly chainId: number
  readonly registry: string
}

/** The record fields a proof's extra lines and the anchor's time range are compared with. */
export interface ProofSubject {
  readonly deviceId: string
  readonly seq: number
  readonly timeMs: number
}

/**
 * A proof's judgement, messages without the `seq N: ` prefix the caller adds. `unanchored`: the
 * root it names has no anchor; `checked`: the inclusion was checked against the anchored size
 * (`inclusion` set when it fails) and the proof's other claims compared with the facts.
 */
export type ProofJudgement =
  | { readonly kind: 'malformed', readonly message: string }
  | { readonly kind: 'unanchored', readonly root: string }
  | {
    readonly kind: 'checked'
    readonly root: string
    readonly inclusion?: { readonly reason: 'root-mismatch' | 'proof-invalid', readonly message: string }
    readonly disagreements: readonly string[]
  }

/** Trees kept per judge: chunks reach a worker in bundle order, so a few recent batches suffice. */
const CHECKERS_KEPT = 8
const NONE: readonly string[] = Object.freeze([])

/** Judges proofs against one context, keeping the recent trees' checkers. */
export class ProofJudge {
  private readonly anchors: Map<string, BundleAnchor>
  private readonly context: ProofContext
  private readonly checkers = new Map<string, InclusionChecker>()
  private readonly parser = new ProofParser()
  /** Root hex of the parser's (shared) checkpoints. */
  private readonly rootHex = new WeakMap<Checkpoint, string>()

  constructor (context: ProofContext) {
    this.context = context
    this.anchors = new Map(context.anchors)
  }

  /** Judges `text` (a C2SP proof) for the record whose envelope is `envelope`. */
  judge (text: string, envelope: Uint8Array, subject: ProofSubject): ProofJudgement {
    let proof: EncodedTlogProof
    try {
      proof = this.parser.parse(text)
    } catch (e) {
      return { kind: 'malformed', message: `malformed proof: ${(e as Error).message}` }
    }
    let root = this.rootHex.get(proof.checkpoint)
    if (root === undefined) {
      root = toHex(proof.checkpoint.rootHash)
      this.rootHex.set(proof.checkpoint, root)
    }
    // The proof names a root; everything else about it — above all the tree size — comes from the
    // anchor facts, never from the proof's own checkpoint.
    const anchor = this.anchors.get(root)
    if (anchor === undefined) return { kind: 'unanchored', root }
    let inclusion: { reason: 'root-mismatch' | 'proof-invalid', message: string } | undefined
    try {
      this.checker(anchor).verifyEncoded(hashLeaf(envelope), proof.index, proof.hashLines, decodeHashLine)
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e
      const reason = e.code === 'MERKLE_ROOT_MISMATCH' ? 'root-mismatch' : 'proof-invalid'
      inclusion = { reason, message: `leaf ${proof.index} of the anchored tree of ${anchor.size}: ${e.message}` }
    }
    const disagreements = this.disagreements(proof, anchor, subject)
    return inclusion === undefined ? { kind: 'checked', root, disagreements } : { kind: 'checked', root, inclusion, disagreements }
  }

  /** The checker of the anchored tree; ProtocolError for a size or root it cannot take. */
  private checker (anchor: BundleAnchor): InclusionChecker {
    const id = `${anchor.root}/${anchor.size}`
    let c = this.checkers.get(id)
    if (c === undefined) {
      c = new InclusionChecker(anchor.size, fromHex(anchor.root))
      if (this.checkers.size >= CHECKERS_KEPT) this.checkers.delete(this.checkers.keys().next().value as string)
      this.checkers.set(id, c)
    }
    return c
  }

  /** What the proof file and the record say that the anchor facts contradict. */
  private disagreements (proof: EncodedTlogProof, anchor: BundleAnchor, r: ProofSubject): readonly string[] {
    let out: string[] | undefined
    const add = (s: string): void => { (out ??= []).push(s) }
    if (proof.checkpoint.size !== anchor.size) add(`the proof's checkpoint says ${proof.checkpoint.size} leaves, the anchor ${anchor.size}`)
    if (r.timeMs < anchor.firstRecordTimeMs || r.timeMs > anchor.lastRecordTimeMs) {
      add(`record time ${r.timeMs} is outside the anchored batch's ${anchor.firstRecordTimeMs}..${anchor.lastRecordTimeMs}`)
    }
    if (proof.extra !== undefined) {
      for (const { key, value } of proof.extra) {
        const want = this.expectedExtra(key, anchor, r)
        if (want !== undefined && want !== value && want.toLowerCase() !== value.toLowerCase()) add(`the proof's ${key} is ${value}, the facts say ${want}`)
      }
    }
    return out ?? NONE
  }

  /** The value the facts give an extra key, undefined for keys they say nothing about (a switch: `constructor` is no key). */
  private expectedExtra (key: string, anchor: BundleAnchor, r: ProofSubject): string | undefined {
    switch (key) {
      case 'device': return r.deviceId
      case 'seq': return String(r.seq)
      case 'chain-id': return String(this.context.chainId)
      case 'contract': return this.context.registry
      case 'batch-id': return anchor.onChainBatchId
      case 'tx-hash': return anchor.txHash
      case 'block': return String(anchor.blockNumber)
      case 'block-hash': return anchor.blockHash
      default: return undefined
    }
  }
}
