/**
 * Incident capture on the device: a bounded ring of recent runs' raw inputs and outputs, frozen on
 * request or by a trigger into capture files (protocol/capture.ts) that investigators replay.
 */
export {
  CaptureRing, DEFAULT_RING_MAX_ENTRIES, DEFAULT_RING_MAX_BYTES, DEFAULT_TRIGGER_COOLDOWN_MS, DEFAULT_MAX_FROZEN_CAPTURES,
  type CaptureRingOptions, type CaptureRun, type CaptureRunEnd, type CaptureTrigger, type FrozenCapture, type CaptureRingStats
} from './capture-ring.js'
export {
  capturesDir, nameFrozenCapture, writeFrozenCapture, listFrozenCaptures, readFrozenCapture, deleteFrozenCapture,
  CAPTURES_FOLDER, CAPTURE_FILE_PATTERN, type FrozenCaptureInfo
} from './capture-store.js'
export { CaptureStoreError, type CaptureStoreErrorCode } from './errors.js'
