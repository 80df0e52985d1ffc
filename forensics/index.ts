/**
 * The investigator's tools: verify an incident bundle end to end (offline or against the chain),
 * build a device's timeline, export a bundle from a gateway and the chain, and render an HTML
 * report. The bundle format itself is protocol/bundle.ts. Replay of captured inputs is in replay/.
 */
export { ForensicsError, type ForensicsErrorCode } from './errors.js'
export {
  verifyBundle, createKeyLookup, findKeyDifference, REASON_DESCRIPTIONS, DEFAULT_MAX_FINDINGS,
  type VerifyOptions, type VerifyProgress, type VerifyCounts, type Verdict, type Finding, type FindingReason, type FailureReason, type WarningReason
} from './verify/index.js'
export {
  buildTimeline, chooseInterval, DEFAULT_TIMELINE_BUCKETS, MAX_TIMELINE_BUCKETS, MAX_TIMELINE_DECISIONS,
  type Timeline, type TimelineModel, type TimelineOptions
} from './timeline/index.js'
export {
  exportBundle, GatewayClient, DEFAULT_EXPORT_CONCURRENCY, DEFAULT_GATEWAY_TIMEOUT_MS, DEFAULT_PAGE_LIMIT,
  type ExportOptions, type ExportProgress, type GatewayClientOptions, type RecordPage
} from './export/index.js'
export { renderReport, renderTimelineChart, escapeHtml, REPORT_MAX_FINDING_ROWS, DEFAULT_REPORT_PROOFS, type ReportInput } from './report/index.js'
export {
  openChainReader, readDeviceFacts, readModelFacts, readAnchorFacts, readLatestBlock, readBlockHash,
  type ChainReader, type ChainReaderOptions, type BlockTag
} from './chain/index.js'
export {
  buildCompliance, renderCompliance, COMPLIANCE_FORMAT, COMPLIANCE_REASON_DESCRIPTIONS, NOT_COVERED,
  type ComplianceOptions, type ComplianceReport, type ComplianceReason, type OversightAction, type UseSession, type RetentionStatus
} from './compliance/index.js'
export { runCli, formatVerdict, formatTimeline, RPC_URL_ENV, type CliIo } from './cli.js'
