/**
 * What ran on a device between two times, from an incident bundle: boots and reboots, model loads
 * (named by the registry facts in the bundle), inferences per model per interval, decision counts,
 * gaps, key rotations and shutdowns. It describes; it does not judge — run verify for that.
 */
import { assertBundle, decodeBundleRecord, decodeEnvelope, sha256, toHex, type Bundle, type BundleModel, type BundleModelStatus, type SignedRecord } from '../../protocol/index.js'

/** Interval steps chosen from when none is given, in ms. */
const NICE_INTERVALS_MS = [
  1_000, 5_000, 10_000, 30_000, 60_000, 5 * 60_000, 10 * 60_000, 30 * 60_000, 3_600_000, 3 * 3_600_000, 6 * 3_600_000,
  12 * 3_600_000, 86_400_000, 7 * 86_400_000, 30 * 86_400_000, 365 * 86_400_000
]
export const DEFAULT_TIMELINE_BUCKETS = 48
/** Most buckets a timeline holds, whatever the interval asked. */
export const MAX_TIMELINE_BUCKETS = 10_000
/** Most distinct decision strings listed; the rest are summed up. */
export const MAX_TIMELINE_DECISIONS = 100

export interface TimelineOptions {
  /** First device time included (Unix ms). Default: the first record's. */
  fromMs?: number
  /** Last device time included (Unix ms). Default: the last record's. */
  toMs?: number
  /** Bucket width for inference counts, ms. Default: a round width giving at most `buckets` buckets. */
  intervalMs?: number
  /** Target number of buckets when `intervalMs` is not given. Default 48. */
  buckets?: number
}

export interface TimelineModel {
  modelHash: string
  /** From the registry facts; null when the bundle has none. */
  name: string | null
  version: string | null
  status: BundleModelStatus
  /** Inference records naming the model in the window. */
  inferences: number
  firstMs: number | null
  lastMs: number | null
}

export interface Timeline {
  device: string
  fromMs: number | null
  toMs: number | null
  /** Bucket width and the first bucket's start, ms. */
  intervalMs: number
  startMs: number | null
  /** Records in the window, and records of the bundle that do not decode. */
  records: number
  malformed: number
  inferences: number
  boots: Array<{ seq: number, timeMs: number, boot: number, agentVersion: string, profile: string }>
  /** A boot record after another record: `clean` when the record before it was a shutdown. */
  reboots: Array<{ seq: number, timeMs: number, fromBoot: number, toBoot: number, clean: boolean }>
  modelLoads: Array<{
    seq: number, timeMs: number, boot: number, modelHash: string, file: string, sizeBytes: number, policy: string,
    providers: string[], name: string | null, version: string | null, status: BundleModelStatus
  }>
  models: TimelineModel[]
  /** Inference counts per bucket, per model hash. */
  buckets: Array<{ startMs: number, endMs: number, total: number, byModel: Record<string, number> }>
  decisions: Array<{ decision: string | null, count: number }>
  /** Decisions beyond the listed ones: how many distinct strings, how many records. */
  otherDecisions: { distinct: number, count: number }
  /** Ranges the device declared dropped (signed gap records). */
  gaps: Array<{ seq: number, timeMs: number, firstSeq: number, lastSeq: number, reason: string }>
  /** Seq jumps between records of the bundle that no gap record of the bundle declares. */
  missing: Array<{ firstSeq: number, lastSeq: number }>
  /** Key fingerprints (first 16 hex of sha256 of the key), never the keys. */
  keyRotations: Array<{ seq: number, timeMs: number, keyFingerprint: string, validFromMs: number }>
  shutdowns: Array<{ seq: number, timeMs: number, reason: string }>
  /** Model policies put in force on the device (policy records): version, mode, fleet, sha256 of the signed policy bytes. */
  policies: Array<{ seq: number, timeMs: number, boot: number, version: number, mode: string, fleetId: string, policyHash: string }>
  /** Samples the device kept for training (data-capture records): dataset, label, size, salted commitment. */
  dataCaptures: Array<{ seq: number, timeMs: number, capturedAtMs: number, dataset: string, label: string | null, sizeBytes: number, commitment: string }>
  /** A person's reviews of decisions, signed by this (reviewing) station: oversight records. The decision is named, not judged (`provenance compliance` judges it). */
  oversight: Array<{
    seq: number, timeMs: number, reviewer: string, decisionDeviceId: string, decisionSeq: number, decisionHash: string, verdict: string, reason: string
  }>
  /** Starts and ends of uses (session records), with the reference database each names (sha256, or null for none). */
  sessions: Array<{ seq: number, timeMs: number, phase: string, sessionId: string, referenceName: string, referenceHash: string | null }>
}

/**
 * Builds the timeline of the bundle's records whose device time is in [fromMs, toMs].
 * @throws BundleError when `bundle` is not a well-formed bundle.
 * @throws RangeError for a window or interval that is not a non-negative safe integer, or an
 *   interval that would need more than MAX_TIMELINE_BUCKETS buckets.
 */
