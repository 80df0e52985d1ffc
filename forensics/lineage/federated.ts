/**
 * Federated rounds (docs/LINEAGE.md §6): a device's contribution is an update document (round, base
 * model, sample count, weights) committed to by a data-capture record in its signed log; the
 * aggregator accepts only contributions of registered, non-revoked devices, averages them (FedAvg)
 * into a new ONNX model and signs a round statement listing every contribution by record hash.
 */
import { createHash } from 'node:crypto'
import {
  commitSample, decodeCanonical, decodeEnvelope, encodeCanonical, equalBytes, fromHex, ProvenanceError, toHex, verifyRecordSignature,
  type CborValue, type Signer, type SignedRecord
} from '../../protocol/index.js'
import { ForensicsError } from '../errors.js'
import type { CaptureCheckReason, DeviceKeyLookup } from './captures.js'
import { decodeBase64, parseEnvelope, signEnvelope, statementHashOf, verifyEnvelope, type DsseEnvelope } from './dsse.js'
import { buildLogisticModel, fedAvg, readLogisticWeights, type LogisticWeights } from './fl-model.js'
import { canonicalJson } from './jcs.js'
import { IN_TOTO_STATEMENT_V1 } from './manifest.js'

export const FL_UPDATE_FORMAT = 'edge-provenance/fl-update/v1'
export const FL_CONTRIBUTIONS_FORMAT = 'edge-provenance/fl-contributions/v1'
export const FL_ROUND_PREDICATE_TYPE = 'https://edge-provenance.dev/fl-round/v1'
/** The label of a contribution's data-capture record; its dataset is `fl:<round id>`. */
export const FL_UPDATE_LABEL = 'fl-update'
/** Contributions files above this size are refused before reading. */
export const DEFAULT_CONTRIBUTIONS_MAX_BYTES = 64 * 1024 * 1024
const ROUND_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/

/** The dataset field of a round's contribution records. */
export function flDatasetOf (roundId: string): string { return `fl:${roundId}` }

/** What a device sends for a round: its locally trained weights and how many samples trained them. */
export interface FlUpdate { roundId: string, baseModelHash: string, sampleCount: number, weights: LogisticWeights }

const f32bytes = (a: Float32Array): Uint8Array => new Uint8Array(Buffer.from(a.buffer, a.byteOffset, a.byteLength))

/**
 * Canonical CBOR [format, roundId, baseModelHash (32 bytes), sampleCount, inputSize, W (float32 LE), b (float32 LE)].
 * @throws RangeError for a bad round id, hash or shape
 */
export function encodeFlUpdate (u: FlUpdate): Uint8Array {
  if (!ROUND_ID.test(u.roundId)) throw new RangeError(`round id must match ${ROUND_ID.source}`)
  if (!/^[0-9a-f]{64}$/.test(u.baseModelHash)) throw new RangeError('base model hash: 64 hex digits')
  if (u.weights.W.length !== u.weights.inputSize * 2 || u.weights.b.length !== 2) throw new RangeError('weights: W [d, 2] and b [2]')
  return encodeCanonical([FL_UPDATE_FORMAT, u.roundId, fromHex(u.baseModelHash), u.sampleCount, u.weights.inputSize, f32bytes(u.weights.W), f32bytes(u.weights.b)])
}

