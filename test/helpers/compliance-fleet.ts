/**
 * A small demo fleet for the compliance export: a camera that runs identification uses (session
 * records naming a reference database) and a reviewing station, a device-like identity with its
 * own key, whose oversight records confirm, override and escalate the camera's decisions.
 * (No tests here: tap lists this file as skipped.)
 */
import { sha256, type Bundle, type OversightBody, type SignedRecord } from '../../protocol/index.js'
import { offlineBundle } from './forensics-fixture.js'
import { ChainBuilder, fakeHash, sampleBody, sampleInference, TEST_START_TIME_MS } from './records.js'

export const CAMERA = 'cam-0001'
export const STATION = 'review-01'
export const ROGUE_STATION = 'review-99'
export const REFERENCE_DB = new TextEncoder().encode('watchlist 2026-11: 3 entries\n')

export interface DemoFleet {
  camera: ChainBuilder
  station: ChainBuilder
  /** The camera's decisions that were reviewed, by verdict. */
  reviewed: { confirmed: SignedRecord, overridden: SignedRecord, escalated: SignedRecord }
  cameraBundle: Bundle
  stationBundle: Bundle
}

/** An oversight body reviewing `decision` (a camera record). */
export function review (decision: SignedRecord, verdict: OversightBody['verdict'], reason: string, reviewer = 'reviewer-17'): OversightBody {
  return { kind: 'oversight', reviewer, decisionDeviceId: decision.record.deviceId, decisionSeq: decision.record.seq, decisionHash: decision.hash, verdict, reason }
}

/** Builds the fleet: the camera's one use of the watchlist (5 decisions), and three reviews of them. */
export function makeDemoFleet (): DemoFleet {
  const camera = new ChainBuilder({ deviceId: CAMERA, seed: 'camera' })
  camera.append(sampleBody('boot'))
  camera.append(sampleBody('model-load', 1))
  camera.append({ kind: 'session', phase: 'start', sessionId: 'use-0001', referenceName: 'watchlist-2026-11', referenceHash: sha256(REFERENCE_DB) })
  const decisions: SignedRecord[] = []
  for (let i = 0; i < 5; i++) decisions.push(camera.append({ ...sampleInference(camera.seq, fakeHash('model/1')), decision: i % 2 === 0 ? `match watchlist#${i}` : null }))
  camera.append({ kind: 'session', phase: 'end', sessionId: 'use-0001', referenceName: 'watchlist-2026-11', referenceHash: sha256(REFERENCE_DB) })
  camera.append(sampleBody('shutdown'))

  const station = new ChainBuilder({ deviceId: STATION, seed: 'station', startTimeMs: TEST_START_TIME_MS + 500 })
  station.append({ ...sampleBody('boot'), profile: 'review-station' })
  const [d0, , d2, , d4] = decisions as [SignedRecord, SignedRecord, SignedRecord, SignedRecord, SignedRecord]
  station.append(review(d0, 'confirmed', 'face matches the watchlist photo'))
  station.append(review(d2, 'overridden', 'not the same person: different height'))
  station.append(review(d4, 'escalated', 'unclear image, second reviewer asked', 'reviewer-21'))
  return {
    camera,
    station,
    reviewed: { confirmed: d0, overridden: d2, escalated: d4 },
    cameraBundle: offlineBundle(camera),
    stationBundle: offlineBundle(station)
  }
}