export function buildTimeline (bundle: Bundle, options: TimelineOptions = {}): Timeline {
  for (const k of ['fromMs', 'toMs', 'intervalMs', 'buckets'] as const) {
    const v = options[k]
    if (v !== undefined && (!Number.isSafeInteger(v) || v < (k === 'intervalMs' || k === 'buckets' ? 1 : 0))) throw new RangeError(`${k} must be a positive safe integer`)
  }
  assertBundle(bundle)
  const scan = new TimelineScan(bundle, options.fromMs, options.toMs)
  for (const b64 of bundle.records) scan.add(b64)
  return scan.finish(options)
}

/** One pass over a bundle's records, in bundle order: the timeline's lists, and the counts its summaries come from. */
class TimelineScan {
  private readonly t: Timeline
  private readonly fromMs: number | undefined
  private readonly toMs: number | undefined
  private readonly facts: Map<string, BundleModel>
  private readonly inferences: Array<{ timeMs: number, modelHash: string }> = []
  private readonly decisions = new Map<string | null, number>()
  private readonly models = new Map<string, TimelineModel>()
  private readonly seqJumps: Array<{ firstSeq: number, lastSeq: number }> = []
  private readonly declared: Array<{ firstSeq: number, lastSeq: number }> = []
  private previous: SignedRecord | undefined
  private minMs = Infinity
  private maxMs = -Infinity

  constructor (bundle: Bundle, fromMs: number | undefined, toMs: number | undefined) {
    this.fromMs = fromMs
    this.toMs = toMs
    this.facts = new Map(bundle.models.map(m => [m.hash, m]))
    this.t = {
      device: bundle.device.id,
      fromMs: fromMs ?? null,
      toMs: toMs ?? null,
      intervalMs: 0,
      startMs: null,
      records: 0,
      malformed: 0,
      inferences: 0,
      boots: [],
      reboots: [],
      modelLoads: [],
      models: [],
      buckets: [],
      decisions: [],
      otherDecisions: { distinct: 0, count: 0 },
      gaps: [],
      missing: [],
      keyRotations: [],
      shutdowns: [],
      policies: [],
      dataCaptures: [],
      oversight: [],
      sessions: []
    }
  }

  /** One record of the bundle (base64 envelope): seq jumps and gaps from every record, events from those in the window. */
  add (b64: string): void {
    let signed: SignedRecord
    try {
      signed = decodeEnvelope(decodeBundleRecord(b64))
    } catch {
      this.t.malformed++
      return
    }
    const r = signed.record
    const prev = this.previous
    this.previous = signed
    if (prev !== undefined && r.seq > prev.record.seq + 1) this.seqJumps.push({ firstSeq: prev.record.seq + 1, lastSeq: r.seq - 1 })
    if (r.body.kind === 'gap') this.declared.push({ firstSeq: r.body.firstSeq, lastSeq: r.body.lastSeq })
    if ((this.fromMs !== undefined && r.timeMs < this.fromMs) || (this.toMs !== undefined && r.timeMs > this.toMs)) return
    this.t.records++
    if (r.timeMs < this.minMs) this.minMs = r.timeMs
    if (r.timeMs > this.maxMs) this.maxMs = r.timeMs
    this.addEvent(signed, prev)
  }

  /** The record's event in the list of its kind. */
  private addEvent (signed: SignedRecord, prev: SignedRecord | undefined): void {
    const { t } = this
    const r = signed.record
    const at = { seq: r.seq, timeMs: r.timeMs }
    const body = r.body
    switch (body.kind) {
      case 'boot':
        t.boots.push({ ...at, boot: r.boot, agentVersion: body.agentVersion, profile: body.profile })
        if (prev !== undefined) t.reboots.push({ ...at, fromBoot: prev.record.boot, toBoot: r.boot, clean: prev.record.body.kind === 'shutdown' })
        break
      case 'model-load': {
        const hash = toHex(body.modelHash)
        this.model(hash)
        t.modelLoads.push({
          ...at, boot: r.boot, modelHash: hash, file: body.name, sizeBytes: body.sizeBytes, policy: body.policy, providers: [...body.providers], ...this.named(hash)
        })
        break
      }
      case 'inference': {
        const hash = toHex(body.modelHash)
        const m = this.model(hash)
        m.inferences++
        m.firstMs = m.firstMs === null ? r.timeMs : Math.min(m.firstMs, r.timeMs)
        m.lastMs = m.lastMs === null ? r.timeMs : Math.max(m.lastMs, r.timeMs)
        this.inferences.push({ timeMs: r.timeMs, modelHash: hash })
        this.decisions.set(body.decision, (this.decisions.get(body.decision) ?? 0) + 1)
        break
      }
      case 'gap': t.gaps.push({ ...at, firstSeq: body.firstSeq, lastSeq: body.lastSeq, reason: body.reason }); break
      case 'key-rotation':
        t.keyRotations.push({ ...at, keyFingerprint: toHex(sha256(body.newPublicKey)).slice(0, 16), validFromMs: body.validFromMs })
        break
      case 'shutdown': t.shutdowns.push({ ...at, reason: body.reason }); break
      case 'policy': t.policies.push({ ...at, boot: r.boot, version: body.version, mode: body.mode, fleetId: body.fleetId, policyHash: toHex(body.policyHash) }); break
      case 'data-capture':
        t.dataCaptures.push({ ...at, capturedAtMs: body.capturedAtMs, dataset: body.dataset, label: body.label, sizeBytes: body.sizeBytes, commitment: toHex(body.commitment) })
        break
      case 'oversight':
        t.oversight.push({
          ...at, reviewer: body.reviewer, decisionDeviceId: body.decisionDeviceId, decisionSeq: body.decisionSeq, decisionHash: toHex(body.decisionHash), verdict: body.verdict, reason: body.reason
        })
        break
      case 'session':
        t.sessions.push({ ...at, phase: body.phase, sessionId: body.sessionId, referenceName: body.referenceName, referenceHash: body.referenceHash === null ? null : toHex(body.referenceHash) })
        break
    }
  }

