/**
 * `provenance-agent status`: the running daemon's GET /status, as JSON or as a short report.
 */
import type { DaemonStatus } from '../daemon/index.js'
import { integerOption, type OptionValues } from './options.js'
import { prepare, printResult, type CliIo } from './context.js'
import { findDaemon, parseDaemonJson, requestDaemon } from './daemon-client.js'

export async function runStatus (values: OptionValues, io: CliIo): Promise<number> {
  const override = values.port !== undefined ? integerOption(values, 'port', 0, 65535) : undefined
  const setup = await prepare(values, io)
  const daemon = await findDaemon(setup, override)
  const status = parseDaemonJson(await requestDaemon(daemon, 'GET', '/status')) as DaemonStatus
  printResult(io, values.json === true, status, () => describeStatus(status))
  return 0
}

/** The human report of a status. */
export function describeStatus (s: DaemonStatus): string[] {
  const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`
  const p = s.policy
  const u = s.uplink
  return [
    `device   ${s.deviceId} (agent ${s.agentVersion}, pid ${s.pid}, ${s.state} since ${new Date(s.startedMs).toISOString()})`,
    `chain    boot ${s.boot}, seq ${s.seq}, head ${s.headHash.slice(0, 16)}…`,
    `key      ${s.publicKey} (${s.keyCount} key${s.keyCount === 1 ? '' : 's'} in history)`,
    `profile  ${s.profile.id} (providers ${s.profile.executionProviders.join(', ')})`,
    `policy   ${p.version !== undefined ? `v${p.version} ${p.mode ?? ''} in force, ${p.modelCount ?? 0} models, fleet ${p.fleetId ?? '?'}` : p.awaiting ? 'awaiting a signed policy (no model is loaded until one is in force)' : p.configured ? 'none received yet (models are unchecked)' : 'not configured (models are unchecked)'}`,
    `uplink   ${u.configured ? `${u.connected ? 'connected' : 'disconnected'} to ${u.brokerUrl}, acked ${u.ackedSeq}, anchored ${u.anchoredSeq}, backlog ${u.backlog}${u.lastError !== undefined ? `, last error: ${u.lastError}` : ''}` : 'not configured'}`,
    `acks     ${describeRegistration(s)}`,
    `budget   ${mib(s.budget.usedBytes)} of ${mib(s.budget.budgetBytes)} (${s.budget.budgetMode}), ${mib(s.budget.diskBytes)} on disk, ${s.budget.droppedRecords} dropped`,
    `api      socket ${s.http.socket}${s.http.port !== 0 ? `, tcp ${s.http.host}:${s.http.port} (bearer token)` : ''}`,
    'models',
    ...s.models.map(m => `  ${m.name}  ${m.state}${m.runnable ? '' : ' (not runnable)'}  ${m.modelHash !== undefined ? `sha256 ${m.modelHash.slice(0, 16)}…  ` : ''}` +
      `${m.providers !== undefined ? `providers ${m.providers.join(',')}${m.fallback === true ? ` (fallback: ${m.requestedProviders[0] ?? '?'} unavailable)` : ''}  ` : ''}` +
      `${m.policy !== undefined ? `policy ${m.policy}  ` : ''}${m.loadSeq !== undefined ? `load seq ${m.loadSeq}` : ''}${m.error !== undefined ? `  ${m.error.code}: ${m.error.message}` : ''}`)
  ]
}

function describeRegistration (s: DaemonStatus): string {
  const r = s.registration
  const since = r.unacknowledgedSinceMs !== undefined ? ` since ${new Date(r.unacknowledgedSinceMs).toISOString()} (seq ${r.unacknowledgedSinceSeq ?? '?'})` : ''
  if (r.state === 'no-uplink') return 'no uplink'
  if (r.state === 'acknowledged') return `acknowledged by a gateway${since !== '' ? `; unacknowledged${since}` : ''}`
  return `unacknowledged${since}: awaiting registration or a gateway (${r.hint ?? ''})`
}
