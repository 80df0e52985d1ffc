/**
 * `provenance-agent verify-log`: verifies the local record log with the key history and prints
 * a verdict; a broken chain is CHAIN_BROKEN (exit 1), naming the seq and the reason.
 */
import { ProtocolError } from '../../protocol/index.js'
import { KeyRing } from '../keys/index.js'
import type { OptionValues } from './options.js'
import { prepare, printResult, type CliIo } from './context.js'
import { openRecordSource } from './record-source.js'
import { verifyLog } from './verify-log.js'

export async function runVerifyLog (values: OptionValues, io: CliIo): Promise<number> {
  const setup = await prepare(values, io)
  const ring = await KeyRing.open(setup.keyPath)
  const pending = ring.pendingRotation
  const source = await openRecordSource(setup)
  let verdict
  try {
    verdict = await verifyLog(source, {
      deviceId: setup.config.deviceId,
      history: ring.history,
      ...(pending !== undefined ? { pending: { publicKey: pending.publicKey, validFromMs: pending.validFromMs } } : {})
    })
  } finally {
    await source.close()
  }
  printResult(io, values.json === true, verdict, () => [
    verdict.ok ? 'chain ok' : 'chain BROKEN',
    `device   ${verdict.deviceId} (read from the ${verdict.via === 'log' ? 'log' : 'running daemon'})`,
    `records  ${verdict.count}${verdict.firstSeq !== undefined ? `, seq ${verdict.firstSeq}..${verdict.lastSeq ?? verdict.firstSeq}` : ''}${verdict.boots !== undefined ? `, boots ${verdict.boots.first}..${verdict.boots.last}` : ''}`,
    ...(verdict.startsAtSeq !== undefined && verdict.startsAtSeq > 0 ? [`         records before seq ${verdict.startsAtSeq} are no longer on the device (acknowledged through ${verdict.ackedSeq})`] : []),
    `keys     ${verdict.keys} (${verdict.rotations} rotation record${verdict.rotations === 1 ? '' : 's'} checked)`,
    `gaps     ${verdict.gaps.length === 0 ? 'none' : verdict.gaps.map(g => `${g.firstSeq}..${g.lastSeq} (${g.reason})`).join('; ')}`
  ])
  if (verdict.failure !== undefined) {
    throw new ProtocolError('CHAIN_BROKEN', `seq ${verdict.failure.seq}: ${verdict.failure.reason}: ${verdict.failure.message}`)
  }
  return 0
}
