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

export class ForensicsError extends ProvenanceError<ForensicsErrorCode> {}
