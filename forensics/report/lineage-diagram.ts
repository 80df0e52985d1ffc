/**
 * The lineage diagram of the report: the trace tree (record → model-load → model → training run or
 * round → datasets, captures, contributions) as inline SVG, one box per link, broken links in red
 * with their reason. Static markup only: labels come from statements and records, so all escaped.
 */
import type { TraceNode, TraceResult } from '../lineage/trace.js'
import { html, Safe } from './html.js'

const ROW_PX = 46
const BOX_H_PX = 36
const INDENT_PX = 28
const BOX_W_PX = 560
const MAX_NODES = 400

/** The `<section id="lineage">` of the report for a trace. */
export function renderLineageSection (trace: TraceResult): Safe {
  const rows: Array<{ n: TraceNode, depth: number, parentRow: number | null }> = []
  const walk = (n: TraceNode, depth: number, parentRow: number | null): void => {
    if (rows.length >= MAX_NODES) return
    const row = rows.length
    rows.push({ n, depth, parentRow })
    n.children.forEach(c => walk(c, depth + 1, row))
  }
  walk(trace.root, 0, null)
  const depth = Math.max(...rows.map(r => r.depth))
  const width = BOX_W_PX + depth * INDENT_PX + 8
  const height = rows.length * ROW_PX + 8
  const parts: Safe[] = []
  rows.forEach((r, i) => {
    const x = 4 + r.depth * INDENT_PX
    const y = 4 + i * ROW_PX
    if (r.parentRow !== null) {
      const px = 4 + (r.depth - 1) * INDENT_PX + 10
      const py = 4 + r.parentRow * ROW_PX + BOX_H_PX
      parts.push(html`<path class="link" d="M${px} ${py} V${y + BOX_H_PX / 2} H${x}" fill="none" stroke="#8b95a5"/>`)
    }
    const cls = r.n.ok ? 'node ok' : 'node fail'
    parts.push(html`<g class="${cls}" data-kind="${r.n.kind}"><rect x="${x}" y="${y}" width="${BOX_W_PX}" height="${BOX_H_PX}" rx="5" fill="${r.n.ok ? '#eef7f0' : '#fdecea'}" stroke="${r.n.ok ? '#1b7f3b' : '#b3261e'}"/>`, html`<text x="${x + 8}" y="${y + 15}" font-size="12" font-weight="600">${r.n.ok ? '✓' : '✗'} ${r.n.kind}: ${r.n.label.slice(0, 90)}</text>`, html`<text x="${x + 8}" y="${y + 30}" font-size="11" fill="#5b6575">${r.n.ok ? (r.n.id === null ? '' : r.n.id.slice(0, 32)) : `${r.n.reason ?? ''} ${(r.n.detail ?? '').slice(0, 80)}`}</text>`, new Safe('</g>'))
  })
  return html`<section id="lineage">
<h2>Lineage</h2>
<p class="note">From ${trace.device}:${trace.seq} back to the model, its training run or federated round, datasets, field captures and contributing devices; each link checked. ${trace.ok ? 'Every link verified.' : html`<span class="reason">${trace.broken.length} broken link(s)</span>`}</p>
<svg class="lineage" role="img" aria-label="lineage diagram" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" xmlns="http://www.w3.org/2000/svg">${parts}</svg>
</section>`
}
