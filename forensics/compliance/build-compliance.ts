/**
 * The auditor's view of a fleet over a period (EU AI Act Art. 12, 14(5), 19(1), 26(6)): the bundles
 * of its devices and reviewing stations verified one by one, their events mapped to the articles,
 * and what no single bundle can judge checked across them: that each oversight record names a
 * decision that exists with that hash, by a station the deployer counts among its reviewers.
 * docs/COMPLIANCE.md maps every field to its article; it describes, verifyBundle judges.
 */
import { assertBundle, decodeBundleRecord, decodeEnvelope, toHex, type Bundle, type BundleModel, type OversightBody, type RecordKind, type SignedRecord } from '../../protocol/index.js'
import { buildTimeline, type Timeline } from '../timeline/index.js'
import { verifyBundle, type FindingReason, type PrunedRange, type ShreddedRange, type Verdict, type VerifyOptions } from '../verify/index.js'

export const COMPLIANCE_FORMAT = 'edge-provenance/compliance/v1'
export const COMPLIANCE_PROFILE = 'eu-ai-act'
/** Art. 19(1) and 26(6): logs are kept at least six months. Taken as 183 days. */
export const MIN_RETENTION_MS = 183 * 86_400_000
/** Most events listed per device and article; counts stay exact. */
export const MAX_EVENTS_PER_ARTICLE = 2000

/** Why the cross-bundle checks reject an oversight record or flag a use session. Stable API. */
export type ComplianceReason =
  /** The station that signed the oversight record is not one of the deployer's reviewers, or its key is not a registered one for that record. */
  | 'oversight-reviewer-unknown'
  /** No record of the named device and seq is in the export (forged, or outside the bundles given). */
  | 'oversight-decision-unknown'
  /** The named record exists with another hash: the review is of other bytes than the decision. */
  | 'oversight-decision-mismatch'
  /** The named record is not an inference record. */
  | 'oversight-decision-not-inference'
  /** A session end with no start of the same id before it on the device (warning). */
  | 'session-end-unmatched'
  /** A session started and not ended within the period (warning). */
  | 'session-open'

export const COMPLIANCE_FAILURES: ReadonlySet<ComplianceReason> = new Set([
  'oversight-reviewer-unknown', 'oversight-decision-unknown', 'oversight-decision-mismatch', 'oversight-decision-not-inference'
])

export const COMPLIANCE_REASON_DESCRIPTIONS: Readonly<Record<ComplianceReason, string>> = {
  'oversight-reviewer-unknown': 'the oversight record is signed by a station that is not a registered reviewer',
  'oversight-decision-unknown': 'the oversight record names a decision (device, seq) that is not in the export',
  'oversight-decision-mismatch': 'the oversight record names a decision whose hash differs from the record at that seq',
  'oversight-decision-not-inference': 'the oversight record names a record that is not a decision (inference)',
  'session-end-unmatched': 'a use ends that never started (warning)',
  'session-open': 'a use started and did not end within the period (warning)'
}

export interface ComplianceFinding {
  reason: ComplianceReason
  severity: 'failure' | 'warning'
  device: string
  seq: number
  message: string
}

/** Where a device's retention stands: the gateway's policy as given, or as its signed pruning statements state it. */
export interface RetentionStatus {
  /**
   * 'reported' when the gateway's retention was given (--retention-days); 'by-pruning-statement'
   * when only the bundle's verified pruning statements state it; 'not-reported' otherwise (this
   * field says so plainly).
   */
  policy: 'reported' | 'by-pruning-statement' | 'not-reported'
  /** The gateway's retention, when known. */
  retentionMs: number | null
  /** Ranges a gateway pruned by policy (valid signed pruning statements): removal by retention, not loss. */
  pruned: Array<Pick<PrunedRange, 'firstSeq' | 'lastSeq' | 'gatewayId' | 'reason' | 'retentionDays' | 'prunedAtMs' | 'statement' | 'committed'>>
  /** Ranges whose commitments were crypto-shredded for a data subject (erasure): signatures and proofs still verify. */
  shredded: Array<Pick<ShreddedRange, 'firstSeq' | 'lastSeq' | 'subjectRef' | 'reason' | 'shreddedAtMs' | 'statement'>>
  minimumMs: number
  /** Device times of the oldest and newest record in the bundle. */
  oldestRecordMs: number | null
  newestRecordMs: number | null
  /** True when the bundle reaches back at least the minimum before its newest record, or back to the device's first record (seq 0, or pruned ranges by policy from seq 0). */
  coversMinimum: boolean
  /** Ranges the device declared dropped (gap records), with their reasons: pruning by the device's own rules is declared, never silent. */
  declaredDrops: Array<{ firstSeq: number, lastSeq: number, reason: string }>
  note: string
}

