/**
 * The device key over its lifetime: a signer that can rotate to a new key, and the device clock
 * that keeps every record inside its key's validity period, so that verifiers can pick the key
 * of a record by its device time (`keyAt` over the history, as the chain's device registry does).
 *
 * Rotation is crash-safe: the key file first gets the new key plus the old seed and the seq the
 * rotation record will take ("pending"); then the rotation record is appended, signed by the old
 * key; then the old seed is dropped. A crash in between is settled by `recover`, which looks for
 * the rotation record in the log: found, the new key stays; not found, the old key comes back.
 * The new key signs only once the rotation record is durable, so no record signed by the new key
 * can exist without the rotation record before it.
 */
import {
  createSigner, equalBytes, generateSeed,
  type KeyLookup, type KeyRotationBody, type RecordBody, type SignedRecord, type Signer
} from '../../protocol/index.js'
import type { LogHead } from '../log/index.js'
import { loadOrCreateKeyFile, writeKeyFile, type DeviceKey, type KeyFileContent, type KeyPeriod } from './device-key.js'
import { KeyError } from './errors.js'

/** What rotation needs of the record log (RecordLog fits). */
export interface RotationLog {
  readonly head: LogHead
  readonly nextSeq: number
  append: (build: (seq: number) => RecordBody) => Promise<SignedRecord>
  flush: () => Promise<void>
  iterate: (fromSeq?: number, toSeq?: number) => AsyncGenerator<SignedRecord>
}

export interface KeyRingOptions {
  /** Create the key file when it does not exist. */
  create?: boolean
  /** Wall clock, Unix ms. Default Date.now. */
  wallClock?: () => number
}

export interface RotationResult {
  previousPublicKey: Uint8Array
  publicKey: Uint8Array
  validFromMs: number
  /** The key-rotation record, signed by the previous key. */
  record: SignedRecord
}

/** What `recover` found: no interrupted rotation, or one it finished, or one it undid. */
export type RecoveryOutcome = 'none' | 'completed' | 'rolled-back'

export class KeyRing {
  readonly path: string
  /** Signs with the current key; stable across rotations (hand it to the record log once). */
  readonly signer: Signer
  /** Device time for records: the wall clock, never below the current key's validity start. */
  readonly clock: () => number
  private content: KeyFileContent
  private current: Signer
  private readonly wallClock: () => number
  private floorMs: number
  private rotation: { next: Signer, validFromMs: number } | undefined

  private constructor (path: string, content: KeyFileContent, wallClock: () => number) {
    this.path = path
    this.content = content
    this.wallClock = wallClock
    // With a rotation pending, the old key is in force until recover() has looked at the log.
    this.current = createSigner(content.pending?.previousSeed ?? content.seed)
    this.floorMs = lastPeriod(this.confirmedHistory()).validFromMs
    const current = (): Signer => this.current
    this.signer = {
      get publicKey () { return current().publicKey },
      sign: (message: Uint8Array) => this.sign(message)
    }
    this.clock = () => this.now()
  }

  /**
   * Opens (or creates) the key file. An interrupted rotation stays pending until {@link recover}.
   * @throws AgentError `KEY_UNREADABLE`, `KEY_INVALID`, `KEY_INSECURE`.
   */
  static async open (path: string, options: KeyRingOptions = {}): Promise<KeyRing> {
    const wallClock = options.wallClock ?? Date.now
    const content = await loadOrCreateKeyFile(path, { create: options.create ?? false, nowMs: wallClock() })
    return new KeyRing(path, content, wallClock)
  }

  get publicKey (): Uint8Array { return this.current.publicKey }
  get saltSecret (): Uint8Array { return this.content.saltSecret }
  get createdMs (): number { return this.content.createdMs }
  /** Every key in force so far, oldest first (a pending rotation's key is not one yet). */
  get history (): KeyPeriod[] { return this.confirmedHistory().map(p => ({ publicKey: p.publicKey.slice(), validFromMs: p.validFromMs })) }
  /** The interrupted rotation `recover` has to settle, if any. */
  get pendingRotation (): { rotationSeq: number, publicKey: Uint8Array, validFromMs: number } | undefined {
    const p = this.content.pending
    if (p === undefined) return undefined
    const next = lastPeriod(this.content.history)
    return { rotationSeq: p.rotationSeq, publicKey: next.publicKey, validFromMs: next.validFromMs }
  }

  /** Key lookup by device time over the history (for ChainVerifier). */
  get keyAt (): KeyLookup { return keyAtFromHistory(this.confirmedHistory()) }

  /** The DeviceKey view for ProvenanceAgent: its signer and public key follow rotations. */
  toDeviceKey (): DeviceKey {
    const publicKey = (): Uint8Array => this.publicKey
    const history = (): DeviceKey['history'] => this.history
    return {
      signer: this.signer,
      get publicKey () { return publicKey() },
      saltSecret: this.content.saltSecret,
      createdMs: this.content.createdMs,
      get history () { return history() }
    }
  }

