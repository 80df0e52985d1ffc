/**
 * `provenance-fleet device register | rotate | revoke | show` and `gateway register`: device keys
 * on chain (under sha256 of the device id), from the enrollment request `provenance-agent init`
 * prints or from --id and --public-key, with the device's broker user written alongside.
 */
import { promises as fs } from 'node:fs'
import { UsageError, type CliCommandSpec, type CliContext } from '../../common/index.js'
import { join, resolve } from 'node:path'
import { writeFileAtomic } from '../../common/atomic-file.js'
import {
  AttestationError, DEVICE_ID_PATTERN, LIMITS, checkKeyAttestation, fromHex, parseEnrollmentRequest, toHex, type EnrollmentRequest
} from '../../protocol/index.js'
import { removeBrokerUser } from '../broker-files.js'
import { applyBrokerPlan, brokerPlanOf } from '../broker-options.js'
import { FleetError } from '../errors.js'
import { BROKER_FILES, CHAIN_READ, CHAIN_WRITE, MOSQUITTO_ACL, MOSQUITTO_PASSWD, hex32 } from '../options.js'

/** The chain code (ethers, contracts), loaded once the options are known to be good. */
async function loadChain (): Promise<typeof import('../chain.js') & typeof import('../explain.js') & { deviceIdOf: (id: string) => string }> {
  const [chain, explain, contracts] = await Promise.all([import('../chain.js'), import('../explain.js'), import('../../contracts/index.js')])
  return { ...chain, ...explain, deviceIdOf: contracts.deviceIdOf }
}

const ID = { name: 'id', type: 'string', value: '<device-id>', description: 'The device id (as in its records).' } as const
const ENROLLMENT = { name: 'enrollment', type: 'string', value: '<file>', description: 'Enrollment request printed by `provenance-agent init` (gives id, public key and validFromMs).' } as const
const PUBLIC_KEY = { name: 'public-key', type: 'string', value: '<hex>', description: 'Ed25519 public key, 64 hex digits (instead of --enrollment).' } as const
const VALID_FROM = { name: 'valid-from-ms', type: 'string', value: '<ms>', description: 'Device time (Unix ms) from which the key signs. Default: the enrollment\'s, else 0 for register.' } as const

const REQUIRE_ATTESTATION = { name: 'require-attestation', type: 'boolean', description: 'Refuse an enrollment without a TPM key attestation (devices with keyStore "tpm").' } as const
const IDENTITY_DIR = { name: 'identity-dir', type: 'string', value: '<dir>', description: 'Fleet folder where a TPM-rooted device\'s identity key and checked attestation are kept (<dir>/<device-id>.identity.json).' } as const

/** What the fleet keeps of a TPM-rooted device (written to --identity-dir). */
export interface StoredIdentity {
  deviceId: string
  /** Registry key slot: identityKeyId(identityKey), hex. */
  registryKey: string
  /** SEC 1 P-256 identity key, hex. */
  identityKey: string
  /** Name of the AK that attested it (TPM name, hex); absent when the TPM gave no attestation. */
  akName?: string
  attestation?: NonNullable<EnrollmentRequest['identity']>['attestation']
  checkedMs: number
}

/**
 * Checks the TPM identity of an enrollment (docs/IDENTITY.md §Enrollment): the attestation
 * certifies exactly the identity key the request names. Returns what the fleet stores.
 * @throws AttestationError `ATTESTATION_*`; FleetError `ENROLLMENT_NOT_ATTESTED` when attestation is required and missing.
 */
export function checkEnrollmentIdentity (enrollment: EnrollmentRequest, requireAttestation: boolean, nowMs: number): StoredIdentity | undefined {
  const identity = enrollment.identity
  if (identity?.attestation === undefined) {
    if (requireAttestation) throw new FleetError('ENROLLMENT_NOT_ATTESTED', `the enrollment of ${enrollment.deviceId} carries no TPM key attestation (--require-attestation)`)
    return identity === undefined ? undefined : { deviceId: enrollment.deviceId, registryKey: enrollment.publicKey, identityKey: identity.publicKey, checkedMs: nowMs }
  }
  const a = identity.attestation
  const checked = checkKeyAttestation({ identityPublic: fromHex(a.identityPublic), akPublic: fromHex(a.akPublic), attest: fromHex(a.attest), signature: fromHex(a.signature) })
  if (toHex(checked.identityKey) !== identity.publicKey) throw new AttestationError('ATTESTATION_REJECTED', 'the attestation certifies another key than the enrollment\'s identity key')
  return { deviceId: enrollment.deviceId, registryKey: enrollment.publicKey, identityKey: identity.publicKey, akName: checked.akName, attestation: a, checkedMs: nowMs }
}

