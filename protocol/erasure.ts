/**
 * The two signed statements by which data leaves the system on purpose (docs/PROTOCOL.md §12):
 * a gateway's pruning statement (records past retention and anchored, removed by policy) and a
 * device's shredding statement (the salts of a subject's records destroyed). Both let a verifier
 * tell removal by policy from loss; decoding treats the bytes as hostile.
 */
import { decodeCanonical, encodeCanonical, type CborValue } from './cbor.js'
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES, verifySignature, type Signer, type VerifierBackend } from './ed25519.js'
import { ProvenanceError } from './errors.js'
import { HASH_BYTES, equalBytes, sha256 } from './hash.js'
import { DEVICE_ID_PATTERN, LIMITS, concat } from './record.js'

/** Codes of statement decoding and verification. */
export type ErasureErrorCode =
  /** Not a canonical statement envelope: bad CBOR, wrong shape, a bad field. */
  | 'STATEMENT_MALFORMED'
  /** Signed by a key the verifier was not given. */
  | 'STATEMENT_UNKNOWN_KEY'
  /** The signature does not verify under the key. */
  | 'STATEMENT_SIGNATURE_INVALID'

export class ErasureError extends ProvenanceError<ErasureErrorCode> {}

export const PRUNING_FORMAT = 1
export const SHREDDING_FORMAT = 1
/** Prepended to the statement bytes before signing (domain separation from records, acks, policies). */
export const PRUNING_SIGNING_PREFIX: Uint8Array = new TextEncoder().encode('edge-provenance/pruning/v1\0')
export const SHREDDING_SIGNING_PREFIX: Uint8Array = new TextEncoder().encode('edge-provenance/shredding/v1\0')
/** Largest statement envelope decoded. */
export const MAX_STATEMENT_BYTES = 64 * 1024
/** Most batches one pruning statement names, most seq ranges one shredding statement names. */
export const STATEMENT_LIMITS = { batches: 1024, ranges: 1024, reasonBytes: 256 } as const

/**
 * What a gateway removed by its retention policy: one device's records `firstSeq..lastSeq`, all of
 * them in anchored batches sealed before `cutoffMs`.
 */
export interface PruningStatement {
  /** The id under which the gateway's log key is registered on chain. */
  gatewayId: string
  /** The gateway's log key (raw Ed25519 public key) that signs this statement. */
  gatewayKey: Uint8Array
  deviceId: string
  firstSeq: number
  lastSeq: number
  /** Hash of record `lastSeq`: the `prev` of the first record kept, so the chain goes on from here. */
  lastHash: Uint8Array
  /** The anchored batches the pruned records were in (gateway batch id and Merkle root), ascending. */
  batches: Array<{ id: number, root: Uint8Array }>
  /** The retention policy in force, in days. */
  retentionDays: number
  /** Every pruned record was in a batch sealed before this gateway time (Unix ms): prunedAtMs - retention. */
  cutoffMs: number
  /** Gateway time of the pruning, Unix ms. */
  prunedAtMs: number
  /** Why, e.g. `retention`. */
  reason: string
}

/**
 * What a device destroyed: the subject key that salts the records of `ranges`, so that their
 * commitments can no longer be opened. Records, signatures and proofs stay as they were.
 */
export interface ShreddingStatement {
  deviceId: string
  /** Pseudonym of the subject (§12.3): the device can show which subject it was, nobody else can. */
  subjectRef: Uint8Array
  /** Seq ranges (inclusive, ascending, disjoint) whose commitments are salted by the destroyed key. */
  ranges: Array<{ firstSeq: number, lastSeq: number }>
  /** Device time of the shredding, Unix ms: the device key valid then signs. */
  shreddedAtMs: number
  reason: string
}

export interface SignedStatement<S> {
  statement: S
  /** Canonical CBOR of the statement, as signed (after the prefix). */
  bytes: Uint8Array
  signature: Uint8Array
  /** CBOR [bytes, signature]. */
  envelope: Uint8Array
  /** sha256 of the envelope: what a checkpoint extension line commits to and a verdict names. */
  hash: Uint8Array
}

class Problems {
  readonly list: string[] = []
  add (p: string): void { this.list.push(p) }
  id (v: unknown, path: string): void {
    if (typeof v !== 'string' || v.length > LIMITS.deviceIdChars || !DEVICE_ID_PATTERN.test(v)) this.add(`${path}: must match ${DEVICE_ID_PATTERN.source}, at most ${LIMITS.deviceIdChars} characters`)
  }

