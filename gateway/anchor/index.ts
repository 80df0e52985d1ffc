/**
 * Public API of the gateway's anchoring: the Anchorer that puts sealed batch roots on the
 * ProvenanceRegistry exactly once, its options, receipts and errors (docs/ANCHORING.md).
 */
export {
  Anchorer,
  DEFAULT_CONFIRMATIONS,
  DEFAULT_POLL_INTERVAL_MS,
  DEFAULT_RESEND_AFTER_MS,
  DEFAULT_RETRY_INITIAL_MS,
  DEFAULT_RETRY_MAX_MS,
  DEFAULT_RPC_TIMEOUT_MS,
  DEFAULT_FEE_BUMP_PERCENT
} from './anchorer.js'
export { AnchorError } from './errors.js'
export type { AnchorErrorCode } from './errors.js'
export type { SealedBatch, AnchorReceipt, AnchorState, AnchorerOptions } from './types.js'
