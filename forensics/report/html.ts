/**
 * Small HTML helpers for the report: escaping (every value in a report comes from a bundle, i.e.
 * from an adversary), tables, times and hashes in a readable form.
 */

/** Text escaped for HTML element content and double-quoted attributes. */
export function escapeHtml (value: unknown): string {
  return String(value).replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c] as string))
}

/** An HTML fragment already escaped: passed through by {@link html} untouched. */
export class Safe {
  constructor (readonly value: string) {}
  toString (): string { return this.value }
}

/** Tagged template: interpolated values are escaped unless Safe (or arrays of Safe). */
export function html (strings: TemplateStringsArray, ...values: unknown[]): Safe {
  let out = strings[0] as string
  values.forEach((v, i) => {
    out += render(v) + (strings[i + 1] as string)
  })
  return new Safe(out)
}

function render (v: unknown): string {
  if (v instanceof Safe) return v.value
  if (Array.isArray(v)) return v.map(render).join('')
  if (v === undefined || v === null || v === false) return ''
  return escapeHtml(v)
}

/** Device time as ISO 8601 UTC with milliseconds; '—' for none. */
export function formatTime (ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—'
  const d = new Date(ms)
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString().replace('T', ' ').replace('Z', ' UTC')
}

/** A duration in the largest unit that keeps it short. */
export function formatDuration (ms: number): string {
  if (ms < 1000) return `${ms} ms`
  const units: Array<[number, string]> = [[86_400_000, 'd'], [3_600_000, 'h'], [60_000, 'min'], [1000, 's']]
  for (const [size, name] of units) if (ms >= size) return `${+(ms / size).toFixed(ms % size === 0 ? 0 : 1)} ${name}`
  return `${ms} ms`
}

/** A long hex value shortened for tables, the whole value in a tooltip. */
export function shortHex (hex: string, keep = 12): Safe {
  if (hex.length <= keep + 2) return html`<code>${hex}</code>`
  return html`<code title="${hex}">${hex.slice(0, keep)}…</code>`
}

/** A table with a header row; `rows` are already cells. */
export function table (headers: string[], rows: unknown[][], options: { className?: string, empty?: string } = {}): Safe {
  if (rows.length === 0) return html`<p class="empty">${options.empty ?? 'None.'}</p>`
  return html`<table class="${options.className ?? ''}"><thead><tr>${headers.map(h => html`<th>${h}</th>`)}</tr></thead><tbody>${
    rows.map(r => html`<tr>${r.map(c => html`<td>${c}</td>`)}</tr>`)}</tbody></table>`
}

/** Thousands separated with thin spaces. */
export function formatCount (n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, '\u202f')
}