  uint (v: unknown, path: string): void {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) this.add(`${path}: not a safe integer ≥ 0`)
  }

  bytes (v: unknown, n: number, path: string): void {
    if (!(v instanceof Uint8Array) || v.byteLength !== n) this.add(`${path}: not ${n} bytes`)
  }

  text (v: unknown, path: string): void {
    if (typeof v !== 'string' || Buffer.byteLength(v, 'utf8') > STATEMENT_LIMITS.reasonBytes || /[\uD800-\uDFFF]/u.test(v)) this.add(`${path}: not a well-formed string of at most ${STATEMENT_LIMITS.reasonBytes} bytes`)
  }

  throwIfAny (what: string): void {
    if (this.list.length > 0) throw new ErasureError('STATEMENT_MALFORMED', `invalid ${what}: ${this.list.join('; ')}`)
  }
}

/**
 * Asserts a well-formed pruning statement, collecting the path of every bad field.
 * @throws ErasureError `STATEMENT_MALFORMED`.
 */
export function assertPruningStatement (value: unknown): asserts value is PruningStatement {
  const s = value as Partial<PruningStatement> | null
  if (typeof s !== 'object' || s === null) throw new ErasureError('STATEMENT_MALFORMED', 'pruning statement must be an object')
  const p = new Problems()
  p.id(s.gatewayId, 'gatewayId')
  p.bytes(s.gatewayKey, PUBLIC_KEY_BYTES, 'gatewayKey')
  p.id(s.deviceId, 'deviceId')
  p.uint(s.firstSeq, 'firstSeq')
  p.uint(s.lastSeq, 'lastSeq')
  if (typeof s.firstSeq === 'number' && typeof s.lastSeq === 'number' && s.firstSeq > s.lastSeq) p.add('firstSeq: above lastSeq')
  p.bytes(s.lastHash, HASH_BYTES, 'lastHash')
  if (!Array.isArray(s.batches) || s.batches.length === 0 || s.batches.length > STATEMENT_LIMITS.batches) {
    p.add(`batches: not an array of 1..${STATEMENT_LIMITS.batches}`)
  } else {
    s.batches.forEach((b, i) => {
      p.uint(b?.id, `batches[${i}].id`)
      p.bytes(b?.root, HASH_BYTES, `batches[${i}].root`)
      const before = s.batches?.[i - 1]
      if (before !== undefined && typeof before.id === 'number' && typeof b?.id === 'number' && !(before.id < b.id)) p.add(`batches[${i}].id: not ascending`)
    })
  }
  p.uint(s.retentionDays, 'retentionDays')
  p.uint(s.cutoffMs, 'cutoffMs')
  p.uint(s.prunedAtMs, 'prunedAtMs')
  if (typeof s.cutoffMs === 'number' && typeof s.prunedAtMs === 'number' && s.cutoffMs > s.prunedAtMs) p.add('cutoffMs: after prunedAtMs')
  p.text(s.reason, 'reason')
  p.throwIfAny('pruning statement')
}

/**
 * Asserts a well-formed shredding statement.
 * @throws ErasureError `STATEMENT_MALFORMED`.
 */
export function assertShreddingStatement (value: unknown): asserts value is ShreddingStatement {
  const s = value as Partial<ShreddingStatement> | null
  if (typeof s !== 'object' || s === null) throw new ErasureError('STATEMENT_MALFORMED', 'shredding statement must be an object')
  const p = new Problems()
  p.id(s.deviceId, 'deviceId')
  p.bytes(s.subjectRef, HASH_BYTES, 'subjectRef')
  if (!Array.isArray(s.ranges) || s.ranges.length === 0 || s.ranges.length > STATEMENT_LIMITS.ranges) {
    p.add(`ranges: not an array of 1..${STATEMENT_LIMITS.ranges}`)
  } else {
    s.ranges.forEach((r, i) => {
      p.uint(r?.firstSeq, `ranges[${i}].firstSeq`)
      p.uint(r?.lastSeq, `ranges[${i}].lastSeq`)
      if (typeof r?.firstSeq === 'number' && typeof r.lastSeq === 'number' && r.firstSeq > r.lastSeq) p.add(`ranges[${i}]: firstSeq above lastSeq`)
      const before = s.ranges?.[i - 1]
      // Ascending and disjoint, with a hole between: one set of seqs, one encoding.
      if (before !== undefined && typeof before.lastSeq === 'number' && typeof r?.firstSeq === 'number' && !(before.lastSeq + 1 < r.firstSeq)) p.add(`ranges[${i}]: not after ranges[${i - 1}] with a hole between`)
    })
  }
  p.uint(s.shreddedAtMs, 'shreddedAtMs')
  p.text(s.reason, 'reason')
  p.throwIfAny('shredding statement')
}

