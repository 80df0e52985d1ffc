/**
 * The TPM identity through tpm2-tools on a real software TPM (swtpm): boot certifications the
 * verifiers accept, a key attestation enrollment accepts, and the copied-disk attack (the state
 * folder moved to another TPM) that yields no usable key and no accepted record.
 */
import t from 'tap'
import { cp } from 'node:fs/promises'
import { join } from 'node:path'
import {
  checkKeyAttestation, identityKeyId, toHex, verifyChain
} from '../../../protocol/index.js'
import { openTpmIdentity, TpmError, IDENTITY_PRIVATE_FILE, IDENTITY_PUBLIC_FILE } from '../../../agent/keys/tpm-identity.js'
import { startSwtpm } from '../../helpers/swtpm.js'
import { makeTempDir } from '../../helpers/tmp.js'
import { CertifiedChain } from '../../helpers/identity.js'

t.test('behavior: with a TPM identity, certified boots verify end to end; a copied state folder on another TPM yields none', async t => {
  const tpm = await startSwtpm()
  t.teardown(tpm.close)
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
  const tpm = await startSwtpm()
  t.teardown(tpm.close)
  await t.rejects(openTpmIdentity({ stateDir: state, tcti: tpm.tcti }), { name: 'TpmError', code: 'TPM_KEY_UNUSABLE' })
  await tpm.close()
  await t.rejects(openTpmIdentity({ stateDir: state, tcti: tpm.tcti, create: true, commandTimeoutMs: 5000 }), { name: 'TpmError', code: 'TPM_UNAVAILABLE' })
  t.ok(TpmError)
})
