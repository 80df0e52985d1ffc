/**
 * Training-run statements: an in-toto Statement v1 (predicate type TRAINING_RUN_PREDICATE_TYPE)
 * naming a model's input datasets, base model, hyperparameters, code and environment, signed as a
 * DSSE envelope by a trainer key. Building, reading, checking and diffing. docs/LINEAGE.md §2.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { Signer } from '../../protocol/index.js'
import { ForensicsError } from '../errors.js'
import { canonicalJson, type JsonValue } from './jcs.js'
import { IN_TOTO_PAYLOAD_TYPE, keyIdOf, parseEnvelope, signEnvelope, statementHashOf, verifyEnvelope, type DsseEnvelope } from './dsse.js'
import { IN_TOTO_STATEMENT_V1 } from './manifest.js'

export const TRAINING_RUN_PREDICATE_TYPE = 'https://edge-provenance.dev/training-run/v1'

/** A dataset the run read: its OMS manifest root digest (manifest.ts). */
export interface DatasetRef { name: string, version: string, digest: { sha256: string } }

export interface TrainingRunPredicate {
  datasets: DatasetRef[]
  /** The model training started from; null when trained from scratch. */
  baseModel: { digest: { sha256: string } } | null
  /** The trained model: file hash (as registered), its tensor manifest hash, and optionally its OMS folder digest. */
  outputModel: { name: string, digest: { sha256: string }, manifestHash: string | null, folderDigest: string | null }
  hyperparameters: { [key: string]: JsonValue }
  /** SHA-256 of the RFC 8785 form of `hyperparameters`: the value to compare runs by. */
  hyperparametersDigest: string
  codeRevision: string
  environment: { [key: string]: string }
  startedAt: string
  finishedAt: string
}

export interface TrainingStatement {
  _type: typeof IN_TOTO_STATEMENT_V1
  subject: [{ name: string, digest: { sha256: string } }]
  predicateType: typeof TRAINING_RUN_PREDICATE_TYPE
  predicate: TrainingRunPredicate
}

/** What the caller states; the digest and layout are filled in. */
export interface TrainingRunInput {
  datasets: DatasetRef[]
  baseModelHash: string | null
  outputModel: { name: string, hash: string, manifestHash?: string | null, folderDigest?: string | null }
  hyperparameters: { [key: string]: JsonValue }
  codeRevision: string
  environment: { [key: string]: string }
  startedAt: string
  finishedAt: string
}

const HEX64 = /^[0-9a-f]{64}$/
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z$/

/** SHA-256 (hex) of the RFC 8785 form of `value`. @throws ForensicsError CANONICAL_JSON_INVALID */
export function hyperparametersDigestOf (value: JsonValue): string {
  return createHash('sha256').update(canonicalJson(value), 'utf8').digest('hex')
}

/**
 * The statement for `input`; checks it as a reader would.
 * @throws ForensicsError STATEMENT_INVALID, CANONICAL_JSON_INVALID
 */
export function buildTrainingStatement (input: TrainingRunInput): TrainingStatement {
  const st: TrainingStatement = {
    _type: IN_TOTO_STATEMENT_V1,
    subject: [{ name: input.outputModel.name, digest: { sha256: input.outputModel.hash } }],
    predicateType: TRAINING_RUN_PREDICATE_TYPE,
    predicate: {
      datasets: input.datasets,
      baseModel: input.baseModelHash === null ? null : { digest: { sha256: input.baseModelHash } },
      outputModel: {
        name: input.outputModel.name,
        digest: { sha256: input.outputModel.hash },
        manifestHash: input.outputModel.manifestHash ?? null,
        folderDigest: input.outputModel.folderDigest ?? null
      },
      hyperparameters: input.hyperparameters,
      hyperparametersDigest: hyperparametersDigestOf(input.hyperparameters),
      codeRevision: input.codeRevision,
      environment: input.environment,
      startedAt: input.startedAt,
      finishedAt: input.finishedAt
    }
  }
  assertTrainingStatement(st)
  return st
}

/** The payload bytes: the statement in RFC 8785 form, so any writer produces the same bytes. */
export function encodeStatement (st: TrainingStatement): Uint8Array {
  return new Uint8Array(Buffer.from(canonicalJson(st), 'utf8'))
}

