// Signature verification on worker threads: node:crypto on a pool, node:crypto inline and noble
// (the independent backend) must reach the same verdict, finding for finding, on valid and
// tampered bundles, including signatures that only a lax verifier would accept.
import t from 'tap'
import { RECORD_SIGNING_PREFIX, concat, decodeBundleRecord, decodeCanonical, decodeEnvelope, encodeBundleRecord, encodeCanonical, formatProof, parseProof, type Bundle, type CborValue, type TlogProof } from '../../protocol/index.js'
import { verifyBundle, type Verdict } from '../../forensics/verify/index.js'
import { clone, makeDeviceHistory, offlineBundle } from '../helpers/forensics-fixture.js'
import { fakeHash, sampleInference } from '../helpers/records.js'

/** The device history with `extra` more inferences: past one signature batch (1024 records). */
function bigBundle (extra: number): Bundle {
  const device = makeDeviceHistory()
  for (let i = 0; i < extra; i++) device.append(sampleInference(device.seq, fakeHash('model/1')))
  return offlineBundle(device)
}

/** Flips a bit of the signature (the envelope's last 64 bytes) of record `index`. */
function breakSignature (b: Bundle, index: number): void {
  const envelope = decodeBundleRecord(b.records[index] as string)
  envelope[envelope.length - 1] = (envelope[envelope.length - 1] as number) ^ 1
  b.records[index] = encodeBundleRecord(envelope)
}

/** A verdict without what legitimately differs between backends (time, the backend's name). */
function comparable (v: Verdict): object {
  const { elapsedMs, verifier, ...rest } = v
  void elapsedMs
  void verifier
  return rest
}

/** node:crypto on a pool and inline, noble on a pool; noble inline (slow) where the bundle is small. */
async function allBackends (b: Bundle): Promise<Verdict[]> {
  return [
    await verifyBundle(b, { offline: true, workers: 2 }),
    await verifyBundle(b, { offline: true, workers: 0 }),
    await verifyBundle(b, { offline: true, verifier: 'noble', workers: 2 }),
    ...(b.records.length <= 400 ? [await verifyBundle(b, { offline: true, verifier: 'noble', workers: 0 })] : [])
  ]
}

t.test('behavior: node:crypto on worker threads, node:crypto inline and noble reach the same verdict on a valid bundle', async t => {
  const b = bigBundle(1050)
  const verdicts = await allBackends(b)
  t.same(verdicts.map(v => v.verifier), ['node', 'node', 'noble'])
  t.equal(verdicts[0]?.verdict, 'valid')
  t.equal(verdicts[0]?.counts.signaturesValid, b.records.length)
  for (const v of verdicts.slice(1)) t.same(comparable(v), comparable(verdicts[0] as Verdict))
})

t.test('attack: broken signatures and a malformed record give the same findings on every backend', async t => {
  const b = clone(bigBundle(300))
  for (const i of [3, 100, 250, b.records.length - 1]) breakSignature(b, i)
  b.records[200] = 'bm90IGFuIGVudmVsb3Bl'
  const verdicts = await allBackends(b)
  t.equal(verdicts[0]?.verdict, 'invalid')
  t.ok((verdicts[0]?.reasons['bad-signature'] ?? 0) >= 4, 'each broken signature is found')
  t.equal(verdicts[0]?.reasons['record-malformed'], 1)
  for (const v of verdicts.slice(1)) t.same(comparable(v), comparable(verdicts[0] as Verdict))
})

t.test('attack: a small-order device key with the identity signature (which OpenSSL alone would accept) fails on every backend', async t => {
  const b = clone(bigBundle(10))
  const identity = '01' + '00'.repeat(31)
  b.device.keys = [{ publicKey: identity, validFromMs: 0 }]
  // R = the identity point, S = 0: [S]B = R + [k]A holds for every message when A is the identity.
  const signature = Buffer.concat([Buffer.from(identity, 'hex'), Buffer.alloc(32)])
  b.records = b.records.map(r => {
    const envelope = decodeBundleRecord(r)
    envelope.set(signature, envelope.length - 64)
    return encodeBundleRecord(envelope)
  })
  for (const v of await allBackends(b)) {
    t.equal(v.counts.signaturesValid, 0, `${v.verifier}: no signature accepted`)
    t.equal(v.verdict, 'invalid')
  }
})