export interface ArticleEvent { seq: number, timeMs: number, kind: string, summary: string }

export interface ComplianceDevice {
  device: string
  /** A station that signed oversight records, or a device that makes decisions (or both). */
  roles: Array<'decisions' | 'reviewing-station'>
  verdict: Pick<Verdict, 'verdict' | 'mode' | 'firstSeq' | 'lastSeq' | 'fromGenesis' | 'counts' | 'reasons' | 'failures' | 'warnings' | 'gaps'>
  /** Events per article; lists capped at MAX_EVENTS_PER_ARTICLE, counts exact. */
  articles: {
    '12(2)(a)': { count: number, events: ArticleEvent[] }
    '12(2)(b)': { inferences: number, decisions: Timeline['decisions'], models: Timeline['models'] }
    '12(2)(c)': { count: number, events: ArticleEvent[] }
  }
  retention: RetentionStatus
}

export interface ComplianceModel extends BundleModel {
  /** The registry's parent chain (parentHash links), nearest first, as far as the export's facts go. */
  lineage: Array<{ hash: string, name: string, version: string, status: string }>
  /** Devices that ran it in the period. */
  devices: string[]
  inferences: number
}

export interface OversightAction {
  station: string
  seq: number
  timeMs: number
  reviewer: string
  decision: { device: string, seq: number, hash: string, timeMs: number | null, decision: string | null }
  verdict: string
  reason: string
  /** 'accepted' when every cross-bundle check passed; else the reason it failed. */
  status: 'accepted' | ComplianceReason
}

export interface UseSession {
  device: string
  sessionId: string
  startSeq: number | null
  startMs: number | null
  endSeq: number | null
  endMs: number | null
  referenceName: string
  referenceHash: string | null
  /** Inference records between start and end (Art. 12(3)(c): their input commitments identify the inputs). */
  inferences: number
  /** Those with a non-null decision (a match, for an identification system). */
  decisions: Array<{ seq: number, decision: string, inputs: string[] }>
  /** Oversight actions on those decisions (Art. 12(3)(d), 14(5)). */
  reviewedBy: string[]
}

export interface ComplianceReport {
  format: typeof COMPLIANCE_FORMAT
  profile: typeof COMPLIANCE_PROFILE
  generatedAtMs: number
  period: { fromMs: number | null, toMs: number | null }
  verdict: 'valid' | 'invalid'
  mode: 'offline' | 'online'
  /** The reviewer stations the auditor was told of (--reviewer); null: any station whose bundle verifies. */
  reviewers: string[] | null
  devices: ComplianceDevice[]
  models: ComplianceModel[]
  oversight: OversightAction[]
  sessions: UseSession[]
  findings: ComplianceFinding[]
  /** What the project does not cover; repeated here so the machine-readable export says it too. */
  notCovered: string[]
}

export interface ComplianceOptions extends Pick<VerifyOptions, 'offline' | 'rpcUrl' | 'allowUnanchored' | 'verifier' | 'workers'> {
  /** Period of device time (Unix ms). */
  fromMs?: number
  toMs?: number
  /** Device ids of the deployer's reviewing stations. Without it, any station whose bundle verifies counts. */
  reviewers?: readonly string[]
  /** The gateway's retention, when known (issue 16 item 1). */
  retentionMs?: number
  generatedAtMs?: number
}

