/**
 * A single-file HTML report of an incident, readable offline in any browser: device, verdict with
 * its failures, a timeline chart, models, gaps, anchors with their transactions and a few
 * inclusion proofs. No script and no external resource (a Content-Security-Policy forbids both);
 * every value is escaped; keys appear as fingerprints and raw inputs never appear at all.
 */
import type { TraceResult } from '../lineage/trace.js'
import { renderLineageSection } from './lineage-diagram.js'
import { decodeBundleRecord, decodeEnvelope, hashLeaf, parseProof, toHex, type Bundle, type TlogProof } from '../../protocol/index.js'
import type { Timeline } from '../timeline/index.js'
import { REASON_DESCRIPTIONS, type Finding, type Verdict } from '../verify/index.js'
import { escapeHtml, formatCount, formatDuration, formatTime, html, shortHex, table, type Safe } from './html.js'
import { pickModelColor, renderTimelineChart } from './timeline-chart.js'

/** Rows of each findings table; the verdict JSON has them all. */
export const REPORT_MAX_FINDING_ROWS = 200
export const DEFAULT_REPORT_PROOFS = 3
/** Rows of the per-record table besides the failing and gap ones, which are always listed. */
export const REPORT_MAX_RECORD_ROWS = 2000

export interface ReportInput {
  bundle: Bundle
  verdict: Verdict
  timeline: Timeline
  /** When the report was made, Unix ms. Default Date.now(). */
  generatedAtMs?: number
  /** Inclusion proofs shown in full (first, middle and last record with one). Default 3. */
  proofs?: number
  /** A trace of one record (provenance trace --html): drawn as the lineage diagram. */
  lineage?: TraceResult
}

const CSS = `
:root{color-scheme:light;--ink:#1d2430;--muted:#5b6575;--line:#d8dde6;--bg:#f6f7f9;--ok:#1b7f3b;--bad:#b3261e;--warn:#9a6700}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:var(--bg)}
main{max-width:1000px;margin:0 auto;padding:24px}h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
.sub{color:var(--muted);margin:0 0 16px}section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:4px 16px 14px;margin:14px 0}
.verdict{display:inline-block;font-weight:700;font-size:20px;letter-spacing:.06em;padding:6px 14px;border-radius:6px;color:#fff}
.verdict.valid{background:var(--ok)}.verdict.invalid{background:var(--bad)}
table{border-collapse:collapse;width:100%;margin:6px 0}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.03em}td.num,th.num{text-align:right}
code{font:12px/1.3 ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-all}.reason{font-weight:600;color:var(--bad)}.warn .reason{color:var(--warn)}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:8px 0}dt{color:var(--muted)}dd{margin:0}
.empty{color:var(--muted);font-style:italic}.note{color:var(--muted);font-size:12px}
.chart{width:100%;height:auto;display:block}.chart .plot{fill:#fbfcfd;stroke:var(--line)}.chart .grid{stroke:#eceff3}.chart .tick,.chart .lane{stroke:#aab2bf}
.chart .axis{font-size:11px;fill:var(--muted)}.m-boot{fill:#1b7f3b}.m-shutdown{fill:#5b6575}.m-key{fill:#7b3fb0}.m-gap{fill:#e08a00}.m-fail{stroke:#b3261e;stroke-width:1.5;stroke-dasharray:3 2}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;margin:6px 0 0;padding:0;list-style:none;font-size:12px}.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;vertical-align:-1px}
pre.proof{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:8px;overflow-x:auto;font-size:12px}
footer{color:var(--muted);font-size:12px;margin:24px 0}
.filter{margin:6px 0}.filter label{margin-right:14px}tr.rec.fail td{background:#fdecea}tr.rec.gap td{background:#fff4e0}tr.rec.missing td{font-style:italic}
#rf-fail:checked~table.records tr.rec:not(.fail){display:none}#rf-gap:checked~table.records tr.rec:not(.fail):not(.gap){display:none}
`

/**
 * The HTML text of the report.
 * @throws BundleError when `bundle` is not a well-formed bundle (decoding its records).
 */
