/**
 * Errors of model loading and identity: every failure to read, parse, hash or open a model file is
 * a ModelError with one of these stable codes (branch on `code`, never on the message).
 */

import { ProvenanceError } from './errors.js'

/**
 * Codes of model loading (agent/model) and model identity (protocol/model-manifest.ts, which the
 * fleet CLI uses too). Every code is listed in docs/ERRORS.md.
 */
export type ModelErrorCode =
  /** The file system refused: missing file, permission, a directory or device, changed while read. */
  | 'MODEL_UNREADABLE'
  /** The file is larger than the configured `maxBytes` (checked with fstat before reading). */
  | 'MODEL_TOO_LARGE'
  /** The bytes are not an ONNX ModelProto at all (empty, other format, other protobuf message). */
  | 'MODEL_NOT_ONNX'
  /** The bytes start like an ONNX model but are truncated, undecodable or internally inconsistent. */
  | 'MODEL_CORRUPT'
  /** A tensor refers to an external data file, whose bytes the file hash would not cover. */
  | 'MODEL_EXTERNAL_DATA'
  /** onnxruntime refused to create a session with every execution provider tried. */
  | 'MODEL_SESSION_FAILED'

export class ModelError extends ProvenanceError<ModelErrorCode> {}
