/**
 * The device's keys: the key file (secrets, 0600, atomic writes), the key ring that rotates keys
 * and keeps the history of public keys for verifiers, and the atomic file writer the agent's
 * other state files share.
 */
export {
  loadOrCreateDeviceKey, loadOrCreateKeyFile, readKeyFile, writeKeyFile, deviceKeyOf, MAX_KEY_HISTORY,
  type DeviceKey, type KeyPeriod, type KeyFileContent, type PendingRotation
} from './device-key.js'
export { KeyRing, keyAtFromHistory, type KeyRingOptions, type RotationLog, type RotationResult, type RecoveryOutcome } from './key-ring.js'
export { KeyError, type KeyErrorCode } from './errors.js'
export { SubjectKeyStore, type SubjectKeyStoreOptions } from './subject-keys.js'
// The writer lives in common/ (fleet and gateway use it too); re-exported for the agent's importers.
export { writeFileAtomic, syncDir, type WriteFileAtomicOptions } from '../../common/atomic-file.js'