export const NOT_COVERED: readonly string[] = Object.freeze([
  'Whether a system is high-risk, and the risk management, data governance and conformity assessment of Art. 9-11, 17 and 43: organisational duties outside the logs.',
  'The identity of natural persons: oversight records carry the reviewer id the deployer assigns; mapping ids to persons, and their competence (Art. 14(4), 26(2)), is the deployer\'s register.',
  'Raw inputs: records hold salted commitments only; the input that led to a match is identified by its commitment, and opened only with an incident capture (docs/FORENSICS-replay.md).',
  'Device clocks: times are the devices\' own; anchoring bounds them by block times, not to the second.',
  'Reference database contents: a session names the database by label and SHA-256; keeping that version of the database is the deployer\'s.',
  'Serious-incident reporting (Art. 73) and post-market monitoring plans (Art. 72): the export feeds them, it does not write them.'
])

// Findings on a record of the station that mean its key is not a registered one for it.
const KEY_REASONS: ReadonlySet<FindingReason> = new Set(['unknown-key', 'bad-signature', 'key-revoked', 'key-mismatch', 'device-unknown', 'device-mismatch'])

/** What a review is checked against, for every record of every bundle: small, as a fleet's period may hold millions. */
interface Indexed { hash: string, kind: RecordKind, timeMs: number, decision: string | null }

/** The decodable records of the bundle's own device, in seq order, first copy of a seq only (verifyBundle names the rest). */
function decodeRecords (bundle: Bundle): SignedRecord[] {
  const out: SignedRecord[] = []
  const seen = new Set<number>()
  for (const b64 of bundle.records) {
    let signed: SignedRecord
    try {
      signed = decodeEnvelope(decodeBundleRecord(b64))
    } catch {
      continue
    }
    if (signed.record.deviceId !== bundle.device.id || seen.has(signed.record.seq)) continue
    seen.add(signed.record.seq)
    out.push(signed)
  }
  return out.sort((x, y) => x.record.seq - y.record.seq)
}

/**
 * Verifies every bundle and builds the compliance report of the period.
 * @throws BundleError for a malformed bundle; ForensicsError for chain access (online); TypeError /
 *   RangeError for contradictory options, as verifyBundle; TypeError for two bundles of one device.
 */
export async function buildCompliance (bundles: readonly Bundle[], options: ComplianceOptions = {}): Promise<ComplianceReport> {
  if (bundles.length === 0) throw new TypeError('give at least one bundle')
  for (const b of bundles) assertBundle(b)
  const ids = bundles.map(b => b.device.id)
  const dup = ids.find((id, i) => ids.indexOf(id) !== i)
  if (dup !== undefined) throw new TypeError(`two bundles of device ${dup}: merge them into one export`)
  const { fromMs, toMs } = options
  const inPeriod = (t: number): boolean => (fromMs === undefined || t >= fromMs) && (toMs === undefined || t <= toMs)
  const verifyOptions: VerifyOptions = {
    ...(options.offline === undefined ? {} : { offline: options.offline }),
    ...(options.rpcUrl === undefined ? {} : { rpcUrl: options.rpcUrl }),
    ...(options.verifier === undefined ? {} : { verifier: options.verifier }),
    ...(options.workers === undefined ? {} : { workers: options.workers }),
    ...(fromMs === undefined ? {} : { fromMs }),
    ...(toMs === undefined ? {} : { toMs }),
    allowUnanchored: options.allowUnanchored ?? false
  }

  const index = indexRecords(bundles)
  const verdicts = new Map<string, Verdict>()
  for (const b of bundles) verdicts.set(b.device.id, await verifyBundle(b, verifyOptions))
  const findings: ComplianceFinding[] = []
  const reviewers = options.reviewers === undefined ? null : [...options.reviewers]
  const oversight: OversightAction[] = []
  for (const b of bundles) oversight.push(...judgeReviews(b.device.id, verdicts.get(b.device.id) as Verdict, index, reviewers, inPeriod, findings))

  const devices: ComplianceDevice[] = []
  const sessions: UseSession[] = []
  const modelUse = new Map<string, { devices: Set<string>, inferences: number }>()
  for (const b of bundles) {
    devices.push(describeDevice(b, verdicts.get(b.device.id) as Verdict, { fromMs, toMs, inPeriod, retentionMs: options.retentionMs }, { oversight, findings, sessions, modelUse }))
  }

  const failed = devices.some(d => d.verdict.verdict === 'invalid') || findings.some(f => f.severity === 'failure')
  return {
    format: COMPLIANCE_FORMAT,
    profile: COMPLIANCE_PROFILE,
    generatedAtMs: options.generatedAtMs ?? Date.now(),
    period: { fromMs: fromMs ?? null, toMs: toMs ?? null },
    verdict: failed ? 'invalid' : 'valid',
    mode: (verdicts.values().next().value as Verdict).mode,
    reviewers,
    devices,
    models: listModels(bundles, modelUse),
    oversight,
    sessions,
    findings: findings.sort((x, y) => x.device.localeCompare(y.device) || x.seq - y.seq),
    notCovered: [...NOT_COVERED]
  }
}

