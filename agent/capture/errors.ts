/**
 * Errors of the device's incident-capture store (frozen capture files under `<stateDir>/captures/`),
 * with stable codes. Malformed capture bytes are the protocol's CaptureError.
 */
import { ProvenanceError } from '../../protocol/errors.js'

export type CaptureStoreErrorCode =
  /** A capture name that is not one the ring writes (`<15 digits>-<16 hex>.capture`): never a path. */
  | 'CAPTURE_NAME_INVALID'
  /** No frozen capture of that name. */
  | 'CAPTURE_NOT_FOUND'
  /** The captures folder or a capture file could not be read (permissions, not a file, too large). */
  | 'CAPTURE_READ_FAILED'
  /** Writing a frozen capture failed (disk full, permissions); the runs stay in the ring. */
  | 'CAPTURE_WRITE_FAILED'

export class CaptureStoreError extends ProvenanceError<CaptureStoreErrorCode> {}
