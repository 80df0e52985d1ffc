/**
 * The device side of the fleet's model policy: verifies signed allowlists from the fleet admin,
 * keeps the newest one (refusing forged, foreign and older ones) across restarts, and judges each
 * model the agent loads. Under `enforce` an unlisted model is refused before onnxruntime sees its
 * bytes (a streaming pre-hash) and again on the bytes actually loaded (the authoritative check);
 * under `audit` it loads and its model-load record says `unapproved`. With `requirePolicy` (the
 * daemon sets it whenever an admin key is configured) nothing is judged before a verified policy
 * is in force, so no model-load record ever says `unchecked` on a managed device.
 */
import { promises as fs } from 'node:fs'
import type { LoadedModel } from '../model/index.js'
import { hashModelFile } from '../model/index.js'
import { writeFileAtomic } from '../keys/index.js'
import { SILENT_LOGGER, type Logger } from '../../common/logger.js'
import { toHex, verifyPolicy, type PolicyMode, type PolicyVerdict, type SignedPolicy } from '../../protocol/index.js'
import { ModelPolicyError } from './errors.js'

/** The on-chain model registry as the guard needs it (contracts' RegistryClient fits). */
export interface ModelRegistryLookup {
  /** 'none' | 'registered' | 'approved' | 'deprecated' | 'revoked' */
  modelStatus: (modelHash: Uint8Array) => Promise<string>
}

export interface ModelGuardOptions {
  /** The fleet admin's Ed25519 public key (32 bytes). Without it no policy is accepted and every model is `unchecked`. */
  adminPublicKey?: Uint8Array
  /** The device's fleet; a policy for another fleet is refused. Unset: any fleet the admin key signs for. */
  fleetId?: string
  /** File that keeps the accepted policy envelope across restarts. */
  storePath: string
  /** Optional on-chain registry, asked while a policy is in force: `approved` allows, `revoked` refuses. */
  registry?: ModelRegistryLookup
  /** Longest wait for the registry before the allowlist alone decides. Default 2000 ms. */
  registryTimeoutMs?: number
  /**
   * Refuse every check and load (`POLICY_AWAITED`) until a verified policy is in force, instead of
   * loading models `unchecked`. Needs adminPublicKey. Default false.
   */
  requirePolicy?: boolean
  logger?: Logger
}

export const DEFAULT_REGISTRY_TIMEOUT_MS = 2000
const MAX_STORED_POLICY_BYTES = 512 * 1024

/** What the pre-load check found. */
export interface ModelCheck {
  path: string
  name: string
  /** SHA-256 of the file as read by the check (the load hashes its own bytes again). */
  hashHex?: string
  /** The registry's answer, when asked and it answered in time. */
  registryStatus?: string
}

export interface PolicyStatus {
  /** An admin key is configured. */
  configured: boolean
  /** Models wait for a verified policy: none loads `unchecked` (requirePolicy). */
  required: boolean
  /** Required and none in force yet: no model is loaded. */
  awaiting: boolean
  version?: number
  mode?: PolicyMode
  issuedAtMs?: number
  fleetId?: string
  modelCount?: number
}

export class ModelGuard {
  private readonly options: ModelGuardOptions
  private readonly logger: Logger
  private current: SignedPolicy | undefined
  private allowed = new Set<string>()
  /** Registry answers by model hash, from pre-load checks. */
  private readonly registryStatus = new Map<string, string>()
  /** Hash last loaded per model path and per model name, to notice a file swapped on disk. */
  private readonly lastLoaded = new Map<string, string>()
  private expected: ModelCheck | undefined

  private constructor (options: ModelGuardOptions, current: SignedPolicy | undefined) {
    this.options = options
    this.logger = options.logger ?? SILENT_LOGGER
    if (current !== undefined) this.install(current)
  }

  /**
   * Opens the guard with the policy stored by an earlier run, verified again.
   * @throws ModelPolicyError `POLICY_NOT_CONFIGURED` (a stored policy but no admin key),
   *   `POLICY_WRONG_FLEET`, `POLICY_STORE_FAILED`; PolicyError `POLICY_MALFORMED`, `POLICY_SIGNATURE_INVALID`.
   */
  static async open (options: ModelGuardOptions): Promise<ModelGuard> {
    if (options.adminPublicKey !== undefined && options.adminPublicKey.byteLength !== 32) throw new RangeError('adminPublicKey must be 32 bytes')
    if (options.requirePolicy === true && options.adminPublicKey === undefined) throw new TypeError('requirePolicy needs adminPublicKey')
    const stored = await readStoredPolicy(options.storePath)
    if (stored === undefined) return new ModelGuard(options, undefined)
    if (options.adminPublicKey === undefined) {
      throw new ModelPolicyError('POLICY_NOT_CONFIGURED', `a policy is stored in ${options.storePath} but no fleet admin public key is configured to verify it (configure policyAdminPublicKey, or delete the file)`)
    }
    const signed = verifyPolicy(stored, options.adminPublicKey)
    checkFleet(signed, options.fleetId)
    return new ModelGuard(options, signed)
  }

