/**
 * Progress on stderr for long work: on a terminal, one bar redrawn in place with counts, rate and
 * time left; otherwise (a pipe, a CI log) a plain line every few seconds, so logs stay readable.
 */

export const DEFAULT_PROGRESS_LINE_INTERVAL_MS = 5_000
const REDRAW_MS = 100
const BAR = 24

export interface ProgressStream {
  write: (chunk: string) => unknown
  isTTY?: boolean
  columns?: number
}

export interface ProgressReporter {
  /** Reports `done` of `total` (0 when unknown) in `phase`. */
  update: (phase: string, done: number, total: number) => void
  /** Ends the current phase (a last plain line when one was printed; the bar is cleared). */
  finish: () => void
}

export interface ProgressOptions {
  /** Prefix of every line, e.g. `verify`. */
  label: string
  /** Plain lines (not a terminal): at most one per this many ms. Default 5 000. */
  lineIntervalMs?: number
  /** Clock, ms. Default performance.now. */
  now?: () => number
}

/** A reporter writing to `stream`; a no-op one when `enabled` is false. */
export function createProgress (stream: ProgressStream, options: ProgressOptions, enabled = true): ProgressReporter {
  if (!enabled) return { update: () => {}, finish: () => {} }
  const now = options.now ?? (() => performance.now())
  const tty = stream.isTTY === true
  const lineInterval = options.lineIntervalMs ?? DEFAULT_PROGRESS_LINE_INTERVAL_MS
  let phase = ''
  let phaseStart = 0
  let startDone = 0
  let last = { done: 0, total: 0 }
  let lastDraw = -Infinity
  let printed = false
  let drawn = false

  const text = (done: number, total: number): string => {
    const seconds = Math.max((now() - phaseStart) / 1000, 1e-3)
    // Work reported before the first update of the phase is not part of the measured span.
    const rate = Math.max(done - startDone, 0) / seconds
    const count = total > 0 ? `${fmt(done)}/${fmt(total)}` : fmt(done)
    const eta = total > 0 && rate > 0 && done < total ? `, ${fmtSeconds((total - done) / rate)} left` : ''
    return `${options.label}: ${phase} ${count}, ${fmt(Math.round(rate))}/s${eta}`
  }
  const end = (): void => {
    if (phase === '') return
    if (tty && drawn) stream.write('\r\x1b[K')
    else if (!tty && printed) stream.write(`${text(last.done, last.total)} (done)\n`)
    phase = ''
    printed = false
    drawn = false
  }
  return {
    update (p, done, total) {
      if (p !== phase) {
        end()
        phase = p
        phaseStart = now()
        startDone = done
        lastDraw = tty ? -Infinity : phaseStart
      }
      last = { done, total }
      const t = now()
      if (tty) {
        if (t - lastDraw < REDRAW_MS && done < total) return
        lastDraw = t
        const filled = total > 0 ? Math.round((Math.min(done, total) / total) * BAR) : 0
        const bar = total > 0 ? `[${'#'.repeat(filled)}${'.'.repeat(BAR - filled)}] ` : ''
        const line = `${bar}${text(done, total)}`
        stream.write(`\r\x1b[K${line.slice(0, Math.max((stream.columns ?? 100) - 1, 20))}`)
        drawn = true
      } else if (t - lastDraw >= lineInterval) {
        lastDraw = t
        stream.write(text(done, total) + '\n')
        printed = true
      }
    },
    finish: end
  }
}

function fmt (n: number): string {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ' ')
}

function fmtSeconds (s: number): string {
  if (s < 90) return `${Math.ceil(s)} s`
  if (s < 5400) return `${Math.round(s / 60)} min`
  return `${(s / 3600).toFixed(1)} h`
}
