/**
 * Per-subject disclosure keys (docs/PROTOCOL.md §12.3): the records run for a data subject are
 * salted by a random key of that subject, kept here and nowhere else, so that an erasure request
 * is honoured by destroying the key (crypto-shredding) while every record, signature and proof
 * stays. Subjects are stored under their pseudonym only, never by name.
 */
import { randomBytes } from 'node:crypto'
import { writeFileAtomic } from '../../common/atomic-file.js'
import { readOwnerOnlyFile } from '../../common/secret-file.js'
import {
  SUBJECT_KEY_BYTES, deriveSubjectRef, deriveSubjectSalt, fromHex, signShreddingStatement, toHex,
  type ShreddingStatement, type Signer, type SignedStatement
} from '../../protocol/index.js'
import { KeyError } from './errors.js'

/** Largest subject key file read. */
const MAX_FILE_BYTES = 64 * 1024 * 1024
const FILE_VERSION = 1

type Range = { firstSeq: number, lastSeq: number }
interface Entry { key: Uint8Array | undefined, ranges: Range[], shreddedAtMs?: number }

export interface SubjectKeyStoreOptions {
  /** The file, e.g. `<stateDir>/subject-keys.json` (mode 0600). */
  path: string
  /** The device secret (the key file's saltSecret): names subjects by pseudonym. */
  secret: Uint8Array
}

/**
 * Subject keys and the seq ranges each salted. Writes are atomic file replacements; a key is
 * written before any record uses it, so no record is ever salted by a key that was not kept.
 */
export class SubjectKeyStore {
  private readonly path: string
  private readonly secret: Uint8Array
  private readonly entries: Map<string, Entry>
  private writing: Promise<void> = Promise.resolve()

  private constructor (options: SubjectKeyStoreOptions, entries: Map<string, Entry>) {
    this.path = options.path
    this.secret = options.secret
    this.entries = entries
  }

  /**
   * Opens (or starts) the store.
   * @throws KeyError `SUBJECT_KEYS_INVALID` for a file this code did not write, or one others may read.
   */
  static async open (options: SubjectKeyStoreOptions): Promise<SubjectKeyStore> {
    const text = await readOwnerOnlyFile(options.path, {
      maxBytes: MAX_FILE_BYTES,
      what: 'subject key file',
      error: (_problem, message, cause) => new KeyError('SUBJECT_KEYS_INVALID', message, { cause })
    })
    const entries = new Map<string, Entry>()
    if (text !== undefined) {
      let doc: { v?: unknown, subjects?: Record<string, { key?: unknown, ranges?: unknown, shreddedAtMs?: unknown }> }
      try {
        doc = JSON.parse(text) as typeof doc
      } catch (cause) {
        throw new KeyError('SUBJECT_KEYS_INVALID', `subject key file ${options.path} is not JSON`, { cause })
      }
      if (doc.v !== FILE_VERSION || typeof doc.subjects !== 'object' || doc.subjects === null) throw new KeyError('SUBJECT_KEYS_INVALID', `subject key file ${options.path} is not version ${FILE_VERSION}`)
      for (const [ref, e] of Object.entries(doc.subjects)) {
        const ranges = e.ranges
        const ok = /^[0-9a-f]{64}$/.test(ref) && (e.key === null || (typeof e.key === 'string' && /^[0-9a-f]{64}$/.test(e.key))) &&
          Array.isArray(ranges) && ranges.every((r: unknown) => Array.isArray(r) && r.length === 2 && r.every(n => Number.isSafeInteger(n) && (n as number) >= 0))
        if (!ok) throw new KeyError('SUBJECT_KEYS_INVALID', `subject key file ${options.path}: bad entry`)
        entries.set(ref, {
          key: e.key === null ? undefined : fromHex(e.key as string),
          ranges: (ranges as Array<[number, number]>).map(([firstSeq, lastSeq]) => ({ firstSeq, lastSeq })),
          ...(typeof e.shreddedAtMs === 'number' ? { shreddedAtMs: e.shreddedAtMs } : {})
        })
      }
    }
    return new SubjectKeyStore(options, entries)
  }

  /** The pseudonym of `subject` (hex). @throws RangeError for an empty subject. */
  refOf (subject: string): string {
    return toHex(deriveSubjectRef(this.secret, subject))
  }