  /** The policy in force, if any. */
  get policy (): SignedPolicy | undefined { return this.current }

  /**
   * Verifies a policy envelope (e.g. the retained payload of `prov/v1/<device>/policy`) and, when
   * it is newer than the one in force, stores it and puts it in force.
   * @returns 'accepted', or 'unchanged' for the policy already in force (a retained message again).
   * @throws ModelPolicyError `POLICY_NOT_CONFIGURED`, `POLICY_WRONG_FLEET`, `POLICY_STALE`,
   *   `POLICY_STORE_FAILED`; PolicyError `POLICY_MALFORMED`, `POLICY_SIGNATURE_INVALID`.
   */
  async accept (envelope: Uint8Array): Promise<'accepted' | 'unchanged'> {
    const adminKey = this.options.adminPublicKey
    if (adminKey === undefined) throw new ModelPolicyError('POLICY_NOT_CONFIGURED', 'a policy arrived but no fleet admin public key is configured to verify it')
    const signed = verifyPolicy(envelope, adminKey)
    checkFleet(signed, this.options.fleetId)
    const current = this.current
    if (current !== undefined) {
      if (Buffer.compare(current.policyBytes, signed.policyBytes) === 0) return 'unchanged'
      if (signed.policy.version <= current.policy.version) {
        throw new ModelPolicyError('POLICY_STALE', `policy version ${signed.policy.version} is not newer than version ${current.policy.version} in force`)
      }
    }
    try {
      await writeFileAtomic(this.options.storePath, signed.envelope, { mode: 0o600 })
    } catch (cause) {
      throw new ModelPolicyError('POLICY_STORE_FAILED', `cannot store the policy in ${this.options.storePath}: ${(cause as Error).message}`, { cause })
    }
    this.install(signed)
    this.logger.info({ policyVersion: signed.policy.version, mode: signed.policy.mode, models: signed.policy.modelHashes.length, fleetId: signed.policy.fleetId }, 'model policy accepted')
    return 'accepted'
  }

  /**
   * The check before a load: with a policy in force, hashes the file and, under enforce, refuses
   * an unlisted or revoked model before onnxruntime parses a byte of it. The load itself is
   * judged again on its own bytes by {@link judge}.
   * @throws ModelPolicyError `MODEL_NOT_APPROVED`, `MODEL_REVOKED`; ModelError `MODEL_UNREADABLE`.
   */
  async check (path: string, name: string): Promise<ModelCheck> {
    this.assertPolicyKnown(name)
    const policy = this.current?.policy
    const result: ModelCheck = { path, name }
    if (policy === undefined || (policy.mode === 'audit' && this.options.registry === undefined)) {
      this.expected = result
      return result
    }
    const hash = await hashModelFile(path)
    result.hashHex = toHex(hash)
    const status = await this.askRegistry(hash)
    if (status !== undefined) {
      result.registryStatus = status
      this.registryStatus.set(result.hashHex, status)
    }
    this.expected = result
    if (policy.mode === 'enforce') this.verdictFor(result.hashHex, name, path)
    return result
  }

  /**
   * The verdict on the bytes actually loaded (the agent's `judgeModel`). Warns when the file of
   * a model changed since it was last loaded under the same name or path.
   * @throws ModelPolicyError `MODEL_NOT_APPROVED`, `MODEL_REVOKED` under enforce, `POLICY_AWAITED`
   *   (the agent then releases the session and writes no model-load record).
   */
  judge (loaded: LoadedModel): PolicyVerdict {
    this.assertPolicyKnown(loaded.path)
    const name = this.expected?.path === loaded.path ? this.expected.name : loaded.path
    this.expected = undefined
    const hashHex = loaded.fileHashHex
    const verdict = this.verdictFor(hashHex, name, loaded.path)
    for (const key of [`path:${loaded.path}`, `name:${name}`]) {
      const previous = this.lastLoaded.get(key)
      if (previous !== undefined && previous !== hashHex) {
        this.logger.warn({ model: name, path: loaded.path, previousHash: previous, hash: hashHex, policy: verdict }, 'model file changed on disk since it was last loaded')
        break
      }
    }
    this.lastLoaded.set(`path:${loaded.path}`, hashHex)
    this.lastLoaded.set(`name:${name}`, hashHex)
    return verdict
  }

