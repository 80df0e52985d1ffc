// Verification of incident bundles end to end on a real anvil chain: a valid bundle verifies
// offline and online, and the tamper matrix (altered, deleted, reordered records; changed or
// unanchored roots; forged keys; unknown, revoked and deprecated models) is caught with the exact
// seq and a stable reason. Bundles come from exportBundle against the stand-in gateway.
import t from 'tap'
import {
  createSigner, decodeBundleRecord, decodeEnvelope, encodeBundle, decodeBundle, encodeBundleRecord, formatProof, parseProof, toHex,
  type Bundle, type GapBody
} from '../../protocol/index.js'
import { exportBundle } from '../../forensics/export/index.js'
import { verifyBundle, type Verdict } from '../../forensics/verify/index.js'
import { ForensicsError } from '../../forensics/errors.js'
import { fakeHash, resign, seedFrom } from '../helpers/records.js'
import { FIXTURE_GATEWAY, MAIN_DEVICE, MODEL_0, MODEL_1, clone, startChain, startIncident, type Incident } from '../helpers/forensics-fixture.js'

const chain = await startChain(t)
const rpcUrl = chain.anvil.rpcUrl
const incident = await startIncident(t, chain)
const bundle = await exportBundle(incident.exportOptions)

function seqOf (b64: string): number {
  return decodeEnvelope(decodeBundleRecord(b64)).record.seq
}
function indexOfSeq (b: Bundle, seq: number): number {
  const i = b.records.findIndex(r => seqOf(r) === seq)
  if (i === -1) throw new Error(`no seq ${seq} in the bundle`)
  return i
}
/** [seq, reason] of each failure, in the order found. */
function failed (v: Verdict): Array<[number | undefined, string]> {
  return v.failures.map(f => [f.seq, f.reason])
}
/** Seqs of the main device's records in batch `id` (1-based) of an incident. */
function seqsOfBatch (inc: Incident, id: number): number[] {
  return (inc.batches[id - 1]?.leaves ?? []).filter(l => l.device === MAIN_DEVICE).map(l => l.signed.record.seq)
}
async function offlineAndOnline (b: Bundle, options: Parameters<typeof verifyBundle>[1] = {}): Promise<[Verdict, Verdict]> {
  return [await verifyBundle(b, { ...options, offline: true }), await verifyBundle(b, { ...options, rpcUrl })]
}

t.test('behavior: a valid bundle verifies offline and online, every signature and proof checked', async t => {
  const text = encodeBundle(bundle)
  const [offline, online] = await offlineAndOnline(decodeBundle(text))
  for (const v of [offline, online]) {
    t.equal(v.verdict, 'valid', `${v.mode}: valid`)
    t.same(v.failures, [], `${v.mode}: no failure`)
    t.same(v.warnings, [])
    t.match(v.counts, {
      records: bundle.records.length, judged: bundle.records.length, signaturesChecked: bundle.records.length, signaturesValid: bundle.records.length,
      chainLinked: bundle.records.length, proofsChecked: bundle.records.length, proofsValid: bundle.records.length, models: 2, failures: 0
    })
    t.equal(v.counts.anchors, incident.batches.length)
    t.same(v.gaps, [{ firstSeq: 6, lastSeq: 7, reason: 'disk-budget' }], 'the honest gap is listed, not failed')
    t.equal(v.fromGenesis, true)
    t.equal(v.firstSeq, 0)
    t.equal(v.lastSeq, incident.device.seq - 1)
  }
  t.equal(offline.chain.checkedAtBlock, null)
  t.ok((online.chain.checkedAtBlock ?? 0) >= bundle.chain.readAtBlock)
})

