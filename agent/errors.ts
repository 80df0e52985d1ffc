/**
 * Errors of the on-device agent, with stable codes (docs/ERRORS.md). Model loading has its own
 * class in agent/model/errors.ts.
 */
import { ProvenanceError } from '../protocol/errors.js'

export type AgentErrorCode =
  /** The key file cannot be read (missing, a directory, permissions). */
  | 'KEY_UNREADABLE'
  /** The key file's content is not a key file of this version. */
  | 'KEY_INVALID'
  /** The key file may be read by group or others: chmod 600. */
  | 'KEY_INSECURE'
  /** The record log's LevelDB folder cannot be opened. */
  | 'LOG_OPEN_FAILED'
  /** Another process holds the record log open (another agent, or the daemon). */
  | 'LOG_LOCKED'
  /** The record log's head does not match its records, or a stored record is unreadable. */
  | 'LOG_CORRUPT'
  /** The record log is closed. */
  | 'LOG_CLOSED'
  /** A write to the record log failed; its records were not kept, the chain rewound, and the log reopened and checked its head before writing again. */
  | 'LOG_WRITE_FAILED'
  /** Fail-closed budget: the log is full until the gateway acknowledges records. */
  | 'LOG_BUDGET_EXCEEDED'
  /** The record log's disk is full: fail-closed refuses records until its space reserve can be taken again (fail-open only when even its gap record cannot be written). */
  | 'LOG_DISK_FULL'
  /** The record log could not be reopened after a write error; appends are refused until it can be. */
  | 'LOG_UNAVAILABLE'
  /** The feeds of a run do not match the model's inputs. */
  | 'INPUT_INVALID'
  /** onnxruntime refused the run (wrong type or shape); nothing was recorded. */
  | 'INFERENCE_FAILED'
  /** The agent is stopped. */
  | 'AGENT_STOPPED'

export class AgentError extends ProvenanceError<AgentErrorCode> {}
