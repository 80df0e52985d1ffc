/**
 * Model identity for the agent: load a model once, hash the bytes that run, and describe its
 * weights tensor by tensor so versions can be compared.
 */

export { ModelError, type ModelErrorCode } from '../../protocol/model-errors.js'
export {
  buildModelManifest,
  diffManifests,
  encodeManifestText,
  hashManifest,
  nameOnnxDtype,
  MAX_SUBGRAPH_DEPTH,
  MAX_TENSOR_RANK,
  type BuildManifestOptions,
  type ManifestDiff,
  type ManifestTensor,
  type ManifestValue,
  type ModelManifest
} from '../../protocol/model-manifest.js'
export {
  loadModel,
  identifyModel,
  describeInputs,
  type ModelInputInfo,
  hashModelFile,
  DEFAULT_EXECUTION_PROVIDERS,
  DEFAULT_HASH_CHUNK_BYTES,
  DEFAULT_LOAD_CHUNK_BYTES,
  DEFAULT_MAX_BYTES,
  type HashModelFileOptions,
  type IdentifiedModel,
  type LoadedModel,
  type LoadModelOptions,
  type ModelSession
} from './load.js'