/** Every record of every bundle, by device and seq (oversight records are judged against them all), and each station's oversight records. */
interface RecordIndex {
  records: Map<string, Map<number, Indexed>>
  reviews: Map<string, Array<SignedRecord<OversightBody>>>
}

function indexRecords (bundles: readonly Bundle[]): RecordIndex {
  const records = new Map<string, Map<number, Indexed>>()
  const reviews = new Map<string, Array<SignedRecord<OversightBody>>>()
  for (const b of bundles) {
    const bySeq = new Map<number, Indexed>()
    const mine: Array<SignedRecord<OversightBody>> = []
    for (const signed of decodeRecords(b)) {
      const body = signed.record.body
      bySeq.set(signed.record.seq, { hash: toHex(signed.hash), kind: body.kind, timeMs: signed.record.timeMs, decision: body.kind === 'inference' ? body.decision : null })
      if (body.kind === 'oversight') mine.push(signed as SignedRecord<OversightBody>)
    }
    records.set(b.device.id, bySeq)
    reviews.set(b.device.id, mine)
  }
  return { records, reviews }
}

/** The oversight actions of one station in the period, each checked: a known reviewer, and a decision of the export with that hash. */
function judgeReviews (station: string, verdict: Verdict, index: RecordIndex, reviewers: string[] | null, inPeriod: (t: number) => boolean, findings: ComplianceFinding[]): OversightAction[] {
  const out: OversightAction[] = []
  const stationKeyFails = verdict.failures.some(f => f.seq === undefined && KEY_REASONS.has(f.reason))
  for (const signed of index.reviews.get(station) ?? []) {
    const r = signed.record
    if (!inPeriod(r.timeMs)) continue
    const body = r.body
    const target = index.records.get(body.decisionDeviceId)?.get(body.decisionSeq)
    const action: OversightAction = {
      station, seq: r.seq, timeMs: r.timeMs, reviewer: body.reviewer,
      decision: {
        device: body.decisionDeviceId, seq: body.decisionSeq, hash: toHex(body.decisionHash),
        timeMs: target?.timeMs ?? null, decision: target?.decision ?? null
      },
      verdict: body.verdict, reason: body.reason, status: 'accepted'
    }
    const fail = (reason: ComplianceReason, message: string): void => {
      if (action.status === 'accepted') action.status = reason
      findings.push({ reason, severity: 'failure', device: station, seq: r.seq, message: `${station} seq ${r.seq}: ${message}` })
    }
    const keyFails = stationKeyFails || verdict.failures.some(f => f.seq === r.seq && KEY_REASONS.has(f.reason))
    if (reviewers !== null && !reviewers.includes(station)) fail('oversight-reviewer-unknown', `station ${station} is not one of the reviewing stations ${reviewers.join(', ') || '(none)'}`)
    else if (keyFails) fail('oversight-reviewer-unknown', `station ${station} signed this review with a key the registry does not give it`)
    if (target === undefined) {
      fail('oversight-decision-unknown', `reviews record seq ${body.decisionSeq} of ${body.decisionDeviceId}, which ${index.records.has(body.decisionDeviceId) ? 'that device\'s bundle does not hold' : 'no bundle of the export holds'}`)
    } else if (target.hash !== action.decision.hash) {
      fail('oversight-decision-mismatch', `reviews seq ${body.decisionSeq} of ${body.decisionDeviceId} by hash ${action.decision.hash.slice(0, 16)}…, but that record's hash is ${target.hash.slice(0, 16)}…`)
    } else if (target.kind !== 'inference') {
      fail('oversight-decision-not-inference', `reviews seq ${body.decisionSeq} of ${body.decisionDeviceId}, a ${target.kind} record, not a decision`)
    }
    out.push(action)
  }
  return out
}

