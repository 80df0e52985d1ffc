/**
 * The device identity key in a TPM 2.0, through Debian's tpm2-tools (docs/IDENTITY.md): a P-256
 * signing key created under the owner hierarchy's storage primary, never exportable. Its wrapped
 * blob lives in the agent's state folder and loads only into the TPM that made it, so a copied
 * disk holds nothing usable; the key certifies each boot's in-memory Ed25519 record key.
 */
import { execFile } from 'node:child_process'
import { constants, promises as fs } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { certifyRecordKey, parseTpmEccPublic, type IdentitySigner, type KeyAttestation } from '../../protocol/index.js'
import { ProvenanceError } from '../../protocol/errors.js'

/** Codes of the TPM key store (docs/ERRORS.md). */
export type TpmErrorCode =
  /** tpm2-tools are not installed, or the TPM (TCTI) does not answer. */
  | 'TPM_UNAVAILABLE'
  /** The identity key blob in the state folder does not load into this TPM (another TPM made it: a copied disk), or is missing. */
  | 'TPM_KEY_UNUSABLE'
  /** A TPM command failed (the message carries the tool's error). */
  | 'TPM_COMMAND_FAILED'

export class TpmError extends ProvenanceError<TpmErrorCode> {}

/** Where the TPM is on a device: the kernel's resource manager (one open handle per process). */
export const DEFAULT_TPM_TCTI = 'device:/dev/tpmrm0'
/** How long one tpm2-tools command may take (a real TPM signs in tens of ms; key creation takes longer). */
export const DEFAULT_TPM_COMMAND_TIMEOUT_MS = 30_000
/** File names of the wrapped identity key in the state folder (TPM2B_PUBLIC, TPM2B_PRIVATE). */
export const IDENTITY_PUBLIC_FILE = 'tpm-identity.pub'
export const IDENTITY_PRIVATE_FILE = 'tpm-identity.priv'

export interface TpmIdentityOptions {
  /** The agent's state folder: holds the wrapped key blob (useless outside this TPM). */
  stateDir: string
  /** tpm2-tools TCTI, e.g. `swtpm:host=127.0.0.1,port=2321`. Default: env TPM2TOOLS_TCTI, else DEFAULT_TPM_TCTI. */
  tcti?: string
  /** Create the identity key when the state folder has none (`provenance-agent init`). Default false. */
  create?: boolean
  /** Per-command timeout. Default DEFAULT_TPM_COMMAND_TIMEOUT_MS. */
  commandTimeoutMs?: number
}

// The owner-hierarchy storage primary is re-derived (same seed, same template: same key) on
// every open rather than made persistent, so no NV handle is taken on a TPM others share.
const PRIMARY_ARGS = ['-C', 'o', '-g', 'sha256', '-G', 'ecc256']
const IDENTITY_ATTRIBUTES = 'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign'

/** The TPM identity: its public key, signing, and the key attestation for enrollment. */
export interface TpmIdentity extends IdentitySigner {
  /** TPM2_Certify of the identity key by an AK under the endorsement key (docs/IDENTITY.md). */
  attest: () => Promise<KeyAttestation>
  /** Removes the temporary context files. */
  close: () => Promise<void>
}

/**
 * Opens (or, with `create`, makes) the identity key in the TPM.
 * @throws TpmError `TPM_UNAVAILABLE`, `TPM_KEY_UNUSABLE`, `TPM_COMMAND_FAILED`.
 */
