/**
 * The reason codes of a verdict: why a record (named by its seq) or the bundle as a whole fails,
 * or deserves a warning. Stable API, like error codes: tools and reports branch on them; messages
 * are for humans. Chain reasons are protocol/chain.ts's, unchanged.
 */
import type { ChainFailureReason } from '../../protocol/index.js'

/** Reasons that make a verdict invalid. */
export type FailureReason =
  | ChainFailureReason
  /** The record's bytes are not a well-formed envelope (base64, CBOR or record fields). */
  | 'record-malformed'
  /** The record's device time is at or after the device's revocation. */
  | 'key-revoked'
  /** No inclusion proof for the record: it is not (yet) in an anchored batch. */
  | 'record-not-anchored'
  /** The proof text is malformed, or its shape does not fit the anchored tree size. */
  | 'proof-invalid'
  /** The proof, checked against the anchored size, leads to another root than the anchored one. */
  | 'root-mismatch'
  /** The proof's root is not anchored (offline: not among the bundle's anchors; online: not on chain). */
  | 'root-not-anchored'
  /** Anchoring facts disagree: bundle vs chain, or the proof's checkpoint/extra vs the anchor, or the record time vs the batch's range. */
  | 'anchor-mismatch'
  /** The model hash is not in the registry. */
  | 'model-unknown'
  /** The registry revoked the model. */
  | 'model-revoked'
  /** The model-load record's manifest hash differs from the registered one. */
  | 'manifest-mismatch'
  /** Online: the bundle's key history or revocation differs from the registry's. */
  | 'key-mismatch'
  /** Online: the bundle's model facts differ from the registry's. */
  | 'model-mismatch'
  /** Online: the registry does not know the device. */
  | 'device-unknown'
  /** Online: the bundle's block (number or hash) is not on the node's chain. */
  | 'chain-mismatch'
  /** Nothing to judge: no record in the bundle (or in the window). */
  | 'no-records'
  /** The proof's checkpoint carries a note signature that fails: a bad signature by a gateway key, one by no gateway key the bundle names, or malformed signature lines. */
  | 'checkpoint-signature-invalid'
  /** Online: a gateway key of the bundle is not among the keys registered on chain under its gateway id. */
  | 'gateway-key-mismatch'
  /** A pruning statement that is malformed, not signed by a gateway key of the bundle, for another device, or whose commitment (checkpoint, anchor) contradicts it. */
  | 'pruning-invalid'
  /** A shredding statement that is malformed, for another device, or not signed by the device key valid at its time. */
  | 'shredding-invalid'
  /** Online: the bundle stops before the device's tip anchored on chain (PROTOCOL.md §7.10); `seq`..`lastSeq` are missing. */
  | 'incomplete'
  /** Online: the tip proof is malformed, of another device, not anchored, or does not lead to the anchored tip root. */
  | 'tip-proof-invalid'
  /** Online: the anchored tip contradicts the bundle (another record at the tip's seq, or a record proven in an earlier batch beyond it). */
  | 'tip-mismatch'

/** Reasons that are reported but leave the verdict valid. */
export type WarningReason =
  /** The registry deprecated the model. */
  | 'model-deprecated'
  /** The model is registered but was never approved. */
  | 'model-not-approved'
  /** A key-rotation record names a key (or start time) the registry does not list. */
  | 'rotation-unregistered'
  /** With `allowUnanchored`: a record not (yet) in an anchored batch. */
  | 'record-not-anchored'
  /** Online: the node could not serve state at the bundle's block; facts were compared at the latest block. */
  | 'facts-not-historic'
  /** The proof's checkpoint is not signed (a proof from before signed checkpoints), or the bundle names no gateway key to check it with. */
  | 'checkpoint-unsigned'
  /** Online: the registry knows no key under a gateway id of the bundle: its checkpoint signatures cannot be tied to the chain. */
  | 'gateway-key-unregistered'
  /** A valid pruning statement that no anchored checkpoint of the bundle commits to yet (the gateway seals it with its next batch). */
  | 'pruning-uncommitted'

export type FindingReason = FailureReason | WarningReason

/** One reason, at one record when it concerns one. */
export interface Finding {
  reason: FindingReason
  /** The record's seq (for `seq-gap`, the first missing seq; for `record-malformed`, inferred from its neighbours). */
  seq?: number
  /** For `seq-gap`: the last missing seq. */
  lastSeq?: number
  /** Position of the record in the bundle's `records`. */
  index?: number
  message: string
}

/** One line per reason, for help texts, docs and the report. */
export const REASON_DESCRIPTIONS: Readonly<Record<FindingReason, string>> = {
  'device-mismatch': 'a record of another device',
  'unknown-key': 'no key of the device is valid at the record\'s time',
  'bad-signature': 'the signature does not verify (altered bytes, foreign or forged key)',
  'seq-reuse': 'seq does not advance: duplicate, replay or reordering',
  'boot-went-back': 'boot counter smaller than before',
  'boot-mismatch': 'boot counter changed without a boot record, or a boot record that does not advance it',
  'prev-hash-mismatch': 'prev is not the hash of the previous record',
  'bad-genesis': 'seq 0 with a prev that is not zeros',
  'bad-gap': 'a gap record that does not settle a hole',
  'seq-gap': 'records missing and no gap record accounts for them (deleted)',
  'record-malformed': 'the record bytes are not a well-formed envelope',
  'key-revoked': 'signed at or after the device\'s revocation',
  'record-not-anchored': 'no inclusion proof: not in an anchored batch',
  'proof-invalid': 'malformed proof, or one that does not fit the anchored tree size',
  'root-mismatch': 'the inclusion proof leads to another root than the anchored one',
  'root-not-anchored': 'the proof\'s root is not anchored',
  'anchor-mismatch': 'anchoring facts disagree (bundle, proof, chain or batch time range)',
  'model-unknown': 'the model hash is not registered',
  'model-revoked': 'the model was revoked',
  'manifest-mismatch': 'the loaded model\'s manifest differs from the registered one',
  'key-mismatch': 'the bundle\'s key history differs from the registry\'s',
  'model-mismatch': 'the bundle\'s model facts differ from the registry\'s',
  'device-unknown': 'the registry does not know the device',
  'chain-mismatch': 'the bundle\'s block is not on this chain',
  'no-records': 'nothing to judge',
  'checkpoint-signature-invalid': 'the checkpoint\'s note signature fails or is by no known gateway key',
  'gateway-key-mismatch': 'the bundle\'s gateway key is not the one registered on chain',
  'pruning-invalid': 'a pruning statement that is forged, foreign or contradicted by its commitment',
  'shredding-invalid': 'a shredding statement that is forged or foreign',
  'pruning-uncommitted': 'a pruning statement not yet committed by an anchored checkpoint (warning)',
  incomplete: 'the bundle stops before the device\'s anchored tip: records missing at the end',
  'tip-proof-invalid': 'the tip proof is malformed, of another device, not anchored or forged',
  'tip-mismatch': 'the anchored tip contradicts the bundle\'s records',
  'checkpoint-unsigned': 'the checkpoint is unsigned, or no gateway key to check it (warning)',
  'gateway-key-unregistered': 'the gateway\'s log key is not registered on chain (warning)',
  'model-deprecated': 'the model was deprecated (warning)',
  'model-not-approved': 'the model was registered but never approved (warning)',
  'rotation-unregistered': 'a key rotation the registry does not list (warning)',
  'facts-not-historic': 'facts compared at the latest block, not the bundle\'s (warning)'
}