/**
 * One device's part of the report: its roles, verdict, Art. 12 events and retention; its use
 * sessions and model use are added to `acc` (and the sessions' findings to `acc.findings`).
 */
function describeDevice (
  b: Bundle, verdict: Verdict,
  period: { fromMs: number | undefined, toMs: number | undefined, inPeriod: (t: number) => boolean, retentionMs: number | undefined },
  acc: { oversight: OversightAction[], findings: ComplianceFinding[], sessions: UseSession[], modelUse: Map<string, { devices: Set<string>, inferences: number }> }
): ComplianceDevice {
  const id = b.device.id
  const { fromMs, toMs } = period
  const timeline = buildTimeline(b, { ...(fromMs === undefined ? {} : { fromMs }), ...(toMs === undefined ? {} : { toMs }) })
  // Decoded again, one bundle at a time, rather than kept from the first pass.
  const decoded = decodeRecords(b)
  const mine = decoded.filter(s => period.inPeriod(s.record.timeMs))
  for (const m of timeline.models) {
    const use = acc.modelUse.get(m.modelHash) ?? { devices: new Set<string>(), inferences: 0 }
    use.devices.add(id)
    use.inferences += m.inferences
    acc.modelUse.set(m.modelHash, use)
  }
  acc.sessions.push(...collectSessions(id, mine, acc.oversight, acc.findings))
  const { a, c } = articleEvents(mine, verdict, acc.oversight.filter(o => o.decision.device === id))
  return {
    device: id,
    roles: [
      ...(timeline.inferences > 0 ? ['decisions' as const] : []),
      ...(timeline.oversight.length > 0 ? ['reviewing-station' as const] : [])
    ],
    verdict: {
      verdict: verdict.verdict, mode: verdict.mode, firstSeq: verdict.firstSeq, lastSeq: verdict.lastSeq, fromGenesis: verdict.fromGenesis,
      counts: verdict.counts, reasons: verdict.reasons, failures: verdict.failures, warnings: verdict.warnings, gaps: verdict.gaps
    },
    articles: {
      '12(2)(a)': { count: a.length, events: a.slice(0, MAX_EVENTS_PER_ARTICLE) },
      '12(2)(b)': { inferences: timeline.inferences, decisions: timeline.decisions, models: timeline.models },
      '12(2)(c)': { count: c.length, events: c.slice(0, MAX_EVENTS_PER_ARTICLE) }
    },
    retention: retentionOf(decoded, verdict, period.retentionMs)
  }
}