/**
 * Canonical CBOR of a pruning statement (§12.1): [1, gatewayId, gatewayKey, deviceId, firstSeq,
 * lastSeq, lastHash, [[batchId, root]…], retentionDays, cutoffMs, prunedAtMs, reason].
 * @throws ErasureError `STATEMENT_MALFORMED`.
 */
export function encodePruningStatement (s: PruningStatement): Uint8Array {
  assertPruningStatement(s)
  return encodeCanonical([PRUNING_FORMAT, s.gatewayId, s.gatewayKey, s.deviceId, s.firstSeq, s.lastSeq, s.lastHash,
    s.batches.map(b => [b.id, b.root]), s.retentionDays, s.cutoffMs, s.prunedAtMs, s.reason])
}

/**
 * Canonical CBOR of a shredding statement (§12.2): [1, deviceId, subjectRef, [[firstSeq, lastSeq]…], shreddedAtMs, reason].
 * @throws ErasureError `STATEMENT_MALFORMED`.
 */
export function encodeShreddingStatement (s: ShreddingStatement): Uint8Array {
  assertShreddingStatement(s)
  return encodeCanonical([SHREDDING_FORMAT, s.deviceId, s.subjectRef, s.ranges.map(r => [r.firstSeq, r.lastSeq]), s.shreddedAtMs, s.reason])
}

function decodePruningBytes (bytes: Uint8Array): PruningStatement {
  const v = decodeOrThrow(bytes, 3)
  if (!Array.isArray(v) || v.length !== 12 || v[0] !== PRUNING_FORMAT) throw new ErasureError('STATEMENT_MALFORMED', `pruning statement must be an array of 12 fields starting with ${PRUNING_FORMAT}`)
  const [, gatewayId, gatewayKey, deviceId, firstSeq, lastSeq, lastHash, batches, retentionDays, cutoffMs, prunedAtMs, reason] = v as CborValue[]
  const s = {
    gatewayId, gatewayKey, deviceId, firstSeq, lastSeq, lastHash,
    batches: Array.isArray(batches) ? (batches as readonly CborValue[]).map(b => { const p = pairOf(b); return p === undefined ? {} : { id: p[0], root: p[1] } }) : batches,
    retentionDays, cutoffMs, prunedAtMs, reason
  }
  assertPruningStatement(s)
  return s
}

function decodeShreddingBytes (bytes: Uint8Array): ShreddingStatement {
  const v = decodeOrThrow(bytes, 3)
  if (!Array.isArray(v) || v.length !== 6 || v[0] !== SHREDDING_FORMAT) throw new ErasureError('STATEMENT_MALFORMED', `shredding statement must be an array of 6 fields starting with ${SHREDDING_FORMAT}`)
  const [, deviceId, subjectRef, ranges, shreddedAtMs, reason] = v as CborValue[]
  const s = {
    deviceId, subjectRef,
    ranges: Array.isArray(ranges) ? (ranges as readonly CborValue[]).map(r => { const p = pairOf(r); return p === undefined ? {} : { firstSeq: p[0], lastSeq: p[1] } }) : ranges,
    shreddedAtMs, reason
  }
  assertShreddingStatement(s)
  return s
}

function sign<S> (statement: S, bytes: Uint8Array, prefix: Uint8Array, signer: Signer): SignedStatement<S> {
  const signature = signer.sign(concat(prefix, bytes))
  const envelope = encodeCanonical([bytes, signature])
  return { statement, bytes, signature, envelope, hash: sha256(envelope) }
}

/**
 * Signs a pruning statement with the gateway's log key; the statement names that key.
 * @throws ErasureError `STATEMENT_MALFORMED`.
 */
export function signPruningStatement (statement: Omit<PruningStatement, 'gatewayKey'>, signer: Signer): SignedStatement<PruningStatement> {
  const bytes = encodePruningStatement({ ...statement, gatewayKey: signer.publicKey })
  return sign(decodePruningBytes(bytes), bytes, PRUNING_SIGNING_PREFIX, signer)
}

/**
 * Signs a shredding statement with the device's record key.
 * @throws ErasureError `STATEMENT_MALFORMED`.
 */
export function signShreddingStatement (statement: ShreddingStatement, signer: Signer): SignedStatement<ShreddingStatement> {
  const bytes = encodeShreddingStatement(statement)
  return sign(decodeShreddingBytes(bytes), bytes, SHREDDING_SIGNING_PREFIX, signer)
}

