/**
 * Public API of lineage: dataset and model-folder manifests (OpenSSF model-signing v1.0 layout),
 * DSSE-signed training-run statements and their checks. docs/LINEAGE.md.
 */
export { compareNames, compileIgnore, listTree, listFiles } from './tree.js'
export type { TreeFile, ListTreeOptions } from './tree.js'
export { hashRanges, DEFAULT_HASH_WORKERS, DEFAULT_BATCH_BYTES, DEFAULT_BATCH_RANGES } from './hash-pool.js'
export type { HashRange, RangeDigest, HashRangesOptions } from './hash-pool.js'
export {
  hashTree, encodeManifest, parseManifest, assertManifest, rootDigest, diffManifests, verifyTree, fileOfResource,
  IN_TOTO_STATEMENT_V1, OMS_PREDICATE_TYPE, DEFAULT_MANIFEST_MAX_BYTES, MAX_MANIFEST_RESOURCES
} from './manifest.js'
export type { Manifest, Resource, Serialization, HashTreeOptions, ManifestDiff } from './manifest.js'
export { canonicalJson, MAX_JSON_DEPTH } from './jcs.js'
export type { JsonValue } from './jcs.js'
export { pae, signEnvelope, parseEnvelope, verifyEnvelope, keyIdOf, statementHashOf, IN_TOTO_PAYLOAD_TYPE, DEFAULT_ENVELOPE_MAX_BYTES } from './dsse.js'
export type { DsseEnvelope, DsseSignature } from './dsse.js'
export {
  buildTrainingStatement, encodeStatement, signTrainingStatement, assertTrainingStatement, parseTrainingRun, checkTrainingRun,
  diffTrainingRuns, hyperparametersDigestOf, TRAINING_RUN_PREDICATE_TYPE
} from './training.js'
export type {
  TrainingStatement, TrainingRunPredicate, TrainingRunInput, DatasetRef, SignedTrainingRun, TrainingCheck, TrainingCheckReason, TrainingFacts, ValueChange
} from './training.js'
export { TRAINER_KEY_FILE_ENV } from './cli.js'
