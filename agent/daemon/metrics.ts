/**
 * Prometheus metrics of the agent's daemon (prom-client, Prometheus text on GET /metrics beside
 * the gateway's): read from the daemon's status at each scrape, so no code path has to count twice.
 */
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import type { DaemonStatus } from './daemon.js'

const PREFIX = 'provenance_agent_'
const MODEL_STATES = ['loading', 'loaded', 'refused', 'failed'] as const

/** A registry of its own (several daemons in one test process must not share series). */
export function createAgentMetrics (status: () => Promise<DaemonStatus>): Registry {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: PREFIX })
  let last: Promise<DaemonStatus> | undefined
  // One status read per scrape, shared by every gauge's collect().
  const current = async (): Promise<DaemonStatus> => (last ??= status().finally(() => { setImmediate(() => { last = undefined }) }))
  const gauge = (name: string, help: string, read: (s: DaemonStatus, g: Gauge) => void, labelNames: string[] = []): void => {
    new Gauge({ name: PREFIX + name, help, labelNames, registers: [registry], async collect () { read(await current(), this) } })
  }
  gauge('info', 'Always 1; the labels name the device, agent version and firmware profile', (s, g) => {
    g.reset()
    g.set({ device: s.deviceId, version: s.agentVersion, profile: s.profile.id }, 1)
  }, ['device', 'version', 'profile'])
  gauge('boot', 'Boot counter of the record chain', (s, g) => { g.set(s.boot) })
  gauge('log_head_seq', 'Seq of the newest record in the log', (s, g) => { g.set(s.seq) })
  gauge('log_used_bytes', 'Bytes of the stored records, as the storage budget counts them', (s, g) => { g.set(s.budget.usedBytes) })
  gauge('log_budget_bytes', 'The storage budget of the record log', (s, g) => { g.set(s.budget.budgetBytes) })
  gauge('log_disk_bytes', 'Bytes of the record log folder on disk', (s, g) => { g.set(s.budget.diskBytes) })
  gauge('log_dropped_records', 'Records dropped by the budget before the gateway acknowledged them', (s, g) => { g.set(s.budget.droppedRecords) })
  gauge('models', 'Configured models by state', (s, g) => {
    for (const state of MODEL_STATES) g.set({ state }, s.models.filter(m => m.state === state).length)
  }, ['state'])
  gauge('models_runnable', 'Models that accept runs (loaded and allowed by the policy in force)', (s, g) => { g.set(s.models.filter(m => m.runnable).length) })
  gauge('policy_version', 'Version of the model policy in force (-1: none)', (s, g) => { g.set(s.policy.version ?? -1) })
  gauge('uplink_connected', '1 when connected to the broker (0 also when no broker is configured)', (s, g) => { g.set(s.uplink.configured && s.uplink.connected ? 1 : 0) })
  gauge('uplink_acked_seq', 'Highest seq the gateway acknowledged as stored (-1: none)', (s, g) => { g.set(s.uplink.configured ? s.uplink.ackedSeq : -1) })
  gauge('uplink_anchored_seq', 'Highest seq the gateway acknowledged as anchored (-1: none)', (s, g) => { g.set(s.uplink.configured ? s.uplink.anchoredSeq : -1) })
  gauge('uplink_backlog_records', 'Records in the log not yet acknowledged', (s, g) => { g.set(s.uplink.configured ? s.uplink.backlog : 0) })
  gauge('uplink_reconnects', 'Broker reconnections since start', (s, g) => { g.set(s.uplink.configured ? s.uplink.reconnects : 0) })
  return registry
}
