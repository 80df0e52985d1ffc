/**
 * `provenance-agent init`: creates the device key file (Ed25519 seed and commitment salt secret,
 * mode 0600, folder 0700) before the first start, at the path `start` uses, and prints the
 * enrollment request the fleet registers (`provenance-fleet device register --enrollment`), so
 * the device's first records are signed by a key the registry already knows. With `--policy` it
 * also pins the fleet's signed model policy (verified with the configured admin key and stored
 * where a received one goes), so the first start loads the approved models at once.
 */
import { promises as fs } from 'node:fs'
import { join } from 'node:path'
import { ENROLLMENT_FORMAT, assertEnrollmentRequest, fromHex, identityKeyId, isErrorCode, toHex, type EnrollmentIdentity, type EnrollmentRequest } from '../../protocol/index.js'
import { KeyError, KeyRing, openTpmIdentity, readKeyFile, writeFileAtomic } from '../keys/index.js'
import { ModelGuard } from '../policy/index.js'
import { AGENT_VERSION } from '../session/index.js'
import type { OptionValues } from './options.js'
import { prepare, type CliIo } from './context.js'
import { ConfigError } from '../../common/index.js'
import { CliError } from './errors.js'

export async function runInit (values: OptionValues, io: CliIo): Promise<number> {
  const setup = await prepare(values, io)
  // Read first (validates mode and content): an existing key is reused, never replaced, so init
  // is safe to run again, e.g. to print the request once more after a rotation.
  const existed = await readKeyFile(setup.keyPath) !== undefined
  const ring = await KeyRing.open(setup.keyPath, { create: true })
  if (ring.pendingRotation !== undefined) {
    throw new KeyError('KEY_ROTATION_PENDING', `key file ${setup.keyPath} holds an interrupted key rotation; start the agent once (it settles it), then run init again`)
  }
  const current = ring.history[ring.history.length - 1]
  // keyStore "tpm": the identity key is made in the TPM (or loaded: init may run again) and the
  // registry gets its id; the key file then keeps only the salt secret that matters.
  let identity: EnrollmentIdentity | undefined
  const keys = setup.profile.profile.keys
  if (keys.keyStore === 'tpm') {
    const tpm = await openTpmIdentity({ stateDir: setup.config.stateDir, tcti: process.env.TPM2TOOLS_TCTI ?? keys.tpmTcti, create: true })
    try {
      let attestation: EnrollmentIdentity['attestation']
      try {
        const a = await tpm.attest()
        attestation = { identityPublic: toHex(a.identityPublic), akPublic: toHex(a.akPublic), attest: toHex(a.attest), signature: toHex(a.signature) }
      } catch (e) {
        // A TPM without an endorsement key still gives an identity; the fleet decides whether it takes one unattested.
        if (!isErrorCode(e, 'TPM_COMMAND_FAILED')) throw e
        io.stderr.write(`no TPM key attestation (no endorsement key?): ${(e as Error).message}\n`)
      }
      identity = { type: 'tpm-p256', publicKey: toHex(tpm.publicKey), ...(attestation !== undefined ? { attestation } : {}) }
    } finally {
      await tpm.close()
    }
  }
  const request: EnrollmentRequest = {
    format: ENROLLMENT_FORMAT,
    deviceId: setup.config.deviceId,
    publicKey: identity !== undefined ? toHex(identityKeyId(fromHex(identity.publicKey))) : toHex(ring.publicKey),
    validFromMs: current?.validFromMs ?? 0,
    profile: setup.config.profile,
    agentVersion: AGENT_VERSION,
    createdMs: ring.createdMs,
    ...(identity !== undefined ? { identity } : {})
  }
  assertEnrollmentRequest(request)
  const text = JSON.stringify(request, null, values.json === true ? undefined : 2) + '\n'
  const out = typeof values.out === 'string' ? values.out : undefined
  if (out !== undefined) {
    try {
      // The request holds no secret: readable by the operator who copies it off the device.
      await writeFileAtomic(out, text, { mode: 0o644 })
    } catch (cause) {
      throw new CliError('EXPORT_FAILED', `cannot write the enrollment request to ${out}: ${(cause as Error).message}`, { cause })
    }
  }
  const policyFile = typeof values.policy === 'string' ? values.policy : undefined
  if (policyFile !== undefined) await pinPolicy(setup.config, policyFile, io)
  io.stdout.write(text)
  io.stderr.write(`${existed ? 'key file exists, reused' : 'created key file'}: ${setup.keyPath}\n` +
    `register it: provenance-fleet device register --enrollment ${out ?? '<this output saved to a file>'}\n`)
  return 0
}

/**
 * Verifies the signed policy file with the configured admin key and fleet and stores it as
 * `<stateDir>/policy.cbor`, exactly as a policy received over MQTT is stored.
 * @throws ConfigError `CONFIG_INVALID` (no policyAdminPublicKey), CliError `CONFIG_UNREADABLE` (the file);
 *   ModelPolicyError / PolicyError `POLICY_*`.
 */
async function pinPolicy (config: { stateDir: string, policyAdminPublicKey?: string, fleetId?: string }, file: string, io: CliIo): Promise<void> {
  if (config.policyAdminPublicKey === undefined) {
    throw new ConfigError('init --policy needs policyAdminPublicKey in the config: the policy is verified with the fleet admin key before it is stored')
  }
  let envelope: Uint8Array
  try {
    envelope = new Uint8Array(await fs.readFile(file))
  } catch (cause) {
    throw new CliError('CONFIG_UNREADABLE', `cannot read the policy file ${file}: ${(cause as Error).message}`, { cause })
  }
  await fs.mkdir(config.stateDir, { recursive: true, mode: 0o700 })
  const guard = await ModelGuard.open({
    storePath: join(config.stateDir, 'policy.cbor'),
    adminPublicKey: fromHex(config.policyAdminPublicKey),
    ...(config.fleetId !== undefined ? { fleetId: config.fleetId } : {})
  })
  const outcome = await guard.accept(envelope)
  const p = guard.status()
  io.stderr.write(`policy v${p.version ?? '?'} (${p.mode ?? '?'}, ${p.modelCount ?? 0} models, fleet ${p.fleetId ?? '?'}) ${outcome === 'accepted' ? 'pinned' : 'already in force'}: ${join(config.stateDir, 'policy.cbor')}\n`)
}
