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
  /** The subject key file is not one this code writes, or others may read it (chmod 600). */
  | 'SUBJECT_KEYS_INVALID'
  /** The subject's key was destroyed (crypto-shredding): its records cannot be opened, nor new ones salted. */
  | 'SUBJECT_SHREDDED'
  /** No record of this device was run for that subject. */
  | 'SUBJECT_UNKNOWN'

export class KeyError extends ProvenanceError<KeyErrorCode> {}
