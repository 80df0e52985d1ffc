/**
 * Errors of replay that stop it as a whole (a verdict about one entry is never an error): files
 * that cannot be read, records that do not parse, a model folder that cannot be listed.
 * Malformed capture bytes are the protocol's CaptureError (`CAPTURE_MALFORMED`, `CAPTURE_TOO_LARGE`).
 */
import { ProvenanceError } from '../../protocol/errors.js'

export type ReplayErrorCode =
  /** A capture, records or bundle file could not be read (missing, not a file, larger than allowed). */
  | 'REPLAY_FILE_UNREADABLE'
  /** The records given are not signed record envelopes (bad CBOR, bad record). */
  | 'REPLAY_RECORDS_INVALID'
  /** The model folder could not be listed. */
  | 'REPLAY_MODELS_UNREADABLE'

export class ReplayError extends ProvenanceError<ReplayErrorCode> {}
