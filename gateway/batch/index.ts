/** Merkle batching of stored records, the anchored-seq bookkeeping for acks, and inclusion proofs. */
export { Batcher, DEFAULT_BATCH_MAX_RECORDS, DEFAULT_BATCH_MAX_AGE_MS, type BatcherOptions, type LeafPlace, type AppendLeaf } from './batcher.js'
export { AnchoredTracker } from './anchored-tracker.js'
export {
  ProofService, formatRecordProof, recordProofJson, anchorExtra, DEFAULT_PROOF_CACHE_BATCHES,
  type RecordProof, type ProofLookup, type AnchorReader
} from './proofs.js'
export { sealBatch, sealLeaves, type BatchHead } from './batcher.js'
export { Sequencer, DeferredBatcher, type LeafSink, type SequencerOptions } from './sequencer.js'
export { TipTracker, formatBatchTipProof, lookupTip, DEFAULT_TIP_SNAPSHOTS, type TipTrackerOptions, type TipLookup } from './tips.js'
export { TierTips, type TierTipsOptions } from './tier-tips.js'