function openEnvelope (envelope: Uint8Array): { bytes: Uint8Array, signature: Uint8Array } {
  if (!(envelope instanceof Uint8Array)) throw new ErasureError('STATEMENT_MALFORMED', 'statement envelope must be bytes')
  const outer = decodeOrThrow(envelope, 1)
  if (!Array.isArray(outer) || outer.length !== 2 || !(outer[0] instanceof Uint8Array) || !(outer[1] instanceof Uint8Array)) {
    throw new ErasureError('STATEMENT_MALFORMED', 'statement envelope must be [statement bytes, signature]')
  }
  const [bytes, signature] = outer as [Uint8Array, Uint8Array]
  if (signature.byteLength !== SIGNATURE_BYTES) throw new ErasureError('STATEMENT_MALFORMED', `signature must be ${SIGNATURE_BYTES} bytes`)
  return { bytes, signature }
}

/**
 * Parses a pruning statement envelope and checks that the key it names is one of `trustedKeys`
 * (the gateways' log keys) and signed it.
 * @throws ErasureError `STATEMENT_MALFORMED`, `STATEMENT_UNKNOWN_KEY`, `STATEMENT_SIGNATURE_INVALID`.
 */
export function verifyPruningStatement (envelope: Uint8Array, trustedKeys: readonly Uint8Array[], backend: VerifierBackend = 'node'): SignedStatement<PruningStatement> {
  const { bytes, signature } = openEnvelope(envelope)
  const statement = decodePruningBytes(bytes)
  if (!trustedKeys.some(k => equalBytes(k, statement.gatewayKey))) throw new ErasureError('STATEMENT_UNKNOWN_KEY', `pruning statement signed by gateway "${statement.gatewayId}" with a key that is not trusted`)
  if (!verifySignature(signature, concat(PRUNING_SIGNING_PREFIX, bytes), statement.gatewayKey, backend)) {
    throw new ErasureError('STATEMENT_SIGNATURE_INVALID', `pruning statement signature does not verify under the key of gateway "${statement.gatewayId}"`)
  }
  return { statement, bytes, signature, envelope: envelope.slice(), hash: sha256(envelope) }
}

/**
 * Parses a shredding statement envelope and checks its signature under `publicKey` (the device
 * key valid at its shreddedAtMs, which the caller looks up from the statement: see decode first).
 * @throws ErasureError `STATEMENT_MALFORMED`, `STATEMENT_SIGNATURE_INVALID`.
 */
export function verifyShreddingStatement (envelope: Uint8Array, keyAt: (deviceId: string, timeMs: number) => Uint8Array | undefined, backend: VerifierBackend = 'node'): SignedStatement<ShreddingStatement> {
  const { bytes, signature } = openEnvelope(envelope)
  const statement = decodeShreddingBytes(bytes)
  const key = keyAt(statement.deviceId, statement.shreddedAtMs)
  if (key === undefined) throw new ErasureError('STATEMENT_UNKNOWN_KEY', `no key of device "${statement.deviceId}" is valid at ${statement.shreddedAtMs}`)
  if (!verifySignature(signature, concat(SHREDDING_SIGNING_PREFIX, bytes), key, backend)) {
    throw new ErasureError('STATEMENT_SIGNATURE_INVALID', `shredding statement signature does not verify under the key of device "${statement.deviceId}"`)
  }
  return { statement, bytes, signature, envelope: envelope.slice(), hash: sha256(envelope) }
}

/** The checkpoint extension line that commits a batch to a pruning statement (§12.1): `pruning <hex hash>`. */
export function pruningExtensionLine (statementHash: Uint8Array): string {
  if (!(statementHash instanceof Uint8Array) || statementHash.byteLength !== HASH_BYTES) throw new RangeError('statement hash must be 32 bytes')
  return `pruning ${Buffer.from(statementHash).toString('hex')}`
}

/** A CBOR array of exactly two items, or undefined. */
function pairOf (v: CborValue): readonly [CborValue, CborValue] | undefined {
  return Array.isArray(v) && v.length === 2 ? v as unknown as readonly [CborValue, CborValue] : undefined
}

function decodeOrThrow (bytes: Uint8Array, maxDepth: number): CborValue {
  try {
    return decodeCanonical(bytes, { maxBytes: MAX_STATEMENT_BYTES, maxDepth })
  } catch (cause) {
    throw new ErasureError('STATEMENT_MALFORMED', `statement is not canonical CBOR: ${(cause as Error).message}`, { cause })
  }
}
