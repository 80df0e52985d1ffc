/**
 * Provenance records: their types, their canonical CBOR form, and the signed envelope.
 * A record is a CBOR array in fixed field order; the envelope is [record bytes, signature] and
 * its SHA-256 is the record hash that the next record's `prev` and the Merkle leaf commit to.
 * Every byte is specified in docs/PROTOCOL.md; decoding treats its input as hostile.
 */
import { decodeArrayPrefix, decodeCanonical, encodeCanonicalDirect, type CborValue } from './cbor.js'
import { ProtocolError } from './errors.js'
import { HASH_BYTES, sha256 } from './hash.js'
import { PUBLIC_KEY_BYTES, SIGNATURE_BYTES, verifySignature, type Signer, type VerifierBackend } from './ed25519.js'

export const RECORD_VERSION = 1
/** Prepended to the record bytes before signing (domain separation). */
export const RECORD_SIGNING_PREFIX: Uint8Array = new TextEncoder().encode('edge-provenance/record/v1\0')

/** Record kinds and their wire codes. */
export const RECORD_KINDS = {
  boot: 0,
  'model-load': 1,
  inference: 2,
  gap: 3,
  'key-rotation': 4,
  shutdown: 5,
  policy: 6,
  oversight: 8,
  session: 9,
  'data-capture': 10
} as const
export type RecordKind = keyof typeof RECORD_KINDS
// By wire code, not by position: codes are assigned per issue and need not be contiguous.
const KIND_BY_CODE = new Map<number, RecordKind>(Object.entries(RECORD_KINDS).map(([k, c]) => [c, k as RecordKind]))

/** How the device's model policy judged a model when it loaded it. */
export const POLICY_VERDICTS = { unchecked: 0, approved: 1, unapproved: 2 } as const
export type PolicyVerdict = keyof typeof POLICY_VERDICTS
const VERDICT_BY_CODE = Object.keys(POLICY_VERDICTS) as PolicyVerdict[]

/** A named tensor's commitment (see tensor.ts). */
export interface TensorCommitment { name: string, hash: Uint8Array }

export interface BootBody {
  kind: 'boot'
  agentVersion: string
  profile: string
  /**
   * On a device with a hardware identity (docs/PROTOCOL.md §13): the identity key's certification of
   * the boot's record key (canonical bytes, identity-key.ts) and its ECDSA P-256 signature (r ‖ s).
   * Absent with a file key: the boot record then has exactly the two fields it always had.
   */
  certification?: { bytes: Uint8Array, signature: Uint8Array }
}
export interface ModelLoadBody {
  kind: 'model-load'
  /** SHA-256 of the model file bytes. */
  modelHash: Uint8Array
  manifestHash: Uint8Array
  graphHash: Uint8Array
  name: string
  sizeBytes: number
  policy: PolicyVerdict
  /** Execution providers the session actually uses, in order. */
  providers: string[]
}
export interface InferenceBody {
  kind: 'inference'
  modelHash: Uint8Array
  inputs: TensorCommitment[]
  outputs: TensorCommitment[]
  latencyUs: number
  /** A small, optional summary of the decision, e.g. a class label. */
  decision: string | null
}
export interface GapBody {
  kind: 'gap'
  /** First and last seq of the records the device had to drop. */
  firstSeq: number
  lastSeq: number
  /** Hash of the record just before the dropped range (seq `firstSeq - 1`; zeros when firstSeq is 0). */
  beforeHash: Uint8Array
  /** Hash of the last dropped record (seq `lastSeq`): the `prev` of the record after the range. */
  lastHash: Uint8Array
  reason: string
}
export interface KeyRotationBody { kind: 'key-rotation', newPublicKey: Uint8Array, validFromMs: number }
export interface ShutdownBody { kind: 'shutdown', reason: string }
/** Mode codes of a policy record: the model policy's own (protocol/policy.ts POLICY_MODES). */
export const POLICY_RECORD_MODES = { enforce: 0, audit: 1 } as const
const POLICY_MODE_BY_CODE = Object.keys(POLICY_RECORD_MODES) as Array<keyof typeof POLICY_RECORD_MODES>
/**
 * The model policy in force from this record on (written at start when a stored policy is in
 * force, and whenever a newer one is accepted): which signed allowlist judged the model-load
 * records that follow.
 */