/** @throws ForensicsError FL_CONTRIBUTIONS_INVALID */
export function decodeFlUpdate (bytes: Uint8Array): FlUpdate {
  let v: CborValue
  try { v = decodeCanonical(bytes, { maxBytes: 16 * 1024 * 1024, maxDepth: 1 }) } catch (e) { throw new ForensicsError('FL_CONTRIBUTIONS_INVALID', 'update: not canonical CBOR', { cause: e }) }
  if (!Array.isArray(v) || v.length !== 7 || v[0] !== FL_UPDATE_FORMAT) throw new ForensicsError('FL_CONTRIBUTIONS_INVALID', `update: not an ${FL_UPDATE_FORMAT} array of 7`)
  const [, roundId, base, sampleCount, inputSize, W, b] = v as CborValue[]
  if (typeof roundId !== 'string' || !ROUND_ID.test(roundId) || !(base instanceof Uint8Array) || base.byteLength !== 32 ||
    typeof sampleCount !== 'number' || sampleCount < 1 || typeof inputSize !== 'number' || inputSize < 1 || inputSize > 1_000_000 ||
    !(W instanceof Uint8Array) || W.byteLength !== inputSize * 8 || !(b instanceof Uint8Array) || b.byteLength !== 8) {
    throw new ForensicsError('FL_CONTRIBUTIONS_INVALID', 'update: bad round id, base hash, sample count or weight shapes')
  }
  const floats = (x: Uint8Array): Float32Array => new Float32Array(Uint8Array.from(x).buffer)
  const weights = { inputSize, W: floats(W), b: floats(b) }
  if ([...weights.W, ...weights.b].some(x => !Number.isFinite(x))) throw new ForensicsError('FL_CONTRIBUTIONS_INVALID', 'update: non-finite weight')
  return { roundId, baseModelHash: toHex(base), sampleCount, weights }
}

/** One contribution: the record that commits to the update, the salt that opens it, the update. */
export interface Contribution { envelope: string, salt: string, update: string }
export interface ContributionsFile { format: typeof FL_CONTRIBUTIONS_FORMAT, contributions: Contribution[] }

/** A contribution from what the agent returned for the update's data-capture record. */
export function buildContribution (record: SignedRecord, salt: Uint8Array, update: Uint8Array): Contribution {
  return { envelope: toHex(record.envelope), salt: toHex(salt), update: Buffer.from(update).toString('base64') }
}

/** @throws ForensicsError FL_CONTRIBUTIONS_INVALID */
export function parseContributions (bytes: Uint8Array): ContributionsFile {
  let v: unknown
  try { v = JSON.parse(Buffer.from(bytes).toString('utf8')) } catch { throw new ForensicsError('FL_CONTRIBUTIONS_INVALID', 'contributions file is not JSON') }
  const o = v as Partial<ContributionsFile> | null
  if (typeof o !== 'object' || o === null || o.format !== FL_CONTRIBUTIONS_FORMAT || !Array.isArray(o.contributions)) {
    throw new ForensicsError('FL_CONTRIBUTIONS_INVALID', `contributions file: { format: "${FL_CONTRIBUTIONS_FORMAT}", contributions: [...] }`)
  }
  o.contributions.forEach((c: Partial<Contribution> | null, i) => {
    if (typeof c !== 'object' || c === null || typeof c.envelope !== 'string' || !/^([0-9a-f]{2})+$/.test(c.envelope) ||
      typeof c.salt !== 'string' || !/^[0-9a-f]{64}$/.test(c.salt) || typeof c.update !== 'string') {
      throw new ForensicsError('FL_CONTRIBUTIONS_INVALID', `contributions[${i}]: { envelope: hex, salt: 64 hex, update: base64 }`)
    }
  })
  return o as ContributionsFile
}

export type ContributionReason = CaptureCheckReason | 'UPDATE_INVALID' | 'WRONG_ROUND' | 'WRONG_BASE_MODEL' | 'DUPLICATE'

export interface ContributionCheck {
  index: number
  deviceId: string | null
  seq: number | null
  recordHash: string | null
  updateDigest: string | null
  sampleCount: number | null
  ok: boolean
  reason?: ContributionReason
  detail?: string
}

/**
 * Checks each contribution: the update decodes and is for this round and base model; its record is
 * a data-capture record of the round, signed by the device's registered key at its time, of a device
 * not revoked then, committing to the update's SHA-256 under the salt; one record counts once.
 */