t.test('error: a bit flip in a record is bad-signature (and root-mismatch) at exactly its seq', async t => {
  const seq = 13
  const b = clone(bundle)
  const i = indexOfSeq(b, seq)
  const bytes = Buffer.from(decodeBundleRecord(b.records[i] as string))
  const at = bytes.indexOf(Buffer.from(fakeHash(`input/${seq}`)))
  t.ok(at > 0, 'the input commitment is in the envelope')
  bytes[at + 5] = (bytes[at + 5] as number) ^ 0x04
  b.records[i] = encodeBundleRecord(bytes)
  for (const v of await offlineAndOnline(b)) {
    t.equal(v.verdict, 'invalid')
    t.same(failed(v), [[seq, 'bad-signature'], [seq, 'root-mismatch']], `${v.mode}: the altered record only, no cascade`)
    t.equal(v.failures[0]?.index, i)
    t.equal(v.counts.recordsFailed, 1)
  }
})

t.test('error: a bit flip that breaks the encoding is record-malformed at the seq it stands for', async t => {
  const seq = 4
  const b = clone(bundle)
  const i = indexOfSeq(b, seq)
  const bytes = Buffer.from(decodeBundleRecord(b.records[i] as string))
  bytes[0] = 0x83 // the envelope's array of 2 becomes an array of 3
  b.records[i] = encodeBundleRecord(bytes)
  const v = await verifyBundle(b, { offline: true })
  t.same(failed(v), [[seq, 'record-malformed']])
  t.equal(v.counts.malformed, 1)
})

t.test('error: a deleted record is seq-gap at exactly the missing seq', async t => {
  const b = clone(bundle)
  b.records.splice(indexOfSeq(b, 13), 1)
  for (const v of await offlineAndOnline(b)) {
    t.same(failed(v), [[13, 'seq-gap']], v.mode)
    t.match(v.failures[0], { seq: 13, lastSeq: 13, reason: 'seq-gap' })
  }
  const c = clone(bundle)
  c.records.splice(indexOfSeq(c, 3), 2)
  t.match((await verifyBundle(c, { offline: true })).failures, [{ reason: 'seq-gap', seq: 3, lastSeq: 4 }], 'two in a row: one range')
})

t.test('error: two reordered records are seq-reuse at the seq that comes back', async t => {
  const b = clone(bundle)
  const i = indexOfSeq(b, 13)
  ;[b.records[i], b.records[i + 1]] = [b.records[i + 1] as string, b.records[i] as string]
  for (const v of await offlineAndOnline(b)) {
    t.same(failed(v), [[13, 'seq-reuse']], v.mode)
  }
})

t.test('error: a root changed in the bundle is root-not-anchored offline, anchor-mismatch online', async t => {
  const b = clone(bundle)
  const batch = incident.batches[1]
  const k = b.anchors.findIndex(a => a.root === toHex(batch?.root as Uint8Array))
  b.anchors[k] = { ...b.anchors[k] as Bundle['anchors'][number], root: toHex(fakeHash('forged-root')) }
  const seqs = seqsOfBatch(incident, 2)
  const offline = await verifyBundle(b, { offline: true })
  t.same(failed(offline), seqs.map(s => [s, 'root-not-anchored']), 'every record of that batch, by seq')
  const online = await verifyBundle(b, { rpcUrl })
  t.equal(online.verdict, 'invalid')
  t.same(failed(online), [[seqs[0], 'anchor-mismatch'], [undefined, 'anchor-mismatch']], 'the real root left out, a forged one listed')
  t.match(online.failures[1]?.message, /does not have/)
})

t.test('error: a root changed in both the anchors and the proofs is root-mismatch at each seq', async t => {
  const b = clone(bundle)
  const real = toHex(incident.batches[2]?.root as Uint8Array)
  const forged = fakeHash('forged-root-2')
  b.anchors = b.anchors.map(a => a.root === real ? { ...a, root: toHex(forged) } : a)
  b.proofs = b.proofs.map(p => {
    const proof = parseProof(p.proof)
    if (toHex(proof.checkpoint.rootHash) !== real) return p
    return { seq: p.seq, proof: formatProof({ ...proof, checkpoint: { ...proof.checkpoint, rootHash: forged } }) }
  })
  const seqs = seqsOfBatch(incident, 3)
  t.same(failed(await verifyBundle(b, { offline: true })), seqs.map(s => [s, 'root-mismatch']))
  const online = await verifyBundle(b, { rpcUrl })
  t.same(online.failures.filter(f => f.reason === 'root-not-anchored').map(f => f.seq), seqs, 'online: the forged root is not on chain')
})