export interface PolicyBody {
  kind: 'policy'
  version: number
  mode: keyof typeof POLICY_RECORD_MODES
  fleetId: string
  /** SHA-256 of the policy bytes the fleet admin signed (the envelope's first element). */
  policyHash: Uint8Array
}
/** What a person reviewing a decision concluded (EU AI Act Art. 14): wire codes of an oversight record. */
export const OVERSIGHT_VERDICTS = { confirmed: 0, overridden: 1, escalated: 2 } as const
export type OversightVerdict = keyof typeof OVERSIGHT_VERDICTS
const OVERSIGHT_VERDICT_BY_CODE = Object.keys(OVERSIGHT_VERDICTS) as OversightVerdict[]
/**
 * A person's review of one decision (an inference record), written by the reviewing station: a
 * device-like identity whose key is registered like a device's, so the record's deviceId is the
 * station and its signature says which station. The decision is named by device, seq and hash:
 * device and seq find it, the hash pins its exact bytes.
 */
export interface OversightBody {
  kind: 'oversight'
  /** The person who reviewed, as the deployer registers its reviewers (an opaque id, not a name). */
  reviewer: string
  decisionDeviceId: string
  decisionSeq: number
  /** Hash of the decision record's envelope. */
  decisionHash: Uint8Array
  verdict: OversightVerdict
  reason: string
}
/** Start or end of a use (EU AI Act Art. 12(3)(a)): wire codes of a session record's phase. */
export const SESSION_PHASES = { start: 0, end: 1 } as const
export type SessionPhase = keyof typeof SESSION_PHASES
const SESSION_PHASE_BY_CODE = Object.keys(SESSION_PHASES) as SessionPhase[]
/**
 * Start or end of a period of use of the system on this device; the inference records between a
 * start and its end belong to the use. Names the reference database the model's results are
 * checked against (Art. 12(3)(b)) by a label and the SHA-256 of its bytes, or none.
 */
export interface SessionBody {
  kind: 'session'
  phase: SessionPhase
  /** Chosen by the operator or application; a start and its end carry the same id. */
  sessionId: string
  /** A label of the reference database ('' when none). */
  referenceName: string
  /** SHA-256 of the reference database's bytes; null when the use consults none. */
  referenceHash: Uint8Array | null
}
/**
 * A sample the device keeps to feed training (kind 10): a salted commitment to its bytes, so the
 * record proves which device held which data when, without letting a holder of the record confirm
 * a guessed sample; disclosing the record's salt with the sample (or its SHA-256) opens it.
 */
export interface DataCaptureBody {
  kind: 'data-capture'
  /** SHA-256(DATA_CAPTURE_DOMAIN ‖ salt(seq) ‖ SHA-256(sample bytes)): see commitSample. */
  commitment: Uint8Array
  /** Bytes of the sample. */
  sizeBytes: number
  /** The dataset (id or name) the sample is kept for. */
  dataset: string
  /** The sample's label or purpose, or null. */
  label: string | null
  /** When the sample was captured (device time, Unix ms); the record's timeMs is when it was recorded. */
  capturedAtMs: number
}
export type RecordBody = BootBody | ModelLoadBody | InferenceBody | GapBody | KeyRotationBody | ShutdownBody | PolicyBody | OversightBody | SessionBody | DataCaptureBody

export interface ProvenanceRecord<B extends RecordBody = RecordBody> {
  deviceId: string
  /** Boot counter: increments at every agent start. */
  boot: number
  /** Sequence number: starts at 0 and never repeats, across boots. */
  seq: number
  /** Device time, Unix milliseconds. */
  timeMs: number
  /** Hash of the previous record's envelope; 32 zero bytes for seq 0. */
  prev: Uint8Array
  body: B
}

/** A record with its canonical bytes, signature, envelope and hash. */
export interface SignedRecord<B extends RecordBody = RecordBody> {
  record: ProvenanceRecord<B>
  recordBytes: Uint8Array
  signature: Uint8Array
  envelope: Uint8Array
  hash: Uint8Array
}

// Sizes of a boot record's certification fields (identity.ts holds the format itself).
const MAX_CERTIFICATION_BYTES = 512
const CERTIFICATION_SIGNATURE_BYTES = 64

export const LIMITS = {
  deviceIdChars: 128,
  textBytes: 256,
  decisionBytes: 1024,
  tensors: 256,
  providers: 16,
  envelopeBytes: 64 * 1024
} as const

/** Device ids are safe as one MQTT topic level and as a file name. */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/