t.test('attack: a validly signed record whose header reads but whose body does not decode is malformed on every backend', async t => {
  // The pool is sent this record (its header peeks fine) and finds its signature valid; the walk
  // decodes it, fails, and must report it malformed without taking that answer for anything.
  const device = makeDeviceHistory()
  for (let i = 0; i < 40; i++) device.append(sampleInference(device.seq, fakeHash('model/1')))
  const b = offlineBundle(device)
  const index = 30
  const fields = decodeCanonical(decodeEnvelope(decodeBundleRecord(b.records[index] as string)).recordBytes) as CborValue[]
  const recordBytes = encodeCanonical([...fields.slice(0, 7), []])
  const signature = device.signer.sign(concat(RECORD_SIGNING_PREFIX, recordBytes))
  b.records[index] = encodeBundleRecord(encodeCanonical([recordBytes, signature]))
  const verdicts = await allBackends(b)
  t.equal(verdicts[0]?.verdict, 'invalid')
  t.equal(verdicts[0]?.reasons['record-malformed'], 1)
  t.equal(verdicts[0]?.counts.signaturesValid, b.records.length - 1, 'the malformed record is not counted as a valid signature')
  for (const v of verdicts.slice(1)) t.same(comparable(v), comparable(verdicts[0] as Verdict))
})

t.test('attack: tampered inclusion proofs give the same findings whether the workers or the calling thread judge them', async t => {
  const b = clone(bigBundle(1100))
  const edit = (i: number, change: (p: TlogProof) => TlogProof): void => {
    const entry = b.proofs[i] as Bundle['proofs'][number]
    entry.proof = formatProof(change(parseProof(entry.proof)))
  }
  const flip = (h: Uint8Array): Uint8Array => { const c = h.slice(); c[0] = (c[0] as number) ^ 1; return c }
  // A wrong sibling after its neighbours verified (the remembered node must not be reused), in
  // the first batch and in a later one; a wrong index; a proof for another root.
  edit(5, p => ({ ...p, hashes: p.hashes.map((h, k) => k === 0 ? flip(h) : h) }))
  edit(1030, p => ({ ...p, hashes: p.hashes.map((h, k) => k === p.hashes.length - 1 ? flip(h) : h) }))
  edit(700, p => ({ ...p, index: p.index + 1 }))
  edit(800, p => ({ ...p, checkpoint: { ...p.checkpoint, rootHash: flip(p.checkpoint.rootHash) } }))
  // Extra lines that contradict the facts, one named like an Object.prototype property.
  edit(900, p => ({ ...p, extra: [{ key: 'constructor', value: 'x' }, { key: 'seq', value: '999999' }, { key: 'hasownproperty', value: 'y' }] }))
  ;(b.proofs[950] as Bundle['proofs'][number]).proof = 'not a proof'
  const pooled = await verifyBundle(b, { offline: true, workers: 2 })
  const inline = await verifyBundle(b, { offline: true, workers: 0 })
  t.equal(pooled.verdict, 'invalid')
  t.same(comparable(inline), comparable(pooled))
  const failed = new Map(pooled.failures.map(f => [f.seq, f.reason]))
  const seqOf = (i: number): number => (b.proofs[i] as Bundle['proofs'][number]).seq
  t.equal(failed.get(seqOf(5)), 'root-mismatch')
  t.equal(failed.get(seqOf(1030)), 'root-mismatch')
  t.ok(['root-mismatch', 'proof-invalid'].includes(failed.get(seqOf(700)) as string))
  t.equal(failed.get(seqOf(800)), 'root-not-anchored')
  t.match(pooled.failures.find(f => f.seq === seqOf(900))?.message, /seq is 999999/)
  t.equal(failed.get(seqOf(950)), 'proof-invalid')
  t.equal(pooled.counts.proofsValid, b.records.length - 5)
})