  /** The registry's name of a model hash, from the bundle's facts. */
  private named (hash: string): { name: string | null, version: string | null, status: BundleModelStatus } {
    const m = this.facts.get(hash)
    return m === undefined || m.status === 'none' ? { name: null, version: null, status: m?.status ?? 'none' } : { name: m.name, version: m.version, status: m.status }
  }

  private model (hash: string): TimelineModel {
    let m = this.models.get(hash)
    if (m === undefined) {
      m = { modelHash: hash, ...this.named(hash), inferences: 0, firstMs: null, lastMs: null }
      this.models.set(hash, m)
    }
    return m
  }

  /** The summaries after the last record: models by use, undeclared holes, decision counts, buckets. */
  finish (options: TimelineOptions): Timeline {
    const { t } = this
    t.inferences = this.inferences.length
    t.models = [...this.models.values()].sort((a, b) => b.inferences - a.inferences || a.modelHash.localeCompare(b.modelHash))
    t.missing = subtractRanges(this.seqJumps, this.declared)

    const sorted = [...this.decisions.entries()].sort((a, b) => b[1] - a[1] || String(a[0]).localeCompare(String(b[0])))
    t.decisions = sorted.slice(0, MAX_TIMELINE_DECISIONS).map(([decision, count]) => ({ decision, count }))
    const rest = sorted.slice(MAX_TIMELINE_DECISIONS)
    t.otherDecisions = { distinct: rest.length, count: rest.reduce((n, [, c]) => n + c, 0) }

    // Buckets span the window asked, or the records seen.
    const first = this.fromMs ?? (t.records > 0 ? this.minMs : undefined)
    const last = this.toMs ?? (t.records > 0 ? this.maxMs : undefined)
    if (first !== undefined && last !== undefined) this.fillBuckets(first, last, options)
    return t
  }

  /** @throws RangeError when the interval needs more than MAX_TIMELINE_BUCKETS buckets. */
  private fillBuckets (first: number, last: number, options: TimelineOptions): void {
    const { t } = this
    const span = Math.max(1, last - first + 1)
    const interval = options.intervalMs ?? chooseInterval(span, options.buckets ?? DEFAULT_TIMELINE_BUCKETS)
    const start = Math.floor(first / interval) * interval
    const count = Math.floor((last - start) / interval) + 1
    if (count > MAX_TIMELINE_BUCKETS) throw new RangeError(`interval ${interval} ms needs ${count} buckets, at most ${MAX_TIMELINE_BUCKETS}`)
    t.intervalMs = interval
    t.startMs = start
    t.buckets = Array.from({ length: count }, (_, i) => ({ startMs: start + i * interval, endMs: start + (i + 1) * interval, total: 0, byModel: {} }))
    this.inferences.forEach(inf => {
      const bucket = t.buckets[Math.floor((inf.timeMs - start) / interval)]
      if (bucket === undefined) return
      bucket.total++
      bucket.byModel[inf.modelHash] = (bucket.byModel[inf.modelHash] ?? 0) + 1
    })
  }
}

/** The smallest round interval that gives at most `buckets` buckets over `spanMs`. */
export function chooseInterval (spanMs: number, buckets: number): number {
  for (const step of NICE_INTERVALS_MS) if (Math.ceil(spanMs / step) <= buckets) return step
  return Math.ceil(spanMs / buckets)
}

// Seq ranges of `ranges` not covered by `minus` (both small lists).
function subtractRanges (ranges: Array<{ firstSeq: number, lastSeq: number }>, minus: Array<{ firstSeq: number, lastSeq: number }>): Array<{ firstSeq: number, lastSeq: number }> {
  let out = ranges
  for (const m of minus) {
    out = out.flatMap(r => {
      if (m.lastSeq < r.firstSeq || m.firstSeq > r.lastSeq) return [r]
      const parts: Array<{ firstSeq: number, lastSeq: number }> = []
      if (m.firstSeq > r.firstSeq) parts.push({ firstSeq: r.firstSeq, lastSeq: m.firstSeq - 1 })
      if (m.lastSeq < r.lastSeq) parts.push({ firstSeq: m.lastSeq + 1, lastSeq: r.lastSeq })
      return parts
    })
  }
  return out
}