function bodyToCbor (body: RecordBody): CborValue[] {
  switch (body.kind) {
    case 'boot': return body.certification === undefined
      ? [body.agentVersion, body.profile]
      : [body.agentVersion, body.profile, body.certification.bytes, body.certification.signature]
    case 'model-load': return [body.modelHash, body.manifestHash, body.graphHash, body.name, body.sizeBytes, POLICY_VERDICTS[body.policy], body.providers]
    case 'inference': return [body.modelHash, body.inputs.map(t => [t.name, t.hash]), body.outputs.map(t => [t.name, t.hash]), body.latencyUs, body.decision]
    case 'gap': return [body.firstSeq, body.lastSeq, body.beforeHash, body.lastHash, body.reason]
    case 'key-rotation': return [body.newPublicKey, body.validFromMs]
    case 'shutdown': return [body.reason]
    case 'policy': return [body.version, POLICY_RECORD_MODES[body.mode], body.fleetId, body.policyHash]
    case 'oversight': return [body.reviewer, body.decisionDeviceId, body.decisionSeq, body.decisionHash, OVERSIGHT_VERDICTS[body.verdict], body.reason]
    case 'session': return [SESSION_PHASES[body.phase], body.sessionId, body.referenceName, body.referenceHash]
    case 'data-capture': return [body.commitment, body.sizeBytes, body.dataset, body.label, body.capturedAtMs]
  }
}

/**
 * Canonical CBOR bytes of a record (docs/PROTOCOL.md §Record).
 * @throws ProtocolError `RECORD_INVALID` naming every bad field.
 */
export function encodeRecord (record: ProvenanceRecord): Uint8Array {
  assertRecord(record)
  return encodeCanonicalDirect([
    RECORD_VERSION, RECORD_KINDS[record.body.kind], record.deviceId, record.boot, record.seq,
    record.timeMs, record.prev, bodyToCbor(record.body)
  ])
}

/**
 * Signs a record: the signature covers RECORD_SIGNING_PREFIX ‖ record bytes.
 * @throws ProtocolError `RECORD_INVALID`.
 */
export function signRecord<B extends RecordBody> (record: ProvenanceRecord<B>, signer: Signer): SignedRecord<B> {
  const recordBytes = encodeRecord(record)
  const signature = signer.sign(concat(RECORD_SIGNING_PREFIX, recordBytes))
  const envelope = encodeEnvelope(recordBytes, signature)
  return { record, recordBytes, signature, envelope, hash: sha256(envelope) }
}

/**
 * The envelope [record bytes, signature] in canonical CBOR, written directly: it is built for
 * every record on the device's hot path, and its layout is fixed (docs/PROTOCOL.md §Envelope).
 */
function encodeEnvelope (recordBytes: Uint8Array, signature: Uint8Array): Uint8Array {
  const n = recordBytes.byteLength
  // Byte-string head in shortest form (RFC 8949 §4.2.1): records are at most LIMITS.envelopeBytes.
  const head = n < 24 ? [0x40 | n] : n < 0x100 ? [0x58, n] : n < 0x10000 ? [0x59, n >> 8, n & 0xff] : [0x5a, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]
  const out = new Uint8Array(1 + head.length + n + 2 + signature.byteLength)
  out[0] = 0x82
  out.set(head, 1)
  out.set(recordBytes, 1 + head.length)
  let o = 1 + head.length + n
  out[o++] = 0x58
  out[o++] = signature.byteLength
  out.set(signature, o)
  return out
}

/** True when the envelope's signature verifies under `publicKey`. */
export function verifyRecordSignature (signed: SignedRecord, publicKey: Uint8Array, backend: VerifierBackend = 'node'): boolean {
  return verifySignature(signed.signature, concat(RECORD_SIGNING_PREFIX, signed.recordBytes), publicKey, backend)
}

/**
 * Parses an envelope from disk or network. Checks structure and canonical form, not the
 * signature (that needs the device key: see chain.ts).
 * @throws ProtocolError `CBOR_*` for bad encoding, `RECORD_INVALID` for a bad record.
 */
