/**
 * Replay for investigators: re-run the raw inputs of an incident capture through the model its
 * records name by hash, and check inputs, outputs and model against the signed commitments.
 */
export {
  replayCapture, REPLAY_VERDICTS,
  type ReplayOptions, type ReplayReport, type ReplaySummary, type EntryReport, type ModelReport,
  type ReplayComparison, type ReplayFinding, type ReplayFindingCode, type ReplayVerdict
} from './replay.js'
export { checkTolerance, compareTensors, type ReplayTolerance, type TensorComparison } from './compare.js'
export { ModelSource, DEFAULT_REPLAY_MAX_MODEL_BYTES, type ModelLookup, type ModelSourceOptions } from './model-source.js'
export { runReplayCli, decodeRecordsFile, formatReport, REPLAY_USAGE, MAX_RECORDS_FILE_BYTES, type ReplayCliIo } from './cli.js'
export { ReplayError, type ReplayErrorCode } from './errors.js'
