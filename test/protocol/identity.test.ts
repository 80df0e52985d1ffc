/**
 * Hardware-rooted identity (docs/PROTOCOL.md §13): boot certifications by a P-256 identity key,
 * checked by the chain on both backends; the attacks of issue 15 (foreign TPM, replayed
 * certification, uncertified key, revoked identity, expiry) each fail with their own reason.
 */
import t from 'tap'
import { p256 } from '@noble/curves/p256'
import {
  decodeEnvelope, decodeKeyCertification, encodeKeyCertification, identityKeyId, normalizeP256Signature,
  verifyChain, verifyP256, keyCertificationMessage, createSigner, signRecord, type ChainVerifierOptions
} from '../../protocol/index.js'
import { CertifiedChain, softwareIdentity } from '../helpers/identity.js'
import { makeChain, keyOf } from '../helpers/records.js'

const identity = softwareIdentity()

async function honestChain (): Promise<CertifiedChain> {
  const c = new CertifiedChain(identity)
  await c.boot()
  c.inferences(5)
  await c.boot()
  c.inferences(5)
  return c
}

const opts = (c: CertifiedChain, extra: Partial<ChainVerifierOptions> = {}): ChainVerifierOptions =>
  ({ deviceId: c.b.deviceId, keyAt: c.keyAt, ...extra })

t.test('behavior: records under certified boot keys verify on both backends, and re-decode to the same bytes', async t => {
  const c = await honestChain()
  for (const backend of ['node', 'noble'] as const) {
    const result = verifyChain(c.records, opts(c, { backend }))
    t.same(result.failure, undefined, backend)
    t.equal(result.count, 12)
  }
  const boot = decodeEnvelope(c.records[0]!.envelope)
  t.ok(boot.record.body.kind === 'boot' && boot.record.body.certification !== undefined)
  t.same(Buffer.from(boot.recordBytes), Buffer.from(c.records[0]!.recordBytes))
})

t.test('behavior: a file-key chain still verifies exactly as before (no certification, two-field boot body)', async t => {
  const chain = makeChain({ count: 5 })
  t.equal(verifyChain(chain, { deviceId: chain[0]!.record.deviceId, keyAt: keyOf() }).failure, undefined)
  t.equal(chain[0]!.record.body.kind === 'boot' && chain[0]!.record.body.certification, undefined)
})

t.test('attack: a copied disk on another TPM certifies with another identity: bad-certification', async t => {
  const c = new CertifiedChain(identity)
  await c.boot({ by: softwareIdentity() })
  c.inferences(2)
  for (const backend of ['node', 'noble'] as const) t.equal(verifyChain(c.records, opts(c, { backend })).failure?.reason, 'bad-certification')
})

t.test('attack: a certification replayed into a later boot is certification-replayed', async t => {
  const c = new CertifiedChain(identity)
  await c.boot()
  c.inferences(2)
  const old = c.lastCertification!
  // The thief kept boot 1's record key (e.g. from memory) and the certification; boot 2 reuses both.
  await c.boot({ replay: old })
  c.b.signer = createSigner(Buffer.from('unused-seed-for-signer-00000000!'))
  const f = verifyChain(c.records, opts(c)).failure
  t.equal(f?.reason, 'certification-replayed')
  t.equal(f?.seq, 3)
})

t.test('attack: a boot without certification, or a record under a key no certification covers, is uncertified-key', async t => {
  const c = new CertifiedChain(identity)
  await c.boot()
  c.inferences(2)
  await c.boot({ certify: false })
  c.inferences(1)
  t.equal(verifyChain(c.records, opts(c)).failure?.reason, 'uncertified-key')
  // Known identity-rooted device (the registry says so): even a first boot without one is named.
  const d = new CertifiedChain(identity)
  await d.boot({ certify: false })
  t.equal(verifyChain(d.records, opts(d, { identityRooted: true })).failure?.reason, 'uncertified-key')
  t.equal(verifyChain(d.records, opts(d)).failure?.reason, 'bad-signature')
  // Within a certified boot, a record signed by another key is a bad signature (the boot's key is known).
  const e = await honestChain()
  const forged = signRecord(e.records[3]!.record, createSigner(new Uint8Array(32).fill(9)))
  t.equal(verifyChain([...e.records.slice(0, 3), forged], opts(e)).failure?.reason, 'bad-signature')
})