export function decodeEnvelope (envelope: Uint8Array): SignedRecord {
  // One private copy of the envelope, and every byte string of the result (record bytes,
  // signature, the record's hashes) a view of it: one allocation per record instead of ~10, which
  // was most of what verifying a bundle allocated. The copy comes from Buffer's pool, so its
  // ArrayBuffer may hold other small Buffers too: never transfer a decoded field's `.buffer`.
  // Too large or not bytes: decodeCanonical refuses it before anything is copied.
  const own = envelope instanceof Uint8Array && envelope.byteLength <= LIMITS.envelopeBytes ? copyBytes(envelope) : envelope
  const outer = decodeCanonical(own, { maxBytes: LIMITS.envelopeBytes, maxDepth: 1, viewsOfInput: true })
  if (!Array.isArray(outer) || outer.length !== 2 || !(outer[0] instanceof Uint8Array) || !(outer[1] instanceof Uint8Array)) {
    throw new ProtocolError('RECORD_INVALID', 'envelope must be [record bytes, signature]')
  }
  const [recordBytes, signature] = outer as [Uint8Array, Uint8Array]
  if (signature.byteLength !== SIGNATURE_BYTES) throw new ProtocolError('RECORD_INVALID', `signature must be ${SIGNATURE_BYTES} bytes`)
  const record = decodeRecordBytes(recordBytes, true)
  return { record, recordBytes, signature, envelope: own, hash: sha256(own) }
}

/** An envelope's parts and its record's header fields, as {@link peekEnvelope} reads them. */
export interface EnvelopeHead {
  /** Views of the envelope peeked, not copies. */
  readonly recordBytes: Uint8Array
  readonly signature: Uint8Array
  readonly deviceId: string
  readonly seq: number
  readonly timeMs: number
}

/**
 * The record bytes, signature, device, seq and time of an envelope, read without decoding the
 * record's body: a verifier sends a record's signature and proof off to be checked before it walks
 * to the record and decodes it. For every envelope {@link decodeEnvelope} accepts, the values are
 * the ones it gives (the same strict reader); for others it may return anything or undefined, so
 * what it says must be used only for records that then decode. Never throws.
 */
export function peekEnvelope (envelope: Uint8Array): EnvelopeHead | undefined {
  let outer: CborValue
  try {
    outer = decodeCanonical(envelope, { maxBytes: LIMITS.envelopeBytes, maxDepth: 1, viewsOfInput: true })
  } catch {
    return undefined
  }
  if (!Array.isArray(outer) || outer.length !== 2 || !(outer[0] instanceof Uint8Array) || !(outer[1] instanceof Uint8Array)) return undefined
  const [recordBytes, signature] = outer as [Uint8Array, Uint8Array]
  // [version, kind, deviceId, boot, seq, timeMs, …]
  const head = decodeArrayPrefix(recordBytes, 6, { maxBytes: LIMITS.envelopeBytes, viewsOfInput: true })
  const [, , deviceId, , seq, timeMs] = head ?? []
  if (typeof deviceId !== 'string' || typeof seq !== 'number' || typeof timeMs !== 'number') return undefined
  return { recordBytes, signature, deviceId, seq, timeMs }
}

/**
 * {@link decodeEnvelope} of an envelope that {@link peekEnvelope} read (`head`: peeked from this
 * very envelope, whose bytes have not changed since): the same result and the same refusals, in
 * the same order, without reading the envelope's outer array a second time — peekEnvelope read it
 * with the same strict reader and limits, and accepted it. A head that is not a view of
 * `envelope` falls back to decodeEnvelope. The gateway peeks every record it receives (to send its
 * signature ahead) and decodes it at its turn.
 * @throws ProtocolError as decodeEnvelope.
 */
export function decodePeekedEnvelope (envelope: Uint8Array, head: EnvelopeHead): SignedRecord {
  const r = head.recordBytes
  const s = head.signature
  const recordStart = r.byteOffset - envelope.byteOffset
  const signatureStart = s.byteOffset - envelope.byteOffset
  if (!(envelope instanceof Uint8Array) || r.buffer !== envelope.buffer || s.buffer !== envelope.buffer ||
    recordStart < 0 || signatureStart < recordStart + r.byteLength || signatureStart + s.byteLength > envelope.byteLength) {
    return decodeEnvelope(envelope)
  }
  if (s.byteLength !== SIGNATURE_BYTES) throw new ProtocolError('RECORD_INVALID', `signature must be ${SIGNATURE_BYTES} bytes`)
  // The private copy decodeEnvelope makes, its parts views of it at the offsets peeked.
  const own = copyBytes(envelope)
  const recordBytes = own.subarray(recordStart, recordStart + r.byteLength)
  const signature = own.subarray(signatureStart, signatureStart + SIGNATURE_BYTES)
  const record = decodeRecordBytes(recordBytes, true)
  return { record, recordBytes, signature, envelope: own, hash: sha256(own) }
}

