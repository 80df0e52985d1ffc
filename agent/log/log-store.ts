/**
 * How the record log lies in LevelDB: record keys, the head (meta) key and its encoding, opening
 * the database, and the checks a head must pass at open and after every reopen.
 */
import type { Level } from 'level'
import { openLevel } from '../../common/level.js'
import { decodeEnvelope, toHex, fromHex, equalBytes, ZERO_HASH, type SignedRecord } from '../../protocol/index.js'
import { AgentError } from '../errors.js'

/** Where the log stands: the last record written. `seq` is -1 for an empty log. */
export interface LogHead { seq: number, boot: number, hash: Uint8Array }

export const RECORD_PREFIX = 'r/'
export const HEAD_KEY = 'm/head'
const META_VERSION = 2

/** LevelDB key of a record: fixed-width hex keeps lexicographic order equal to seq order. */
export function recordKey (seq: number): string {
  return RECORD_PREFIX + seq.toString(16).padStart(14, '0')
}

function seqOfKey (key: string): number {
  return Number.parseInt(key.slice(RECORD_PREFIX.length), 16)
}

export interface Meta {
  head: LogHead
  /** Exact bytes of the stored records. */
  bytes: number
  ackedSeq: number
  dropped: number
  /** No record below this seq is stored: pruning starts here instead of walking tombstones. */
  low: number
}

export type Db = Level<string, Uint8Array>

export async function openDb (dir: string, writeBufferBytes: number): Promise<Db> {
  return await openLevel<Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' }, (e, locked) =>
    new AgentError(locked ? 'LOG_LOCKED' : 'LOG_OPEN_FAILED', `cannot open record log ${dir}: ${(e as Error).message}`, { cause: e }), { writeBufferBytes })
}

export function encodeMeta (m: Meta): Uint8Array {
  return Buffer.from(JSON.stringify({ v: META_VERSION, seq: m.head.seq, boot: m.head.boot, hash: toHex(m.head.hash), bytes: m.bytes, acked: m.ackedSeq, dropped: m.dropped, low: m.low }))
}

export function decodeStored (value: Uint8Array): SignedRecord {
  try {
    return decodeEnvelope(value)
  } catch (cause) {
    throw new AgentError('LOG_CORRUPT', `stored record is unreadable: ${(cause as Error).message}`, { cause })
  }
}

/**
 * Reads the head and checks it against the records: the head record is stored and matches, no
 * record lies beyond it, and it links to the record before it (or declares it dropped). A head
 * written before the byte count was exact (no `v`) has its count and low mark taken from a scan.
 */
export async function readMeta (db: Db, deviceId: string): Promise<Meta> {
  const raw = await db.get(HEAD_KEY)
  if (raw === undefined) {
    // No head: the log must be empty too, or records were written by something else.
    for await (const _ of db.keys({ gte: RECORD_PREFIX, lt: 'r0', limit: 1 })) {
      throw new AgentError('LOG_CORRUPT', 'record log has records but no head')
    }
    return { head: { seq: -1, boot: 0, hash: ZERO_HASH }, bytes: 0, ackedSeq: -1, dropped: 0, low: 0 }
  }
  let meta: Meta
  let exact: boolean
  try {
    const h = JSON.parse(Buffer.from(raw).toString('utf8')) as { v?: number, seq: number, boot: number, hash: string, bytes: number, acked: number, dropped: number, low?: number }
    exact = h.v === META_VERSION
    const low = exact ? h.low : 0
    for (const n of [h.seq, h.boot, h.bytes, h.acked, h.dropped, low]) if (!Number.isSafeInteger(n)) throw new TypeError('bad head numbers')
    meta = { head: { seq: h.seq, boot: h.boot, hash: fromHex(h.hash) }, bytes: h.bytes, ackedSeq: h.acked, dropped: h.dropped, low: low as number }
  } catch (cause) {
    throw new AgentError('LOG_CORRUPT', 'record log head is unreadable', { cause })
  }
  if (meta.head.seq >= 0) {
    const last = await db.get(recordKey(meta.head.seq))
    if (last === undefined) throw new AgentError('LOG_CORRUPT', `record log head (seq ${meta.head.seq}) is not stored`)
    const signed = decodeStored(last)
    if (!equalBytes(signed.hash, meta.head.hash) || signed.record.deviceId !== deviceId) {
      throw new AgentError('LOG_CORRUPT', `record log head (seq ${meta.head.seq}) does not match the stored record or device`)
    }
    for await (const key of db.keys({ gt: recordKey(meta.head.seq), lt: 'r0', limit: 1 })) {
      throw new AgentError('LOG_CORRUPT', `record log holds ${key} beyond its head (seq ${meta.head.seq})`)
    }
    const before = await db.get(recordKey(meta.head.seq - 1))
    const body = signed.record.body
    const declared = body.kind === 'gap' && body.lastSeq === meta.head.seq - 1
    if (before !== undefined && !declared && !equalBytes(decodeStored(before).hash, signed.record.prev)) {
      throw new AgentError('LOG_CORRUPT', `record log head (seq ${meta.head.seq}) does not link to the record before it`)
    }
  }
  if (!exact) {
    let bytes = 0
    let low: number | undefined
    for await (const [key, value] of db.iterator({ gte: RECORD_PREFIX, lt: 'r0' })) {
      low ??= seqOfKey(key)
      bytes += value.byteLength
    }
    meta.bytes = bytes
    meta.low = low ?? meta.head.seq + 1
  }
  return meta
}
