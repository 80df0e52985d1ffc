/**
 * Errors of the on-device agent, with stable codes (docs/ERRORS.md). Model loading has its own
 * class in agent/model/errors.ts.
 */
import { ProvenanceError } from '../protocol/errors.js'

export type AgentErrorCode =
  | 'KEY_UNREADABLE'
  | 'KEY_INVALID'
  | 'KEY_INSECURE'
  | 'LOG_OPEN_FAILED'
  | 'LOG_LOCKED'
  | 'LOG_CORRUPT'
  | 'LOG_CLOSED'
  | 'LOG_WRITE_FAILED'
  | 'LOG_BUDGET_EXCEEDED'
  | 'INPUT_INVALID'
  | 'INFERENCE_FAILED'
  | 'AGENT_STOPPED'

export class AgentError extends ProvenanceError<AgentErrorCode> {}