/** An independent copy, also of a Buffer (whose own slice() is a view). */
function copyBytes (bytes: Uint8Array): Uint8Array {
  // From Buffer's shared pool (records are far below its 4 KiB cut-off): a fresh ArrayBuffer per
  // record costs more than the decoding. A plain view, so that the decoder reads it as such.
  const pooled = Buffer.allocUnsafe(bytes.byteLength)
  const out = new Uint8Array(pooled.buffer, pooled.byteOffset, pooled.byteLength)
  out.set(bytes)
  return out
}

/**
 * Parses canonical record bytes.
 * @throws ProtocolError `CBOR_*` or `RECORD_INVALID`.
 */
export function decodeRecord (bytes: Uint8Array): ProvenanceRecord {
  return decodeRecordBytes(bytes, false)
}

/** decodeRecord; with `views`, the record's byte strings are views of `bytes` (which the caller owns). */
function decodeRecordBytes (bytes: Uint8Array, views: boolean): ProvenanceRecord {
  const value = decodeCanonical(bytes, { maxBytes: LIMITS.envelopeBytes, maxDepth: 4, viewsOfInput: views })
  const problems: string[] = []
  if (!Array.isArray(value) || value.length !== 8) throw new ProtocolError('RECORD_INVALID', 'record must be an array of 8 fields')
  const [version, kindCode, deviceId, boot, seq, timeMs, prev, body] = value as CborValue[]
  if (version !== RECORD_VERSION) throw new ProtocolError('RECORD_INVALID', `unsupported record version ${String(version)}`)
  const kind = typeof kindCode === 'number' ? KIND_BY_CODE.get(kindCode) : undefined
  if (kind === undefined) throw new ProtocolError('RECORD_INVALID', `unknown record kind ${String(kindCode)}`)
  if (!Array.isArray(body)) throw new ProtocolError('RECORD_INVALID', 'body must be an array')
  const record = { deviceId, boot, seq, timeMs, prev, body: bodyFromCbor(kind, body, problems) } as ProvenanceRecord
  assertRecord(record, problems)
  return record
}

// Module-level, not per decoded record: a gateway decodes every record it receives.
const BODY_ARITY: Readonly<Record<RecordKind, number>> = { boot: 2, 'model-load': 7, inference: 5, gap: 5, 'key-rotation': 2, shutdown: 1, policy: 4, oversight: 6, session: 4, 'data-capture': 5 }

function commitmentsFromCbor (v: CborValue | undefined, path: string, problems: string[]): TensorCommitment[] {
  if (!Array.isArray(v)) { problems.push(`${path}: not an array`); return [] }
  const out: TensorCommitment[] = new Array<TensorCommitment>(v.length)
  for (let i = 0; i < v.length; i++) {
    const t = v[i] as CborValue
    if (!Array.isArray(t) || t.length !== 2) { problems.push(`${path}[${i}]: not a [name, hash] pair`); out[i] = { name: '', hash: new Uint8Array() } } else out[i] = { name: t[0] as string, hash: t[1] as Uint8Array }
  }
  return out
}

