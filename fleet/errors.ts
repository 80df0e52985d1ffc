/**
 * Errors of the fleet CLI (`provenance-fleet`). Chain failures keep the contracts part's
 * RegistryError codes (REGISTRY_REVERTED, REGISTRY_UNAUTHORIZED, …) with an explained message;
 * key and config problems are common's SECRET_* codes (exit 78).
 */
import { ProvenanceError } from '../protocol/errors.js'

/** Codes of the fleet part (listed in docs/ERRORS.md). */
export type FleetErrorCode =
  /** An input file (enrollment request, model, policy) cannot be read. */
  | 'FLEET_FILE_UNREADABLE'
  /** An output file (policy envelope, publisher key) cannot be written, or would overwrite a key. */
  | 'FLEET_FILE_UNWRITABLE'
  /** There is no contract at the registry address on this chain. */
  | 'FLEET_NO_REGISTRY'
  /** A Mosquitto password or ACL file exists but is not in the format the CLI writes and reads. */
  | 'BROKER_FILE_INVALID'
  /** A name cannot be a Mosquitto user (it holds ':' or does not match the device id pattern). */
  | 'BROKER_USERNAME_INVALID'
  /** The broker could not be reached, refused the credentials, or refused to take the message. */
  | 'MQTT_PUBLISH_FAILED'
  /** `device register --require-attestation` with an enrollment that carries no TPM key attestation. */
  | 'ENROLLMENT_NOT_ATTESTED'

export class FleetError extends ProvenanceError<FleetErrorCode> {}
