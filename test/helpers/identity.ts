/**
 * Identity-rooted chains for tests: a software P-256 identity key stands in for the TPM (the
 * swtpm tests use the real one), and `CertifiedChain` writes boots the way the agent does with a
 * TPM: a fresh Ed25519 record key per boot, certified in the boot record.
 */
import { generateKeyPairSync, sign as nodeSign } from 'node:crypto'
import { p256 } from '@noble/curves/p256'
import {
  certifyRecordKey, createSigner, identityKeyId, sha256, type IdentitySigner, type KeyLookup, type SignedKeyCertification, type SignedRecord
} from '../../protocol/index.js'
import { ChainBuilder, seedFrom, type ChainOptions } from './records.js'

/** Ten days: the validity the tests certify record keys for. */
export const TEST_CERT_VALIDITY_MS = 10 * 24 * 3600 * 1000

/** A software P-256 identity (what the TPM holds on a device). */
export function softwareIdentity (): IdentitySigner {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const jwk = publicKey.export({ format: 'jwk' })
  const raw = Buffer.concat([Buffer.of(4), Buffer.from(jwk.x as string, 'base64url'), Buffer.from(jwk.y as string, 'base64url')])
  return { publicKey: new Uint8Array(raw), sign: async (message) => new Uint8Array(nodeSign('sha256', message, privateKey)) }
}

/** A chain whose every boot is certified by `identity` (or left uncertified, to attack it). */
export class CertifiedChain {
  readonly b: ChainBuilder
  readonly registryKey: Uint8Array
  /** The last certification written, to replay it. */
  lastCertification: SignedKeyCertification | undefined

  constructor (readonly identity: IdentitySigner, options: ChainOptions = {}) {
    this.b = new ChainBuilder({ ...options, boot: (options.boot ?? 1) - 1 })
    this.registryKey = identityKeyId(identity.publicKey)
  }

  get records (): SignedRecord[] { return this.b.records }

  /** The registry's answer: the identity key id, for this device only. */
  keyAt: KeyLookup = (deviceId) => deviceId === this.b.deviceId ? this.registryKey : undefined

  /**
   * Starts a boot: a fresh record key, certified by the identity (or by `by`, or the certification
   * `replay` instead), written in the boot record and signed by the new key.
   */
  async boot (opts: { by?: IdentitySigner, replay?: SignedKeyCertification, certify?: boolean } = {}): Promise<SignedRecord> {
    this.b.boot++
    this.b.signer = createSigner(seedFrom(`boot-key/${this.b.deviceId}/${this.b.boot}`))
    let cert = opts.replay
    if (cert === undefined && opts.certify !== false) {
      cert = await certifyRecordKey({
        deviceId: this.b.deviceId, boot: this.b.boot, recordKey: this.b.signer.publicKey,
        validFromMs: this.b.timeMs, validUntilMs: this.b.timeMs + TEST_CERT_VALIDITY_MS
      }, opts.by ?? this.identity)
      this.lastCertification = cert
    }
    return this.b.append({
      kind: 'boot', agentVersion: '0.1.0', profile: 'generic-x86_64',
      ...(cert !== undefined ? { certification: { bytes: cert.bytes, signature: cert.signature } } : {})
    })
  }

  /** `n` inference records under the current boot key. */
  inferences (n: number): void {
    for (let i = 0; i < n; i++) this.b.appendInference()
  }
}

/**
 * A P-256 identity from a label with RFC 6979 signatures (noble): the same bytes on every run,
 * for generated vectors and conformance files (a TPM's signatures are random).
 */
export function deterministicIdentity (label: string): IdentitySigner {
  const scalar = sha256(new TextEncoder().encode(`test-identity/${label}`))
  return {
    publicKey: p256.getPublicKey(scalar, false),
    sign: async (message) => p256.sign(sha256(message), scalar, { lowS: true }).toCompactRawBytes()
  }
}