function bodyFromCbor (kind: RecordKind, f: readonly CborValue[], problems: string[]): RecordBody {
  if (kind === 'boot' && f.length === 4) {
    return { kind, agentVersion: f[0] as string, profile: f[1] as string, certification: { bytes: f[2] as Uint8Array, signature: f[3] as Uint8Array } }
  }
  if (f.length !== BODY_ARITY[kind]) problems.push(`body: ${kind} body has ${f.length} fields, expected ${BODY_ARITY[kind]}`)
  switch (kind) {
    case 'boot': return { kind, agentVersion: f[0] as string, profile: f[1] as string }
    case 'model-load': {
      const policy = typeof f[5] === 'number' ? VERDICT_BY_CODE[f[5]] : undefined
      if (policy === undefined) problems.push('body.policy: unknown verdict')
      return {
        kind, modelHash: f[0] as Uint8Array, manifestHash: f[1] as Uint8Array, graphHash: f[2] as Uint8Array,
        name: f[3] as string, sizeBytes: f[4] as number, policy: policy ?? 'unchecked', providers: f[6] as string[]
      }
    }
    case 'inference': return {
      kind, modelHash: f[0] as Uint8Array, inputs: commitmentsFromCbor(f[1], 'body.inputs', problems), outputs: commitmentsFromCbor(f[2], 'body.outputs', problems),
      latencyUs: f[3] as number, decision: f[4] as string | null
    }
    case 'gap': return { kind, firstSeq: f[0] as number, lastSeq: f[1] as number, beforeHash: f[2] as Uint8Array, lastHash: f[3] as Uint8Array, reason: f[4] as string }
    case 'key-rotation': return { kind, newPublicKey: f[0] as Uint8Array, validFromMs: f[1] as number }
    case 'shutdown': return { kind, reason: f[0] as string }
    case 'policy': {
      const mode = typeof f[1] === 'number' ? POLICY_MODE_BY_CODE[f[1]] : undefined
      if (mode === undefined) problems.push('body.mode: unknown policy mode')
      return { kind, version: f[0] as number, mode: mode ?? 'enforce', fleetId: f[2] as string, policyHash: f[3] as Uint8Array }
    }
    case 'oversight': {
      const verdict = typeof f[4] === 'number' ? OVERSIGHT_VERDICT_BY_CODE[f[4]] : undefined
      if (verdict === undefined) problems.push('body.verdict: unknown oversight verdict')
      return {
        kind, reviewer: f[0] as string, decisionDeviceId: f[1] as string, decisionSeq: f[2] as number, decisionHash: f[3] as Uint8Array,
        verdict: verdict ?? 'confirmed', reason: f[5] as string
      }
    }
    case 'session': {
      const phase = typeof f[0] === 'number' ? SESSION_PHASE_BY_CODE[f[0]] : undefined
      if (phase === undefined) problems.push('body.phase: unknown session phase')
      return { kind, phase: phase ?? 'start', sessionId: f[1] as string, referenceName: f[2] as string, referenceHash: f[3] as Uint8Array | null }
    }
    case 'data-capture': return {
      kind, commitment: f[0] as Uint8Array, sizeBytes: f[1] as number, dataset: f[2] as string, label: f[3] as string | null, capturedAtMs: f[4] as number
    }
  }
}

// Text with an unpaired surrogate has no UTF-8 encoding (see cbor.ts).
const LONE_SURROGATE = /[\uD800-\uDFFF]/u

/**
 * Asserts that `value` is a well-formed record, collecting the path of every bad field.
 * @throws ProtocolError `RECORD_INVALID`.
 */
export function assertRecord (value: unknown, problems: string[] = []): asserts value is ProvenanceRecord {
  const r = value as Partial<ProvenanceRecord> | null
  if (typeof r !== 'object' || r === null) throw new ProtocolError('RECORD_INVALID', 'record must be an object')
  if (typeof r.deviceId !== 'string' || r.deviceId.length > LIMITS.deviceIdChars || !DEVICE_ID_PATTERN.test(r.deviceId)) {
    problems.push(`deviceId: must match ${DEVICE_ID_PATTERN.source}, at most ${LIMITS.deviceIdChars} characters`)
  }
  checkUint(problems, r.boot, 'boot')
  checkUint(problems, r.seq, 'seq')
  checkUint(problems, r.timeMs, 'timeMs')
  checkBytes(problems, r.prev, 'prev')
  const b = r.body as Partial<RecordBody> | undefined
  if (typeof b !== 'object' || b === null || !(typeof b.kind === 'string' && b.kind in RECORD_KINDS)) {
    problems.push('body.kind: unknown')
  } else {
    (BODY_CHECKS[b.kind] as BodyCheck<RecordBody['kind']>)(problems, b, r.seq)
  }
  if (problems.length > 0) throw new ProtocolError('RECORD_INVALID', `invalid record: ${problems.join('; ')}`)
}

type BodyCheck<K extends RecordBody['kind']> = (problems: string[], b: Partial<Extract<RecordBody, { kind: K }>>, seq: unknown) => void

