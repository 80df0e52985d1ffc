// Training-run statements (docs/LINEAGE.md §2-3): RFC 8785 canonical JSON, DSSE PAE and Ed25519,
// the statement's checks against files and facts, the hyperparameter diff, and malformed input.
import t, { type Test } from 'tap'
import { createHash, generateKeyPairSync, sign as nodeSign } from 'node:crypto'
import { createSigner, verifySignature } from '../../../protocol/index.js'
import { ForensicsError } from '../../../forensics/errors.js'
import {
  buildTrainingStatement, canonicalJson, checkTrainingRun, diffTrainingRuns, encodeStatement, pae, parseTrainingRun,
  signTrainingStatement, statementHashOf, hyperparametersDigestOf, type TrainingRunInput, type JsonValue
} from '../../../forensics/lineage/index.js'

const seed = (b: number): Uint8Array => new Uint8Array(32).fill(b)
const trainer = createSigner(seed(7))
const stranger = createSigner(seed(9))
const sha = (s: string): string => createHash('sha256').update(s).digest('hex')

const input = (over: Partial<TrainingRunInput> = {}): TrainingRunInput => ({
  datasets: [{ name: 'photos', version: '2', digest: { sha256: sha('photos v2') } }],
  baseModelHash: sha('base'),
  outputModel: { name: 'detector', hash: sha('model'), manifestHash: sha('manifest') },
  hyperparameters: { lr: 0.001, epochs: 10, opt: { name: 'adam', betas: [0.9, 0.999] } },
  codeRevision: 'git:abc',
  environment: { torch: '2.3.1' },
  startedAt: '2026-01-01T00:00:00Z',
  finishedAt: '2026-01-01T01:00:00Z',
  ...over
})

function signed (over: Partial<TrainingRunInput> = {}, signer = trainer): ReturnType<typeof parseTrainingRun> {
  const env = signTrainingStatement(buildTrainingStatement(input(over)), signer)
  return parseTrainingRun(Buffer.from(JSON.stringify(env)))
}

function expectCode (t: Test, f: () => unknown, code: string, what: string): void {
  try {
    f()
    t.fail(`${what}: accepted`)
  } catch (e) {
    t.ok(e instanceof ForensicsError, `${what}: ForensicsError (${(e as Error).message})`)
    t.equal((e as ForensicsError).code, code, what)
  }
}

t.test('behavior: RFC 8785 §3.2.3 sorts keys by UTF-16 code units (the RFC example)', async t => {
  const input = '{"\\u20ac":"Euro Sign","\\r":"Carriage Return","\\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\\ud83d\\ude00":"Emoji: Grinning Face","\\u0080":"Control","\\u00f6":"Latin Small Letter O With Diaeresis"}'
  // The RFC's expected output (its key order; Object.keys would move "1" first, so compare text).
  t.equal(canonicalJson(JSON.parse(input) as JsonValue),
    '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign","\u{1f600}":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}')
})

t.test('behavior: RFC 8785 §3.2.2.3 numbers use the ECMAScript form', async t => {
  t.equal(canonicalJson([1e21, 1e-7, 0.000001, -0, 333333333.33333329, 1e23, 4.5]), '[1e+21,1e-7,0.000001,0,333333333.3333333,1e+23,4.5]')
  t.equal(canonicalJson({ a: '\u2028\n"' }), '{"a":"\u2028\\n\\""}')
})

t.test('error: canonical JSON refuses what RFC 8785 cannot encode', async t => {
  expectCode(t, () => canonicalJson(NaN), 'CANONICAL_JSON_INVALID', 'NaN')
  expectCode(t, () => canonicalJson({ x: Infinity }), 'CANONICAL_JSON_INVALID', 'Infinity')
  expectCode(t, () => canonicalJson('\ud800'), 'CANONICAL_JSON_INVALID', 'lone surrogate')
  expectCode(t, () => canonicalJson({ d: new Date(0) }), 'CANONICAL_JSON_INVALID', 'a Date')
  expectCode(t, () => canonicalJson(undefined), 'CANONICAL_JSON_INVALID', 'undefined')
  let deep: JsonValue = 1
  for (let i = 0; i < 100; i++) deep = [deep]
  expectCode(t, () => canonicalJson(deep), 'CANONICAL_JSON_INVALID', 'too deep')
})

t.test('behavior: PAE is "DSSEv1 len type len body" (DSSE protocol.md)', async t => {
  t.equal(Buffer.from(pae('http://example.com/HelloWorld', Buffer.from('hello world'))).toString(), 'DSSEv1 29 http://example.com/HelloWorld 11 hello world')
  t.equal(Buffer.from(pae('t', Buffer.from('é'))).toString(), 'DSSEv1 1 t 2 é', 'lengths are in bytes')
})

