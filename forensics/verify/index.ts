/**
 * Verification of an incident bundle, offline (its own facts, no network) or online (the chain).
 */
export {
  verifyBundle, DEFAULT_MAX_FINDINGS,
  type VerifyOptions, type VerifyProgress, type VerifyCounts, type Verdict, type PrunedRange, type ShreddedRange
} from './verify-bundle.js'
export { createKeyLookup, findKeyDifference } from './key-history.js'
export { REASON_DESCRIPTIONS, type FailureReason, type WarningReason, type FindingReason, type Finding } from './reasons.js'
