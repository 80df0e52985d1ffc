/**
 * Errors of device key rotation. Reading and creating the key file keeps AgentError's `KEY_*`
 * codes (agent/errors.ts); these are the codes rotation adds (docs/OPERATIONS.md §Agent).
 */
import { ProvenanceError } from '../../protocol/errors.js'

export type KeyErrorCode =
  /** The key-rotation record could not be written; the old key stays in force. */
  | 'KEY_ROTATION_FAILED'
  /** The key file holds a rotation that was interrupted; open it through KeyRing to finish or undo it. */
  | 'KEY_ROTATION_PENDING'

export class KeyError extends ProvenanceError<KeyErrorCode> {}