t.test('error: an anchored tree size changed in the bundle is caught: the size comes from the facts, not the proof', async t => {
  const b = clone(bundle)
  const real = toHex(incident.batches[0]?.root as Uint8Array)
  b.anchors = b.anchors.map(a => a.root === real ? { ...a, size: a.size + 1 } : a)
  const seqs = seqsOfBatch(incident, 1)
  const offline = await verifyBundle(b, { offline: true })
  t.same(new Set(offline.failures.map(f => f.seq)), new Set(seqs))
  t.ok(offline.failures.every(f => ['proof-invalid', 'root-mismatch', 'anchor-mismatch'].includes(f.reason)))
  t.ok(offline.failures.some(f => f.reason === 'anchor-mismatch' && /checkpoint says/.test(f.message)))
  const online = await verifyBundle(b, { rpcUrl })
  t.same(failed(online), [[seqs[0], 'anchor-mismatch']], 'online: proofs verify against the chain\'s size; the bundle\'s is named')
  t.match(online.failures[0]?.message, /size/)
})

t.test('error: a root not on chain: forged anchor passes offline, online it is root-not-anchored', async t => {
  const inc = await startIncident(t, chain, { lastBatchNotAnchored: true })
  const b = await exportBundle(inc.exportOptions)
  const last = inc.batches[inc.batches.length - 1]
  const seqs = seqsOfBatch(inc, inc.batches.length)
  t.ok(seqs.length > 0)
  t.equal(b.anchors.length, inc.batches.length - 1, 'export lists only what the chain anchored')
  for (const v of await offlineAndOnline(b)) t.same(failed(v), seqs.map(s => [s, 'root-not-anchored']), `${v.mode}: honest bundle`)

  // A forger adds the missing anchor to the bundle, copying a real one's transaction.
  const forged = clone(b)
  const template = forged.anchors[0] as Bundle['anchors'][number]
  forged.anchors.push({ ...template, root: toHex(last?.root as Uint8Array), size: last?.size as number, firstRecordTimeMs: last?.firstRecordTimeMs as number, lastRecordTimeMs: last?.lastRecordTimeMs as number })
  const offline = await verifyBundle(forged, { offline: true })
  t.equal(offline.verdict, 'valid', 'offline trusts the bundle\'s facts')
  const online = await verifyBundle(forged, { rpcUrl })
  t.same(online.failures.filter(f => f.reason === 'root-not-anchored').map(f => f.seq), seqs)
  t.same(online.failures.filter(f => f.reason === 'anchor-mismatch').map(f => f.seq), [seqs[0]])
})

t.test('error: a forged key: bad-signature offline for its period, key-mismatch online at the first record', async t => {
  const b = clone(bundle)
  b.device.keys[0] = { ...b.device.keys[0] as Bundle['device']['keys'][number], publicKey: toHex(createSigner(seedFrom('forger')).publicKey) }
  const rotationFrom = incident.device.keys[1]?.validFromMs as number
  const period = incident.device.records.filter(r => r.record.timeMs < rotationFrom).map(r => r.record.seq)
  const offline = await verifyBundle(b, { offline: true })
  t.same(failed(offline), period.map(s => [s, 'bad-signature']), 'each record signed in the forged period')
  const online = await verifyBundle(b, { rpcUrl })
  t.same(failed(online), [[0, 'key-mismatch']], 'online: records verify under the registry key; the bundle\'s key is named')
})

t.test('error: a key history cut short: later records are bad-signature offline, key-mismatch online', async t => {
  const b = clone(bundle)
  b.device.keys = [{ publicKey: (b.device.keys[0] as { publicKey: string }).publicKey, validFromMs: 0 }]
  const rotationFrom = incident.device.keys[1]?.validFromMs as number
  const after = incident.device.records.filter(r => r.record.timeMs >= rotationFrom).map(r => r.record.seq)
  const offline = await verifyBundle(b, { offline: true })
  t.same(failed(offline), after.map(s => [s, 'bad-signature']), 'records after the rotation do not verify under the old key')
  t.same(offline.warnings.map(w => [w.seq, w.reason]), [[10, 'rotation-unregistered']], 'the rotation record names a key the bundle lacks')
  t.same(failed(await verifyBundle(b, { rpcUrl })), [[after[0], 'key-mismatch']])
})

