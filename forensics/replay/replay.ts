/**
 * Replay of an incident capture: for each captured run, check its raw inputs and outputs against
 * the commitments of the device's signed record (with the captured salt), find the model by the
 * record's model hash, re-run it on the captured inputs and compare outputs, exactly or within a
 * stated tolerance. Every outcome is a verdict with a stable code, never an exception.
 */
import { Tensor, type InferenceSession } from 'onnxruntime-node'
import {
  captureTensor, commitCapturedTensor, decodeCapture, equalBytes, sha256, tensorOfCaptured, toHex,
  type CaptureEntry, type CapturedTensor, type InferenceBody, type SignedRecord, type TensorCommitment
} from '../../protocol/index.js'
import { checkTolerance, compareTensors, type ReplayTolerance } from './compare.js'
import { ModelSource, type ModelLookup } from './model-source.js'

/**
 * Verdict codes (stable API), from the most to the least serious; an entry's verdict is the first
 * of its findings in this order, or `ok`.
 */
export const REPLAY_VERDICTS = [
  'record-missing', 'input-mismatch', 'output-mismatch', 'model-mismatch', 'model-missing', 'replay-failed', 'replay-diverged', 'shredded', 'ok'
] as const
export type ReplayVerdict = typeof REPLAY_VERDICTS[number]
export type ReplayFindingCode = Exclude<ReplayVerdict, 'ok'>

export interface ReplayFinding {
  code: ReplayFindingCode
  /** The tensor concerned, when there is one. */
  tensor?: string
  message: string
}

export interface ReplayOptions {
  /** The capture file's bytes (hostile input: decoded with limits). */
  capture: Uint8Array
  /**
   * The device's records for the captured seqs (e.g. from an incident bundle); others are ignored.
   * Their signatures and chain are not checked here: verify them first (protocol verifyChain).
   */
  records: Iterable<SignedRecord>
  /** Model files by lower-case hex SHA-256, or a folder whose files are searched by hash. */
  modelPaths: ReadonlyMap<string, string> | string
  /** Accept floating-point outputs within this tolerance. Default: exact match only. */
  tolerance?: ReplayTolerance
  /** Largest capture accepted, bytes. Default 256 MiB. */
  maxCaptureBytes?: number
  /** Largest model file read, bytes. Default 2 GiB. */
  maxModelBytes?: number
  /** onnxruntime execution providers for the replay. Default ['cpu']. */
  executionProviders?: readonly string[]
  intraOpNumThreads?: number
  /**
   * Seq ranges of verified shredding statements (PROTOCOL.md §12.2): a captured run among them is
   * reported `shredded` and not opened, its subject's disclosure material having been destroyed.
   */
  shredded?: ReadonlyArray<{ firstSeq: number, lastSeq: number }>
}

export interface ReplayComparison {
  /**
   * 'exact': every output bit for bit; 'within-tolerance': floats within the tolerance;
   * 'diverged': outside it; 'not-run': no model to run or the run failed.
   */
  status: 'exact' | 'within-tolerance' | 'diverged' | 'not-run'
  /** Largest element differences over the entry's float outputs (0 when exact; NaN when not comparable). */
  maxAbsDiff: number
  maxRelDiff: number
}

export interface EntryReport {
  seq: number
  verdict: ReplayVerdict
  /** Every problem found, in check order. */
  findings: ReplayFinding[]
  /** Hex model hash of the record (of the capture when the record is missing). */
  modelHash: string
  /** Hex hash of the record the entry was checked against. */
  recordHash?: string
  replay: ReplayComparison
}

export interface ModelReport {
  modelHash: string
  status: ModelLookup['status']
  path?: string
  /** Hex SHA-256 of the file found, when it is not the one named. */
  fileHash?: string
}

export interface ReplaySummary {
  deviceId: string
  reason: string
  frozenAtMs: number
  /** Hex SHA-256 of the capture file. */
  captureSha256: string
  entries: number
  /** True when every entry is `ok`. */
  ok: boolean
  /** Entries per verdict. */
  counts: Record<ReplayVerdict, number>
  /** Of the `ok` entries: bit-for-bit and within tolerance. */
  exact: number
  withinTolerance: number
  tolerance: { absolute: number, relative: number }
  models: ModelReport[]
}

export interface ReplayReport {
  summary: ReplaySummary
  entries: EntryReport[]
}

/**
 * Replays a capture against the device's records and the models named by their hashes.
 * @throws CaptureError `CAPTURE_MALFORMED`, `CAPTURE_TOO_LARGE`; ReplayError
 *   `REPLAY_MODELS_UNREADABLE`; RangeError for a bad tolerance.
 */
