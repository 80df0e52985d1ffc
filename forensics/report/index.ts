/**
 * The single-file HTML report of an incident (inline CSS and SVG, no script, no external resource).
 */
export { renderReport, REPORT_MAX_FINDING_ROWS, DEFAULT_REPORT_PROOFS, type ReportInput } from './render-report.js'
export { renderTimelineChart, pickModelColor, MODEL_COLORS, type ChartMarker } from './timeline-chart.js'
export { escapeHtml } from './html.js'