export async function checkContributions (file: ContributionsFile, round: { roundId: string, baseModelHash: string }, keyAt: DeviceKeyLookup): Promise<Array<{ check: ContributionCheck, update?: FlUpdate }>> {
  const seen = new Set<string>()
  const out: Array<{ check: ContributionCheck, update?: FlUpdate }> = []
  for (const [index, c] of file.contributions.entries()) {
    const check: ContributionCheck = { index, deviceId: null, seq: null, recordHash: null, updateDigest: null, sampleCount: null, ok: false }
    const fail = (reason: ContributionReason, detail: string): void => { out.push({ check: Object.assign(check, { reason, detail }) }) }
    let updateBytes: Uint8Array
    let update: FlUpdate
    try {
      updateBytes = decodeBase64(c.update, `contributions[${index}].update`)
      update = decodeFlUpdate(updateBytes)
    } catch (e) {
      if (!(e instanceof ForensicsError)) throw e
      fail('UPDATE_INVALID', e.message); continue
    }
    const digest = createHash('sha256').update(updateBytes).digest()
    Object.assign(check, { updateDigest: digest.toString('hex'), sampleCount: update.sampleCount })
    let signed: SignedRecord
    try { signed = decodeEnvelope(fromHex(c.envelope)) } catch (e) {
      if (!(e instanceof ProvenanceError)) throw e
      fail('RECORD_INVALID', `${e.code}: ${e.message}`); continue
    }
    const r = signed.record
    Object.assign(check, { deviceId: r.deviceId, seq: r.seq, recordHash: toHex(signed.hash) })
    if (r.body.kind !== 'data-capture') { fail('NOT_DATA_CAPTURE', `a ${r.body.kind} record`); continue }
    if (update.roundId !== round.roundId || r.body.dataset !== flDatasetOf(round.roundId)) { fail('WRONG_ROUND', `update for ${update.roundId}, record for ${r.body.dataset}`); continue }
    if (update.baseModelHash !== round.baseModelHash) { fail('WRONG_BASE_MODEL', `trained from ${update.baseModelHash.slice(0, 12)}`); continue }
    const key = await keyAt(r.deviceId, r.timeMs)
    if (key === undefined) { fail('DEVICE_UNKNOWN', `${r.deviceId} is not a registered device (at ${r.timeMs})`); continue }
    if (!verifyRecordSignature(signed, key.publicKey)) { fail('SIGNATURE_INVALID', `record not signed by ${r.deviceId}'s registered key`); continue }
    if (key.revoked) { fail('DEVICE_REVOKED', `${r.deviceId} was revoked at ${r.timeMs}`); continue }
    if (!equalBytes(commitSample(fromHex(c.salt), new Uint8Array(digest)), r.body.commitment) || r.body.sizeBytes !== updateBytes.byteLength) {
      fail('COMMITMENT_MISMATCH', 'the record does not commit to this update'); continue
    }
    if (seen.has(check.recordHash as string)) { fail('DUPLICATE', 'the same record twice'); continue }
    seen.add(check.recordHash as string)
    check.ok = true
    out.push({ check, update })
  }
  return out
}

/** A contribution as the round statement lists it. */
export interface RoundContribution { deviceId: string, seq: number, recordHash: string, updateDigest: string, sampleCount: number, weight: number }

export interface RoundStatement {
  _type: typeof IN_TOTO_STATEMENT_V1
  subject: [{ name: string, digest: { sha256: string } }]
  predicateType: typeof FL_ROUND_PREDICATE_TYPE
  predicate: {
    roundId: string
    baseModel: { digest: { sha256: string } }
    aggregation: 'fedavg'
    totalSamples: number
    contributions: RoundContribution[]
    finishedAt: string
  }
}

export interface AggregateOptions {
  baseModel: Uint8Array
  roundId: string
  contributions: ContributionsFile
  keyAt: DeviceKeyLookup
  /** The aggregator's trainer key (registered in the LineageRegistry). */
  signer: Signer
  /** The new model's name (the statement's subject name). */
  name: string
  /** RFC 3339 UTC; default now. */
  finishedAt?: string
}

export interface AggregateResult {
  model: Uint8Array
  modelHash: string
  checks: ContributionCheck[]
  statement: RoundStatement
  envelope: DsseEnvelope
  statementHash: string
}

/**
 * Runs a round's aggregation: checks every contribution, averages the accepted ones by sample count,
 * writes the new model and signs the round statement. Rejected contributions are reported, never used.
 * @throws ForensicsError FL_MODEL_INVALID, FL_NO_ACCEPTED_CONTRIBUTION
 */