export async function replayCapture (options: ReplayOptions): Promise<ReplayReport> {
  const tolerance = checkTolerance(options.tolerance)
  const capture = decodeCapture(options.capture, options.maxCaptureBytes !== undefined ? { maxBytes: options.maxCaptureBytes } : {})
  const records = indexRecords(options.records, capture.deviceId)
  const models = new ModelSource(options.modelPaths, {
    ...(options.maxModelBytes !== undefined ? { maxModelBytes: options.maxModelBytes } : {}),
    ...(options.executionProviders !== undefined ? { executionProviders: options.executionProviders } : {}),
    ...(options.intraOpNumThreads !== undefined ? { intraOpNumThreads: options.intraOpNumThreads } : {})
  })
  const entries: EntryReport[] = []
  const modelReports = new Map<string, ModelReport>()
  try {
    for (const entry of capture.entries) {
      const shredded = options.shredded?.some(r => r.firstSeq <= entry.seq && entry.seq <= r.lastSeq) ?? false
      entries.push(shredded
        ? { seq: entry.seq, verdict: 'shredded', findings: [{ code: 'shredded', message: `record ${entry.seq} belongs to a shredded subject: its commitments are not opened (delete this capture)` }], modelHash: toHex(entry.modelHash), replay: { status: 'not-run', maxAbsDiff: NaN, maxRelDiff: NaN } }
        : await replayEntry(entry, records.get(entry.seq), models, tolerance, modelReports))
    }
  } finally {
    await models.release()
  }
  const counts = Object.fromEntries(REPLAY_VERDICTS.map(v => [v, 0])) as Record<ReplayVerdict, number>
  for (const e of entries) counts[e.verdict]++
  return {
    summary: {
      deviceId: capture.deviceId,
      reason: capture.reason,
      frozenAtMs: capture.frozenAtMs,
      captureSha256: toHex(sha256(options.capture)),
      entries: entries.length,
      // Shredded runs are removal by policy, not a failure.
      ok: counts.ok + counts.shredded === entries.length,
      counts,
      exact: entries.filter(e => e.verdict === 'ok' && e.replay.status === 'exact').length,
      withinTolerance: entries.filter(e => e.verdict === 'ok' && e.replay.status === 'within-tolerance').length,
      tolerance,
      models: [...modelReports.values()]
    },
    entries
  }
}

type RecordSlot = { record: SignedRecord<InferenceBody> } | { problem: string }

/** The device's records by seq; a seq claimed by two different records is a problem, not a pick. */
function indexRecords (records: Iterable<SignedRecord>, deviceId: string): Map<number, RecordSlot> {
  const bySeq = new Map<number, RecordSlot>()
  for (const r of records) {
    if (r.record.deviceId !== deviceId) continue
    const seq = r.record.seq
    const before = bySeq.get(seq)
    if (before !== undefined) {
      // At-least-once delivery may repeat a record; two different records for one seq is a forgery
      // or a broken log, and choosing one would hide it.
      if ('record' in before && equalBytes(before.record.recordBytes, r.recordBytes) && equalBytes(before.record.signature, r.signature)) continue
      bySeq.set(seq, { problem: `two different records of ${deviceId} claim seq ${seq}` })
      continue
    }
    bySeq.set(seq, r.record.body.kind === 'inference'
      ? { record: r as SignedRecord<InferenceBody> }
      : { problem: `record ${seq} of ${deviceId} is a ${r.record.body.kind} record, not an inference` })
  }
  return bySeq
}

async function replayEntry (
  entry: CaptureEntry, slot: RecordSlot | undefined, models: ModelSource,
  tolerance: { absolute: number, relative: number }, modelReports: Map<string, ModelReport>
): Promise<EntryReport> {
  const notRun: ReplayComparison = { status: 'not-run', maxAbsDiff: NaN, maxRelDiff: NaN }
  if (slot === undefined || 'problem' in slot) {
    const message = slot?.problem ?? `no record of seq ${entry.seq} among the records given`
    return { seq: entry.seq, verdict: 'record-missing', findings: [{ code: 'record-missing', message }], modelHash: toHex(entry.modelHash), replay: notRun }
  }
  const body = slot.record.record.body
  const findings: ReplayFinding[] = []
  checkCommitments(entry.salt, entry.inputs, body.inputs, 'input', findings)
  checkCommitments(entry.salt, entry.outputs, body.outputs, 'output', findings)
  const modelHash = toHex(body.modelHash)
  if (!equalBytes(entry.modelHash, body.modelHash)) {
    findings.push({ code: 'model-mismatch', message: `the capture names model ${toHex(entry.modelHash)}, the record ${modelHash}` })
  }
  const lookup = await models.get(modelHash)
  if (!modelReports.has(modelHash)) modelReports.set(modelHash, reportOf(lookup))
  let replay = notRun
  switch (lookup.status) {
    case 'missing': findings.push({ code: 'model-missing', message: lookup.message }); break
    case 'mismatch': findings.push({ code: 'model-mismatch', message: lookup.message }); break
    case 'failed': findings.push({ code: 'replay-failed', message: lookup.message }); break
    case 'loaded': replay = await rerun(lookup.session, entry, tolerance, findings)
  }
  return { seq: entry.seq, verdict: verdictOf(findings), findings, modelHash, recordHash: toHex(slot.record.hash), replay }
}