t.test('attack: a proof that shares its neighbour\'s checkpoint text but differs in one byte of its extra is judged on its own bytes', async t => {
  const b = clone(bigBundle(1100))
  const device = b.device.id
  // Two neighbours rewritten with the gateway's device and seq lines: the same checkpoint text, and
  // extras one byte apart (the device's last character) besides their seq.
  for (const [i, id] of [[599, device], [600, device.slice(0, -1) + (device.endsWith('x') ? 'y' : 'x')]] as const) {
    const entry = b.proofs[i] as Bundle['proofs'][number]
    entry.proof = formatProof({ ...parseProof(entry.proof), extra: [{ key: 'device', value: id }, { key: 'seq', value: String(entry.seq) }] })
  }
  const [first, second] = [b.proofs[599], b.proofs[600]].map(e => (e as Bundle['proofs'][number]).proof.split('\n\n')[1])
  t.equal(first, second, 'the same checkpoint text')
  const pooled = await verifyBundle(b, { offline: true, workers: 2 })
  const inline = await verifyBundle(b, { offline: true, workers: 0 })
  t.same(comparable(inline), comparable(pooled))
  t.equal(pooled.verdict, 'invalid')
  t.same(pooled.failures.map(f => f.seq), [(b.proofs[600] as Bundle['proofs'][number]).seq], 'that record alone')
  t.match(pooled.failures[0]?.message, /device is .*, the facts say/)
})

t.test('attack: malformed entries side by side and proofs that are not ASCII give the same findings on workers and inline', async t => {
  const b = clone(bigBundle(1100))
  // Entries that are no envelope or not canonical base64 (its padding bits set), next to each
  // other and at a chunk's edges.
  for (const i of [0, 500, 501, 502, 1023, 1024]) b.records[i] = 'bm90IGFuIGVudmVsb3Bl'
  b.records[701] = 'QR=='
  // Proof texts with other characters than ASCII (sent to the workers as strings): one with a
  // character outside ASCII, one with a lone surrogate.
  const proofAt = (i: number): Bundle['proofs'][number] => b.proofs[i] as Bundle['proofs'][number]
  proofAt(800).proof = proofAt(800).proof.replace('index ', 'index é')
  proofAt(801).proof = proofAt(801).proof + '\ud800'
  proofAt(802).proof = proofAt(802).proof.replace('\n\n', '\n\n\u00e9')
  const pooled = await verifyBundle(b, { offline: true, workers: 2 })
  const inline = await verifyBundle(b, { offline: true, workers: 0 })
  t.same(comparable(pooled), comparable(inline))
  t.equal(pooled.reasons['record-malformed'], 7, 'each malformed entry')
  for (const i of [800, 801, 802]) t.ok(pooled.failures.some(f => f.seq === proofAt(i).seq), `the altered proof of seq ${proofAt(i).seq} is a finding`)
})

t.test('attack: with one worker the calling thread answers batches too, and finds the same tampering', async t => {
  // Five chunks of 1 024: the worker is posted two, the calling thread answers queued ones itself
  // (test/forensics/signature-pool.test.ts), so both judge some of the tampered records below.
  const b = clone(bigBundle(4300))
  for (const i of [40, 1500, 2600, 3700, b.records.length - 2]) breakSignature(b, i)
  const flip = (h: Uint8Array): Uint8Array => { const c = h.slice(); c[0] = (c[0] as number) ^ 1; return c }
  for (const i of [1100, 2200, 3300, 4200]) {
    const entry = b.proofs[i] as Bundle['proofs'][number]
    const p = parseProof(entry.proof)
    entry.proof = formatProof({ ...p, hashes: p.hashes.map((h, k) => k === 0 ? flip(h) : h) })
  }
  const one = await verifyBundle(b, { offline: true, workers: 1 })
  const two = await verifyBundle(b, { offline: true, workers: 2 })
  const inline = await verifyBundle(b, { offline: true, workers: 0 })
  t.equal(one.verdict, 'invalid')
  t.equal(one.reasons['bad-signature'], 5, 'each broken signature')
  // A broken signature changes the envelope, so its leaf no longer fits its proof either: 5 + 4.
  t.equal(one.reasons['root-mismatch'], 9, 'each tampered proof, and each record whose signature was broken')
  t.same(comparable(one), comparable(inline))
  t.same(comparable(two), comparable(inline))
})

t.test('error: contradictory verifier options are refused', async t => {
  const b = bigBundle(0)
  await t.rejects(verifyBundle(b, { offline: true, verifier: 'openssl' as 'node' }), TypeError)
  await t.rejects(verifyBundle(b, { offline: true, workers: -1 }), RangeError)
})
