/**
 * The auditor's export (EU AI Act record-keeping): fleet bundles of a period verified and mapped
 * to the articles, oversight records judged across bundles, as JSON and one HTML page.
 */
export {
  buildCompliance, COMPLIANCE_FORMAT, COMPLIANCE_PROFILE, COMPLIANCE_FAILURES, COMPLIANCE_REASON_DESCRIPTIONS, MIN_RETENTION_MS, MAX_EVENTS_PER_ARTICLE, NOT_COVERED,
  type ComplianceOptions, type ComplianceReport, type ComplianceDevice, type ComplianceFinding, type ComplianceModel, type ComplianceReason,
  type OversightAction, type UseSession, type RetentionStatus, type ArticleEvent
} from './build-compliance.js'
export { renderCompliance, COMPLIANCE_MAX_ROWS } from './render-compliance.js'