  /**
   * Settles an interrupted rotation by looking for its record in the log.
   * @throws AgentError `KEY_UNREADABLE` when the key file cannot be rewritten; `LOG_*`.
   */
  async recover (log: RotationLog): Promise<RecoveryOutcome> {
    const pending = this.content.pending
    if (pending === undefined) return 'none'
    await log.flush()
    const next = lastPeriod(this.content.history)
    let found = false
    if (log.head.seq >= pending.rotationSeq) {
      for await (const r of log.iterate(pending.rotationSeq, log.head.seq)) {
        if (r.record.body.kind === 'key-rotation' && equalBytes(r.record.body.newPublicKey, next.publicKey)) { found = true; break }
      }
    }
    if (found) {
      const { pending: _, ...settled } = this.content
      await writeKeyFile(this.path, settled)
      this.content = settled
      this.current = createSigner(settled.seed)
      this.floorMs = next.validFromMs
      return 'completed'
    }
    const restored: KeyFileContent = { ...withoutPending(this.content), seed: pending.previousSeed, history: this.content.history.slice(0, -1) }
    await writeKeyFile(this.path, restored)
    this.content = restored
    this.current = createSigner(restored.seed)
    return 'rolled-back'
  }

  /**
   * Rotates to a fresh key: appends a key-rotation record `{ newPublicKey, validFromMs }` signed
   * by the current key; every later record is signed by the new key and carries a device time of
   * at least `validFromMs`. The old secret is discarded once the record is durable. Run it with
   * no other writer on the log (the CLI does it with the daemon stopped).
   * @throws KeyError `KEY_ROTATION_PENDING` (recover first), `KEY_ROTATION_FAILED` (the record was
   *   not written; the old key stays); AgentError `KEY_UNREADABLE` (key file not writable).
   */
  async rotate (log: RotationLog): Promise<RotationResult> {
    if (this.content.pending !== undefined) throw new KeyError('KEY_ROTATION_PENDING', `key file ${this.path} holds an interrupted rotation; recover it first`)
    if (this.content.history.length >= 256) throw new KeyError('KEY_ROTATION_FAILED', `key file ${this.path} already holds 256 keys`)
    await log.flush()
    // Every record signed so far must fall before the new key's validity start, even if the
    // device clock was stepped back since it was written.
    let latestMs = 0
    for await (const r of log.iterate(0, log.head.seq)) latestMs = Math.max(latestMs, r.record.timeMs)
    const validFromMs = Math.max(this.wallClock(), this.floorMs, latestMs) + 1
    const old = this.content
    const previous = this.current
    const nextSeed = generateSeed()
    const next = createSigner(nextSeed)
    const rotationSeq = log.nextSeq
    const pendingContent: KeyFileContent = {
      ...withoutPending(old),
      seed: nextSeed,
      history: [...old.history, { publicKey: next.publicKey, validFromMs }],
      pending: { previousSeed: old.seed, rotationSeq }
    }
    await writeKeyFile(this.path, pendingContent)
    this.content = pendingContent
    this.rotation = { next, validFromMs }
    let record: SignedRecord
    try {
      // The log may sign a record more than once (a budget drop in between): the old key and the
      // capped clock stay in force until the record is durable.
      record = await log.append((): KeyRotationBody => ({ kind: 'key-rotation', newPublicKey: next.publicKey, validFromMs }))
    } catch (cause) {
      this.rotation = undefined
      await writeKeyFile(this.path, old)
      this.content = old
      throw new KeyError('KEY_ROTATION_FAILED', `the key-rotation record could not be written; the old key stays: ${(cause as Error).message}`, { cause })
    }
    this.current = next
    this.floorMs = validFromMs
    this.rotation = undefined
    const settled = withoutPending(pendingContent)
    await writeKeyFile(this.path, settled)
    this.content = settled
    return { previousPublicKey: previous.publicKey, publicKey: next.publicKey, validFromMs, record }
  }

  private confirmedHistory (): KeyPeriod[] {
    return this.content.pending !== undefined ? this.content.history.slice(0, -1) : this.content.history
  }

  private now (): number {
    const t = Math.max(this.wallClock(), this.floorMs)
    // While a rotation record is being signed, time stays below the new key's validity start.
    return this.rotation !== undefined ? Math.min(t, this.rotation.validFromMs - 1) : t
  }

  private sign (message: Uint8Array): Uint8Array {
    if (this.content.pending !== undefined && this.rotation === undefined) {
      throw new KeyError('KEY_ROTATION_PENDING', `key file ${this.path} holds an interrupted rotation; recover it before signing`)
    }
    return this.current.sign(message)
  }
}

/** Key lookup by device time: the last key whose validity starts at or before `timeMs`. */
export function keyAtFromHistory (history: readonly KeyPeriod[]): KeyLookup {
  const periods = history.map(p => ({ publicKey: p.publicKey.slice(), validFromMs: p.validFromMs }))
  return (_deviceId, timeMs) => {
    let key: Uint8Array | undefined
    for (const p of periods) {
      if (p.validFromMs <= timeMs) key = p.publicKey
      else break
    }
    return key
  }
}

function withoutPending (c: KeyFileContent): KeyFileContent {
  const { pending: _, ...rest } = c
  return rest
}

function lastPeriod (history: readonly KeyPeriod[]): KeyPeriod {
  const last = history[history.length - 1]
  if (last === undefined) throw new RangeError('empty key history')
  return last
}

