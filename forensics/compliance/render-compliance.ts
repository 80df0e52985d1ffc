/**
 * The compliance report as one HTML file for an auditor: verdict, devices with their verdicts and
 * retention, events per article, oversight actions, use sessions, models with their registry and
 * lineage entries, and what the project does not cover. No script, no external resource, every
 * value escaped (bundles come from an adversary), as the incident report.
 */
import { escapeHtml, formatCount, formatDuration, formatTime, html, shortHex, table, type Safe } from '../report/html.js'
import { COMPLIANCE_REASON_DESCRIPTIONS, type ArticleEvent, type ComplianceReport } from './build-compliance.js'

/** Rows of each event table in the page; the JSON export has up to MAX_EVENTS_PER_ARTICLE. */
export const COMPLIANCE_MAX_ROWS = 200

const CSS = `
:root{color-scheme:light;--ink:#1d2430;--muted:#5b6575;--line:#d8dde6;--bg:#f6f7f9;--ok:#1b7f3b;--bad:#b3261e;--warn:#9a6700}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:var(--bg)}
main{max-width:1100px;margin:0 auto;padding:24px}h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
.sub{color:var(--muted);margin:0 0 16px}section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:4px 16px 14px;margin:14px 0}
.verdict{display:inline-block;font-weight:700;font-size:20px;letter-spacing:.06em;padding:6px 14px;border-radius:6px;color:#fff}
.verdict.valid{background:var(--ok)}.verdict.invalid{background:var(--bad)}
table{border-collapse:collapse;width:100%;margin:6px 0}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-weight:600;color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.03em}
code{font:12px/1.3 ui-monospace,SFMono-Regular,Menlo,monospace;word-break:break-all}.reason{font-weight:600;color:var(--bad)}.warn{color:var(--warn);font-weight:600}
.empty{color:var(--muted);font-style:italic}.note{color:var(--muted);font-size:12px}.marked{background:#fff4e0;padding:2px 6px;border-radius:4px}
footer{color:var(--muted);font-size:12px;margin:24px 0}
`

