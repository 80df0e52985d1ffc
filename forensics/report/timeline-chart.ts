/**
 * The report's timeline chart as inline SVG (no script, no external resource): inferences per
 * interval stacked by model, a lane of events above (boots, shutdowns, key rotations, gaps), and a
 * red line at each failing record. Tooltips are SVG <title> elements, which work without scripts.
 */
import type { Timeline } from '../timeline/index.js'
import { formatTime, html, type Safe } from './html.js'

export const MODEL_COLORS = ['#4e79a7', '#f28e2b', '#59a14f', '#b07aa1', '#76b7b2', '#edc948', '#9c755f', '#ff9da7'] as const
const OTHER_COLOR = '#bab0ac'

/** The colour of the i-th model of a timeline (most inferences first). */
export function pickModelColor (i: number): string {
  return MODEL_COLORS[i] ?? OTHER_COLOR
}

export interface ChartMarker { timeMs: number, label: string }

const W = 960
const H = 300
const LEFT = 56
const RIGHT = 16
const LANE = 34
const TOP = LANE + 8
const BOTTOM = 44

/** The SVG of a timeline; `failures` are drawn as red lines at their record's time. */
export function renderTimelineChart (t: Timeline, failures: ChartMarker[] = []): Safe {
  const n = t.buckets.length
  if (n === 0 || t.startMs === null) {
    return html`<svg class="chart" role="img" aria-label="timeline" viewBox="0 0 ${W} 60" width="${W}" height="60"><text x="${W / 2}" y="34" text-anchor="middle" class="axis">No record in the window</text></svg>`
  }
  const plotW = W - LEFT - RIGHT
  const plotH = H - TOP - BOTTOM
  const start = t.startMs
  const span = n * t.intervalMs
  const x = (ms: number): number => LEFT + Math.min(Math.max((ms - start) / span, 0), 1) * plotW
  const max = Math.max(1, ...t.buckets.map(b => b.total))
  const y = (count: number): number => TOP + plotH - (count / max) * plotH
  const bw = plotW / n
  const order = t.models.map(m => m.modelHash)
  const label = (hash: string): string => {
    const m = t.models.find(x => x.modelHash === hash)
    return m?.name !== null && m?.name !== undefined ? `${m.name} ${m.version ?? ''}` : `${hash.slice(0, 12)}… (unregistered)`
  }

  const bars = t.buckets.map((b, i) => {
    let acc = 0
    return order.map((hash, k) => {
      const c = b.byModel[hash] ?? 0
      if (c === 0) return html``
      const y0 = y(acc)
      acc += c
      const y1 = y(acc)
      return html`<rect x="${(LEFT + i * bw + 0.5).toFixed(1)}" y="${y1.toFixed(1)}" width="${Math.max(bw - 1, 0.5).toFixed(1)}" height="${Math.max(y0 - y1, 0.5).toFixed(1)}" fill="${pickModelColor(k)}"><title>${formatTime(b.startMs)}: ${c} × ${label(hash)}</title></rect>`
    })
  })

  const yTicks = [0, Math.round(max / 2), max].filter((v, i, a) => a.indexOf(v) === i)
  const xTickCount = Math.min(6, n)
  const xTicks = Array.from({ length: xTickCount + 1 }, (_, i) => start + Math.round((i * span) / xTickCount))
  const tickLabel = (ms: number): string => {
    const iso = formatTime(ms)
    return span <= 2 * 86_400_000 ? iso.slice(11, 19) : iso.slice(0, 16)
  }

  const laneY = 16
  const events = [
    ...t.boots.map(e => html`<path class="m-boot" d="M${x(e.timeMs).toFixed(1)} ${laneY - 7}l6 11h-12z"><title>boot ${e.boot} (seq ${e.seq}) ${formatTime(e.timeMs)}</title></path>`),
    ...t.shutdowns.map(e => html`<rect class="m-shutdown" x="${(x(e.timeMs) - 5).toFixed(1)}" y="${laneY - 5}" width="10" height="10"><title>shutdown (seq ${e.seq}): ${e.reason}</title></rect>`),
    ...t.keyRotations.map(e => html`<path class="m-key" d="M${x(e.timeMs).toFixed(1)} ${laneY - 7}l6 7l-6 7l-6 -7z"><title>key rotation (seq ${e.seq}) to key ${e.keyFingerprint}</title></path>`),
    ...t.gaps.map(e => html`<circle class="m-gap" cx="${x(e.timeMs).toFixed(1)}" cy="${laneY}" r="6"><title>gap: seq ${e.firstSeq}..${e.lastSeq} dropped (${e.reason})</title></circle>`)
  ]
  const failLines = failures.map(f => html`<line class="m-fail" x1="${x(f.timeMs).toFixed(1)}" x2="${x(f.timeMs).toFixed(1)}" y1="${TOP}" y2="${TOP + plotH}"><title>${f.label}</title></line>`)

  return html`<svg class="chart" role="img" aria-label="Inferences per ${t.intervalMs} ms, stacked by model, with device events" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}">
<rect x="${LEFT}" y="${TOP}" width="${plotW}" height="${plotH}" class="plot"/>
${yTicks.map(v => html`<line class="grid" x1="${LEFT}" x2="${LEFT + plotW}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}"/><text class="axis" x="${LEFT - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${v}</text>`)}
${xTicks.map((ms, i) => html`<line class="tick" x1="${x(ms).toFixed(1)}" x2="${x(ms).toFixed(1)}" y1="${TOP + plotH}" y2="${TOP + plotH + 5}"/><text class="axis" x="${x(ms).toFixed(1)}" y="${TOP + plotH + 18}" text-anchor="${i === 0 ? 'start' : i === xTicks.length - 1 ? 'end' : 'middle'}">${tickLabel(ms)}</text>`)}
<text class="axis" x="${LEFT}" y="${H - 6}">device time (UTC), ${t.intervalMs} ms per bar</text>
<text class="axis" x="4" y="${laneY + 4}">events</text>
<line class="lane" x1="${LEFT}" x2="${LEFT + plotW}" y1="${laneY}" y2="${laneY}"/>
<g class="bars">${bars}</g>
<g class="failures">${failLines}</g>
<g class="events">${events}</g>
</svg>`
}
