/**
 * `provenance-agent init`: creates the device key file (Ed25519 seed and commitment salt secret,
 * mode 0600, folder 0700) before the first start, at the path `start` uses, and prints the
 * enrollment request the fleet registers (`provenance-fleet device register --enrollment`), so
 * the device's first records are signed by a key the registry already knows.
 */
import { ENROLLMENT_FORMAT, assertEnrollmentRequest, toHex, type EnrollmentRequest } from '../../protocol/index.js'
import { KeyError, KeyRing, readKeyFile, writeFileAtomic } from '../keys/index.js'
import { AGENT_VERSION } from '../session/index.js'
import type { OptionValues } from './args.js'
import { prepare, type CliIo } from './context.js'
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
  const request: EnrollmentRequest = {
    format: ENROLLMENT_FORMAT,
    deviceId: setup.config.deviceId,
    publicKey: toHex(ring.publicKey),
    validFromMs: current?.validFromMs ?? 0,
    profile: setup.config.profile,
    agentVersion: AGENT_VERSION,
    createdMs: ring.createdMs
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
  io.stdout.write(text)
  io.stderr.write(`${existed ? 'key file exists, reused' : 'created key file'}: ${setup.keyPath}\n` +
    `register it: provenance-fleet device register --enrollment ${out ?? '<this output saved to a file>'}\n`)
  return 0
}