export async function aggregateRound (o: AggregateOptions): Promise<AggregateResult> {
  const base = readLogisticWeights(o.baseModel)
  const baseModelHash = createHash('sha256').update(o.baseModel).digest('hex')
  const results = await checkContributions(o.contributions, { roundId: o.roundId, baseModelHash }, o.keyAt)
  const accepted = results.filter(r => r.check.ok && r.update !== undefined && r.update.weights.inputSize === base.inputSize)
  for (const r of results) {
    if (r.check.ok && !accepted.includes(r)) Object.assign(r.check, { ok: false, reason: 'UPDATE_INVALID', detail: 'weights of another shape than the base model' })
  }
  if (accepted.length === 0) throw new ForensicsError('FL_NO_ACCEPTED_CONTRIBUTION', `round ${o.roundId}: none of ${results.length} contributions was accepted`)
  const model = buildLogisticModel(fedAvg(accepted.map(r => ({ weights: (r.update as FlUpdate).weights, sampleCount: (r.update as FlUpdate).sampleCount }))))
  const modelHash = createHash('sha256').update(model).digest('hex')
  const totalSamples = accepted.reduce((n, r) => n + (r.check.sampleCount as number), 0)
  const statement: RoundStatement = {
    _type: IN_TOTO_STATEMENT_V1,
    subject: [{ name: o.name, digest: { sha256: modelHash } }],
    predicateType: FL_ROUND_PREDICATE_TYPE,
    predicate: {
      roundId: o.roundId,
      baseModel: { digest: { sha256: baseModelHash } },
      aggregation: 'fedavg',
      totalSamples,
      contributions: accepted.map(({ check: c }) => ({
        deviceId: c.deviceId as string, seq: c.seq as number, recordHash: c.recordHash as string, updateDigest: c.updateDigest as string,
        sampleCount: c.sampleCount as number, weight: (c.sampleCount as number) / totalSamples
      })),
      finishedAt: o.finishedAt ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z')
    }
  }
  const payload = new TextEncoder().encode(canonicalJson(statement))
  return { model, modelHash, checks: results.map(r => r.check), statement, envelope: signEnvelope(payload, o.signer), statementHash: statementHashOf(payload) }
}

/** A parsed, signed round statement. */
export interface SignedRound { envelope: DsseEnvelope, payload: Uint8Array, statement: RoundStatement, statementHash: string }

/**
 * Parses a round envelope; the statement must be in RFC 8785 form with the fields above.
 * @throws ForensicsError STATEMENT_INVALID, LINEAGE_INPUT_TOO_LARGE
 */
export function parseRound (bytes: Uint8Array): SignedRound {
  const { envelope, payload } = parseEnvelope(bytes)
  let s: RoundStatement
  try { s = JSON.parse(Buffer.from(payload).toString('utf8')) as RoundStatement } catch (e) { throw new ForensicsError('STATEMENT_INVALID', 'round statement is not JSON', { cause: e }) }
  const p = s?.predicate
  const hex = (x: unknown): boolean => typeof x === 'string' && /^[0-9a-f]{64}$/.test(x)
  if (typeof s !== 'object' || s === null || s._type !== IN_TOTO_STATEMENT_V1 || s.predicateType !== FL_ROUND_PREDICATE_TYPE || !Array.isArray(s.subject) ||
    s.subject.length !== 1 || !hex(s.subject[0]?.digest?.sha256) || typeof p !== 'object' || p === null || typeof p.roundId !== 'string' ||
    !hex(p.baseModel?.digest?.sha256) || p.aggregation !== 'fedavg' || !Array.isArray(p.contributions) ||
    p.contributions.some(c => typeof c?.deviceId !== 'string' || !hex(c.recordHash) || !hex(c.updateDigest) || !Number.isSafeInteger(c.seq) || !Number.isSafeInteger(c.sampleCount))) {
    throw new ForensicsError('STATEMENT_INVALID', `not an in-toto v1 statement of ${FL_ROUND_PREDICATE_TYPE}`)
  }
  if (canonicalJson(s) !== Buffer.from(payload).toString('utf8')) throw new ForensicsError('STATEMENT_INVALID', 'round statement is not in RFC 8785 form')
  return { envelope, payload, statement: s, statementHash: statementHashOf(payload) }
}