interface KeyInput { deviceId: string, publicKey: string, validFromMs: number | undefined, enrollment?: EnrollmentRequest }

/** The device and key named by --enrollment or --id/--public-key/--valid-from-ms. @throws UsageError, FleetError, EnrollmentError */
async function keyInputOf (ctx: CliContext): Promise<KeyInput> {
  const file = ctx.string('enrollment')
  const id = ctx.string('id')
  const publicKey = ctx.string('public-key')
  const validFrom = ctx.string('valid-from-ms')
  const validFromMs = validFrom === undefined ? undefined : uintOf(validFrom, '--valid-from-ms')
  if (file !== undefined) {
    if (publicKey !== undefined) throw new UsageError('give either --enrollment or --public-key, not both')
    let text: string
    try {
      text = await fs.readFile(file, 'utf8')
    } catch (e) {
      throw new FleetError('FLEET_FILE_UNREADABLE', `cannot read enrollment request ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e })
    }
    const enrollment = parseEnrollmentRequest(text)
    // --id with an enrollment file is a check, so a file mixed up between devices is caught.
    if (id !== undefined && id !== enrollment.deviceId) throw new UsageError(`--id ${id} does not match the enrollment request's device id ${enrollment.deviceId}`)
    return { deviceId: enrollment.deviceId, publicKey: enrollment.publicKey, validFromMs: validFromMs ?? enrollment.validFromMs, enrollment }
  }
  if (id === undefined || publicKey === undefined) throw new UsageError('give --enrollment <file>, or --id and --public-key')
  checkDeviceId(id)
  return { deviceId: id, publicKey: hex32(publicKey, '--public-key').slice(2), validFromMs }
}

function checkDeviceId (id: string): void {
  if (id.length > LIMITS.deviceIdChars || !DEVICE_ID_PATTERN.test(id)) throw new UsageError(`--id must match ${DEVICE_ID_PATTERN.source} (at most ${LIMITS.deviceIdChars} characters)`)
}

function uintOf (text: string, what: string): number {
  if (!/^\d{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) throw new UsageError(`${what} must be a non-negative integer (Unix ms)`)
  return Number(text)
}

function registerCommand (kind: 'device' | 'gateway'): CliCommandSpec {
  const gateway = kind === 'gateway'
  return {
    path: [kind, 'register'],
    summary: gateway
      ? 'Register a gateway\'s Ed25519 key on chain, like a device\'s (under the gateway\'s id).'
      : 'Register a device and its first key on chain (and, optionally, its broker user).',
    description: gateway
      ? ['The gateway signs acks and checkpoints with its own Ed25519 key; verifiers look it up in the device registry under sha256(gateway id), exactly as a device key. Needs DEVICE_REGISTRAR_ROLE. With --mosquitto-acl/--mosquitto-passwd the gateway\'s broker user is written too (read every device\'s records and status, write acks).']
      : ['Needs DEVICE_REGISTRAR_ROLE. The key is registered under sha256(device id) and is valid from validFromMs of device time (0 for a fresh `provenance-agent init`, so the first records verify). Registering an id twice fails with DeviceAlreadyRegistered: use `device rotate` for a new key.',
          'With --mosquitto-acl and/or --mosquitto-passwd the device\'s broker user is written after the transaction: it may publish only prov/v1/<id>/records and /status and read only its own /ack and /policy.'],
    options: [...(gateway ? [ID, PUBLIC_KEY] : [ENROLLMENT, ID, PUBLIC_KEY, REQUIRE_ATTESTATION, IDENTITY_DIR]), VALID_FROM, ...CHAIN_WRITE, ...BROKER_FILES],
    mutating: true,
    run: async (ctx) => {
      const input = await keyInputOf(ctx)
      const validFromMs = input.validFromMs ?? 0
      // A TPM-rooted device: its attestation is checked before anything is written or sent.
      if (!gateway && input.enrollment === undefined && ctx.flag('require-attestation')) {
        throw new FleetError('ENROLLMENT_NOT_ATTESTED', '--require-attestation needs --enrollment (a TPM key attestation comes only in one)')
      }
      const identity = input.enrollment !== undefined ? checkEnrollmentIdentity(input.enrollment, ctx.flag('require-attestation'), Date.now()) : undefined
      const identityDir = ctx.string('identity-dir')
      const broker = brokerPlanOf(ctx, input.deviceId)
      const { openChain, transact, deviceIdOf } = await loadChain()
      const idHash = deviceIdOf(input.deviceId)
      const chain = await openChain(ctx, { signer: true })
      try {
        const key = '0x' + input.publicKey
        const tx = await transact(ctx, chain, 'registerDevice', [idHash, key, BigInt(validFromMs)],
          async () => await chain.registry.registerDevice({ deviceId: idHash, publicKey: key, validFromMs }))
        const brokerChange = broker !== undefined ? await applyBrokerPlan(ctx, broker, input.deviceId, gateway ? 'gateway' : 'device') : undefined
        let identityPath: string | undefined
        if (identity !== undefined && identityDir !== undefined) {
          identityPath = join(resolve(ctx.io.cwd ?? process.cwd(), identityDir), `${input.deviceId}.identity.json`)
          if (!tx.dryRun) {
            try {
              await fs.mkdir(resolve(ctx.io.cwd ?? process.cwd(), identityDir), { recursive: true })
              await writeFileAtomic(identityPath, JSON.stringify(identity, null, 2) + '\n')
            } catch (e) {
              throw new FleetError('FLEET_FILE_UNWRITABLE', `cannot write ${identityPath}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e })
            }
          }
        }
        const { result: _mined, ...txOut } = tx
        const value = {
          ...txOut, [gateway ? 'gatewayId' : 'deviceId']: input.deviceId, idHash, publicKey: input.publicKey, validFromMs,
          ...(identity !== undefined ? { identity: { keyType: 'tpm-p256', attested: identity.akName !== undefined, ...(identity.akName !== undefined ? { akName: identity.akName } : {}), ...(identityPath !== undefined ? { path: identityPath } : {}) } } : {}),
          ...(brokerChange !== undefined ? { broker: brokerChange } : {})
        }
        return {
          value,
          text: [
            `${tx.dryRun ? 'dry run: would register' : 'registered'} ${kind} ${input.deviceId} (${idHash})`,
            `  key ${input.publicKey}, valid from ${validFromMs}`,
            ...(identity !== undefined ? [`  TPM identity (P-256) ${identity.akName !== undefined ? `attested by AK ${identity.akName}` : 'NOT attested'}${identityPath !== undefined ? `, kept in ${identityPath}` : ''}`] : []),
            ...(tx.txHash !== undefined ? [`  tx ${tx.txHash} in block ${tx.blockNumber ?? ''}`] : []),
            ...(brokerChange?.acl !== undefined ? [`  ACL ${brokerChange.acl.written ? 'written to' : 'would go to'} ${brokerChange.acl.path}: ${brokerChange.acl.lines.slice(1).join('; ')}`] : []),
            ...(brokerChange?.passwd !== undefined ? [`  password ${brokerChange.passwd.written ? 'written to' : 'would go to'} ${brokerChange.passwd.path}${brokerChange.passwordGenerated === true ? ` (generated into ${broker?.passwordFile ?? ''})` : ''}`] : [])
          ]
        }
      } finally {
        chain.close()
      }
    }
  }
}

export const DEVICE_COMMANDS: readonly CliCommandSpec[] = [
  registerCommand('device'),
  {
    path: ['device', 'rotate'],
    summary: 'Register a device\'s new key (after `provenance-agent keys rotate`).',
    description: ['Needs DEVICE_REGISTRAR_ROLE. The new key is valid from --valid-from-ms (the rotation\'s validFromMs, printed by `provenance-agent keys rotate`, or in the enrollment request `provenance-agent init` prints after a rotation); it must be later than the current key\'s.'],
    options: [ENROLLMENT, ID, PUBLIC_KEY, VALID_FROM, ...CHAIN_WRITE],
    mutating: true,
    run: async (ctx) => {
      const input = await keyInputOf(ctx)
      if (input.validFromMs === undefined) throw new UsageError('--valid-from-ms is required with --public-key (the rotation time)')
      const validFromMs = input.validFromMs
      const { openChain, transact, deviceIdOf } = await loadChain()
      const idHash = deviceIdOf(input.deviceId)
      const chain = await openChain(ctx, { signer: true })
      try {
        const key = '0x' + input.publicKey
        const tx = await transact(ctx, chain, 'rotateDeviceKey', [idHash, key, BigInt(validFromMs)],
          async () => await chain.registry.rotateDeviceKey({ deviceId: idHash, publicKey: key, validFromMs }))
        const { result: mined, ...txOut } = tx
        const value = { ...txOut, deviceId: input.deviceId, idHash, publicKey: input.publicKey, validFromMs, ...(mined !== undefined ? { keyIndex: mined.keyIndex } : {}) }
        return { value, text: `${tx.dryRun ? 'dry run: would rotate' : 'rotated'} ${input.deviceId} to ${input.publicKey}, valid from ${validFromMs}${tx.txHash !== undefined ? ` (tx ${tx.txHash})` : ''}` }
      } finally {
        chain.close()
      }
    }
  },
  {
    path: ['device', 'revoke'],
    summary: 'Revoke a device (final): its records from --revoked-from-ms on count as revoked.',
    description: ['Needs DEVICE_REGISTRAR_ROLE. With --mosquitto-acl/--mosquitto-passwd the device\'s broker user is removed too, so it can no longer connect.'],
    options: [
      ID,
      { name: 'revoked-from-ms', type: 'string', value: '<ms>', description: 'Device time (Unix ms) from which the device is revoked. Default: now.' },
      ...CHAIN_WRITE, MOSQUITTO_ACL, MOSQUITTO_PASSWD
    ],
    mutating: true,
    run: async (ctx) => {
      const id = ctx.required('id')
      checkDeviceId(id)
      const from = ctx.string('revoked-from-ms')
      const revokedFromMs = from === undefined ? Date.now() : uintOf(from, '--revoked-from-ms')
      const { openChain, transact, deviceIdOf } = await loadChain()
      const idHash = deviceIdOf(id)
      const chain = await openChain(ctx, { signer: true })
      try {
        const tx = await transact(ctx, chain, 'revokeDevice', [idHash, BigInt(revokedFromMs)], async () => await chain.registry.revokeDevice(idHash, revokedFromMs))
        const aclPath = ctx.string('mosquitto-acl')
        const passwdPath = ctx.string('mosquitto-passwd')
        const removed = aclPath !== undefined || passwdPath !== undefined
          ? await removeBrokerUser({ username: id, ...(aclPath !== undefined ? { aclPath } : {}), ...(passwdPath !== undefined ? { passwdPath } : {}), dryRun: ctx.dryRun })
          : undefined
        const { result: _mined, ...txOut } = tx
        return { value: { ...txOut, deviceId: id, idHash, revokedFromMs, ...(removed !== undefined ? { brokerRemoved: removed } : {}) }, text: `${tx.dryRun ? 'dry run: would revoke' : 'revoked'} ${id} from ${revokedFromMs}${tx.txHash !== undefined ? ` (tx ${tx.txHash})` : ''}` }
      } finally {
        chain.close()
      }
    }
  },
  {
    path: ['device', 'show'],
    summary: 'A device (or gateway) as the registry knows it: registration, revocation, key history.',
    options: [ID, ...CHAIN_READ],
    run: async (ctx) => {
      const id = ctx.required('id')
      checkDeviceId(id)
      const { openChain, explainRegistryError, deviceIdOf } = await loadChain()
      const idHash = deviceIdOf(id)
      const chain = await openChain(ctx, { signer: false })
      try {
        const device = await chain.registry.getDevice(idHash).catch((e: unknown) => { throw explainRegistryError(e) })
        if (device === undefined) return { value: { deviceId: id, idHash, registered: false }, text: `${id} (${idHash}) is not registered` }
        const keys = await chain.registry.getDeviceKeys(idHash).catch((e: unknown) => { throw explainRegistryError(e) })
        const value = {
          deviceId: id,
          idHash,
          registered: true,
          registeredAtSec: device.registeredAtSec.toString(),
          revoked: device.revoked,
          ...(device.revokedFromMs !== undefined ? { revokedFromMs: device.revokedFromMs.toString() } : {}),
          keys: keys.map(k => ({ publicKey: k.publicKey.slice(2), validFromMs: k.validFromMs.toString(), ...(k.validUntilMs !== undefined ? { validUntilMs: k.validUntilMs.toString() } : {}) }))
        }
        return {
          value,
          text: [
            `${id} (${idHash}) registered at ${new Date(Number(device.registeredAtSec) * 1000).toISOString()}${device.revoked ? `, REVOKED from ${String(device.revokedFromMs)}` : ''}`,
            ...value.keys.map((k, i) => `  key ${i}  ${k.publicKey}  valid from ${k.validFromMs}${k.validUntilMs !== undefined ? ` until ${k.validUntilMs}` : ''}`)
          ]
        }
      } finally {
        chain.close()
      }
    }
  },
  registerCommand('gateway')
]
