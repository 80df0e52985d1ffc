/**
 * Prometheus metrics of one gateway (prom-client, on a registry of its own so that several
 * gateways can live in one process): ingest counters, quarantine by reason, batch sizes, anchor
 * latency, chain errors, open gaps, broker and anchoring state.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { IngestCounters, IngestMemory, ParkRefusal, QuarantineReason } from '../ingest/index.js'
import type { KeyDirectoryStats } from '../keys/index.js'

const PREFIX = 'provenance_gateway_'

export class GatewayMetrics implements IngestCounters {
  readonly registry = new Registry()
  private readonly messages = new Counter({ name: `${PREFIX}messages_received_total`, help: 'Records messages received from the broker', registers: [this.registry] })
  private readonly received = new Counter({ name: `${PREFIX}records_received_total`, help: 'Envelopes received in well-formed records payloads', registers: [this.registry] })
  private readonly verified = new Counter({ name: `${PREFIX}records_verified_total`, help: 'Records whose signature verified under the device key', registers: [this.registry] })
  private readonly stored = new Counter({ name: `${PREFIX}records_stored_total`, help: 'Records linked to their device chain and stored', registers: [this.registry] })
  private readonly duplicates = new Counter({ name: `${PREFIX}records_duplicate_total`, help: 'Records received again (resends, or already stored by a peer gateway): dropped', registers: [this.registry] })
  private readonly quarantine = new Counter({ name: `${PREFIX}records_quarantined_total`, help: 'Input quarantined, by reason', labelNames: ['reason'], registers: [this.registry] })
  private readonly keyUnavailableCount = new Counter({ name: `${PREFIX}records_key_unavailable_total`, help: 'Records not checked because the device key could not be read (left for the device to resend)', registers: [this.registry] })
  private readonly pendingDroppedCount = new Counter({
    name: `${PREFIX}records_pending_dropped_total`,
    help: 'Records ahead of their tip dropped because a budget is full (left for the device to resend), by budget: device-records, device-bytes, total-bytes',
    labelNames: ['budget'],
    registers: [this.registry]
  })
  private readonly keyLookupLimitedCount = new Counter({ name: `${PREFIX}records_key_lookup_limited_total`, help: 'Records not checked because registry look-ups were rate limited (left for the device to resend)', registers: [this.registry] })
  /** What the gateway holds in memory by its own count; set with {@link GatewayMetrics.setMemory}. */
  private readonly heldBytes = new Gauge({ name: `${PREFIX}held_bytes`, help: 'Bytes held in memory by the gateway\'s own count, by what: pending (records waiting ahead of their tip), backlog (received, not processed), store-queue (waiting for the next write), key-cache', labelNames: ['what'], registers: [this.registry] })
  private readonly heldRecords = new Gauge({ name: `${PREFIX}held_records`, help: 'Records held in memory, by what: pending, backlog', labelNames: ['what'], registers: [this.registry] })
  private readonly devicesGauge = new Gauge({ name: `${PREFIX}devices`, help: 'Devices in memory, by state: known (kept), provisional (ids with work queued the registry has not confirmed)', labelNames: ['state'], registers: [this.registry] })
  private readonly keyCacheEntries = new Gauge({ name: `${PREFIX}key_cache_entries`, help: 'Key directory cache entries, by kind: known, unknown (negative cache)', labelNames: ['kind'], registers: [this.registry] })
  private readonly registryCalls = new Gauge({ name: `${PREFIX}key_registry_calls`, help: 'Registry calls (eth_call) made by the key directory since start', registers: [this.registry] })
  private readonly keyLookupsLimited = new Gauge({ name: `${PREFIX}key_lookups_limited`, help: 'Key look-ups refused by the rate limit since start', registers: [this.registry] })
  readonly brokerMaxPacketBytes = new Gauge({ name: `${PREFIX}broker_max_packet_bytes`, help: 'Maximum packet size the broker accepts (MQTT 5 CONNACK); 0 when it did not say. Larger records payloads never reach the gateway', registers: [this.registry] })
  private readonly acks = new Counter({ name: `${PREFIX}acks_published_total`, help: 'Acks published', registers: [this.registry] })
  private readonly batchSize = new Histogram({
    name: `${PREFIX}batch_size_records`,
    help: 'Records per sealed batch',
    buckets: [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000],
    registers: [this.registry]
  })
  private readonly anchorLatency = new Histogram({
    name: `${PREFIX}anchor_latency_seconds`,
    help: 'From sealing a batch to its anchor being confirmed',
    buckets: [0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600],
    registers: [this.registry]
  })
  private readonly chainErrors = new Counter({ name: `${PREFIX}chain_errors_total`, help: 'Chain-side failures (anchoring and key lookups), by code', labelNames: ['code'], registers: [this.registry] })
  /** Gaps open now / open longer than the report threshold; set by the gateway's gap check. */
  readonly openGaps = new Gauge({ name: `${PREFIX}open_gaps`, help: 'Devices with records missing before records that wait', registers: [this.registry] })
  readonly overdueGaps = new Gauge({ name: `${PREFIX}open_gaps_overdue`, help: 'Open gaps older than gapReportAfterMs', registers: [this.registry] })
  readonly brokerConnected = new Gauge({ name: `${PREFIX}broker_connected`, help: '1 when connected to the broker', registers: [this.registry] })
  readonly anchorLag = new Gauge({ name: `${PREFIX}anchor_lag_batches`, help: 'Sealed batches not yet confirmed on chain', registers: [this.registry] })
  readonly backlog = new Gauge({ name: `${PREFIX}ingest_backlog_records`, help: 'Records received but not yet processed', registers: [this.registry] })

  constructor (options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: PREFIX })
  }

  messageReceived (): void { this.messages.inc() }
  recordsReceived (n: number): void { this.received.inc(n) }
  recordVerified (): void { this.verified.inc() }
  recordStored (): void { this.stored.inc() }
  duplicate (): void { this.duplicates.inc() }
  quarantined (reason: QuarantineReason): void { this.quarantine.inc({ reason }) }
  keyUnavailable (): void { this.keyUnavailableCount.inc() }
  pendingDropped (budget: ParkRefusal): void { this.pendingDroppedCount.inc({ budget }) }
  keyLookupLimited (): void { this.keyLookupLimitedCount.inc() }

  /** Sets the held-memory gauges from the gateway's own accounting. */
  setMemory (m: IngestMemory & { storeQueueBytes: number }, keys: KeyDirectoryStats | undefined): void {
    this.heldBytes.set({ what: 'pending' }, m.pendingBytes)
    this.heldBytes.set({ what: 'backlog' }, m.backlogBytes)
    this.heldBytes.set({ what: 'store-queue' }, m.storeQueueBytes)
    this.heldRecords.set({ what: 'pending' }, m.pendingRecords)
    this.heldRecords.set({ what: 'backlog' }, m.backlogRecords)
    this.devicesGauge.set({ state: 'known' }, m.knownDevices)
    this.devicesGauge.set({ state: 'provisional' }, m.provisionalDevices)
    if (keys === undefined) return
    this.heldBytes.set({ what: 'key-cache' }, keys.cachedBytes)
    this.keyCacheEntries.set({ kind: 'known' }, keys.cachedDevices)
    this.keyCacheEntries.set({ kind: 'unknown' }, keys.unknownEntries)
    this.registryCalls.set(keys.registryCalls)
    this.keyLookupsLimited.set(keys.limited)
  }
  ackPublished (): void { this.acks.inc() }
  batchSealed (size: number): void { this.batchSize.observe(size) }
  anchored (latencyMs: number): void { this.anchorLatency.observe(latencyMs / 1000) }
  chainError (code: string): void { this.chainErrors.inc({ code }) }

  /** The exposition text and its content type. */
  async render (): Promise<{ contentType: string, body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() }
  }
}
