/**
 * The protocol every part shares: records, canonical CBOR, Ed25519, tensor commitments,
 * hash chains and Merkle trees. Pure code, no I/O.
 */
export { ProvenanceError, ProtocolError, isErrorCode, type ProtocolErrorCode } from './errors.js'
export { encodeCanonical, encodeCanonicalDirect, decodeCanonical, type CborValue, type DecodeLimits } from './cbor.js'
export { sha256, toHex, fromHex, equalBytes, ZERO_HASH, HASH_BYTES } from './hash.js'
export {
  createSigner, generateSeed, verifySignature, publicKeyFromSeedNoble, signNoble,
  PUBLIC_KEY_BYTES, SEED_BYTES, SIGNATURE_BYTES, type Signer, type VerifierBackend
} from './ed25519.js'
export { commitTensor, commitDigest, digestTensor, deriveSalt, type TensorDigest, TENSOR_DTYPES, SALT_BYTES, type TensorDtype, type TensorLike } from './tensor.js'
export {
  encodeRecord, decodeRecord, decodeEnvelope, signRecord, verifyRecordSignature, assertRecord, concat,
  RECORD_VERSION, RECORD_SIGNING_PREFIX, RECORD_KINDS, POLICY_VERDICTS, LIMITS, DEVICE_ID_PATTERN,
  type RecordKind, type PolicyVerdict, type TensorCommitment, type RecordBody, type BootBody, type ModelLoadBody,
  type InferenceBody, type GapBody, type KeyRotationBody, type ShutdownBody, type ProvenanceRecord, type SignedRecord
} from './record.js'
export {
  ChainVerifier, verifyChain, assertChain, fixedKey,
  type ChainFailure, type ChainFailureReason, type ChainPoint, type ChainResult, type KeyLookup, type ChainVerifierOptions
} from './chain.js'
export {
  hashLeaf, hashChildren, emptyRoot, computeRoot, MerkleBuilder, MerkleTree, proveInclusion, proveAllInclusions,
  proveConsistency, verifyInclusion, isValidInclusion, verifyConsistency, isValidConsistency,
  inclusionProofLength, consistencyProofLength
} from './merkle.js'
export {
  PROOF_HEADER, MAX_CHECKPOINT_BYTES, MAX_PROOF_BYTES, formatCheckpoint, parseCheckpoint, formatProof, parseProof, verifyProof,
  type Checkpoint, type TlogProof, type ProofExtra
} from './checkpoint.js'
export {
  TOPIC_ROOT, MAX_BATCH_RECORDS, MAX_BATCH_BYTES, deviceTopic, topicFilter, parseTopic,
  encodeRecordBatch, decodeRecordBatch, type TopicKind
} from './wire.js'
export {
  AckError, ACK_FORMAT, ACK_SIGNING_PREFIX, MAX_ACK_ENVELOPE_BYTES, assertAckStatement, encodeAckStatement, decodeAckStatement,
  signAck, decodeAckEnvelope, verifyAck, type AckErrorCode, type Ack, type AckStatement, type SignedAck, type VerifyAckOptions
} from './ack.js'
export {
  PolicyError, POLICY_FORMAT, POLICY_SIGNING_PREFIX, POLICY_MODES, POLICY_LIMITS, assertPolicy, normalizePolicy, encodePolicy,
  decodePolicy, signPolicy, decodePolicyEnvelope, verifyPolicy, type PolicyErrorCode, type PolicyMode, type ModelPolicy, type SignedPolicy
} from './policy.js'
export {
  CaptureError, CAPTURE_FORMAT, CAPTURE_LIMITS, CAPTURE_HEADER_BYTES, DEFAULT_CAPTURE_MAX_BYTES, captureTensor, tensorOfCaptured,
  commitCapturedTensor, sizeCaptureEntry, encodeCapture, decodeCapture, assertCapture,
  type CaptureErrorCode, type CapturedTensor, type CaptureEntry, type Capture, type DecodeCaptureOptions
} from './capture.js'
export {
  BundleError, BUNDLE_FORMAT, BUNDLE_LIMITS, BUNDLE_MODEL_STATUSES, assertBundle, encodeBundle, decodeBundle, decodeBundleRecord,
  encodeBundleRecord, type BundleErrorCode, type Bundle, type BundleDevice, type BundleKey, type BundleChain, type BundleModel,
  type BundleModelStatus, type BundleProof, type BundleAnchor
} from './bundle.js'