t.test('behavior: a time window judges its records only, the chain still checked from the first record', async t => {
  const b = clone(bundle)
  b.records.splice(indexOfSeq(b, 3), 1) // deleted before the window
  const start = incident.device.records.find(r => r.record.seq === 16)?.record.timeMs as number
  const windowed = await verifyBundle(b, { offline: true, fromMs: start })
  t.equal(windowed.verdict, 'valid')
  t.equal(windowed.counts.judged, incident.device.records.filter(r => r.record.timeMs >= start).length)
  t.equal(windowed.counts.notJudged, 1, 'the deletion before the window is seen, not judged')
  t.same(windowed.window, { fromMs: start, toMs: null })
  const whole = await verifyBundle(b, { offline: true })
  t.same(failed(whole), [[3, 'seq-gap']])
  const inside = clone(bundle)
  inside.records.splice(indexOfSeq(inside, 20), 1)
  t.same(failed(await verifyBundle(inside, { offline: true, fromMs: start })), [[20, 'seq-gap']])
  const empty = await verifyBundle(bundle, { offline: true, fromMs: 1, toMs: 2 })
  t.same(failed(empty), [[undefined, 'no-records']])
})

t.test('behavior: records not yet anchored fail, or warn with allowUnanchored', async t => {
  const inc = await startIncident(t, chain, { openTail: 3 })
  const b = await exportBundle(inc.exportOptions)
  t.equal(b.proofs.length, b.records.length - 3)
  const tail = inc.device.records.slice(-3).map(r => r.record.seq)
  const v = await verifyBundle(b, { offline: true })
  t.same(failed(v), tail.map(s => [s, 'record-not-anchored']))
  const allowed = await verifyBundle(b, { offline: true, allowUnanchored: true })
  t.equal(allowed.verdict, 'valid')
  t.same(allowed.warnings.map(w => [w.seq, w.reason]), tail.map(s => [s, 'record-not-anchored']))
})

t.test('error: online against a node of another chain, or a block the chain does not have', async t => {
  const b = clone(bundle)
  b.chain.chainId = 1
  await t.rejects(verifyBundle(b, { rpcUrl }), { constructor: ForensicsError, code: 'CHAIN_MISMATCH' })
  const c = clone(bundle)
  c.chain.readAtBlockHash = '0x' + toHex(fakeHash('another fork'))
  t.same(failed(await verifyBundle(c, { rpcUrl })), [[undefined, 'chain-mismatch']])
  const d = clone(bundle)
  d.chain.registry = '0x' + '11'.repeat(20)
  await t.rejects(verifyBundle(d, { rpcUrl }), { constructor: ForensicsError, code: 'REGISTRY_NOT_FOUND' })
})

t.test('error: bad options are TypeError / RangeError before any work', async t => {
  await t.rejects(verifyBundle(bundle, { offline: true, rpcUrl }), TypeError)
  await t.rejects(verifyBundle(bundle, { offline: false }), TypeError)
  await t.rejects(verifyBundle(bundle, { offline: true, fromMs: -1 }), RangeError)
  await t.rejects(verifyBundle(bundle, { offline: true, fromMs: 5, toMs: 4 }), RangeError)
  await t.rejects(verifyBundle({ ...bundle, records: 'x' } as unknown as Bundle, { offline: true }), { code: 'BUNDLE_INVALID' })
})