  /**
   * The key that salts `subject`'s records, created (and written) on first use.
   * @throws KeyError `SUBJECT_SHREDDED` once the subject's key was destroyed: no new record may be
   *   salted for a subject that asked to be erased (a new key would need a new subject name).
   */
  async keyFor (subject: string): Promise<{ ref: string, key: Uint8Array }> {
    const ref = this.refOf(subject)
    let e = this.entries.get(ref)
    if (e !== undefined && e.key === undefined) throw new KeyError('SUBJECT_SHREDDED', `the subject's key was destroyed at ${String(e.shreddedAtMs)}; its records cannot be salted again`)
    if (e === undefined) {
      e = { key: new Uint8Array(randomBytes(SUBJECT_KEY_BYTES)), ranges: [] }
      this.entries.set(ref, e)
      await this.save()
    }
    return { ref, key: e.key as Uint8Array }
  }

  /** Notes that record `seq` was salted by the subject `ref`'s key (written before returning). */
  async noteUse (ref: string, seq: number): Promise<void> {
    const e = this.entries.get(ref)
    if (e === undefined) throw new RangeError('unknown subject reference')
    const last = e.ranges.at(-1)
    if (last !== undefined && last.lastSeq + 1 === seq) last.lastSeq = seq
    else e.ranges.push({ firstSeq: seq, lastSeq: seq })
    await this.save()
  }

  /**
   * The salt of record `seq` when a subject key salted it; undefined for records salted by the
   * device secret.
   * @throws KeyError `SUBJECT_SHREDDED` when that subject's key was destroyed.
   */
  saltFor (seq: number): Uint8Array | undefined {
    for (const e of this.entries.values()) {
      if (!e.ranges.some(r => r.firstSeq <= seq && seq <= r.lastSeq)) continue
      if (e.key === undefined) throw new KeyError('SUBJECT_SHREDDED', `record ${seq} was salted by a subject key destroyed at ${String(e.shreddedAtMs)}: its commitments cannot be opened`)
      return deriveSubjectSalt(e.key, seq)
    }
    return undefined
  }

  /** True when record `seq` belongs to a shredded subject. */
  isShredded (seq: number): boolean {
    for (const e of this.entries.values()) if (e.key === undefined && e.ranges.some(r => r.firstSeq <= seq && seq <= r.lastSeq)) return true
    return false
  }

  /**
   * Crypto-shredding: destroys `subject`'s key (the file is rewritten without it) and signs a
   * shredding statement of its seq ranges with the device key (PROTOCOL.md §12.2).
   * @throws KeyError `SUBJECT_UNKNOWN` (no record was run for it), `SUBJECT_SHREDDED` (already).
   */
  async shred (subject: string, options: { deviceId: string, signer: Signer, nowMs: number, reason: string }): Promise<SignedStatement<ShreddingStatement>> {
    const ref = this.refOf(subject)
    const e = this.entries.get(ref)
    if (e === undefined || e.ranges.length === 0) throw new KeyError('SUBJECT_UNKNOWN', 'no record of this device was run for that subject')
    if (e.key === undefined) throw new KeyError('SUBJECT_SHREDDED', `that subject's key was already destroyed at ${String(e.shreddedAtMs)}`)
    // Signed first: a statement that cannot be made leaves the key in place, never the other way round.
    const signed = signShreddingStatement({ deviceId: options.deviceId, subjectRef: fromHex(ref), ranges: mergeRanges(e.ranges), shreddedAtMs: options.nowMs, reason: options.reason }, options.signer)
    e.key.fill(0)
    e.key = undefined
    e.shreddedAtMs = options.nowMs
    await this.save()
    return signed
  }

  private async save (): Promise<void> {
    const subjects: Record<string, unknown> = {}
    for (const [ref, e] of this.entries) {
      subjects[ref] = { key: e.key === undefined ? null : toHex(e.key), ranges: e.ranges.map(r => [r.firstSeq, r.lastSeq]), ...(e.shreddedAtMs === undefined ? {} : { shreddedAtMs: e.shreddedAtMs }) }
    }
    const text = JSON.stringify({ v: FILE_VERSION, subjects }) + '\n'
    // One write at a time, each of the state as it stands when it starts.
    const next = this.writing.then(async () => await writeFileAtomic(this.path, text))
    this.writing = next.catch(() => {})
    await next
  }
}

/** Ranges ascending with a hole between (as the statement requires). */
function mergeRanges (ranges: readonly Range[]): Range[] {
  const sorted = [...ranges].sort((a, b) => a.firstSeq - b.firstSeq)
  const out: Range[] = []
  for (const r of sorted) {
    const last = out.at(-1)
    if (last !== undefined && r.firstSeq <= last.lastSeq + 1) last.lastSeq = Math.max(last.lastSeq, r.lastSeq)
    else out.push({ ...r })
  }
  return out
}