/** (1) and (2): each captured tensor opens the record's commitment of that name under the salt. */
function checkCommitments (salt: Uint8Array, captured: CapturedTensor[], committed: TensorCommitment[], side: 'input' | 'output', findings: ReplayFinding[]): void {
  const code = side === 'input' ? 'input-mismatch' : 'output-mismatch'
  const byName = new Map(captured.map(t => [t.name, t]))
  for (const c of committed) {
    const t = byName.get(c.name)
    if (t === undefined) {
      findings.push({ code, tensor: c.name, message: `${side} "${c.name}" of the record was not captured` })
      continue
    }
    byName.delete(c.name)
    if (!equalBytes(commitCapturedTensor(salt, t), c.hash)) {
      findings.push({ code, tensor: c.name, message: `captured ${side} "${c.name}" does not open the record's commitment` })
    }
  }
  for (const name of byName.keys()) findings.push({ code, tensor: name, message: `captured ${side} "${name}" is not in the record` })
}

/** (4): run the model on the captured inputs and compare with the captured outputs. */
async function rerun (session: InferenceSession, entry: CaptureEntry, tolerance: { absolute: number, relative: number }, findings: ReplayFinding[]): Promise<ReplayComparison> {
  const notRun: ReplayComparison = { status: 'not-run', maxAbsDiff: NaN, maxRelDiff: NaN }
  const feeds: Record<string, Tensor> = {}
  let outputs: InferenceSession.OnnxValueMapType
  try {
    for (const t of entry.inputs) {
      const like = tensorOfCaptured(t)
      feeds[t.name] = new Tensor(like.type as 'float32', like.data as Float32Array, like.dims)
    }
    outputs = await session.run(feeds)
  } catch (e) {
    findings.push({ code: 'replay-failed', message: `the model did not run on the captured inputs: ${(e as Error).message}` })
    return notRun
  }
  let status: ReplayComparison['status'] = 'exact'
  let maxAbsDiff = 0
  let maxRelDiff = 0
  const captured = new Map(entry.outputs.map(t => [t.name, t]))
  for (const name of Object.keys(outputs).sort()) {
    const want = captured.get(name)
    captured.delete(name)
    if (want === undefined) {
      findings.push({ code: 'replay-diverged', tensor: name, message: `the replay gives output "${name}", which was not captured` })
      status = 'diverged'
      continue
    }
    let got: CapturedTensor
    try {
      got = captureTensor(name, outputs[name] as Tensor)
    } catch (e) {
      findings.push({ code: 'replay-failed', tensor: name, message: `replayed output "${name}" cannot be read: ${(e as Error).message}` })
      return notRun
    }
    const cmp = compareTensors(got, want, tolerance)
    maxAbsDiff = Math.max(maxAbsDiff, cmp.maxAbsDiff)
    maxRelDiff = Math.max(maxRelDiff, cmp.maxRelDiff)
    if (cmp.status === 'diverged') {
      findings.push({ code: 'replay-diverged', tensor: name, message: `replayed output "${name}" differs: ${cmp.detail ?? ''}` })
      status = 'diverged'
    } else if (cmp.status === 'within-tolerance' && status === 'exact') {
      status = 'within-tolerance'
    }
  }
  for (const name of captured.keys()) {
    findings.push({ code: 'replay-diverged', tensor: name, message: `the replay does not give captured output "${name}"` })
    status = 'diverged'
  }
  return { status, maxAbsDiff, maxRelDiff }
}

function verdictOf (findings: ReplayFinding[]): ReplayVerdict {
  for (const v of REPLAY_VERDICTS) if (v === 'ok' || findings.some(f => f.code === v)) return v
  return 'ok'
}

function reportOf (lookup: ModelLookup): ModelReport {
  switch (lookup.status) {
    case 'loaded': return { modelHash: lookup.modelHash, status: 'loaded', path: lookup.path }
    case 'missing': return { modelHash: lookup.modelHash, status: 'missing' }
    case 'mismatch': return { modelHash: lookup.modelHash, status: 'mismatch', path: lookup.path, fileHash: lookup.fileHash }
    case 'failed': return { modelHash: lookup.modelHash, status: 'failed', path: lookup.path }
  }
}