t.test('behavior: the statement is in-toto v1, its payload canonical, the signature over PAE by the trainer', async t => {
  const st = buildTrainingStatement(input())
  t.equal(st._type, 'https://in-toto.io/Statement/v1')
  t.equal(st.predicateType, 'https://edge-provenance.dev/training-run/v1')
  t.same(st.subject, [{ name: 'detector', digest: { sha256: sha('model') } }])
  t.equal(st.predicate.hyperparametersDigest, sha('{"epochs":10,"lr":0.001,"opt":{"betas":[0.9,0.999],"name":"adam"}}'))
  const env = signTrainingStatement(st, trainer)
  const payload = Buffer.from(env.payload, 'base64')
  t.same(payload, Buffer.from(canonicalJson(st)))
  t.equal(env.payloadType, 'application/vnd.in-toto+json')
  t.equal(env.signatures[0]?.keyid, Buffer.from(trainer.publicKey).toString('hex'))
  t.ok(verifySignature(Buffer.from(env.signatures[0]?.sig as string, 'base64'), pae(env.payloadType, payload), trainer.publicKey, 'noble'), 'noble verifies the PAE signature')
  const run = parseTrainingRun(Buffer.from(JSON.stringify(env)))
  t.equal(run.statementHash, statementHashOf(encodeStatement(st)))
  t.same(checkTrainingRun(run, { trainerKeys: [trainer.publicKey], modelHash: sha('model'), baseModelHash: sha('base') }).valid, true)
})

t.test('behavior: hyperparameter key order does not change the digest; a value does', async t => {
  t.equal(hyperparametersDigestOf({ a: 1, b: { c: 2, d: 3 } }), hyperparametersDigestOf({ b: { d: 3, c: 2 }, a: 1 }))
  t.not(hyperparametersDigestOf({ a: 1 }), hyperparametersDigestOf({ a: 1.0000001 }))
})

t.test('error: each failed check is named with its reason', async t => {
  const run = signed()
  const reasons = (facts: Parameters<typeof checkTrainingRun>[1]): string[] => checkTrainingRun(run, facts).checks.filter(c => !c.ok).map(c => c.reason as string)
  t.same(reasons({ trainerKeys: [stranger.publicKey] }), ['TRAINER_UNKNOWN'], 'signed by a key the registry does not know')
  t.same(reasons({ trainerKeys: [trainer.publicKey], modelHash: sha('other model') }), ['MODEL_MISMATCH'])
  t.same(reasons({ trainerKeys: [trainer.publicKey], baseModelHash: sha('other') }), ['BASE_MODEL_MISMATCH'])
  t.same(reasons({ trainerKeys: [trainer.publicKey], datasetDigests: new Map([['photos', sha('changed')]]) }), ['DATASET_MISMATCH'])
  t.same(reasons({ trainerKeys: [trainer.publicKey], datasetDigests: new Map([['unknown', sha('x')]]) }), ['DATASET_MISMATCH'])
  t.same(reasons({ trainerKeys: [trainer.publicKey], registeredDatasets: new Set() }), ['DATASET_NOT_REGISTERED'])
  t.same(reasons({ trainerKeys: [trainer.publicKey], registeredStatementHash: sha('another statement') }), ['TRAINING_RUN_MISMATCH'])
  t.same(reasons({ trainerKeys: [trainer.publicKey], registeredStatementHash: null }), ['TRAINING_RUN_MISSING'])
  t.same(reasons({ trainerKeys: [trainer.publicKey], registeredStatementHash: run.statementHash, registeredDatasets: new Set([sha('photos v2')]) }), [])
})

t.test('error: a tampered payload, a moved signature or a lying keyid fails the signature check', async t => {
  const env = signTrainingStatement(buildTrainingStatement(input()), trainer)
  // Tamper: change lr in the payload, keep the signature.
  const st = JSON.parse(Buffer.from(env.payload, 'base64').toString()) as { predicate: { hyperparameters: { lr: number }, hyperparametersDigest: string } }
  st.predicate.hyperparameters.lr = 0.1
  st.predicate.hyperparametersDigest = hyperparametersDigestOf(st.predicate.hyperparameters)
  const tampered = { ...env, payload: Buffer.from(canonicalJson(st as unknown as JsonValue)).toString('base64') }
  const run = parseTrainingRun(Buffer.from(JSON.stringify(tampered)))
  t.same(checkTrainingRun(run, { trainerKeys: [trainer.publicKey] }).checks[0]?.reason, 'SIGNATURE_INVALID')
  // A stranger's signature with the trainer's keyid is still not the trainer's.
  const forged = signTrainingStatement(buildTrainingStatement(input()), stranger)
  const lying = { ...forged, signatures: [{ keyid: Buffer.from(trainer.publicKey).toString('hex'), sig: forged.signatures[0]?.sig as string }] }
  t.same(checkTrainingRun(parseTrainingRun(Buffer.from(JSON.stringify(lying))), { trainerKeys: [trainer.publicKey] }).checks[0]?.reason, 'SIGNATURE_INVALID')
  // A signature over the raw payload (not PAE) does not verify: the payload type is bound.
  const { privateKey } = generateKeyPairSync('ed25519')
  const raw = { ...env, signatures: [{ keyid: '', sig: nodeSign(null, Buffer.from(env.payload, 'base64'), privateKey).toString('base64') }] }
  t.same(checkTrainingRun(parseTrainingRun(Buffer.from(JSON.stringify(raw))), { trainerKeys: [trainer.publicKey] }).valid, false)
  // Another payload type over the same bytes is refused outright.
  expectCode(t, () => parseTrainingRun(Buffer.from(JSON.stringify({ ...env, payloadType: 'text/plain' }))), 'STATEMENT_INVALID', 'payload type')
})

