/**
 * Errors of the investigator's tools (verify, timeline, export, report, CLI). A verdict that finds
 * tampering is not an error: it is a result with reason codes (verify/reasons.ts). These codes are
 * for the cases where no verdict can be given at all.
 */
import { ProvenanceError } from '../protocol/errors.js'

/** Codes of the forensics part (docs/FORENSICS.md §Error codes). Stable API. */
export type ForensicsErrorCode =
  /** The JSON-RPC node could not be read (transport, timeout, an answer the ABI does not explain). */
  | 'RPC_FAILED'
  /** The node serves another chain than the bundle names. */
  | 'CHAIN_MISMATCH'
  /** No contract at the registry address. */
  | 'REGISTRY_NOT_FOUND'
  /** Export: the registry does not know the device. */
  | 'DEVICE_NOT_REGISTERED'
  /** Export: the gateway could not be reached or answered with an error status. */
  | 'GATEWAY_FAILED'
  /** Export: the gateway answered something its HTTP contract does not allow. */
  | 'GATEWAY_BAD_RESPONSE'
  /** Export: no record of the device in the time window. */
  | 'EXPORT_EMPTY'
  /** CLI: a file could not be read or written. */
  | 'IO_FAILED'
  /** Lineage: a symbolic link in a hashed tree without --follow-symlinks, or a link cycle (docs/LINEAGE.md §1.3). */
  | 'LINEAGE_SYMLINK'
  /** Lineage: a file of a hashed tree could not be opened or read (permissions, vanished, changed while hashed). */
  | 'LINEAGE_UNREADABLE'
  /** Lineage: a tree entry is neither a regular file nor a directory (FIFO, socket, device). */
  | 'LINEAGE_NOT_REGULAR_FILE'
  /** Lineage: a path given to hash lies outside the root it is named against. */
  | 'LINEAGE_PATH_OUTSIDE_ROOT'
  /** Lineage: a manifest is not a valid OMS v1.0 statement (truncated, garbage, bad field, root digest mismatch). */
  | 'MANIFEST_INVALID'
  /** Lineage: a manifest or statement file exceeds its size limit (checked before reading). */
  | 'LINEAGE_INPUT_TOO_LARGE'
  /** Lineage: a training-run envelope or statement is malformed (not DSSE, not in-toto v1, bad predicate). */
  | 'STATEMENT_INVALID'
  /** Lineage: hyperparameters or another canonical-JSON value hold what RFC 8785 cannot encode. */
  | 'CANONICAL_JSON_INVALID'
  /** Lineage: a trainer key file is not a 32-byte Ed25519 seed (64 hex digits). */
  | 'TRAINER_KEY_INVALID'
  /** Lineage: a data-captures file is malformed (not JSON, wrong format, bad entry) (docs/LINEAGE.md §5). */
  | 'CAPTURES_INVALID'
  /** Federated: a model is not the round's logistic-regression ONNX (no float32 initializers W [d, 2], b [2]). */
  | 'FL_MODEL_INVALID'
  /** Federated: a contributions file or an update inside it is malformed (docs/LINEAGE.md §6). */
  | 'FL_CONTRIBUTIONS_INVALID'
  /** Federated: no contribution of the round was accepted, so there is nothing to aggregate. */
  | 'FL_NO_ACCEPTED_CONTRIBUTION'
  /** Trace: the bundle has no decodable record with the seq asked for. */
  | 'TRACE_RECORD_UNKNOWN'

export class ForensicsError extends ProvenanceError<ForensicsErrorCode> {}
