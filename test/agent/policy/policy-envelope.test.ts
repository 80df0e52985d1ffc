// The signed allowlist of protocol/policy.ts (docs/PROTOCOL.md §Policy): encoding, signature,
// domain separation, and what a forged or damaged envelope gets.
import t from 'tap'
import {
  PolicyError, POLICY_SIGNING_PREFIX, RECORD_SIGNING_PREFIX, concat, createSigner, decodePolicy, decodePolicyEnvelope,
  encodeCanonical, encodePolicy, sha256, signPolicy, verifyPolicy, type ModelPolicy
} from '../../../protocol/index.js'

const admin = createSigner(new Uint8Array(32).fill(7))
const other = createSigner(new Uint8Array(32).fill(8))
const h = (n: number): Uint8Array => sha256(new Uint8Array([n]))
const policy = (o: Partial<ModelPolicy> = {}): ModelPolicy => ({ issuedAtMs: 1_700_000_000_000, version: 3, mode: 'enforce', modelHashes: [h(2), h(1), h(2)], fleetId: 'fleet-a', ...o })

t.test('behavior: sign, publish and verify an allowlist; hashes are sorted and unique on the wire', async t => {
  const signed = signPolicy(policy(), admin)
  t.equal(signed.policy.modelHashes.length, 2, 'duplicates removed')
  t.ok(Buffer.compare(signed.policy.modelHashes[0] as Uint8Array, signed.policy.modelHashes[1] as Uint8Array) < 0, 'ascending')
  const verified = verifyPolicy(signed.envelope, admin.publicKey)
  t.same(verified.policy, signed.policy)
  t.same(verifyPolicy(signed.envelope, admin.publicKey, 'noble').policy, signed.policy, 'the noble verifier agrees')
  t.same(decodePolicy(encodePolicy(policy())), signed.policy, 'one policy, one encoding')
  t.equal(signPolicy(policy({ mode: 'audit' }), admin).policy.mode, 'audit')
  // [1, issuedAtMs, version, mode, hashes, fleetId]
  t.same(signed.policyBytes, encodeCanonical([1, 1_700_000_000_000, 3, 0, signed.policy.modelHashes, 'fleet-a']))
})

t.test('error: a policy signed by another key, or bit-flipped anywhere, is refused', async t => {
  const signed = signPolicy(policy(), admin)
  t.throws(() => verifyPolicy(signPolicy(policy(), other).envelope, admin.publicKey), { code: 'POLICY_SIGNATURE_INVALID' })
  let flips = 0
  for (let i = 0; i < signed.envelope.byteLength; i++) {
    const bad = signed.envelope.slice()
    bad[i] = (bad[i] as number) ^ 0x01
    const e = (() => { try { verifyPolicy(bad, admin.publicKey); return undefined } catch (err) { return err } })()
    if (e instanceof PolicyError && (e.code === 'POLICY_SIGNATURE_INVALID' || e.code === 'POLICY_MALFORMED')) flips++
  }
  t.equal(flips, signed.envelope.byteLength, 'every single-bit flip is caught')
})

t.test('error: domain separation: a record-domain signature over policy bytes does not verify', async t => {
  const bytes = encodePolicy(policy())
  const envelope = encodeCanonical([bytes, admin.sign(concat(RECORD_SIGNING_PREFIX, bytes))])
  t.throws(() => verifyPolicy(envelope, admin.publicKey), { code: 'POLICY_SIGNATURE_INVALID' })
  const good = encodeCanonical([bytes, admin.sign(concat(POLICY_SIGNING_PREFIX, bytes))])
  t.ok(verifyPolicy(good, admin.publicKey))
})

t.test('error: malformed policies name what is wrong', async t => {
  const sig = new Uint8Array(64)
  const env = (v: unknown): Uint8Array => encodeCanonical([encodeCanonical(v as never), sig])
  t.throws(() => decodePolicyEnvelope(env([1, 1, 1, 0, [h(2), h(1)], 'f'])), { code: 'POLICY_MALFORMED', message: /ascending/ })
  t.throws(() => decodePolicyEnvelope(env([1, 1, 1, 0, [h(1), h(1)], 'f'])), { code: 'POLICY_MALFORMED', message: /unique/ })
  t.throws(() => decodePolicyEnvelope(env([2, 1, 1, 0, [], 'f'])), { code: 'POLICY_MALFORMED', message: /format/ })
  t.throws(() => decodePolicyEnvelope(env([1, 1, 1, 5, [], 'f'])), { code: 'POLICY_MALFORMED', message: /mode/ })
  t.throws(() => decodePolicyEnvelope(env([1, 1, 0, 0, [], 'f'])), { code: 'POLICY_MALFORMED', message: /version/ })
  t.throws(() => decodePolicyEnvelope(env([1, 1, 1, 0, [new Uint8Array(31)], ''])), { code: 'POLICY_MALFORMED', message: /modelHashes\[0\].*fleetId/s })
  t.throws(() => decodePolicyEnvelope(encodeCanonical([new Uint8Array(3), new Uint8Array(63)])), { code: 'POLICY_MALFORMED' })
  t.throws(() => decodePolicyEnvelope(new Uint8Array([0xff, 0x00])), { code: 'POLICY_MALFORMED' })
  t.throws(() => decodePolicyEnvelope(new Uint8Array(0)), { code: 'POLICY_MALFORMED' })
  t.throws(() => encodePolicy({ ...policy(), mode: 'strict' as never }), { code: 'POLICY_MALFORMED' })
})
