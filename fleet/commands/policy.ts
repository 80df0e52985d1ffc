/**
 * `provenance-fleet policy keygen | sign | publish | show`: the fleet's signed model allowlist
 * (protocol/policy.ts), signed with the publisher's Ed25519 key and published retained on
 * `prov/v1/<device>/policy`, where the agent verifies it against its policyAdminPublicKey.
 */
import { randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import { UsageError, parseHexSecret32, readSecret, writeFileAtomic, type CliCommandSpec, type CliContext } from '../../common/index.js'
import {
  DEVICE_ID_PATTERN, LIMITS, POLICY_MODES, createSigner, decodePolicyEnvelope, deviceTopic, fromHex, sha256, signPolicy, toHex, verifyPolicy,
  type PolicyMode, type SignedPolicy
} from '../../protocol/index.js'
import { FleetError } from '../errors.js'
import { MQTT_PASSWORD_ENV, POLICY_KEY_ENV } from '../names.js'

export { MQTT_PASSWORD_ENV, POLICY_KEY_ENV }

const POLICY_FILE = { name: 'policy', type: 'string', value: '<file>', description: 'Signed policy envelope written by `policy sign`.' } as const
const PUBLISHER_PUBLIC_KEY = { name: 'publisher-public-key', type: 'string', value: '<hex>', description: 'Check the signature under this Ed25519 public key (the agents\' policyAdminPublicKey) first.' } as const

async function readPolicyFile (path: string): Promise<Uint8Array> {
  try {
    const stat = await fs.stat(path)
    if (!stat.isFile() || stat.size > 512 * 1024) throw new Error('not a policy envelope (not a file, or over 512 KiB)')
    return new Uint8Array(await fs.readFile(path))
  } catch (e) {
    throw new FleetError('FLEET_FILE_UNREADABLE', `cannot read policy ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e })
  }
}

/** Decodes, and verifies when --publisher-public-key is given. @throws PolicyError, UsageError */
function openPolicy (ctx: CliContext, envelope: Uint8Array): SignedPolicy & { verified: boolean } {
  const key = ctx.string('publisher-public-key')
  if (key === undefined) return { ...decodePolicyEnvelope(envelope), verified: false }
  if (!/^[0-9a-fA-F]{64}$/.test(key)) throw new UsageError('--publisher-public-key must be 64 hex digits')
  return { ...verifyPolicy(envelope, fromHex(key.toLowerCase())), verified: true }
}

function describe (p: SignedPolicy, envelope: Uint8Array): Record<string, unknown> {
  return {
    policyVersion: p.policy.version,
    mode: p.policy.mode,
    fleetId: p.policy.fleetId,
    issuedAtMs: p.policy.issuedAtMs,
    modelHashes: p.policy.modelHashes.map(h => toHex(h)),
    envelopeSha256: toHex(sha256(envelope))
  }
}

export const POLICY_COMMANDS: readonly CliCommandSpec[] = [
  {
    path: ['policy', 'keygen'],
    summary: 'Create a policy publisher key (Ed25519 seed, mode 0600); prints its public key for the agents\' policyAdminPublicKey.',
    options: [{ name: 'out', type: 'string', value: '<path>', description: 'Where to write the seed (64 hex digits). Never overwritten.' }],
    mutating: true,
    run: async (ctx) => {
      const out = ctx.required('out')
      const seed = new Uint8Array(randomBytes(32))
      const publicKey = toHex(createSigner(seed).publicKey)
      if (!ctx.dryRun) {
        try {
          // 'wx': a second keygen must never replace the key the fleet's agents trust.
          await fs.writeFile(out, toHex(seed) + '\n', { mode: 0o600, flag: 'wx' })
        } catch (e) {
          throw new FleetError('FLEET_FILE_UNWRITABLE', `cannot create ${out}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e })
        }
      }
      return { value: { dryRun: ctx.dryRun, keyFile: out, publicKey }, text: [`${ctx.dryRun ? 'dry run: would write' : 'wrote'} ${out}`, `publisher public key (agents' policyAdminPublicKey): ${publicKey}`] }
    }
  },
  {
    path: ['policy', 'sign'],
    summary: 'Sign a model policy (allowlist of model hashes, mode, version, fleet) into an envelope file.',
    description: [
      'The policy lists the sha256 of each allowed model file (--model-file hashes the file as the agent does; --model-hash takes a hash). Versions only go up: a device refuses a policy whose version is not above the one in force. Under enforce an unlisted model is not loaded; under audit it loads and its model-load record says unapproved.',
      `The publisher key is --publisher-key-file (mode 0600) or $${POLICY_KEY_ENV}; create one with \`policy keygen\`.`
    ],
    options: [
      { name: 'publisher-key-file', type: 'string', value: '<path>', description: `File (mode 0600) with the publisher's Ed25519 seed; default: $${POLICY_KEY_ENV}.` },
      { name: 'policy-version', type: 'string', value: '<n>', description: 'Policy version, an integer ≥ 1 above the one devices hold.' },
      { name: 'mode', type: 'string', value: '<enforce|audit>', description: 'enforce refuses unlisted models; audit loads and flags them. Default enforce.' },
      { name: 'fleet-id', type: 'string', value: '<id>', description: 'The fleet (agents with fleetId set refuse other fleets\' policies).' },
      { name: 'model-file', type: 'string', value: '<model.onnx>', multiple: true, description: 'An allowed model file.' },
      { name: 'model-hash', type: 'string', value: '<hex>', multiple: true, description: 'An allowed model hash.' },
      { name: 'out', type: 'string', value: '<file>', description: 'Where to write the signed envelope (canonical CBOR).' }
    ],
    mutating: true,
    run: async (ctx) => {
      const versionText = ctx.required('policy-version')
      if (!/^[1-9]\d{0,15}$/.test(versionText) || !Number.isSafeInteger(Number(versionText))) throw new UsageError('--policy-version must be an integer ≥ 1')
      const mode = ctx.string('mode') ?? 'enforce'
      if (!Object.hasOwn(POLICY_MODES, mode)) throw new UsageError('--mode must be enforce or audit')
      const fleetId = ctx.required('fleet-id')
      const out = ctx.required('out')
      const hashes = ctx.list('model-hash').map(h => {
        if (!/^(0x)?[0-9a-fA-F]{64}$/.test(h)) throw new UsageError('--model-hash must be 64 hex digits')
        return fromHex(h.replace(/^0x/, '').toLowerCase())
      })
      const { identifyModelFile } = await import('../model-file.js')
      for (const file of ctx.list('model-file')) hashes.push(fromHex((await identifyModelFile(file)).fileHash))
      const raw = await readSecret({ file: ctx.string('publisher-key-file'), envName: POLICY_KEY_ENV, env: ctx.io.env, what: 'policy publisher key', fileOption: '--publisher-key-file' })
      const signer = createSigner(fromHex(parseHexSecret32(raw, 'the policy publisher key')))
      const signed = signPolicy({ issuedAtMs: Date.now(), version: Number(versionText), mode: mode as PolicyMode, modelHashes: hashes, fleetId }, signer)
      if (!ctx.dryRun) {
        try {
          await writeFileAtomic(out, signed.envelope, { mode: 0o644 })
        } catch (e) {
          throw new FleetError('FLEET_FILE_UNWRITABLE', `cannot write ${out}: ${(e as Error).message}`, { cause: e })
        }
      }
      const value = { dryRun: ctx.dryRun, out, publisherPublicKey: toHex(signer.publicKey), ...describe(signed, signed.envelope) }
      return { value, text: [`${ctx.dryRun ? 'dry run: would write' : 'signed'} policy version ${signed.policy.version} (${signed.policy.mode}, fleet ${fleetId}, ${signed.policy.modelHashes.length} models) ${ctx.dryRun ? 'to' : 'into'} ${out}`, `publisher public key ${toHex(signer.publicKey)}`] }
    }
  },
  {
    path: ['policy', 'publish'],
    summary: 'Publish a signed policy retained on prov/v1/<device>/policy for each --device.',
    description: [`Connects with MQTT 5 (so a broker ACL refusal is reported, exit 1 MQTT_PUBLISH_FAILED). The password comes from --mqtt-password-file (mode 0600) or $${MQTT_PASSWORD_ENV}.`],
    options: [
      POLICY_FILE,
      { name: 'device', type: 'string', value: '<device-id>', multiple: true, description: 'A device to publish the policy to.' },
      { name: 'broker-url', type: 'string', value: '<url>', env: 'PROVENANCE_BROKER_URL', description: 'mqtt://, mqtts://, ws:// or wss:// URL of the broker.' },
      { name: 'mqtt-username', type: 'string', value: '<user>', env: 'PROVENANCE_MQTT_USERNAME', description: 'Broker user (a publisher; see `broker add-user --role publisher`).' },
      { name: 'mqtt-password-file', type: 'string', value: '<path>', description: `File (mode 0600) with the broker password; default: $${MQTT_PASSWORD_ENV}.` },
      PUBLISHER_PUBLIC_KEY
    ],
    mutating: true,
    run: async (ctx) => {
      const envelope = await readPolicyFile(ctx.required('policy'))
      const devices = ctx.list('device')
      if (devices.length === 0) throw new UsageError('--device is required (repeat it for several devices)')
      for (const d of devices) if (d.length > LIMITS.deviceIdChars || !DEVICE_ID_PATTERN.test(d)) throw new UsageError(`--device ${d}: not a device id`)
      const brokerUrl = ctx.required('broker-url')
      if (!/^(mqtts?|wss?):\/\//.test(brokerUrl)) throw new UsageError('--broker-url must be an mqtt://, mqtts://, ws:// or wss:// URL')
      const signed = openPolicy(ctx, envelope)
      const username = ctx.string('mqtt-username')
      const passwordFile = ctx.string('mqtt-password-file')
      const password = passwordFile !== undefined || ctx.io.env[MQTT_PASSWORD_ENV] !== undefined
        ? await readSecret({ file: passwordFile, envName: MQTT_PASSWORD_ENV, env: ctx.io.env, what: 'MQTT password', fileOption: '--mqtt-password-file' })
        : undefined
      const topics = devices.map(d => deviceTopic(d, 'policy'))
      if (!ctx.dryRun) {
        ctx.progress(`publishing policy version ${signed.policy.version} to ${topics.length} topic(s) …`)
        const { publishRetained } = await import('../mqtt-publish.js')
        await publishRetained({ brokerUrl, ...(username !== undefined ? { username } : {}), ...(password !== undefined ? { password } : {}) }, topics.map(topic => ({ topic, payload: envelope })))
      }
      const value = { dryRun: ctx.dryRun, topics, signatureChecked: signed.verified, ...describe(signed, envelope) }
      return { value, text: [`${ctx.dryRun ? 'dry run: would publish' : 'published'} policy version ${signed.policy.version} (${signed.policy.mode}) retained on:`, ...topics.map(t => `  ${t}`)] }
    }
  },
  {
    path: ['policy', 'show'],
    summary: 'Decode a signed policy file (and check its signature with --publisher-public-key).',
    options: [POLICY_FILE, PUBLISHER_PUBLIC_KEY],
    run: async (ctx) => {
      const envelope = await readPolicyFile(ctx.required('policy'))
      const signed = openPolicy(ctx, envelope)
      const value = { signatureChecked: signed.verified, ...describe(signed, envelope) }
      return { value, text: [`policy version ${signed.policy.version}, ${signed.policy.mode}, fleet ${signed.policy.fleetId}, issued ${new Date(signed.policy.issuedAtMs).toISOString()}`, `signature ${signed.verified ? 'verified' : 'not checked (give --publisher-public-key)'}`, ...signed.policy.modelHashes.map(h => `  ${toHex(h)}`)] }
    }
  }
]
