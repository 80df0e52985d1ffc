/**
 * Why input was quarantined: stable codes that metrics, the API and the docs use. Input from the
 * network is never trusted and never stops ingest; what fails any check lands here with its reason.
 */

export const QUARANTINE_REASONS = [
  /** The topic is not `prov/v1/<valid device id>/records`. */
  'bad-topic',
  /** The payload is above `maxPayloadBytes`. */
  'payload-too-large',
  /** The payload is not a canonical CBOR array of byte strings (or has too many envelopes). */
  'payload-malformed',
  /** An envelope or the record inside it does not decode (docs/PROTOCOL.md). */
  'record-malformed',
  /** The record's device id is not the device of the topic it came on. */
  'topic-mismatch',
  /** The registry does not know the device. */
  'unknown-device',
  /** The device was revoked at or before the record's time. */
  'device-revoked',
  /** The device had no key yet at the record's time. */
  'no-key',
  /** The signature does not verify under the device key valid at the record's time. */
  'bad-signature',
  /** TPM-rooted device (docs/PROTOCOL.md §13): a record of a boot no certification covers. */
  'uncertified-key',
  /** A boot record whose certification is not by the registered identity key, or whose signature fails. */
  'bad-certification',
  /** A valid certification of another boot (or device) carried by this boot record. */
  'certification-replayed',
  /** A record's device time outside its boot key's certified validity. */
  'certification-expired',
  /** A different, validly signed record for a seq already stored or waiting (equivocation). */
  'seq-reuse',
  /** Chain rules (protocol/chain.ts), checked when the record's turn comes in seq order. */
  'prev-hash-mismatch',
  'boot-went-back',
  'boot-mismatch',
  'bad-gap',
  'bad-genesis'
] as const

export type QuarantineReason = typeof QUARANTINE_REASONS[number]