/** Signs a statement into a DSSE envelope. */
export function signTrainingStatement (st: TrainingStatement, signer: Signer): DsseEnvelope {
  return signEnvelope(encodeStatement(st), signer)
}

function isObject (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * Asserts `value` is a training-run statement of this project (unknown fields refused, so a
 * reader never skips a claim it does not understand).
 * @throws ForensicsError STATEMENT_INVALID naming up to 10 bad fields
 */
export function assertTrainingStatement (value: unknown): asserts value is TrainingStatement {
  const problems: string[] = []
  const bad = (path: string, want: string): void => { if (problems.length < 10) problems.push(`${path}: ${want}`) }
  const only = (o: Record<string, unknown>, keys: string[], path: string): void => {
    for (const k of Object.keys(o)) if (!keys.includes(k)) bad(`${path}.${k}`, 'unknown field')
  }
  const digest = (v: unknown, path: string): void => {
    if (!isObject(v) || typeof v.sha256 !== 'string' || !HEX64.test(v.sha256) || Object.keys(v).length !== 1) bad(path, '{ "sha256": 64 lower-case hex digits }')
  }
  if (!isObject(value)) throw new ForensicsError('STATEMENT_INVALID', 'statement: expected a JSON object')
  only(value, ['_type', 'subject', 'predicateType', 'predicate'], 'statement')
  if (value._type !== IN_TOTO_STATEMENT_V1) bad('_type', IN_TOTO_STATEMENT_V1)
  if (value.predicateType !== TRAINING_RUN_PREDICATE_TYPE) bad('predicateType', TRAINING_RUN_PREDICATE_TYPE)
  const subject = value.subject
  if (!Array.isArray(subject) || subject.length !== 1 || !isObject(subject[0])) bad('subject', 'exactly one subject, the output model')
  else {
    if (typeof subject[0].name !== 'string') bad('subject[0].name', 'a string')
    digest(subject[0].digest, 'subject[0].digest')
  }
  const p = value.predicate
  if (!isObject(p)) bad('predicate', 'an object')
  else {
    only(p, ['datasets', 'baseModel', 'outputModel', 'hyperparameters', 'hyperparametersDigest', 'codeRevision', 'environment', 'startedAt', 'finishedAt'], 'predicate')
    if (!Array.isArray(p.datasets) || p.datasets.length > 1024) bad('predicate.datasets', 'an array of at most 1024 datasets')
    else {
      for (const [i, d] of p.datasets.entries()) {
        if (!isObject(d)) { bad(`predicate.datasets[${i}]`, 'an object'); continue }
        only(d, ['name', 'version', 'digest'], `predicate.datasets[${i}]`)
        if (typeof d.name !== 'string' || d.name === '') bad(`predicate.datasets[${i}].name`, 'a non-empty string')
        if (typeof d.version !== 'string') bad(`predicate.datasets[${i}].version`, 'a string')
        digest(d.digest, `predicate.datasets[${i}].digest`)
      }
    }
    if (p.baseModel !== null) {
      if (!isObject(p.baseModel)) bad('predicate.baseModel', 'null or { digest }')
      else { only(p.baseModel, ['digest'], 'predicate.baseModel'); digest(p.baseModel.digest, 'predicate.baseModel.digest') }
    }
    const o = p.outputModel
    if (!isObject(o)) bad('predicate.outputModel', 'an object')
    else {
      only(o, ['name', 'digest', 'manifestHash', 'folderDigest'], 'predicate.outputModel')
      if (typeof o.name !== 'string') bad('predicate.outputModel.name', 'a string')
      digest(o.digest, 'predicate.outputModel.digest')
      for (const k of ['manifestHash', 'folderDigest']) if (o[k] !== null && (typeof o[k] !== 'string' || !HEX64.test(o[k]))) bad(`predicate.outputModel.${k}`, 'null or 64 lower-case hex digits')
      if (Array.isArray(subject) && isObject(subject[0]) && isObject(subject[0].digest) && isObject(o.digest) && subject[0].digest.sha256 !== o.digest.sha256) bad('predicate.outputModel.digest', 'the subject digest')
    }
    if (!isObject(p.hyperparameters)) bad('predicate.hyperparameters', 'an object')
    else {
      try {
        if (p.hyperparametersDigest !== hyperparametersDigestOf(p.hyperparameters as JsonValue)) bad('predicate.hyperparametersDigest', 'SHA-256 of the RFC 8785 form of hyperparameters')
      } catch (e) {
        bad('predicate.hyperparameters', (e as Error).message)
      }
    }
    if (typeof p.codeRevision !== 'string' || p.codeRevision === '') bad('predicate.codeRevision', 'a non-empty string')
    if (!isObject(p.environment) || !Object.values(p.environment).every(v => typeof v === 'string')) bad('predicate.environment', 'an object of strings')
    for (const k of ['startedAt', 'finishedAt']) if (typeof p[k] !== 'string' || !ISO.test(p[k])) bad(`predicate.${k}`, 'an RFC 3339 UTC time (…Z)')
  }
  if (problems.length > 0) throw new ForensicsError('STATEMENT_INVALID', `statement: ${problems.join('; ')}`)
}

/** A signed statement as read from disk. */
export interface SignedTrainingRun {
  envelope: DsseEnvelope
  payload: Uint8Array
  statement: TrainingStatement
  /** sha256 of the payload: what LineageRegistry stores per model. */
  statementHash: string
}

/**
 * Reads a DSSE envelope holding a training statement (no signature check: see checkTrainingRun).
 * @throws ForensicsError STATEMENT_INVALID, LINEAGE_INPUT_TOO_LARGE
 */
export function parseTrainingRun (bytes: Uint8Array, maxBytes?: number): SignedTrainingRun {
  const { envelope, payload } = parseEnvelope(bytes, maxBytes)
  if (envelope.payloadType !== IN_TOTO_PAYLOAD_TYPE) throw new ForensicsError('STATEMENT_INVALID', `envelope.payloadType: ${IN_TOTO_PAYLOAD_TYPE}`)
  let statement: unknown
  try {
    statement = JSON.parse(Buffer.from(payload).toString('utf8'))
  } catch (e) {
    throw new ForensicsError('STATEMENT_INVALID', 'payload is not valid JSON', { cause: e })
  }
  assertTrainingStatement(statement)
  return { envelope, payload, statement, statementHash: statementHashOf(payload) }
}

// ---------------------------------------------------------------------------------------------
// Checking

/** Why a check failed (stable names, docs/LINEAGE.md §2.4). */
export type TrainingCheckReason =
  | 'SIGNATURE_INVALID' | 'TRAINER_UNKNOWN' | 'MODEL_MISMATCH' | 'BASE_MODEL_MISMATCH' | 'DATASET_MISMATCH'
  | 'DATASET_NOT_REGISTERED' | 'TRAINING_RUN_MISMATCH' | 'TRAINING_RUN_MISSING'

export interface TrainingCheck { check: string, ok: boolean, reason?: TrainingCheckReason, detail: string }

/** What to check a statement against; each absent fact is not checked (and not reported). */
export interface TrainingFacts {
  /** Trusted trainer public keys (offline list, or the registry's valid keys). */
  trainerKeys: readonly Uint8Array[]
  /** sha256 hex of the model file, computed from the file. */
  modelHash?: string
  /** sha256 hex of the base model file. */
  baseModelHash?: string
  /** Root digests of dataset manifests recomputed from the files, by dataset name. */
  datasetDigests?: ReadonlyMap<string, string>
  /** Registry facts: the statement hash attached to the model (null: none attached). */
  registeredStatementHash?: string | null
  /** Registry facts: dataset root digests that are registered. */
  registeredDatasets?: ReadonlySet<string>
}

function same (a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a), Buffer.from(b))
}

