/**
 * Errors of the fleet gateway, with stable codes (docs/GATEWAY.md §Errors). Bad input from
 * devices is never an error here: it is quarantined with a reason (see ingest/quarantine.ts).
 */
import { ProvenanceError } from '../protocol/errors.js'

export type GatewayErrorCode =
  /** The LevelDB of the state folder, or the PostgreSQL database, could not be opened. */
  | 'STORE_OPEN_FAILED'
  /** The state folder is open in another process (one gateway per folder). */
  | 'STORE_LOCKED'
  /** A stored value is not what this code writes (wrong folder, torn disk, another version). */
  | 'STORE_CORRUPT'
  /** A durable write failed: the gateway stops ingest, as it cannot go on consistently. */
  | 'STORE_WRITE_FAILED'
  /** Write after close. */
  | 'STORE_CLOSED'
  /** PostgreSQL store: the database cannot be reached or read now (writes are retried, reads fail with this). */
  | 'STORE_UNAVAILABLE'
  /** PostgreSQL store: the database schema is newer than this gateway, or a migration failed. */
  | 'STORE_MIGRATION_FAILED'
  /** The sequencer lease moved to another process: this one's sequencer writes are refused (fencing). */
  | 'LEASE_LOST'
  /** No connection to the broker in the time asked for (waitForBroker). */
  | 'BROKER_FAILED'
  /** A device key could not be read from the registry and none is cached (the record is left for the device to resend). */
  | 'KEY_LOOKUP_FAILED'
  /** Registry look-ups are rate limited now and nothing is cached for the device (the record is left for the device to resend). */
  | 'KEY_LOOKUP_LIMITED'
  /** The HTTP API could not listen on its host and port. */
  | 'HTTP_LISTEN_FAILED'
  /** The HTTP API token file cannot be read or created, or holds no usable token. */
  | 'HTTP_TOKEN_UNUSABLE'
  /** The gateway is not running (start twice, or a call after stop). */
  | 'GATEWAY_STOPPED'
  /** The gateway's log key file could not be read or written (missing without create, or an fs error). */
  | 'LOG_KEY_UNREADABLE'
  /** The log key file is not a key file this code writes. */
  | 'LOG_KEY_INVALID'
  /** The log key file may be read by group or others (it must be 0600). */
  | 'LOG_KEY_INSECURE'
  /** Pruning refused: a record of the range is not yet in a batch whose anchor is confirmed. */
  | 'PRUNE_NOT_ANCHORED'
  /** Pruning refused: a record of the range is in a batch sealed within the retention period. */
  | 'PRUNE_BEFORE_RETENTION'
  /** Pruning refused: no stored record of the device in the range asked for. */
  | 'PRUNE_NOTHING'

export class GatewayError extends ProvenanceError<GatewayErrorCode> {}