/** The HTML text of the compliance report. */
export function renderCompliance (report: ComplianceReport): string {
  // Over 80 lines on purpose: one html`` template read top to bottom is the report in section order.
  const period = report.period.fromMs === null && report.period.toMs === null ? 'all records' : `${formatTime(report.period.fromMs)} – ${formatTime(report.period.toMs)}`
  const body = html`
<main>
<header>
<h1>Record-keeping report (EU AI Act, profile <code>${report.profile}</code>)</h1>
<p class="sub">Period ${period} (device times). Generated ${formatTime(report.generatedAtMs)}; verified ${report.mode}. Article mapping: docs/COMPLIANCE.md.</p>
</header>

<section id="verdict">
<h2>Verdict</h2>
<p><span class="verdict ${report.verdict}" id="verdict-value">${report.verdict.toUpperCase()}</span>
&nbsp;${report.devices.length} bundle(s); ${report.oversight.length} oversight action(s); ${report.sessions.length} use session(s).</p>
<p>Reviewing stations: ${report.reviewers === null ? 'any station whose bundle verifies (no list given)' : report.reviewers.map(r => html`<code>${r}</code> `)}</p>
<h3>Cross-bundle findings</h3>
${table(['Device', 'Seq', 'Reason', 'Message'], report.findings.map(f => [
  html`<code>${f.device}</code>`, f.seq, html`<span class="${f.severity === 'failure' ? 'reason' : 'warn'}" title="${COMPLIANCE_REASON_DESCRIPTIONS[f.reason]}">${f.reason}</span>`, f.message
]), { className: 'findings', empty: 'None: every oversight record names an existing decision by its hash, from a known reviewing station.' })}
</section>

<section id="devices">
<h2>Devices and retention (Art. 12(1), 19(1), 26(6))</h2>
${table(['Device', 'Roles', 'Verdict', 'Records', 'Seqs', 'Kept from – to', 'Retention', 'Declared drops', 'Pruned by policy', 'Shredded'], report.devices.map(d => [
  html`<code>${d.device}</code>`, d.roles.join(', ') || '—',
  html`<span class="${d.verdict.verdict === 'valid' ? '' : 'reason'}">${d.verdict.verdict.toUpperCase()}</span>${d.verdict.failures.length > 0 ? html` (${d.verdict.failures.slice(0, 3).map(f => f.reason).join(', ')})` : ''}`,
  formatCount(d.verdict.counts.judged), `${String(d.verdict.firstSeq)}…${String(d.verdict.lastSeq)}`,
  `${formatTime(d.retention.oldestRecordMs)} – ${formatTime(d.retention.newestRecordMs)}`,
  d.retention.policy === 'not-reported'
    ? html`<span class="marked retention-not-reported">not reported</span>`
    : `${formatDuration(d.retention.retentionMs as number)} at the gateway${d.retention.policy === 'by-pruning-statement' ? ' (as its pruning statements state)' : ''}`,
  d.retention.declaredDrops.length === 0 ? 'none' : d.retention.declaredDrops.map(g => html`${g.firstSeq}..${g.lastSeq} (${g.reason}) `),
  d.retention.pruned.length === 0 ? 'none' : d.retention.pruned.map(p => html`<span class="pruned">PRUNED ${p.firstSeq}..${p.lastSeq}</span> by ${p.gatewayId} ${formatTime(p.prunedAtMs)} (${p.reason}, ${p.retentionDays} d) ${shortHex(p.statement, 12)}<br>`),
  d.retention.shredded.length === 0 ? 'none' : d.retention.shredded.map(x => html`<span class="shredded">SHREDDED ${x.firstSeq}..${x.lastSeq}</span> subject ${shortHex(x.subjectRef, 12)} ${formatTime(x.shreddedAtMs)} (${x.reason})<br>`)
]), { className: 'devices' })}
<p class="note">${report.devices[0]?.retention.note ?? ''} Minimum: ${formatDuration(report.devices[0]?.retention.minimumMs ?? 0)}.</p>
</section>

<section id="art-12-2-a">
<h2>Art. 12(2)(a): risk situations and substantial modifications</h2>
${report.devices.map(d => html`<h3><code>${d.device}</code>: ${formatCount(d.articles['12(2)(a)'].count)} event(s)</h3>${eventTable(d.articles['12(2)(a)'].events)}`)}
</section>

<section id="art-12-2-b">
<h2>Art. 12(2)(b): post-market monitoring</h2>
${table(['Device', 'Inferences', 'Models', 'Top decisions'], report.devices.filter(d => d.articles['12(2)(b)'].inferences > 0).map(d => [
  html`<code>${d.device}</code>`, formatCount(d.articles['12(2)(b)'].inferences),
  d.articles['12(2)(b)'].models.map(m => html`${m.name ?? 'unregistered'} ${m.version ?? ''} (${formatCount(m.inferences)}) `),
  d.articles['12(2)(b)'].decisions.slice(0, 5).map(x => html`${x.decision ?? '(none)'}: ${x.count}; `)
]), { className: 'monitoring' })}
</section>

<section id="art-12-2-c">
<h2>Art. 12(2)(c): monitoring of the operation by the deployer</h2>
${report.devices.map(d => html`<h3><code>${d.device}</code>: ${formatCount(d.articles['12(2)(c)'].count)} event(s)</h3>${eventTable(d.articles['12(2)(c)'].events)}`)}
</section>

<section id="oversight">
<h2>Human oversight (Art. 14, 12(3)(d), 14(5))</h2>
${table(['Time', 'Station', 'Reviewer', 'Verdict', 'Decision', 'Reason', 'Status'], report.oversight.map(o => [
  formatTime(o.timeMs), html`<code>${o.station}</code> seq ${o.seq}`, o.reviewer, html`<strong>${o.verdict}</strong>`,
  html`<code>${o.decision.device}</code> seq ${o.decision.seq} ${shortHex(o.decision.hash, 12)}${o.decision.decision === null ? '' : html` “${o.decision.decision}”`}`,
  o.reason, o.status === 'accepted' ? 'accepted' : html`<span class="reason">${o.status}</span>`
]), { className: 'oversight', empty: 'No oversight record in the period.' })}
</section>

<section id="sessions">
<h2>Uses and reference data (Art. 12(3)(a)-(c))</h2>
${table(['Device', 'Use', 'Start', 'End', 'Reference database', 'Inferences', 'Matches (input commitments)', 'Verified by'], report.sessions.map(u => [
  html`<code>${u.device}</code>`, u.sessionId, formatTime(u.startMs), u.endMs === null ? html`<span class="warn">open</span>` : formatTime(u.endMs),
  u.referenceHash === null ? 'none' : html`${u.referenceName} ${shortHex(u.referenceHash, 16)}`, formatCount(u.inferences),
  u.decisions.slice(0, 20).map(x => html`seq ${x.seq} “${x.decision}” ${x.inputs.map(i => shortHex(i, 20))}<br>`),
  u.reviewedBy.length === 0 ? '—' : u.reviewedBy.map(r => html`${r}<br>`)
]), { className: 'sessions', empty: 'No session record in the period.' })}
</section>

<section id="models">
<h2>Model versions, registry and lineage entries</h2>
${table(['Model', 'Name', 'Version', 'Registry status', 'Manifest', 'Lineage (parents)', 'Devices', 'Inferences'], report.models.map(m => [
  shortHex(m.hash, 16), m.name || html`<span class="reason">unregistered</span>`, m.version || '—', m.status, m.manifestHash === '' ? '—' : shortHex(m.manifestHash, 12),
  m.lineage.length === 0 ? '—' : m.lineage.map(p => html`${p.name} ${p.version} ${shortHex(p.hash, 8)} (${p.status})<br>`),
  m.devices.map(d => html`<code>${d}</code> `), formatCount(m.inferences)
]), { className: 'models' })}
</section>

<section id="not-covered">
<h2>What this report does not cover</h2>
<ul>${report.notCovered.map(n => html`<li>${n}</li>`)}</ul>
</section>
<footer>${report.format}</footer>
</main>`
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Record-keeping report ${escapeHtml(period)}</title>
<style>${CSS}</style></head><body>${body.value}</body></html>
`
}

function eventTable (events: ArticleEvent[]): Safe {
  return html`${table(['Time', 'Seq', 'Kind', 'Event'], events.slice(0, COMPLIANCE_MAX_ROWS).map(e => [e.timeMs < 0 ? '—' : formatTime(e.timeMs), e.seq < 0 ? '—' : e.seq, e.kind, e.summary]), { className: 'events', empty: 'None in the period.' })}${
    events.length > COMPLIANCE_MAX_ROWS ? html`<p class="note">First ${COMPLIANCE_MAX_ROWS} of ${events.length}; the JSON export lists more.</p>` : ''}`
}