// The body checks of assertRecord, one per kind; `seq` is the record's own (a gap lies below it).
const BODY_CHECKS: { [K in RecordBody['kind']]: BodyCheck<K> } = {
  boot: (problems, b) => {
    checkText(problems, b.agentVersion, 'body.agentVersion'); checkText(problems, b.profile, 'body.profile')
    if (b.certification !== undefined) {
      // Only the form here; what it certifies is the chain's to check (it needs the registry).
      const c = b.certification as Partial<NonNullable<BootBody['certification']>> | null
      if (typeof c !== 'object' || c === null || !(c.bytes instanceof Uint8Array) || c.bytes.byteLength === 0 || c.bytes.byteLength > MAX_CERTIFICATION_BYTES) {
        problems.push(`body.certification: not 1..${MAX_CERTIFICATION_BYTES} bytes`)
      }
      if (typeof c !== 'object' || c === null || !(c.signature instanceof Uint8Array) || c.signature.byteLength !== CERTIFICATION_SIGNATURE_BYTES) {
        problems.push(`body.certificationSignature: not ${CERTIFICATION_SIGNATURE_BYTES} bytes`)
      }
    }
  },
  'model-load': (problems, b) => {
    checkBytes(problems, b.modelHash, 'body.modelHash'); checkBytes(problems, b.manifestHash, 'body.manifestHash'); checkBytes(problems, b.graphHash, 'body.graphHash')
    checkText(problems, b.name, 'body.name'); checkUint(problems, b.sizeBytes, 'body.sizeBytes')
    if (!(typeof b.policy === 'string' && b.policy in POLICY_VERDICTS)) problems.push('body.policy: unknown verdict')
    if (!Array.isArray(b.providers) || b.providers.length > LIMITS.providers) problems.push(`body.providers: not an array of at most ${LIMITS.providers}`)
    else b.providers.forEach((p, i) => checkText(problems, p, `body.providers[${i}]`))
  },
  inference: (problems, b) => {
    checkBytes(problems, b.modelHash, 'body.modelHash')
    for (const side of ['inputs', 'outputs'] as const) {
      const list = b[side]
      if (!Array.isArray(list) || list.length > LIMITS.tensors) { problems.push(`body.${side}: not an array of at most ${LIMITS.tensors}`); continue }
      // Each path built only when its check fails: built for every commitment, they were the
      // largest part of a decoded record's garbage on a gateway.
      for (let i = 0; i < list.length; i++) {
        const t = list[i]
        if (!textOk(t?.name)) checkText(problems, t?.name, `body.${side}[${i}].name`)
        if (!bytesOk(t?.hash)) checkBytes(problems, t?.hash, `body.${side}[${i}].hash`)
      }
      // One order, one meaning (docs/PROTOCOL.md §2): names strictly ascending by UTF-16 code
      // units, as JavaScript's default sort gives them, so each name appears once.
      const at = list.findIndex((t, i) => i > 0 && !(typeof t?.name === 'string' && typeof list[i - 1]?.name === 'string' && (list[i - 1] as TensorCommitment).name < t.name))
      if (at !== -1) problems.push(`body.${side}[${at}].name: names must be unique and in ascending order`)
    }
    checkUint(problems, b.latencyUs, 'body.latencyUs')
    if (b.decision !== null) checkText(problems, b.decision, 'body.decision', LIMITS.decisionBytes)
  },
  gap: (problems, b, seq) => {
    checkUint(problems, b.firstSeq, 'body.firstSeq'); checkUint(problems, b.lastSeq, 'body.lastSeq'); checkBytes(problems, b.beforeHash, 'body.beforeHash'); checkBytes(problems, b.lastHash, 'body.lastHash'); checkText(problems, b.reason, 'body.reason')
    if (typeof b.firstSeq === 'number' && typeof b.lastSeq === 'number' && b.firstSeq > b.lastSeq) {
      problems.push('body.firstSeq: must not be above lastSeq')
    }
    if (typeof b.lastSeq === 'number' && typeof seq === 'number' && b.lastSeq >= seq) problems.push('body.lastSeq: must be below the gap record\'s own seq')
  },
  'key-rotation': (problems, b) => { checkBytes(problems, b.newPublicKey, 'body.newPublicKey', PUBLIC_KEY_BYTES); checkUint(problems, b.validFromMs, 'body.validFromMs') },
  shutdown: (problems, b) => { checkText(problems, b.reason, 'body.reason') },
  policy: (problems, b) => {
    checkUint(problems, b.version, 'body.version'); checkText(problems, b.fleetId, 'body.fleetId'); checkBytes(problems, b.policyHash, 'body.policyHash')
    if (!(typeof b.mode === 'string' && b.mode in POLICY_RECORD_MODES)) problems.push('body.mode: unknown policy mode')
  },
  oversight: (problems, b) => {
    checkText(problems, b.reviewer, 'body.reviewer'); checkUint(problems, b.decisionSeq, 'body.decisionSeq'); checkBytes(problems, b.decisionHash, 'body.decisionHash'); checkText(problems, b.reason, 'body.reason')
    if (typeof b.reviewer === 'string' && b.reviewer === '') problems.push('body.reviewer: must not be empty')
    if (typeof b.decisionDeviceId !== 'string' || b.decisionDeviceId.length > LIMITS.deviceIdChars || !DEVICE_ID_PATTERN.test(b.decisionDeviceId)) {
      problems.push(`body.decisionDeviceId: must match ${DEVICE_ID_PATTERN.source}, at most ${LIMITS.deviceIdChars} characters`)
    }
    if (!(typeof b.verdict === 'string' && b.verdict in OVERSIGHT_VERDICTS)) problems.push('body.verdict: unknown oversight verdict')
  },
  session: (problems, b) => {
    checkText(problems, b.sessionId, 'body.sessionId'); checkText(problems, b.referenceName, 'body.referenceName')
    if (typeof b.sessionId === 'string' && b.sessionId === '') problems.push('body.sessionId: must not be empty')
    if (b.referenceHash !== null) checkBytes(problems, b.referenceHash, 'body.referenceHash')
    if (!(typeof b.phase === 'string' && b.phase in SESSION_PHASES)) problems.push('body.phase: unknown session phase')
  },
  'data-capture': (problems, b) => {
    checkBytes(problems, b.commitment, 'body.commitment'); checkUint(problems, b.sizeBytes, 'body.sizeBytes'); checkText(problems, b.dataset, 'body.dataset')
    if (b.label !== null) checkText(problems, b.label, 'body.label')
    checkUint(problems, b.capturedAtMs, 'body.capturedAtMs')
  }
}