export async function openTpmIdentity (options: TpmIdentityOptions): Promise<TpmIdentity> {
  const tcti = options.tcti ?? process.env.TPM2TOOLS_TCTI ?? DEFAULT_TPM_TCTI
  const timeout = options.commandTimeoutMs ?? DEFAULT_TPM_COMMAND_TIMEOUT_MS
  const work = await fs.mkdtemp(join(tmpdir(), 'provenance-tpm-'))
  const pubPath = join(options.stateDir, IDENTITY_PUBLIC_FILE)
  const privPath = join(options.stateDir, IDENTITY_PRIVATE_FILE)
  // One command at a time: without a resource manager (swtpm) transient objects are shared.
  let queue: Promise<unknown> = Promise.resolve()
  const run = async (tool: string, args: string[]): Promise<string> => {
    const step = queue.then(async () => await tpm2(tool, args, tcti, timeout))
    queue = step.catch(() => undefined)
    return await step
  }
  const flush = async (): Promise<void> => { await run('tpm2_flushcontext', ['-t']) }
  const ctx = (name: string): string => join(work, name)
  try {
    await run('tpm2_createprimary', [...PRIMARY_ARGS, '-c', ctx('primary.ctx')])
    await flush()
    if (!(await exists(pubPath)) || !(await exists(privPath))) {
      if (options.create !== true) throw new TpmError('TPM_KEY_UNUSABLE', `no TPM identity key in ${options.stateDir} (run provenance-agent init)`)
      await run('tpm2_create', ['-C', ctx('primary.ctx'), '-G', 'ecc256:ecdsa-sha256', '-a', IDENTITY_ATTRIBUTES, '-u', ctx('new.pub'), '-r', ctx('new.priv')])
      await flush()
      // The blob is wrapped by this TPM's storage key: not a secret, but owner-only like the rest.
      await fs.copyFile(ctx('new.priv'), privPath)
      await fs.chmod(privPath, 0o600)
      await fs.copyFile(ctx('new.pub'), pubPath)
    }
    try {
      await run('tpm2_load', ['-C', ctx('primary.ctx'), '-u', pubPath, '-r', privPath, '-c', ctx('identity.ctx')])
    } catch (e) {
      throw new TpmError('TPM_KEY_UNUSABLE', `the identity key in ${options.stateDir} does not load into this TPM (made by another TPM?)`, { cause: e })
    }
    await flush()
    const publicKey = parseTpmEccPublic(new Uint8Array(await fs.readFile(pubPath)), 'identity public').publicKey
    const sign = async (message: Uint8Array): Promise<Uint8Array> => {
      const id = Math.random().toString(36).slice(2)
      const msgPath = ctx(`msg-${id}`)
      const sigPath = ctx(`sig-${id}`)
      await fs.writeFile(msgPath, message)
      try {
        await run('tpm2_sign', ['-c', ctx('identity.ctx'), '-g', 'sha256', '-s', 'ecdsa', '-f', 'plain', '-o', sigPath, msgPath])
        await flush()
        // `-f plain` writes an ECDSA signature as DER; the caller normalizes it to r ‖ s.
        return new Uint8Array(await fs.readFile(sigPath))
      } finally {
        await Promise.all([fs.rm(msgPath, { force: true }), fs.rm(sigPath, { force: true })])
      }
    }
    const attest = async (): Promise<KeyAttestation> => {
      await run('tpm2_createek', ['-c', ctx('ek.ctx'), '-G', 'ecc', '-u', ctx('ek.pub')])
      await flush()
      await run('tpm2_createak', ['-C', ctx('ek.ctx'), '-c', ctx('ak.ctx'), '-G', 'ecc', '-g', 'sha256', '-s', 'ecdsa', '-u', ctx('ak.pub'), '-n', ctx('ak.name')])
      await flush()
      await run('tpm2_flushcontext', ['-s'])
      await run('tpm2_certify', ['-c', ctx('identity.ctx'), '-C', ctx('ak.ctx'), '-g', 'sha256', '-o', ctx('attest'), '-s', ctx('attest.sig'), '-f', 'plain'])
      await flush()
      // tpm2_createak -u writes the AK's TPM2B_PUBLIC as tss format.
      return {
        identityPublic: new Uint8Array(await fs.readFile(pubPath)),
        akPublic: new Uint8Array(await fs.readFile(ctx('ak.pub'))),
        attest: new Uint8Array(await fs.readFile(ctx('attest'))),
        signature: new Uint8Array(await fs.readFile(ctx('attest.sig')))
      }
    }
    return { publicKey, sign, attest, close: async () => { await fs.rm(work, { recursive: true, force: true }) } }
  } catch (e) {
    await fs.rm(work, { recursive: true, force: true })
    throw e
  }
}

async function exists (path: string): Promise<boolean> {
  try {
    await fs.access(path, constants.R_OK)
    return true
  } catch {
    return false
  }
}

async function tpm2 (tool: string, args: string[], tcti: string, timeoutMs: number): Promise<string> {
  return await new Promise((resolve, reject) => {
    execFile(tool, args, { env: { ...process.env, TPM2TOOLS_TCTI: tcti }, timeout: timeoutMs, maxBuffer: 1024 * 1024 }, (error, stdout, stderr) => {
      if (error === null) { resolve(stdout); return }
      const err = error as NodeJS.ErrnoException & { killed?: boolean }
      const detail = stderr.split('\n').filter(l => l.trim() !== '').slice(-2).join(' / ')
      if (err.code === 'ENOENT') reject(new TpmError('TPM_UNAVAILABLE', `${tool} not found: install tpm2-tools`, { cause: error }))
      else if (/tcti|connect|No such file|Connection refused/i.test(detail)) reject(new TpmError('TPM_UNAVAILABLE', `${tool}: the TPM at ${tcti} does not answer: ${detail}`, { cause: error }))
      else reject(new TpmError('TPM_COMMAND_FAILED', `${tool} failed: ${detail !== '' ? detail : error.message}`, { cause: error }))
    })
  })
}

/** How long a boot's record key is certified for: beyond any boot (the agent certifies again at each start). */
export const DEFAULT_BOOT_KEY_VALIDITY_MS = 365 * 24 * 3600 * 1000

/**
 * The agent's `certifyBootKey` for keyStore `tpm`: opens the TPM identity, certifies the boot's
 * record key for `validityMs` from the request's device time, and closes it again (the TPM is not
 * needed once the boot record is signed).
 * @throws TpmError `TPM_*`; ProtocolError `SIGNATURE_INVALID` when the TPM's signature does not verify.
 */
export function tpmBootCertifier (options: TpmIdentityOptions & { validityMs?: number }): (r: { deviceId: string, boot: number, recordKey: Uint8Array, timeMs: number }) => Promise<{ bytes: Uint8Array, signature: Uint8Array }> {
  return async (r) => {
    const identity = await openTpmIdentity(options)
    try {
      const signed = await certifyRecordKey({
        deviceId: r.deviceId, boot: r.boot, recordKey: r.recordKey, validFromMs: r.timeMs, validUntilMs: r.timeMs + (options.validityMs ?? DEFAULT_BOOT_KEY_VALIDITY_MS)
      }, identity)
      return { bytes: signed.bytes, signature: signed.signature }
    } finally {
      await identity.close()
    }
  }
}
