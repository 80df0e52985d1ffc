/**
 * The TPM identity through tpm2-tools on a real software TPM (swtpm): boot certifications the
 * verifiers accept, a key attestation enrollment accepts, and the copied-disk attack (the state
 * folder moved to another TPM) that yields no usable key and no accepted record.
 */
import t from 'tap'
import { cp } from 'node:fs/promises'
import { join } from 'node:path'
import {
  ENROLLMENT_FORMAT, assertEnrollmentRequest, checkKeyAttestation, fromHex, identityKeyId, toHex, verifyChain
} from '../../../protocol/index.js'
import { checkEnrollmentIdentity } from '../../../fleet/commands/devices.js'
import { openTpmIdentity, TpmError, IDENTITY_PRIVATE_FILE, IDENTITY_PUBLIC_FILE } from '../../../agent/keys/tpm-identity.js'
import { startSwtpm } from '../../helpers/swtpm.js'
import { makeTempDir } from '../../helpers/tmp.js'
import { CertifiedChain, softwareIdentity } from '../../helpers/identity.js'

// One TPM for the file (a second one only where a copy to another device is the point).
const tpm = await startSwtpm()
t.teardown(tpm.close)

t.test('behavior: with a TPM identity, certified boots verify end to end; a copied state folder on another TPM yields none', async t => {
  const state = await makeTempDir(t, 'prov-tpm-state-')
  const identity = await openTpmIdentity({ stateDir: state, tcti: tpm.tcti, create: true })
  t.teardown(identity.close)

  // Enrollment: the TPM attests its identity key; the fleet's check gives back the same key.
  const attestation = await identity.attest()
  const checked = checkKeyAttestation(attestation)
  t.equal(toHex(checked.identityKey), toHex(identity.publicKey))

  // Reopening (the next boot) loads the same key from the blob.
  const again = await openTpmIdentity({ stateDir: state, tcti: tpm.tcti })
  t.equal(toHex(again.publicKey), toHex(identity.publicKey))
  await again.close()

  const c = new CertifiedChain(identity)
  await c.boot()
  c.inferences(3)
  await c.boot()
  c.inferences(3)
  for (const backend of ['node', 'noble'] as const) {
    const result = verifyChain(c.records, { deviceId: c.b.deviceId, keyAt: c.keyAt, backend })
    t.equal(result.failure, undefined, backend)
    t.equal(result.count, 8)
  }

  // The thief copies the state folder to another device (another TPM): the blob does not load.
  const other = await startSwtpm()
  t.teardown(other.close)
  const stolen = await makeTempDir(t, 'prov-tpm-stolen-')
  await cp(join(state, IDENTITY_PUBLIC_FILE), join(stolen, IDENTITY_PUBLIC_FILE))
  await cp(join(state, IDENTITY_PRIVATE_FILE), join(stolen, IDENTITY_PRIVATE_FILE))
  await t.rejects(openTpmIdentity({ stateDir: stolen, tcti: other.tcti }), { name: 'TpmError', code: 'TPM_KEY_UNUSABLE' })
  // Making a new identity there certifies nothing the registry holds.
  const fresh = await makeTempDir(t, 'prov-tpm-fresh-')
  const foreign = await openTpmIdentity({ stateDir: fresh, tcti: other.tcti, create: true })
  t.teardown(foreign.close)
  t.not(toHex(identityKeyId(foreign.publicKey)), toHex(c.registryKey))
  await c.boot({ by: foreign })
  c.inferences(1)
  t.equal(verifyChain(c.records, { deviceId: c.b.deviceId, keyAt: c.keyAt }).failure?.reason, 'bad-certification')
})

t.test('errors: no identity key in the state folder, or no TPM, are named', async t => {
  const state = await makeTempDir(t, 'prov-tpm-none-')
  await t.rejects(openTpmIdentity({ stateDir: state, tcti: tpm.tcti }), { name: 'TpmError', code: 'TPM_KEY_UNUSABLE' })
  // Nothing listens on port 1: the TCTI cannot connect.
  await t.rejects(openTpmIdentity({ stateDir: state, tcti: 'swtpm:host=127.0.0.1,port=1', create: true, commandTimeoutMs: 5000 }), { name: 'TpmError', code: 'TPM_UNAVAILABLE' })
  t.ok(TpmError)
})

t.test('attack: enrollment refuses a tampered or foreign TPM attestation and, when required, a missing one', async t => {
  const state = await makeTempDir(t, 'prov-tpm-enroll-')
  const identity = await openTpmIdentity({ stateDir: state, tcti: tpm.tcti, create: true })
  t.teardown(identity.close)
  const a = await identity.attest()
  const hex = { identityPublic: toHex(a.identityPublic), akPublic: toHex(a.akPublic), attest: toHex(a.attest), signature: toHex(a.signature) }
  const request = (attestation: typeof hex | undefined, publicKey = toHex(identity.publicKey)): any => ({
    format: ENROLLMENT_FORMAT, deviceId: 'cam-9', publicKey: toHex(identityKeyId(fromHex(publicKey))), validFromMs: 0, profile: 'generic-x86_64',
    agentVersion: '0.1.0', createdMs: 1, identity: { type: 'tpm-p256', publicKey, ...(attestation !== undefined ? { attestation } : {}) }
  })
  const good = request(hex)
  assertEnrollmentRequest(good)
  t.match(checkEnrollmentIdentity(good, true, 5), { deviceId: 'cam-9', identityKey: toHex(identity.publicKey), akName: /^000b[0-9a-f]{64}$/ })

  // One bit of the attestation flipped: the AK signature fails.
  const flipped = a.attest.slice()
  flipped[flipped.length - 1] = (flipped[flipped.length - 1] as number) ^ 1
  t.throws(() => checkEnrollmentIdentity(request({ ...hex, attest: toHex(flipped) }), true, 5), { name: 'AttestationError', code: 'ATTESTATION_REJECTED' })
  // The attestation of this TPM's key offered for another key (a software key): refused.
  const other = softwareIdentity()
  t.throws(() => checkEnrollmentIdentity(request(hex, toHex(other.publicKey)), true, 5), { name: 'AttestationError', code: 'ATTESTATION_REJECTED' })
  // Truncated TPM structures are malformed, not rejected.
  t.throws(() => checkEnrollmentIdentity(request({ ...hex, attest: hex.attest.slice(0, 40) }), true, 5), { name: 'AttestationError', code: 'ATTESTATION_MALFORMED' })
  // No attestation: taken (and said so) unless required.
  t.match(checkEnrollmentIdentity(request(undefined), false, 5), { identityKey: toHex(identity.publicKey) })
  t.throws(() => checkEnrollmentIdentity(request(undefined), true, 5), { name: 'FleetError', code: 'ENROLLMENT_NOT_ATTESTED' })
  // publicKey must be the identity key id of identity.publicKey.
  t.throws(() => assertEnrollmentRequest({ ...good, publicKey: 'ab'.repeat(32) }), { name: 'EnrollmentError', code: 'ENROLLMENT_INVALID', message: /identity key id/ })
})
