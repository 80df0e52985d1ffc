/**
 * Errors of the gateway's anchoring: stable codes (docs/ANCHORING.md lists when each occurs).
 * Chain-side codes are also what `onChainError` reports to metrics.
 */
import { ProvenanceError } from '../../protocol/errors.js'

export type AnchorErrorCode =
  /** enqueue: the id is already queued with another root/fields, or the root belongs to another id. */
  | 'ANCHOR_CONFLICT'
  /** enqueue: the id skips ahead (ids are consecutive from 1). */
  | 'ANCHOR_OUT_OF_ORDER'
  /** The anchorer is closed (enqueue, start after close). */
  | 'ANCHOR_CLOSED'
  /** open: the state folder is held by another process. */
  | 'ANCHOR_LOCKED'
  /** open: LevelDB could not be opened or read. */
  | 'ANCHOR_OPEN_FAILED'
  /** open: a stored entry is not what this code writes. */
  | 'ANCHOR_STATE_CORRUPT'
  /** open/connect: the state folder belongs to another registry, chain or (with txs in flight) account. */
  | 'ANCHOR_STATE_MISMATCH'
  /** A durable write to the state folder failed; every later write fails too (common/level.ts): restart. */
  | 'ANCHOR_WRITE_FAILED'
  /** The RPC endpoint did not answer (refused, reset, timed out): retried with backoff. */
  | 'ANCHOR_RPC_UNREACHABLE'
  /** The node answered with an error that is not a contract revert: retried with backoff. */
  | 'ANCHOR_RPC_FAILED'
  /** No contract code at the registry address on this chain. */
  | 'ANCHOR_NO_CONTRACT'
  /** The signing account lacks ANCHORER_ROLE (AccessControlUnauthorizedAccount). */
  | 'ANCHOR_UNAUTHORIZED'
  /** The anchor call reverts (simulated or mined) for a reason other than an existing anchor. */
  | 'ANCHOR_REVERTED'
  /** The account cannot pay for gas. */
  | 'ANCHOR_INSUFFICIENT_FUNDS'
  /** The node refused a (re)broadcast for another reason (underpriced, pool full, …). */
  | 'ANCHOR_BROADCAST_FAILED'
  /** The nonce assigned to a batch was used by a transaction this anchorer did not sign. */
  | 'ANCHOR_NONCE_CONFLICT'
  /** A successful receipt without the expected Anchored event. */
  | 'ANCHOR_BAD_RECEIPT'

export class AnchorError extends ProvenanceError<AnchorErrorCode> {}