t.test('behavior: the diff lists hyperparameters by JSON Pointer, then other claims', async t => {
  const a = signed().statement
  const b = signed({ hyperparameters: { lr: 0.002, epochs: 10, opt: { name: 'adam', betas: [0.9, 0.99] }, 'warm/up': 5 }, codeRevision: 'git:def' }).statement
  const d = diffTrainingRuns(a, b)
  t.same(d.hyperparameters, [
    { path: '/lr', from: 0.001, to: 0.002 },
    { path: '/opt/betas', from: [0.9, 0.999], to: [0.9, 0.99] },
    { path: '/warm~1up', to: 5 }
  ])
  t.same(d.other, [{ path: '/codeRevision', from: 'git:abc', to: 'git:def' }])
  t.same(diffTrainingRuns(a, a), { hyperparameters: [], other: [] })
})

t.test('error: malformed envelopes and statements are STATEMENT_INVALID or LINEAGE_INPUT_TOO_LARGE, never a crash', async t => {
  const env = signTrainingStatement(buildTrainingStatement(input()), trainer)
  const text = JSON.stringify(env)
  for (let cut = 0; cut < text.length; cut += Math.max(1, Math.floor(text.length / 40))) expectCode(t, () => parseTrainingRun(Buffer.from(text.slice(0, cut))), 'STATEMENT_INVALID', `truncated at ${cut}`)
  expectCode(t, () => parseTrainingRun(new Uint8Array([0, 1, 2, 255])), 'STATEMENT_INVALID', 'garbage')
  expectCode(t, () => parseTrainingRun(Buffer.from(text), 100), 'LINEAGE_INPUT_TOO_LARGE', 'huge')
  expectCode(t, () => parseTrainingRun(Buffer.from(JSON.stringify({ ...env, payload: '!!!' }))), 'STATEMENT_INVALID', 'bad base64')
  expectCode(t, () => parseTrainingRun(Buffer.from(JSON.stringify({ ...env, signatures: [] }))), 'STATEMENT_INVALID', 'no signature')
  expectCode(t, () => parseTrainingRun(Buffer.from(JSON.stringify({ ...env, payload: Buffer.from('not json').toString('base64') }))), 'STATEMENT_INVALID', 'payload not JSON')
  const withStatement = (f: (s: any) => void): Uint8Array => {
    const s = JSON.parse(Buffer.from(env.payload, 'base64').toString())
    f(s)
    return Buffer.from(JSON.stringify({ ...env, payload: Buffer.from(JSON.stringify(s)).toString('base64') }))
  }
  expectCode(t, () => parseTrainingRun(withStatement(s => { s.predicateType = 'https://model_signing/signature/v1.0' })), 'STATEMENT_INVALID', 'other predicate type')
  expectCode(t, () => parseTrainingRun(withStatement(s => { s.predicate.hyperparametersDigest = sha('x') })), 'STATEMENT_INVALID', 'hyperparameter digest does not match')
  expectCode(t, () => parseTrainingRun(withStatement(s => { s.predicate.outputModel.digest.sha256 = sha('x') })), 'STATEMENT_INVALID', 'output model is not the subject')
  expectCode(t, () => parseTrainingRun(withStatement(s => { s.predicate.extra = 1 })), 'STATEMENT_INVALID', 'unknown predicate field')
  expectCode(t, () => parseTrainingRun(withStatement(s => { s.predicate.datasets = [{ name: 'x' }] })), 'STATEMENT_INVALID', 'dataset without digest')
  expectCode(t, () => parseTrainingRun(withStatement(s => { s.predicate.startedAt = 'yesterday' })), 'STATEMENT_INVALID', 'time')
  expectCode(t, () => parseTrainingRun(withStatement(s => { s.subject.push(s.subject[0]) })), 'STATEMENT_INVALID', 'two subjects')
  expectCode(t, () => buildTrainingStatement(input({ hyperparameters: { x: NaN } })), 'CANONICAL_JSON_INVALID', 'NaN hyperparameter')
  expectCode(t, () => buildTrainingStatement(input({ baseModelHash: 'zz' })), 'STATEMENT_INVALID', 'bad base hash')
})