/** The models the devices ran, with their registry facts and the lineage the bundles give. */
function listModels (bundles: readonly Bundle[], modelUse: Map<string, { devices: Set<string>, inferences: number }>): ComplianceModel[] {
  const facts = new Map<string, BundleModel>()
  for (const b of bundles) for (const m of b.models) if (!facts.has(m.hash)) facts.set(m.hash, m)
  return [...modelUse.entries()].map(([hash, use]) => {
    const m = facts.get(hash) ?? { hash, name: '', version: '', parentHash: null, manifestHash: '', status: 'none' as const, metadataUri: '' }
    const lineage: ComplianceModel['lineage'] = []
    const seen = new Set([hash])
    for (let p = m.parentHash; p !== null && !seen.has(p); p = facts.get(p)?.parentHash ?? null) {
      seen.add(p)
      const parent = facts.get(p)
      lineage.push({ hash: p, name: parent?.name ?? '', version: parent?.version ?? '', status: parent?.status ?? 'not in the export' })
    }
    return { ...m, lineage, devices: [...use.devices].sort(), inferences: use.inferences }
  }).sort((x, y) => x.name.localeCompare(y.name) || x.version.localeCompare(y.version) || x.hash.localeCompare(y.hash))
}

/** Art. 12(2)(a): what may signal a risk or a substantial modification; (c): the operation the deployer monitors. */
function articleEvents (records: SignedRecord[], verdict: Verdict, reviews: OversightAction[]): { a: ArticleEvent[], c: ArticleEvent[] } {
  const a: ArticleEvent[] = []
  const c: ArticleEvent[] = []
  let last: SignedRecord | undefined
  for (const s of records) {
    const r = s.record
    const at = { seq: r.seq, timeMs: r.timeMs, kind: r.body.kind }
    const body = r.body
    switch (body.kind) {
      case 'model-load':
        a.push({ ...at, summary: `model ${toHex(body.modelHash).slice(0, 16)}… (${body.name}) loaded, policy ${body.policy}: a change of the model is a possible substantial modification` })
        break
      case 'policy': a.push({ ...at, summary: `model policy v${body.version} (${body.mode}) of fleet ${body.fleetId} in force` }); break
      case 'key-rotation': a.push({ ...at, summary: 'signing key rotated' }); break
      case 'gap': a.push({ ...at, summary: `records ${body.firstSeq}..${body.lastSeq} dropped by the device: ${body.reason}` }); break
      case 'boot':
        c.push({ ...at, summary: `started (boot ${r.boot}, agent ${body.agentVersion}, profile ${body.profile})${last !== undefined && last.record.body.kind !== 'shutdown' ? ', after an unclean stop' : ''}` })
        break
      case 'shutdown': c.push({ ...at, summary: `stopped: ${body.reason}` }); break
      case 'session': c.push({ ...at, summary: `use ${body.sessionId} ${body.phase === 'start' ? 'started' : 'ended'}` }); break
      case 'oversight': c.push({ ...at, summary: `review by ${body.reviewer}: ${body.verdict} seq ${body.decisionSeq} of ${body.decisionDeviceId}` }); break
      default: break
    }
    last = s
  }
  // A person overriding or escalating a decision of this device is a risk signal on the device.
  for (const o of reviews) {
    if (o.verdict !== 'confirmed') a.push({ seq: o.decision.seq, timeMs: o.decision.timeMs ?? o.timeMs, kind: 'oversight', summary: `decision ${o.verdict} by ${o.reviewer} at ${o.station}: ${o.reason}` })
  }
  for (const f of verdict.failures) a.push({ seq: f.seq ?? -1, timeMs: -1, kind: 'verification', summary: `${f.reason}: ${f.message}` })
  a.sort((x, y) => x.seq - y.seq)
  return { a, c }
}

