/**
 * The protocol every part shares: records, canonical CBOR, Ed25519, tensor commitments,
 * hash chains, Merkle trees, signed notes and COSE receipts. Pure code, no I/O.
 */
export { ProvenanceError, ProtocolError, isErrorCode, type ProtocolErrorCode } from './errors.js'
export { encodeCanonical, encodeCanonicalDirect, decodeCanonical, decodeArrayPrefix, headLength as cborHeadLength, writeHead as writeCborHead, type CborValue, type DecodeLimits } from './cbor.js'
export { sha256, toHex, fromHex, equalBytes, ZERO_HASH, HASH_BYTES } from './hash.js'
export {
  createSigner, generateSeed, verifySignature, keyVerifier, publicKeyFromSeedNoble, signNoble,
  PUBLIC_KEY_BYTES, SEED_BYTES, SIGNATURE_BYTES, type Signer, type VerifierBackend
} from './ed25519.js'
export { commitTensor, commitDigest, digestTensor, canonicalTensor, type CanonicalTensor, deriveSalt, deriveSubjectSalt, deriveSubjectRef, SUBJECT_KEY_BYTES, type TensorDigest, TENSOR_DTYPES, SALT_BYTES, type TensorDtype, type TensorLike } from './tensor.js'
export {
  encodeRecord, decodeRecord, decodeEnvelope, decodePeekedEnvelope, peekEnvelope, signRecord, verifyRecordSignature, assertRecord, concat, commitSample, DATA_CAPTURE_DOMAIN,
  RECORD_VERSION, RECORD_SIGNING_PREFIX, RECORD_KINDS, POLICY_VERDICTS, LIMITS, DEVICE_ID_PATTERN,
  type RecordKind, type PolicyVerdict, type TensorCommitment, type RecordBody, type BootBody, type ModelLoadBody,
  type InferenceBody, type GapBody, type KeyRotationBody, type ShutdownBody, type PolicyBody, type DataCaptureBody, type ProvenanceRecord, type SignedRecord, type EnvelopeHead
} from './record.js'
export {
  KEY_CERTIFICATION_VERSION, KEY_CERTIFICATION_PREFIX, IDENTITY_KEY_ID_PREFIX, P256_PUBLIC_KEY_BYTES, P256_SIGNATURE_BYTES,
  MAX_KEY_CERTIFICATION_BYTES, identityKeyId, isP256PublicKey, encodeKeyCertification, decodeKeyCertification,
  keyCertificationMessage, normalizeP256Signature, verifyP256, checkKeyCertification, certifyRecordKey,
  type KeyCertification, type SignedKeyCertification, type CertificationProblem, type IdentitySigner
} from './identity.js'
export {
  OVERSIGHT_VERDICTS, SESSION_PHASES, type OversightBody, type OversightVerdict, type SessionBody, type SessionPhase
} from './record.js'
export {
  ChainVerifier, verifyChain, assertChain, fixedKey,
  type CertifiedKey, type ChainFailure, type ChainFailureReason, type ChainPoint, type ChainResult, type KeyLookup, type ChainVerifierOptions
} from './chain.js'
export {
  hashLeaf, hashChildren, emptyRoot, computeRoot, MerkleBuilder, MerkleTree, proveInclusion, proveAllInclusions,
  proveConsistency, verifyInclusion, InclusionChecker, isValidInclusion, verifyConsistency, isValidConsistency,
  inclusionProofLength, consistencyProofLength
} from './merkle.js'
export {
  PROOF_HEADER, MAX_CHECKPOINT_BYTES, MAX_PROOF_BYTES, formatCheckpoint, parseCheckpoint, formatProof, parseProof, verifyProof, ProofParser, decodeHashLine,
  type Checkpoint, type TlogProof, type EncodedTlogProof, type ProofExtra
} from './checkpoint.js'
export {
  NOTE_ED25519_TYPE, MAX_NOTE_BYTES, MAX_NOTE_SIGNATURES, MAX_NOTE_KEY_NAME_CHARS, isValidKeyName, noteKeyId, formatVerifierKey,
  parseVerifierKey, signNote, openNote, signCheckpoint, openCheckpoint,
  type NoteVerifierKey, type NoteSignature, type OpenedNote, type SignedCheckpoint
} from './note.js'
export {
  COSE_SIGN1_TAG, COSE_HEADER, COSE_ALG_EDDSA, VDS_RFC9162_SHA256, VDP_INCLUSION_PROOFS, MAX_RECEIPT_BYTES, receiptKeyId,
  encodeReceiptProtectedHeader, receiptToBeSigned, encodeInclusionProof, signReceiptRoot, assembleReceipt, buildReceipt, decodeReceipt,
  verifyReceipt, type InclusionReceipt, type ReceiptInput, type ReceiptAnchor, type ReceiptRootSignature
} from './cose-receipt.js'
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
  decodeBundleRecordInto, encodeBundleRecord, type BundleErrorCode, type Bundle, type BundleDevice, type BundleKey, type BundleChain, type BundleModel,
  type BundleModelStatus, type BundleProof, type BundleAnchor, type BundleGateway, type BundleTip, type BundlePruning
} from './bundle.js'
// Model identity (file hash and tensor manifest, protocol/model-manifest.ts) is imported from its own
// module, not from here: it loads protobufjs, which every importer of the protocol would pay for.
export {
  ENROLLMENT_FORMAT, assertEnrollmentRequest, parseEnrollmentRequest, type EnrollmentRequest, type EnrollmentIdentity, type EnrollmentErrorCode, EnrollmentError
} from './enrollment.js'
export {
  AttestationError, TPMA, parseTpmEccPublic, parseTpmCertify, checkKeyAttestation,
  type AttestationErrorCode, type TpmEccPublic, type TpmCertifyInfo, type KeyAttestation
} from './tpm-attest.js'
export {
  ErasureError, PRUNING_FORMAT, SHREDDING_FORMAT, PRUNING_SIGNING_PREFIX, SHREDDING_SIGNING_PREFIX, MAX_STATEMENT_BYTES, STATEMENT_LIMITS,
  assertPruningStatement, assertShreddingStatement, encodePruningStatement, encodeShreddingStatement, signPruningStatement,
  signShreddingStatement, verifyPruningStatement, verifyShreddingStatement, pruningExtensionLine,
  type ErasureErrorCode, type PruningStatement, type ShreddingStatement, type SignedStatement
} from './erasure.js'
export {
  TipTree, TIP_KEY_BITS, TIP_LEAF_PREFIX, TIP_NODE_PREFIX, TIP_EMPTY_HASH, TIP_PROOF_HEADER, TIP_CHECKPOINT_TAG, MAX_TIP_PROOF_BYTES,
  tipKey, hashTipLeaf, hashTipNode, tipProofRoot, verifyTipProof, formatTipExtension, tipRootOfCheckpoint, formatTipProof, parseTipProof,
  type DeviceTipValue, type TipTerminal, type TipProof, type TipProofFile
} from './tip-tree.js'