export type RoundCheckReason =
  | 'SIGNATURE_INVALID' | 'TRAINER_UNKNOWN' | 'MODEL_MISMATCH' | 'TRAINING_RUN_MISSING' | 'TRAINING_RUN_MISMATCH'
  | 'CONTRIBUTION_MISSING' | 'CONTRIBUTION_INVALID' | 'AGGREGATE_MISMATCH'
export interface RoundCheck { check: string, ok: boolean, reason?: RoundCheckReason, detail?: string }

export interface RoundFacts {
  /** Trusted (registered, non-revoked) trainer keys. */
  trainerKeys: Uint8Array[]
  /** The model's hash as the investigator has it (from a file or a record). */
  modelHash?: string
  /** The statement hash the LineageRegistry attaches to the model (null: none; undefined: not read). */
  registeredStatementHash?: string | null
  /** The contributions, to re-check each listed one and recompute the average. */
  contributions?: ContributionsFile
  keyAt?: DeviceKeyLookup
  /** The base model bytes, to recompute FedAvg and compare with `model`. */
  baseModel?: Uint8Array
  model?: Uint8Array
}

/** Checks a round statement against its signer, the model, the chain and its contributions. */
export async function checkRound (round: SignedRound, facts: RoundFacts): Promise<{ checks: RoundCheck[], contributions: ContributionCheck[] }> {
  const s = round.statement
  const checks: RoundCheck[] = []
  const add = (check: string, failure?: [RoundCheckReason, string]): void => {
    checks.push(failure === undefined ? { check, ok: true } : { check, ok: false, reason: failure[0], detail: failure[1] })
  }
  const signers = verifyEnvelope(round.envelope, round.payload, facts.trainerKeys)
  add('signature', signers.length > 0 ? undefined : ['TRAINER_UNKNOWN', 'no signature verifies with a known trainer key'])
  const subject = s.subject[0].digest.sha256
  if (facts.modelHash !== undefined) add('model', facts.modelHash === subject ? undefined : ['MODEL_MISMATCH', `model ${facts.modelHash.slice(0, 12)} is not the round's ${subject.slice(0, 12)}`])
  if (facts.registeredStatementHash !== undefined) {
    add('training run (chain)', facts.registeredStatementHash === null
      ? ['TRAINING_RUN_MISSING', 'the model has no training run attached']
      : facts.registeredStatementHash === round.statementHash ? undefined : ['TRAINING_RUN_MISMATCH', `attached ${facts.registeredStatementHash.slice(0, 12)}, statement ${round.statementHash.slice(0, 12)}`])
  }
  let contributionChecks: ContributionCheck[] = []
  if (facts.contributions !== undefined && facts.keyAt !== undefined) {
    const results = await checkContributions(facts.contributions, { roundId: s.predicate.roundId, baseModelHash: s.predicate.baseModel.digest.sha256 }, facts.keyAt)
    contributionChecks = results.map(r => r.check)
    for (const listed of s.predicate.contributions) {
      const found = results.find(r => r.check.recordHash === listed.recordHash)
      const name = `contribution ${listed.deviceId}#${listed.seq}`
      if (found === undefined) add(name, ['CONTRIBUTION_MISSING', `record ${listed.recordHash.slice(0, 12)} is not in the contributions file`])
      else if (!found.check.ok) add(name, ['CONTRIBUTION_INVALID', `${found.check.reason as string}: ${found.check.detail ?? ''}`])
      else if (found.check.updateDigest !== listed.updateDigest || found.check.sampleCount !== listed.sampleCount) add(name, ['CONTRIBUTION_INVALID', 'update digest or sample count differs from the statement'])
      else add(name)
    }
    if (facts.baseModel !== undefined && facts.model !== undefined) {
      const used = s.predicate.contributions.map(l => results.find(r => r.check.recordHash === l.recordHash)?.update).filter((u): u is FlUpdate => u !== undefined)
      const again = used.length === s.predicate.contributions.length ? buildLogisticModel(fedAvg(used.map(u => ({ weights: u.weights, sampleCount: u.sampleCount })))) : undefined
      add('aggregate', again !== undefined && equalBytes(again, facts.model) ? undefined : ['AGGREGATE_MISMATCH', 'FedAvg of the listed contributions is not the model'])
    }
  }
  return { checks, contributions: contributionChecks }
}