// Last: these change the models on the shared chain.
t.test('error: a model unknown on chain is model-unknown at its load and each of its inferences', async t => {
  const inc = await startIncident(t, chain, { withUnknownModel: true })
  const b = await exportBundle(inc.exportOptions)
  const uses = inc.device.records.filter(r => (r.record.body.kind === 'model-load' || r.record.body.kind === 'inference') &&
    toHex(r.record.body.modelHash) === toHex(fakeHash('model/x'))).map(r => r.record.seq)
  t.equal(uses.length, 3)
  t.match(b.models.find(m => m.hash === toHex(fakeHash('model/x'))), { status: 'none' }, 'the bundle says the registry does not know it')
  for (const v of await offlineAndOnline(b)) t.same(failed(v), uses.map(s => [s, 'model-unknown']), v.mode)
})

t.test('error: a model revoked on chain after export is model-revoked online; deprecated is a warning', async t => {
  const publisher = chain.registryAs('modelPublisher')
  await publisher.deprecateModel('0x' + MODEL_0)
  await publisher.revokeModel('0x' + MODEL_1)
  const uses = incident.device.records.filter(r => (r.record.body.kind === 'model-load' || r.record.body.kind === 'inference') &&
    toHex(r.record.body.modelHash) === MODEL_1).map(r => r.record.seq)
  t.equal((await verifyBundle(bundle, { offline: true })).verdict, 'valid', 'offline: the bundle\'s facts predate the revocation')
  const online = await verifyBundle(bundle, { rpcUrl })
  t.same(failed(online), uses.map(s => [s, 'model-revoked']), 'online: today\'s registry judges; the bundle matched its block')
  t.same(online.warnings.map(w => [w.seq, w.reason]), [[1, 'model-deprecated']], 'deprecated: warned once per boot, valid otherwise')
  const fresh = await exportBundle(incident.exportOptions)
  t.match(fresh.models.find(m => m.hash === MODEL_1), { status: 'revoked', name: 'detector', version: '1.1.0', parentHash: MODEL_0 })
  t.same(failed(await verifyBundle(fresh, { offline: true })), uses.map(s => [s, 'model-revoked']), 'a later export carries the revocation offline')
  // The older bundle, compared at its own block, still matches the chain: no model-mismatch.
  t.notOk(online.failures.some(f => f.reason === 'model-mismatch'))
  const lying = clone(bundle)
  lying.models = lying.models.map(m => m.hash === MODEL_1 ? { ...m, version: '9.9.9' } : m)
  t.same(failed(await verifyBundle(lying, { rpcUrl })).filter(f => f[1] === 'model-mismatch'), [[uses[0], 'model-mismatch']])
})

// ---------------------------------------------------------------------------------------------
// Signed checkpoints (PROTOCOL.md §7.8, FORENSICS.md §3)

/** Findings other than the model facts (which earlier tests change on the shared chain). */
function notModel<F extends { reason: string }> (findings: F[]): F[] {
  return findings.filter(f => !f.reason.startsWith('model-'))
}

/** The bundle with every proof's checkpoint signature lines rewritten by `edit`. */
function editCheckpointSignatures (b: Bundle, edit: (sigLines: string) => string): Bundle {
  const c = clone(b)
  c.proofs = c.proofs.map(p => {
    const at = p.proof.indexOf('\n\n') + 2
    const note = p.proof.slice(at)
    const split = note.indexOf('\n\n') + 2
    return { seq: p.seq, proof: p.proof.slice(0, at) + note.slice(0, split) + edit(note.slice(split)) }
  })
  return c
}

t.test('behavior: the exported bundle names the gateway log key and every checkpoint signature verifies', async t => {
  t.same(bundle.gateways, [FIXTURE_GATEWAY])
  t.ok(bundle.proofs.every(p => p.proof.includes('\n— test-gateway ')), 'proofs end in a signed checkpoint')
})