/** Checks a signed run against the facts; `valid` when every check passed. */
export function checkTrainingRun (run: SignedTrainingRun, facts: TrainingFacts): { valid: boolean, checks: TrainingCheck[] } {
  const checks: TrainingCheck[] = []
  const add = (check: string, ok: boolean, reason: TrainingCheckReason, detail: string): void => {
    checks.push(ok ? { check, ok, detail } : { check, ok, reason, detail })
  }
  const p = run.statement.predicate
  const signers = verifyEnvelope(run.envelope, run.payload, facts.trainerKeys)
  const anyValid = verifyEnvelope(run.envelope, run.payload, run.envelope.signatures.flatMap(s => typeof s.keyid === 'string' && /^[0-9a-f]{64}$/.test(s.keyid) ? [new Uint8Array(Buffer.from(s.keyid, 'hex'))] : []))
  if (signers.length > 0) add('signature', true, 'SIGNATURE_INVALID', `signed by trainer key ${keyIdOf(signers[0] as Uint8Array)}`)
  else if (anyValid.length > 0) add('signature', false, 'TRAINER_UNKNOWN', `signed by ${keyIdOf(anyValid[0] as Uint8Array)}, not a known trainer key`)
  else add('signature', false, 'SIGNATURE_INVALID', 'no signature verifies over PAE(payloadType, payload)')
  if (facts.modelHash !== undefined) {
    add('output model', same(facts.modelHash, p.outputModel.digest.sha256), 'MODEL_MISMATCH', `file ${facts.modelHash}, statement ${p.outputModel.digest.sha256}`)
  }
  if (facts.baseModelHash !== undefined) {
    const stated = p.baseModel?.digest.sha256 ?? 'none'
    add('base model', same(facts.baseModelHash, stated), 'BASE_MODEL_MISMATCH', `file ${facts.baseModelHash}, statement ${stated}`)
  }
  for (const [name, digest] of facts.datasetDigests ?? []) {
    const stated = p.datasets.find(d => d.name === name)
    add(`dataset ${name}`, stated !== undefined && same(stated.digest.sha256, digest), 'DATASET_MISMATCH', stated === undefined ? 'not named in the statement' : `files ${digest}, statement ${stated.digest.sha256}`)
  }
  if (facts.registeredDatasets !== undefined) {
    for (const d of p.datasets) add(`dataset ${d.name} registered`, facts.registeredDatasets.has(d.digest.sha256), 'DATASET_NOT_REGISTERED', d.digest.sha256)
  }
  if (facts.registeredStatementHash !== undefined) {
    const r = facts.registeredStatementHash
    if (r === null) add('registered training run', false, 'TRAINING_RUN_MISSING', 'the registry holds no training run for the model')
    else add('registered training run', same(r, run.statementHash), 'TRAINING_RUN_MISMATCH', `registry ${r}, statement ${run.statementHash}`)
  }
  return { valid: checks.every(c => c.ok), checks }
}

