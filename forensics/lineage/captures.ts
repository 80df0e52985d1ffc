/**
 * Field captures behind a dataset: a captures file pairs files of a dataset manifest with the
 * device data-capture records (kind 10) that vouch for them, and the salts that open their
 * commitments. Checking it proves each file was kept by a registered device at a time (§5).
 */
import { commitSample, decodeEnvelope, equalBytes, fromHex, ProvenanceError, toHex, verifyRecordSignature, type DataCaptureBody, type SignedRecord } from '../../protocol/index.js'
import { ForensicsError } from '../errors.js'
import { fileOfResource, type Manifest } from './manifest.js'

export const CAPTURES_FORMAT = 'edge-provenance/data-captures/v1'
/** Captures files above this size are refused before reading. */
export const DEFAULT_CAPTURES_MAX_BYTES = 64 * 1024 * 1024

/** One file of a dataset and the device record that vouches for it. */
export interface CaptureEntry {
  /** The file's name in the dataset manifest. */
  name: string
  /** The data-capture record's envelope, hex. */
  envelope: string
  /** The salt of the record's seq, hex (opens the commitment). */
  salt: string
}

export interface CapturesFile { format: typeof CAPTURES_FORMAT, captures: CaptureEntry[] }

/**
 * The device key in force at a device time, as the registry says; undefined for a device (or a
 * time) the registry does not know. Registry device ids are the device id strings here.
 */
export type DeviceKeyLookup = (deviceId: string, timeMs: number) => Promise<{ publicKey: Uint8Array, revoked: boolean } | undefined>

export type CaptureCheckReason =
  | 'RECORD_INVALID' | 'NOT_DATA_CAPTURE' | 'DEVICE_UNKNOWN' | 'DEVICE_REVOKED' | 'SIGNATURE_INVALID'
  | 'FILE_NOT_IN_MANIFEST' | 'COMMITMENT_MISMATCH' | 'SIZE_MISMATCH'

export interface CaptureCheck {
  name: string
  deviceId: string | null
  seq: number | null
  recordHash: string | null
  dataset: string | null
  label: string | null
  capturedAtMs: number | null
  ok: boolean
  reason?: CaptureCheckReason
  detail?: string
}

/**
 * Parses a captures file (JSON).
 * @throws ForensicsError `CAPTURES_INVALID` naming the first bad field.
 */
export function parseCaptures (bytes: Uint8Array): CapturesFile {
  let value: unknown
  try { value = JSON.parse(Buffer.from(bytes).toString('utf8')) } catch { throw new ForensicsError('CAPTURES_INVALID', 'captures file is not JSON') }
  const v = value as Partial<CapturesFile> | null
  if (typeof v !== 'object' || v === null || v.format !== CAPTURES_FORMAT) throw new ForensicsError('CAPTURES_INVALID', `captures file: format must be "${CAPTURES_FORMAT}"`)
  if (!Array.isArray(v.captures)) throw new ForensicsError('CAPTURES_INVALID', 'captures file: captures must be an array')
  v.captures.forEach((c: Partial<CaptureEntry> | null, i) => {
    if (typeof c !== 'object' || c === null) throw new ForensicsError('CAPTURES_INVALID', `captures[${i}]: not an object`)
    if (typeof c.name !== 'string' || c.name.length === 0) throw new ForensicsError('CAPTURES_INVALID', `captures[${i}].name: not a file name`)
    if (typeof c.envelope !== 'string' || !/^([0-9a-f]{2})+$/.test(c.envelope)) throw new ForensicsError('CAPTURES_INVALID', `captures[${i}].envelope: not lower-case hex`)
    if (typeof c.salt !== 'string' || !/^[0-9a-f]{64}$/.test(c.salt)) throw new ForensicsError('CAPTURES_INVALID', `captures[${i}].salt: not 64 hex digits`)
    const extra = Object.keys(c).filter(k => !['name', 'envelope', 'salt'].includes(k))
    if (extra.length > 0) throw new ForensicsError('CAPTURES_INVALID', `captures[${i}]: unknown field ${extra[0] as string}`)
  })
  return v as CapturesFile
}

/** The captures file of receipts the agent returned (ProvenanceAgent.recordDataCapture), one per file name. */
export function buildCaptures (entries: ReadonlyArray<{ name: string, record: SignedRecord, salt: Uint8Array }>): CapturesFile {
  return { format: CAPTURES_FORMAT, captures: entries.map(e => ({ name: e.name, envelope: toHex(e.record.envelope), salt: toHex(e.salt) })) }
}

/**
 * Checks every capture against the manifest's files and the device keys. A file of the manifest
 * without a capture is not a failure here (a dataset may mix field and other data); the caller
 * sees which files are covered.
 */
export async function checkCaptures (manifest: Manifest, captures: CapturesFile, keyAt: DeviceKeyLookup): Promise<CaptureCheck[]> {
  const files = new Map<string, { digest: string, size: number }>()
  for (const r of manifest.predicate.resources) {
    // Sharded manifests name pieces; a capture opens a whole file, so only `files` manifests count.
    if (manifest.predicate.serialization.method === 'files') files.set(fileOfResource(manifest, r), { digest: r.digest, size: r.size })
  }
  const out: CaptureCheck[] = []
  for (const c of captures.captures) {
    const check: CaptureCheck = { name: c.name, deviceId: null, seq: null, recordHash: null, dataset: null, label: null, capturedAtMs: null, ok: false }
    out.push(check)
    let signed: SignedRecord
    try {
      signed = decodeEnvelope(fromHex(c.envelope))
    } catch (e) {
      if (!(e instanceof ProvenanceError)) throw e
      Object.assign(check, { reason: 'RECORD_INVALID', detail: `${e.code}: ${e.message}` })
      continue
    }
    const r = signed.record
    Object.assign(check, { deviceId: r.deviceId, seq: r.seq, recordHash: toHex(signed.hash) })
    if (r.body.kind !== 'data-capture') { Object.assign(check, { reason: 'NOT_DATA_CAPTURE', detail: `a ${r.body.kind} record` }); continue }
    const body: DataCaptureBody = r.body
    Object.assign(check, { dataset: body.dataset, label: body.label, capturedAtMs: body.capturedAtMs })
    const key = await keyAt(r.deviceId, r.timeMs)
    if (key === undefined) { Object.assign(check, { reason: 'DEVICE_UNKNOWN', detail: `no registered key of ${r.deviceId} at ${r.timeMs}` }); continue }
    if (!verifyRecordSignature(signed, key.publicKey)) { Object.assign(check, { reason: 'SIGNATURE_INVALID', detail: `not signed by ${r.deviceId}'s key at ${r.timeMs}` }); continue }
    if (key.revoked) { Object.assign(check, { reason: 'DEVICE_REVOKED', detail: `${r.deviceId} was revoked at ${r.timeMs}` }); continue }
    const file = files.get(c.name)
    if (file === undefined) { Object.assign(check, { reason: 'FILE_NOT_IN_MANIFEST', detail: c.name }); continue }
    if (!equalBytes(commitSample(fromHex(c.salt), fromHex(file.digest)), body.commitment)) {
      Object.assign(check, { reason: 'COMMITMENT_MISMATCH', detail: `the record does not commit to ${c.name} as the manifest hashes it` })
      continue
    }
    if (file.size !== body.sizeBytes) { Object.assign(check, { reason: 'SIZE_MISMATCH', detail: `${file.size} bytes in the manifest, ${body.sizeBytes} in the record` }); continue }
    check.ok = true
  }
  return out
}