// Field checks of assertRecord, as module functions rather than closures: it runs once per record.
function checkUint (problems: string[], v: unknown, path: string): void {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) problems.push(`${path}: not a non-negative safe integer`)
}

function checkBytes (problems: string[], v: unknown, path: string, length: number = HASH_BYTES): void {
  if (!(v instanceof Uint8Array) || v.byteLength !== length) problems.push(`${path}: not ${length} bytes`)
}

/** True when checkBytes would report nothing. */
function bytesOk (v: unknown, length: number = HASH_BYTES): boolean {
  return v instanceof Uint8Array && v.byteLength === length
}

/**
 * True when the UTF-8 form of `v` has at most `maxBytes` bytes. A UTF-16 code unit is at most 3
 * UTF-8 bytes (a surrogate pair, two units, is 4), so a short string needs no count: every
 * decoded record's texts were counted, ~0.1 µs each.
 */
function utf8Within (v: string, maxBytes: number): boolean {
  return v.length * 3 <= maxBytes || Buffer.byteLength(v, 'utf8') <= maxBytes
}

/** True when checkText would report nothing. */
function textOk (v: unknown, maxBytes: number = LIMITS.textBytes): boolean {
  return typeof v === 'string' && utf8Within(v, maxBytes) && !LONE_SURROGATE.test(v)
}

function checkText (problems: string[], v: unknown, path: string, maxBytes: number = LIMITS.textBytes): void {
  if (typeof v !== 'string' || !utf8Within(v, maxBytes)) problems.push(`${path}: not a string of at most ${maxBytes} bytes`)
  else if (LONE_SURROGATE.test(v)) problems.push(`${path}: not well-formed Unicode (lone surrogate)`)
}

/** Domain of a data-capture commitment (docs/PROTOCOL.md §5.1). */
export const DATA_CAPTURE_DOMAIN: Uint8Array = new TextEncoder().encode('edge-provenance/data-capture/v1\0')

/**
 * The salted commitment of a data-capture record: SHA-256(DATA_CAPTURE_DOMAIN ‖ salt ‖ contentHash),
 * contentHash being the SHA-256 of the sample bytes (what a dataset manifest lists for the file).
 */
export function commitSample (salt: Uint8Array, contentHash: Uint8Array): Uint8Array {
  if (salt.byteLength !== 32 || contentHash.byteLength !== HASH_BYTES) throw new RangeError('salt and content hash must be 32 bytes')
  return sha256(concat(DATA_CAPTURE_DOMAIN, salt, contentHash))
}

/** Concatenates byte strings. */
export function concat (...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0))
  let o = 0
  for (const p of parts) { out.set(p, o); o += p.byteLength }
  return out
}