// ---------------------------------------------------------------------------------------------
// Diffing

export interface ValueChange { path: string, from?: JsonValue, to?: JsonValue }

/** Leaves of a JSON value by JSON Pointer (RFC 6901); arrays are leaves compared whole. */
function leaves (v: JsonValue, path: string, out: Map<string, JsonValue>): void {
  if (isObject(v)) {
    for (const k of Object.keys(v)) leaves((v as Record<string, JsonValue>)[k] as JsonValue, `${path}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`, out)
    if (Object.keys(v).length === 0) out.set(path, v)
  } else out.set(path, v)
}

/** The differences between two runs: hyperparameters by JSON Pointer, and the other claims. */
export function diffTrainingRuns (a: TrainingStatement, b: TrainingStatement): { hyperparameters: ValueChange[], other: ValueChange[] } {
  const la = new Map<string, JsonValue>()
  const lb = new Map<string, JsonValue>()
  leaves(a.predicate.hyperparameters, '', la)
  leaves(b.predicate.hyperparameters, '', lb)
  const hyperparameters: ValueChange[] = []
  for (const path of [...new Set([...la.keys(), ...lb.keys()])].sort()) {
    const x = la.get(path)
    const y = lb.get(path)
    if (x === undefined) hyperparameters.push({ path, to: y })
    else if (y === undefined) hyperparameters.push({ path, from: x })
    else if (canonicalJson(x) !== canonicalJson(y)) hyperparameters.push({ path, from: x, to: y })
  }
  const other: ValueChange[] = []
  const pa = a.predicate
  const pb = b.predicate
  const pairs: Array<[string, JsonValue, JsonValue]> = [
    ['/outputModel', pa.outputModel, pb.outputModel],
    ['/baseModel', pa.baseModel, pb.baseModel],
    ['/datasets', pa.datasets as unknown as JsonValue, pb.datasets as unknown as JsonValue],
    ['/codeRevision', pa.codeRevision, pb.codeRevision],
    ['/environment', pa.environment, pb.environment]
  ]
  for (const [path, x, y] of pairs) if (canonicalJson(x) !== canonicalJson(y)) other.push({ path, from: x, to: y })
  return { hyperparameters, other }
}