export function renderReport (input: ReportInput): string {
  // Over 80 lines on purpose: one html`` template read top to bottom is the page in section order;
  // the pieces with logic of their own (chart, diagram, tables) are functions already.
  const { bundle, verdict, timeline } = input
  const generatedAtMs = input.generatedAtMs ?? Date.now()
  const times = recordTimes(bundle)
  const failureMarkers = verdict.failures.flatMap(f => {
    const t = f.seq === undefined ? undefined : times.get(f.seq)
    return t === undefined ? [] : [{ timeMs: t, label: `seq ${String(f.seq)}: ${f.reason}` }]
  })
  const anchorsUsed = new Map(bundle.anchors.map(a => [a.root, a]))
  const modelIndex = new Map(timeline.models.map((m, i) => [m.modelHash, i]))

  const body = html`
<main>
<header>
<h1>Incident report: device <code>${bundle.device.id}</code></h1>
<p class="sub">Generated ${formatTime(generatedAtMs)} from a bundle exported ${formatTime(bundle.createdAtMs)}. Device times are the device's own clock.</p>
</header>

<section id="verdict">
<h2>Verdict</h2>
<p><span class="verdict ${verdict.verdict}" id="verdict-value">${verdict.verdict.toUpperCase()}</span>
&nbsp;verified ${verdict.mode === 'online' ? html`online against chain ${verdict.chain.chainId} at block ${verdict.chain.checkedAtBlock}` : html`offline, against the facts in the bundle (read at block ${verdict.chain.readAtBlock})`}.</p>
<dl class="facts">
<dt>Records judged</dt><dd>${formatCount(verdict.counts.judged)} of ${formatCount(verdict.counts.records)}${verdict.window.fromMs !== null || verdict.window.toMs !== null ? html` (window ${formatTime(verdict.window.fromMs)} – ${formatTime(verdict.window.toMs)})` : ''}</dd>
<dt>Seqs</dt><dd>${verdict.firstSeq ?? '—'} … ${verdict.lastSeq ?? '—'}${verdict.fromGenesis ? ' (from the genesis record)' : ' (chain checked from the first record\'s prev)'}</dd>
<dt>Signatures (Ed25519, noble)</dt><dd>${formatCount(verdict.counts.signaturesValid)} valid of ${formatCount(verdict.counts.signaturesChecked)} checked</dd>
<dt>Hash chain</dt><dd>${formatCount(verdict.counts.chainLinked)} records linked; ${verdict.gaps.length} honest gap(s) declared by the device</dd>
<dt>Inclusion proofs</dt><dd>${formatCount(verdict.counts.proofsValid)} valid of ${formatCount(verdict.counts.proofsChecked)} checked, in ${verdict.counts.anchors} anchored batch(es)</dd>
<dt>Completeness</dt><dd>${verdict.completeness.status}: ${verdict.completeness.message}</dd>
<dt>Failures / warnings</dt><dd>${formatCount(verdict.counts.failures)} / ${formatCount(verdict.counts.warnings)} on ${formatCount(verdict.counts.recordsFailed)} record(s)${verdict.counts.notJudged > 0 ? html`; ${verdict.counts.notJudged} outside the window, not judged` : ''}</dd>
</dl>
<h3>Failures</h3>
${findingsTable(verdict.failures, verdict.counts.failures, times, 'failures')}
<h3>Warnings</h3>
${findingsTable(verdict.warnings, verdict.counts.warnings, times, 'warnings warn')}
</section>

${input.lineage === undefined ? '' : renderLineageSection(input.lineage)}

<section id="records">
<h2>Records</h2>
<p class="note">One row per record, seq order${bundle.records.length > REPORT_MAX_RECORD_ROWS ? html`; every failing and gap record, and the first ${formatCount(REPORT_MAX_RECORD_ROWS)} others` : ''}. Failing records are red, gaps amber; the filter needs no script.</p>
${recordTable(bundle, verdict, timeline)}
</section>

<section id="timeline">
<h2>Timeline</h2>
<p class="note">${formatCount(timeline.records)} records from ${formatTime(timeline.startMs)}; ${formatCount(timeline.inferences)} inferences in bars of ${formatDuration(timeline.intervalMs)}.</p>
${renderTimelineChart(timeline, failureMarkers)}
<ul class="legend">
${timeline.models.map((m, i) => html`<li><span class="sw" style="background:${pickModelColor(i)}"></span>${m.name ?? 'unregistered'} ${m.version ?? ''} <code>${m.modelHash.slice(0, 8)}</code></li>`)}
<li><span class="sw" style="background:#1b7f3b"></span>boot</li><li><span class="sw" style="background:#5b6575"></span>shutdown</li>
<li><span class="sw" style="background:#7b3fb0"></span>key rotation</li><li><span class="sw" style="background:#e08a00"></span>gap</li>
<li><span class="sw" style="background:#b3261e"></span>failure</li>
</ul>
<h3>Device events</h3>
${table(['Time', 'Seq', 'Event', 'Detail'], events(timeline, modelIndex), { className: 'events' })}
</section>

<section id="models">
<h2>Models</h2>
${table(['Model hash', 'Name', 'Version', 'Registry status', 'Inferences', 'First', 'Last'], timeline.models.map(m => [
  shortHex(m.modelHash, 16), m.name ?? html`<span class="reason">unregistered</span>`, m.version ?? '—', m.status, html`<span class="num">${formatCount(m.inferences)}</span>`,
  formatTime(m.firstMs), formatTime(m.lastMs)
]), { className: 'models' })}
<h3>Decisions</h3>
<p class="note">Grouped by label: decimal numbers (scores, confidences) are folded into <code>…</code>, so <code>person 0.91</code> and <code>person 0.87</code> count as <code>person …</code>; each group shows how many distinct values it folds.</p>
${decisionTable(timeline)}
</section>

<section id="gaps">
<h2>Gaps</h2>
${table(['Seqs', 'Kind', 'Detail'], [
  ...verdict.gaps.map(g => [`${g.firstSeq}..${g.lastSeq}`, 'declared by the device (signed gap record)', g.reason]),
  ...verdict.failures.filter(f => f.reason === 'seq-gap').map(f => [`${String(f.seq)}..${String(f.lastSeq ?? f.seq)}`, html`<span class="reason">missing, undeclared</span>`, f.message])
], { className: 'gaps', empty: 'No gap: every seq is accounted for.' })}
</section>

<section id="anchors">
<h2>Anchors</h2>
<p class="note">Chain ${bundle.chain.chainId}, registry <code>${bundle.chain.registry}</code>. Roots and tree sizes are the chain's facts; the proofs are checked against them.</p>
${table(['Batch', 'Root', 'Leaves', 'Transaction', 'Block', 'Record times'], bundle.anchors.map(a => [
  a.onChainBatchId, shortHex(a.root, 16), formatCount(a.size), html`<code>${a.txHash}</code>`, html`${a.blockNumber}<br>${shortHex(a.blockHash, 14)}`,
  html`${formatTime(a.firstRecordTimeMs)}<br>${formatTime(a.lastRecordTimeMs)}`
]), { className: 'anchors', empty: 'No anchored batch in the bundle.' })}
<h3>Inclusion proofs</h3>
${proofSamples(bundle, anchorsUsed, input.proofs ?? DEFAULT_REPORT_PROOFS)}
</section>

<footer>edge-provenance forensics · bundle format ${bundle.format} · this file loads nothing and runs no script.</footer>
</main>`

  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Incident report: ${escapeHtml(bundle.device.id)} (${verdict.verdict})</title>
<style>${CSS}</style>
</head>
<body>${body.value}
</body>
</html>
`
}

/** The per-record table: time, kind, model, decision, proof status and the findings at that seq. */
function recordTable (bundle: Bundle, verdict: Verdict, timeline: Timeline): Safe {
  const modelIndex = new Map(timeline.models.map((m, i) => [m.modelHash, i]))
  const findingsAt = new Map<string, Finding[]>()
  const at = (f: Finding): string => f.index !== undefined ? `i${f.index}` : `s${String(f.seq)}`
  for (const f of [...verdict.failures, ...verdict.warnings]) {
    // seq-gap names the record after the hole by index: its row is the hole's, not that record's.
    if ((f.seq === undefined && f.index === undefined) || f.reason === 'seq-gap') continue
    const list = findingsAt.get(at(f)) ?? []
    list.push(f)
    findingsAt.set(at(f), list)
  }
  const failed = new Set(verdict.failures.filter(f => f.reason !== 'seq-gap').flatMap(f => f.index !== undefined ? [`i${f.index}`] : [`s${String(f.seq)}`]))
  const proofs = new Set(bundle.proofs.map(p => p.seq))
  const PROOF_FAILURES = new Set(['proof-invalid', 'root-mismatch', 'root-not-anchored', 'anchor-mismatch', 'record-not-anchored', 'checkpoint-signature-invalid'])
  const missing = verdict.failures.filter(f => f.reason === 'seq-gap' && f.seq !== undefined).sort((a, b) => (a.seq as number) - (b.seq as number))
  const rows: Safe[] = []
  let others = 0
  const reasons = (list: Finding[] | undefined): Safe => html`${(list ?? []).map(f => html`<span class="reason" title="${f.message}">${f.reason}</span> `)}`
  bundle.records.forEach((b64, i) => {
    let r
    try {
      r = decodeEnvelope(decodeBundleRecord(b64)).record
    } catch {
      rows.push(html`<tr class="rec fail"><td>—</td><td>—</td><td>malformed</td><td>—</td><td>—</td><td>—</td><td>${reasons(findingsAt.get(`i${i}`))}</td></tr>`)
      return
    }
    const here = [...(findingsAt.get(`i${i}`) ?? []), ...(findingsAt.get(`s${r.seq}`) ?? []).filter(f => f.index === undefined)]
    // Undeclared holes get a row of their own, before the first record after them.
    while ((missing[0]?.lastSeq ?? missing[0]?.seq ?? Infinity) < r.seq) {
      const m = missing.shift() as Finding
      rows.push(html`<tr class="rec fail gap missing"><td>${m.seq}..${m.lastSeq ?? m.seq}</td><td>—</td><td>missing</td><td>—</td><td>—</td><td>—</td><td>${reasons([m])}</td></tr>`)
    }
    const isFail = failed.has(`i${i}`) || failed.has(`s${r.seq}`)
    const isGap = r.body.kind === 'gap'
    if (!isFail && !isGap && here.length === 0 && ++others > REPORT_MAX_RECORD_ROWS) return
    const body = r.body
    let model: Safe | string = '—'
    let decision: unknown = '—'
    let detail = ''
    if (body.kind === 'model-load' || body.kind === 'inference') {
      const hash = toHex(body.modelHash)
      const m = timeline.models.find(x => x.modelHash === hash)
      model = html`<span class="sw" style="background:${pickModelColor(modelIndex.get(hash) ?? -1)}"></span>${m?.name ?? shortHex(hash, 8)} ${m?.version ?? ''}`
      if (body.kind === 'inference') decision = body.decision ?? html`<span class="empty">none</span>`
      else detail = ` (policy: ${body.policy})`
    } else if (body.kind === 'gap') {
      detail = ` ${body.firstSeq}..${body.lastSeq} (${body.reason})`
    }
    const proofBad = here.find(f => PROOF_FAILURES.has(f.reason))
    const proof = proofBad !== undefined ? html`<span class="reason">${proofBad.reason}</span>` : proofs.has(r.seq) ? 'verified' : 'none'
    rows.push(html`<tr class="rec${isFail ? ' fail' : ''}${isGap ? ' gap' : ''}"><td>${r.seq}</td><td>${formatTime(r.timeMs)}</td><td>${body.kind}${detail}</td><td>${model}</td><td>${decision}</td><td>${proof}</td><td>${reasons(here)}</td></tr>`)
  })
  return html`<div class="filter">
<input type="radio" name="rf" id="rf-all" checked><label for="rf-all">all records</label>
<input type="radio" name="rf" id="rf-fail"><label for="rf-fail">failing only</label>
<input type="radio" name="rf" id="rf-gap"><label for="rf-gap">failing and gaps</label>
<table class="records"><thead><tr><th>Seq</th><th>Device time</th><th>Kind</th><th>Model</th><th>Decision</th><th>Proof</th><th>Findings</th></tr></thead><tbody>${rows}</tbody></table>
</div>`
}

/** Decision strings folded into labels (decimals → `…`), largest group first. */
export function groupDecisions (decisions: ReadonlyArray<{ decision: string | null, count: number }>): Array<{ label: string | null, count: number, distinct: number }> {
  const groups = new Map<string | null, { count: number, distinct: number }>()
  for (const d of decisions) {
    const label = d.decision === null ? null : d.decision.replace(/[-+]?\d+\.\d+(?:e[-+]?\d+)?/gi, '…')
    const g = groups.get(label) ?? { count: 0, distinct: 0 }
    g.count += d.count
    g.distinct++
    groups.set(label, g)
  }
  return [...groups].map(([label, g]) => ({ label, ...g })).sort((a, b) => b.count - a.count || String(a.label).localeCompare(String(b.label)))
}

function decisionTable (timeline: Timeline): Safe {
  const groups = groupDecisions(timeline.decisions)
  const total = groups.reduce((n, g) => n + g.count, 0) + timeline.otherDecisions.count
  const rows: unknown[][] = groups.slice(0, 20).map(g => [
    g.label === null ? html`<span class="empty">none</span>` : g.label, formatCount(g.count), `${total === 0 ? 0 : Math.round(g.count * 1000 / total) / 10} %`, g.distinct > 1 ? formatCount(g.distinct) : ''
  ])
  const restCount = groups.slice(20).reduce((n, g) => n + g.count, 0) + timeline.otherDecisions.count
  if (restCount > 0) rows.push([html`<span class="empty">other values (${formatCount(groups.slice(20).reduce((n, g) => n + g.distinct, 0) + timeline.otherDecisions.distinct)} distinct)</span>`, formatCount(restCount), '', ''])
  return table(['Decision', 'Count', 'Share', 'Values folded'], rows, { className: 'decisions' })
}

function recordTimes (bundle: Bundle): Map<number, number> {
  const out = new Map<number, number>()
  for (const b64 of bundle.records) {
    try {
      const r = decodeEnvelope(decodeBundleRecord(b64)).record
      out.set(r.seq, r.timeMs)
    } catch {
      // malformed: named in the verdict by index
    }
  }
  return out
}

function findingsTable (findings: Finding[], total: number, times: Map<number, number>, className: string): Safe {
  const rows = findings.slice(0, REPORT_MAX_FINDING_ROWS).map(f => [
    f.seq === undefined ? '—' : f.lastSeq !== undefined && f.lastSeq !== f.seq ? `${f.seq}..${f.lastSeq}` : String(f.seq),
    f.seq === undefined ? '—' : formatTime(times.get(f.seq)),
    html`<span class="reason" title="${REASON_DESCRIPTIONS[f.reason]}">${f.reason}</span>`,
    f.message
  ])
  const more = total - rows.length
  return html`${table(['Seq', 'Device time', 'Reason', 'Detail'], rows, { className, empty: 'None.' })}${more > 0 ? html`<p class="note">${formatCount(more)} more in the verdict JSON.</p>` : ''}`
}

function events (t: Timeline, modelIndex: Map<string, number>): unknown[][] {
  const rows: Array<{ timeMs: number, seq: number, cells: unknown[] }> = []
  for (const e of t.boots) rows.push({ ...e, cells: ['boot', `boot ${e.boot}, agent ${e.agentVersion}, profile ${e.profile}`] })
  for (const e of t.reboots) rows.push({ ...e, cells: [e.clean ? 'reboot' : html`<span class="reason">unclean reboot</span>`, `boot ${e.fromBoot} → ${e.toBoot}${e.clean ? ' after a shutdown record' : ', no shutdown record before it'}`] })
  for (const e of t.modelLoads) {
    const i = modelIndex.get(e.modelHash) ?? 99
    rows.push({
      ...e,
      cells: [html`<span class="sw" style="background:${pickModelColor(i)}"></span>model load`,
        html`${e.name !== null ? `${e.name} ${e.version ?? ''}` : html`<span class="reason">unregistered model</span>`} (${e.file}, ${formatCount(e.sizeBytes)} bytes, policy ${e.policy}, ${e.providers.join(', ')}) ${shortHex(e.modelHash, 12)}`]
    })
  }
  for (const e of t.gaps) rows.push({ ...e, cells: ['gap', `seq ${e.firstSeq}..${e.lastSeq} dropped by the device: ${e.reason}`] })
  for (const e of t.keyRotations) rows.push({ ...e, cells: ['key rotation', html`new key fingerprint <code>${e.keyFingerprint}</code>, valid from ${formatTime(e.validFromMs)}`] })
  for (const e of t.shutdowns) rows.push({ ...e, cells: ['shutdown', e.reason] })
  for (const e of t.policies) rows.push({ ...e, cells: ['model policy', html`v${e.version} ${e.mode} in force, fleet ${e.fleetId}, policy ${shortHex(e.policyHash, 12)}`] })
  for (const e of t.oversight) {
    rows.push({ ...e, cells: ['oversight', html`reviewer ${e.reviewer}: <strong>${e.verdict}</strong> decision seq ${e.decisionSeq} of <code>${e.decisionDeviceId}</code> ${shortHex(e.decisionHash, 12)}: ${e.reason}`] })
  }
  for (const e of t.sessions) {
    rows.push({ ...e, cells: [`use ${e.phase}`, html`session ${e.sessionId}, reference ${e.referenceHash === null ? 'none' : html`${e.referenceName} ${shortHex(e.referenceHash, 12)}`}`] })
  }
  for (const e of t.dataCaptures) rows.push({ ...e, cells: ['data capture', html`sample for ${e.dataset}${e.label === null ? '' : ` (${e.label})`}, ${formatCount(e.sizeBytes)} bytes, commitment ${shortHex(e.commitment, 12)}`] })
  rows.sort((a, b) => a.seq - b.seq || a.timeMs - b.timeMs)
  return rows.map(r => [formatTime(r.timeMs), r.seq, ...r.cells])
}

function proofSamples (bundle: Bundle, anchors: Map<string, Bundle['anchors'][number]>, count: number): Safe {
  const withProof = bundle.proofs
  if (withProof.length === 0 || count <= 0) return html`<p class="empty">No inclusion proof in the bundle.</p>`
  const picks = [...new Set([0, Math.floor((withProof.length - 1) / 2), withProof.length - 1].slice(0, count))]
  const envelopes = new Map<number, Uint8Array>()
  for (const b64 of bundle.records) {
    try {
      const bytes = decodeBundleRecord(b64)
      envelopes.set(decodeEnvelope(bytes).record.seq, bytes)
    } catch {
      // malformed: no leaf to show
    }
  }
  return html`${picks.map(i => {
    const p = withProof[i] as Bundle['proofs'][number]
    let proof: TlogProof
    try {
      proof = parseProof(p.proof)
    } catch (e) {
      return html`<h4>Seq ${p.seq}</h4><p class="reason">Malformed proof: ${(e as Error).message}</p>`
    }
    const root = toHex(proof.checkpoint.rootHash)
    const anchor = anchors.get(root)
    const envelope = envelopes.get(p.seq)
    return html`<h4>Seq ${p.seq}</h4>
<dl class="facts">
<dt>Leaf hash</dt><dd>${envelope === undefined ? '—' : html`<code>${toHex(hashLeaf(envelope))}</code>`} (SHA-256 of 0x00 ‖ envelope)</dd>
<dt>Leaf index / tree size</dt><dd>${proof.index} of ${anchor === undefined ? html`<span class="reason">(root not anchored)</span>` : html`${anchor.size} (anchored in batch ${anchor.onChainBatchId}, tx <code>${anchor.txHash}</code>)`}</dd>
<dt>Root</dt><dd><code>${root}</code></dd>
<dt>Audit path</dt><dd>${proof.hashes.length} hashes, leaf sibling first</dd>
</dl>
<pre class="proof">${proof.hashes.map((h, k) => `${String(k).padStart(2, ' ')}  ${toHex(h)}\n`).join('')}</pre>`
  })}`
}