  /** Whether a loaded model may run now (a newer enforce policy may have dropped it). */
  allows (modelHashHex: string): boolean {
    const policy = this.current?.policy
    if (policy === undefined) return this.options.requirePolicy !== true
    if (policy.mode === 'audit') return true
    return this.isApproved(modelHashHex)
  }

  /** A policy is required and none is in force yet. */
  get awaiting (): boolean { return this.options.requirePolicy === true && this.current === undefined }

  status (): PolicyStatus {
    const p = this.current?.policy
    return {
      configured: this.options.adminPublicKey !== undefined,
      required: this.options.requirePolicy === true,
      awaiting: this.awaiting,
      ...(p !== undefined ? { version: p.version, mode: p.mode, issuedAtMs: p.issuedAtMs, fleetId: p.fleetId, modelCount: p.modelHashes.length } : {})
    }
  }

  private assertPolicyKnown (model: string): void {
    if (this.awaiting) {
      throw new ModelPolicyError('POLICY_AWAITED', `model ${model} waits for a signed model policy: none is in force yet (pin one with provenance-agent init --policy, or publish one with provenance-fleet policy publish)`)
    }
  }

  private install (signed: SignedPolicy): void {
    this.current = signed
    this.allowed = new Set(signed.policy.modelHashes.map(h => toHex(h)))
  }

  private isApproved (hashHex: string): boolean {
    const registry = this.registryStatus.get(hashHex)
    // An on-chain revocation outranks an allowlist that may not have caught up with it.
    if (registry === 'revoked') return false
    return this.allowed.has(hashHex) || registry === 'approved'
  }

  private verdictFor (hashHex: string, name: string, path: string): PolicyVerdict {
    const policy = this.current?.policy
    if (policy === undefined) return 'unchecked'
    if (this.isApproved(hashHex)) return 'approved'
    if (policy.mode === 'audit') return 'unapproved'
    const revoked = this.registryStatus.get(hashHex) === 'revoked'
    throw new ModelPolicyError(revoked ? 'MODEL_REVOKED' : 'MODEL_NOT_APPROVED', revoked
      ? `model ${name} (${path}, sha256 ${hashHex}) is revoked in the model registry; policy v${policy.version} enforces approval`
      : `model ${name} (${path}, sha256 ${hashHex}) is not on the allowlist of policy v${policy.version} (enforce)`)
  }

  private async askRegistry (hash: Uint8Array): Promise<string | undefined> {
    const registry = this.options.registry
    if (registry === undefined) return undefined
    let timer: NodeJS.Timeout | undefined
    try {
      return await Promise.race([
        registry.modelStatus(hash),
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(() => reject(new Error('registry timeout')), this.options.registryTimeoutMs ?? DEFAULT_REGISTRY_TIMEOUT_MS)
        })
      ])
    } catch (e) {
      // Offline is normal for an edge device: the signed allowlist decides alone.
      this.logger.warn({ modelHash: toHex(hash), error: (e as Error).message }, 'model registry not reachable; the allowlist decides')
      return undefined
    } finally {
      clearTimeout(timer)
    }
  }
}

function checkFleet (signed: SignedPolicy, fleetId: string | undefined): void {
  if (fleetId !== undefined && signed.policy.fleetId !== fleetId) {
    throw new ModelPolicyError('POLICY_WRONG_FLEET', `policy is for fleet "${signed.policy.fleetId}", this device is in fleet "${fleetId}"`)
  }
}

async function readStoredPolicy (path: string): Promise<Uint8Array | undefined> {
  try {
    const handle = await fs.open(path, 'r')
    try {
      const stat = await handle.stat()
      if (!stat.isFile() || stat.size > MAX_STORED_POLICY_BYTES) throw new Error(`not a policy file (${stat.size} bytes)`)
      return new Uint8Array(await handle.readFile())
    } finally {
      await handle.close()
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new ModelPolicyError('POLICY_STORE_FAILED', `cannot read the stored policy ${path}: ${(e as Error).message}`, { cause: e })
  }
}