t.test('behavior: unsigned checkpoints (proofs from before signing) are a checkpoint-unsigned warning once per batch, still valid', async t => {
  const old = editCheckpointSignatures(bundle, () => '')
  delete old.gateways
  const [offline, online] = await offlineAndOnline(old)
  for (const v of [offline, online]) {
    // (An earlier test revokes model 1 on the shared chain: only checkpoint findings are looked at online.)
    t.same(notModel(v.failures), [], v.mode)
    t.same(new Set(notModel(v.warnings).map(w => w.reason)), new Set(['checkpoint-unsigned']))
    t.equal(notModel(v.warnings).length, incident.batches.length, 'one warning per checkpoint, not per record')
  }
  // A bundle that names no gateway key cannot check signed checkpoints either: warned, not failed.
  const noKey = clone(bundle)
  delete noKey.gateways
  const v = await verifyBundle(noKey, { offline: true })
  t.equal(v.verdict, 'valid')
  t.match(v.warnings[0], { reason: 'checkpoint-unsigned', message: /names no gateway key/ })
})

t.test('error: a forged checkpoint signature is checkpoint-signature-invalid at the first record of each batch', async t => {
  const forged = editCheckpointSignatures(bundle, lines => {
    const b64 = lines.slice(lines.lastIndexOf(' ') + 1, -1)
    const raw = Buffer.from(b64, 'base64')
    raw[10] = (raw[10] as number) ^ 1
    return lines.slice(0, lines.lastIndexOf(' ') + 1) + raw.toString('base64') + '\n'
  })
  const [offline, online] = await offlineAndOnline(forged)
  for (const v of [offline, online]) {
    t.equal(v.verdict, 'invalid', v.mode)
    const f = notModel(v.failures)
    t.same(new Set(f.map(x => x.reason)), new Set(['checkpoint-signature-invalid']))
    t.equal(f.length, incident.batches.length)
    t.equal(f[0]?.seq, 0)
    t.match(f[0]?.message, /SIGNATURE_INVALID/)
  }
})

t.test('error: a bundle naming another gateway key is checkpoint-signature-invalid offline and gateway-key-mismatch online; an unregistered gateway only warns', async t => {
  const other = clone(bundle)
  other.gateways = [{ ...FIXTURE_GATEWAY, publicKey: toHex(createSigner(seedFrom('another gateway')).publicKey) }]
  const [offline, online] = await offlineAndOnline(other)
  t.same(new Set(failed(offline).map(f => f[1])), new Set(['checkpoint-signature-invalid']))
  t.match(offline.failures[0]?.message, /NOTE_UNVERIFIED/)
  t.ok(failed(online).some(([seq, reason]) => seq === undefined && reason === 'gateway-key-mismatch'), 'online: the key is not the registered one')
  const unknown = clone(bundle)
  unknown.gateways = [{ ...FIXTURE_GATEWAY, id: 'gw-nobody' }]
  const v = await verifyBundle(unknown, { rpcUrl })
  t.same(notModel(v.failures), [], 'a gateway never registered is not a failure')
  t.ok(v.warnings.some(f => f.reason === 'gateway-key-unregistered' && f.seq === undefined && /knows no key of gateway "gw-nobody"/.test(f.message)))
})

t.test('behavior: an export window that begins at a gap record verifies, the declared range listed as an honest gap', async t => {
  const gap = incident.device.records.find(r => r.record.body.kind === 'gap')
  if (gap === undefined) throw new Error('the fixture has a gap record')
  const windowed = await exportBundle({ ...incident.exportOptions, fromMs: gap.record.timeMs })
  t.equal(seqOf(windowed.records[0] as string), gap.record.seq, 'the bundle starts at the gap record')
  const [offline, online] = await offlineAndOnline(windowed)
  for (const v of [offline, online]) {
    t.same(notModel(v.failures), [], v.mode)
    t.same(v.gaps, [{ firstSeq: 6, lastSeq: 7, reason: 'disk-budget' }])
    t.equal(v.fromGenesis, false)
  }
  // Its lastHash must still be its own prev: a forged declaration is bad-gap at its seq.
  const forged = clone(windowed)
  const body = decodeEnvelope(decodeBundleRecord(forged.records[0] as string)).record
  forged.records[0] = encodeBundleRecord(resign({ ...body, body: { ...(body.body as GapBody), lastHash: new Uint8Array(32).fill(7) } }).envelope)
  t.same(failed(await verifyBundle(forged, { offline: true })).filter(f => f[1] === 'bad-gap'), [[gap.record.seq, 'bad-gap']])
})