t.test('attack: records of a revoked identity are identity-revoked; outside the validity, certification-expired', async t => {
  const c = await honestChain()
  const revokedFrom = c.records[7]!.record.timeMs
  const f = verifyChain(c.records, opts(c, { isRevoked: (_id, tMs) => tMs >= revokedFrom })).failure
  t.equal(f?.reason, 'identity-revoked')
  t.equal(f?.seq, 7)
  const late = new CertifiedChain(identity, { stepMs: 4 * 24 * 3600 * 1000 })
  await late.boot()
  late.inferences(4)
  t.equal(verifyChain(late.records, opts(late)).failure?.reason, 'certification-expired')
})

t.test('behavior: a window inside a certified boot verifies with the boot key carried over (certified)', async t => {
  const c = await honestChain()
  const head = verifyChain(c.records.slice(0, 4), opts(c))
  const { ChainVerifier } = await import('../../protocol/index.js')
  const v = new ChainVerifier(opts(c))
  for (const r of c.records.slice(0, 4)) v.push(r)
  const rest = verifyChain(c.records.slice(4), opts(c, { after: head.last!, certified: v.certifiedKey()! }))
  t.equal(rest.failure, undefined)
  t.equal(verifyChain(c.records.slice(4), opts(c, { after: head.last! })).failure?.reason, 'bad-signature')
})

t.test('behavior: ECDSA signatures are carried as low-s r ‖ s; the high-s twin and DER are refused on the wire', async t => {
  const c = await honestChain()
  const cert = c.lastCertification!
  const message = keyCertificationMessage(cert.bytes)
  const sig = p256.Signature.fromCompact(cert.signature)
  const high = p256.Signature.fromCompact(cert.signature)
  const twin = new p256.Signature(high.r, p256.CURVE.n - high.s).toCompactRawBytes()
  for (const backend of ['node', 'noble'] as const) {
    t.ok(verifyP256(cert.signature, message, identity.publicKey, backend), `${backend} low s`)
    t.notOk(verifyP256(twin, message, identity.publicKey, backend), `${backend} high s`)
    t.notOk(verifyP256(sig.toDERRawBytes(), message, identity.publicKey, backend), `${backend} DER`)
  }
  t.same(Buffer.from(normalizeP256Signature(twin)), Buffer.from(cert.signature))
  t.same(Buffer.from(normalizeP256Signature(sig.toDERRawBytes())), Buffer.from(cert.signature))
  t.throws(() => normalizeP256Signature(new Uint8Array(10)), { name: 'ProtocolError', code: 'SIGNATURE_INVALID' })
})

t.test('errors: malformed certifications are RECORD_INVALID naming the field', async t => {
  const good = { deviceId: 'dev-1', boot: 1, recordKey: new Uint8Array(32), validFromMs: 1, validUntilMs: 2, identityKey: identity.publicKey }
  t.same(decodeKeyCertification(encodeKeyCertification(good)), good)
  t.throws(() => encodeKeyCertification({ ...good, validUntilMs: 1 }), { name: 'ProtocolError', code: 'RECORD_INVALID', message: /validUntilMs/ })
  t.throws(() => encodeKeyCertification({ ...good, identityKey: new Uint8Array(65).fill(4) }), { name: 'ProtocolError', code: 'RECORD_INVALID', message: /identityKey/ })
  t.throws(() => identityKeyId(new Uint8Array(33)), { name: 'ProtocolError', code: 'IDENTITY_KEY_INVALID' })
  t.throws(() => decodeKeyCertification(Uint8Array.of(0x80)), { name: 'ProtocolError', code: 'RECORD_INVALID' })
})