function collectSessions (device: string, records: SignedRecord[], oversight: OversightAction[], findings: ComplianceFinding[]): UseSession[] {
  const out: UseSession[] = []
  const open = new Map<string, UseSession>()
  const reviewsOf = new Map<number, string[]>()
  for (const o of oversight) {
    if (o.decision.device !== device || o.status !== 'accepted') continue
    reviewsOf.set(o.decision.seq, [...(reviewsOf.get(o.decision.seq) ?? []), `${o.reviewer} (${o.verdict}, ${o.station} seq ${o.seq})`])
  }
  for (const s of records) {
    const r = s.record
    const body = r.body
    if (body.kind === 'session') {
      if (body.phase === 'start') {
        const u: UseSession = {
          device, sessionId: body.sessionId, startSeq: r.seq, startMs: r.timeMs, endSeq: null, endMs: null, referenceName: body.referenceName,
          referenceHash: body.referenceHash === null ? null : toHex(body.referenceHash), inferences: 0, decisions: [], reviewedBy: []
        }
        open.set(body.sessionId, u)
        out.push(u)
      } else {
        const u = open.get(body.sessionId)
        if (u === undefined) {
          findings.push({ reason: 'session-end-unmatched', severity: 'warning', device, seq: r.seq, message: `${device} seq ${r.seq}: use ${body.sessionId} ends, no start of it in the period` })
          continue
        }
        u.endSeq = r.seq
        u.endMs = r.timeMs
        open.delete(body.sessionId)
      }
      continue
    }
    if (body.kind !== 'inference') continue
    for (const u of open.values()) {
      u.inferences++
      if (body.decision !== null) u.decisions.push({ seq: r.seq, decision: body.decision, inputs: body.inputs.map(i => `${i.name}:${toHex(i.hash)}`) })
      for (const who of reviewsOf.get(r.seq) ?? []) if (!u.reviewedBy.includes(who)) u.reviewedBy.push(who)
    }
  }
  for (const u of open.values()) {
    findings.push({ reason: 'session-open', severity: 'warning', device, seq: u.startSeq as number, message: `${device} seq ${String(u.startSeq)}: use ${u.sessionId} has no end in the period` })
  }
  return out
}

function retentionOf (records: SignedRecord[], verdict: Verdict, given: number | undefined): RetentionStatus {
  const times = records.map(s => s.record.timeMs)
  const oldest = times.length === 0 ? null : Math.min(...times)
  const newest = times.length === 0 ? null : Math.max(...times)
  const fromGenesis = records[0]?.record.seq === 0 || verdict.prunedFromGenesis
  const stated = verdict.pruned.length === 0 ? undefined : Math.max(...verdict.pruned.map(p => p.retentionDays)) * 86_400_000
  const retentionMs = given ?? stated
  const declaredDrops = records.flatMap(s => s.record.body.kind === 'gap' ? [{ firstSeq: s.record.body.firstSeq, lastSeq: s.record.body.lastSeq, reason: s.record.body.reason }] : [])
  return {
    policy: given !== undefined ? 'reported' : stated !== undefined ? 'by-pruning-statement' : 'not-reported',
    retentionMs: retentionMs ?? null,
    pruned: verdict.pruned.map(p => ({ firstSeq: p.firstSeq, lastSeq: p.lastSeq, gatewayId: p.gatewayId, reason: p.reason, retentionDays: p.retentionDays, prunedAtMs: p.prunedAtMs, statement: p.statement, committed: p.committed })),
    shredded: verdict.shredded.map(x => ({ firstSeq: x.firstSeq, lastSeq: x.lastSeq, subjectRef: x.subjectRef, reason: x.reason, shreddedAtMs: x.shreddedAtMs, statement: x.statement })),
    minimumMs: MIN_RETENTION_MS,
    oldestRecordMs: oldest,
    newestRecordMs: newest,
    coversMinimum: oldest !== null && newest !== null && (fromGenesis || newest - oldest >= MIN_RETENTION_MS),
    declaredDrops,
    note: retentionMs === undefined
      ? 'NOT REPORTED: the gateway\'s retention was not given to this export (--retention-days) and no pruning statement states it; what the records themselves show is below.'
      : retentionMs < MIN_RETENTION_MS ? 'the gateway keeps records for less than the six-month minimum of Art. 19(1) and 26(6)' : 'the gateway keeps records at least six months'
  }
}
