/**
 * `provenance-agent keys show` and `keys rotate`.
 */
import { toHex } from '../../protocol/index.js'
import { KeyError, KeyRing } from '../keys/index.js'
import { RecordLog } from '../log/index.js'
import type { OptionValues } from './options.js'
import { prepare, printResult, type CliIo } from './context.js'

export async function runKeysShow (values: OptionValues, io: CliIo): Promise<number> {
  const setup = await prepare(values, io)
  const ring = await KeyRing.open(setup.keyPath)
  const pending = ring.pendingRotation
  const result = {
    deviceId: setup.config.deviceId,
    keyPath: setup.keyPath,
    publicKey: toHex(ring.publicKey),
    createdMs: ring.createdMs,
    history: ring.history.map(h => ({ publicKey: toHex(h.publicKey), validFromMs: h.validFromMs })),
    ...(pending !== undefined ? { pendingRotation: { publicKey: toHex(pending.publicKey), validFromMs: pending.validFromMs, rotationSeq: pending.rotationSeq } } : {})
  }
  printResult(io, values.json === true, result, () => [
    `device      ${result.deviceId}`,
    `key file    ${result.keyPath}`,
    `public key  ${result.publicKey}`,
    'history',
    ...result.history.map((h, i) => `  ${i}  ${h.publicKey}  valid from ${h.validFromMs === 0 ? 'the start' : new Date(h.validFromMs).toISOString()}`),
    ...(result.pendingRotation !== undefined ? [`pending rotation to ${result.pendingRotation.publicKey} (interrupted; the next start settles it)`] : [])
  ])
  return 0
}

export async function runKeysRotate (values: OptionValues, io: CliIo): Promise<number> {
  const setup = await prepare(values, io)
  const storage = setup.profile.profile.storage
  const ring = await KeyRing.open(setup.keyPath)
  let log: RecordLog
  try {
    log = await RecordLog.open({
      dir: setup.logDir,
      deviceId: setup.config.deviceId,
      signer: ring.signer,
      clock: ring.clock,
      syncWrites: storage.syncWrites,
      maxBatchRecords: storage.maxBatchRecords,
      budgetBytes: storage.budgetBytes,
      budgetMode: storage.budgetMode
    })
  } catch (e) {
    if ((e as { code?: string }).code === 'LOG_LOCKED') {
      ;(e as Error).message = `the daemon holds the record log: stop it first (systemctl stop provenance-agent), then rotate (${(e as Error).message})`
    }
    throw e
  }
  try {
    if (log.head.seq < 0) throw new KeyError('KEY_ROTATION_FAILED', 'the record log is empty: start the agent once before rotating its key')
    if (ring.pendingRotation !== undefined) await ring.recover(log)
    const rotation = await ring.rotate(log)
    const result = {
      previousPublicKey: toHex(rotation.previousPublicKey),
      publicKey: toHex(rotation.publicKey),
      validFromMs: rotation.validFromMs,
      seq: rotation.record.record.seq,
      hash: toHex(rotation.record.hash)
    }
    printResult(io, values.json === true, result, () => [
      `rotated     ${result.previousPublicKey}`,
      `to          ${result.publicKey}`,
      `valid from  ${new Date(result.validFromMs).toISOString()} (${result.validFromMs})`,
      `record      seq ${result.seq}, hash ${result.hash}`,
      'Register the new public key with the fleet\'s device registry.'
    ])
    return 0
  } finally {
    await log.close()
  }
}
