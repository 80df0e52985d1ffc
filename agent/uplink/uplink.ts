/**
 * Store and forward: the device's MQTT uplink. On every connection it drains the log from the
 * last acknowledged seq, oldest first, in batches, while new records keep coming; it deletes
 * only what the gateway acknowledged as durably stored (or anchored, per profile); it reconnects
 * with capped exponential backoff and full jitter; a retained last will marks it offline.
 */
import mqtt, { type MqttClient } from 'mqtt'
import { decodeAck, deviceTopic, encodeRecordBatch, equalBytes, toHex, MAX_BATCH_RECORDS, type Ack } from '../../protocol/index.js'
import type { RecordLog } from '../log/index.js'
import { silentLogger, type Logger } from '../session/index.js'

export interface UplinkOptions {
  log: RecordLog
  deviceId: string
  /** e.g. mqtt://127.0.0.1:1883 */
  brokerUrl: string
  /** MQTT 5 (default) or 3.1.1 (4), e.g. for the gateway's embedded aedes broker. */
  mqttProtocolVersion?: 4 | 5
  /** Records per message. Default 256. */
  batchRecords?: number
  /**
   * Messages sent and not yet covered by an ack. Default 8; use 1 with gateways in a shared
   * subscription group, so each gateway continues from the tip the previous one acked.
   */
  maxInFlightBatches?: number
  /** Delete records once stored at the gateway, or only once anchored. Default 'stored'. */
  keepUntil?: 'stored' | 'anchored'
  /** Reconnect backoff bounds. Defaults 500 ms and 30 s. */
  reconnectMinMs?: number
  reconnectMaxMs?: number
  /** Give up a connection attempt after this long. Default 10 s. */
  connectTimeoutMs?: number
  /** Resend what is unacknowledged when no ack came for this long. Default 15 s. */
  ackTimeoutMs?: number
  logger?: Logger
  /** The retained payload of the device's policy topic, whenever it arrives. */
  onPolicy?: (payload: Uint8Array) => void
  username?: string
  password?: string
}

export const DEFAULT_UPLINK_BATCH_RECORDS = 256
export const DEFAULT_MAX_IN_FLIGHT_BATCHES = 8

export interface UplinkStatus {
  connected: boolean
  /** Highest seq the gateway acknowledged as stored (-1: none). */
  ackedSeq: number
  /** Highest seq the gateway acknowledged as anchored (-1: none). */
  anchoredSeq: number
  /** Records in the log not yet acknowledged. */
  backlog: number
  /** Messages published since start. */
  sentMessages: number
  reconnects: number
  lastError?: string
}

export class Uplink {
  private readonly o: Required<Omit<UplinkOptions, 'onPolicy' | 'username' | 'password' | 'logger'>> & Pick<UplinkOptions, 'onPolicy' | 'username' | 'password'>
  private readonly logger: Logger
  private client: MqttClient | undefined
  private connected = false
  private running = false
  private anchoredSeq = -1
  /** Last seq of each message in flight on this connection, oldest first. */
  private inFlight: number[] = []
  private sentSeq = -1
  private attempts = 0
  private reconnects = 0
  private sentMessages = 0
  private lastError: string | undefined
  private wake: (() => void) | undefined
  private pump: Promise<void> | undefined
  private retryTimer: NodeJS.Timeout | undefined
  private lastAckAt = 0
  private unsubscribe: (() => void) | undefined

  constructor (options: UplinkOptions) {
    this.o = {
      batchRecords: Math.min(options.batchRecords ?? DEFAULT_UPLINK_BATCH_RECORDS, MAX_BATCH_RECORDS),
      maxInFlightBatches: options.maxInFlightBatches ?? DEFAULT_MAX_IN_FLIGHT_BATCHES,
      keepUntil: options.keepUntil ?? 'stored',
      reconnectMinMs: options.reconnectMinMs ?? 500,
      reconnectMaxMs: options.reconnectMaxMs ?? 30_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      ackTimeoutMs: options.ackTimeoutMs ?? 15_000,
      log: options.log,
      deviceId: options.deviceId,
      brokerUrl: options.brokerUrl,
      mqttProtocolVersion: options.mqttProtocolVersion ?? 5,
      onPolicy: options.onPolicy,
      username: options.username,
      password: options.password
    }
    if (!(this.o.batchRecords >= 1) || !(this.o.maxInFlightBatches >= 1)) throw new RangeError('batchRecords and maxInFlightBatches must be at least 1')
    this.logger = options.logger ?? silentLogger
  }

  status (): UplinkStatus {
    const log = this.o.log
    return {
      connected: this.connected,
      ackedSeq: log.acked,
      anchoredSeq: this.anchoredSeq,
      backlog: Math.max(0, log.nextSeq - 1 - log.acked),
      sentMessages: this.sentMessages,
      reconnects: this.reconnects,
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {})
    }
  }

  /** Connects (in the background: an unreachable broker is retried, never thrown). */
  async start (): Promise<void> {
    if (this.running) return
    this.running = true
    this.unsubscribe = this.o.log.onDurable(() => this.poke())
    this.connect()
  }

  private connect (): void {
    if (!this.running) return
    const status = deviceTopic(this.o.deviceId, 'status')
    const client = mqtt.connect(this.o.brokerUrl, {
      protocolVersion: this.o.mqttProtocolVersion,
      clientId: `prov-agent-${this.o.deviceId}`,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: this.o.connectTimeoutMs,
      keepalive: 30,
      will: { topic: status, payload: Buffer.from('offline'), qos: 1, retain: true },
      ...(this.o.username !== undefined ? { username: this.o.username } : {}),
      ...(this.o.password !== undefined ? { password: this.o.password } : {})
    })
    this.client = client
    client.on('connect', () => { void this.onConnect(client) })
    client.on('message', (topic, payload) => { this.onMessage(topic, payload) })
    client.on('error', (e) => { this.lastError = e.message })
    client.on('close', () => { this.onClose(client) })
  }

  private async onConnect (client: MqttClient): Promise<void> {
    try {
      await client.subscribeAsync([deviceTopic(this.o.deviceId, 'ack'), deviceTopic(this.o.deviceId, 'policy')], { qos: 1 })
      await client.publishAsync(deviceTopic(this.o.deviceId, 'status'), 'online', { qos: 1, retain: true })
    } catch (e) {
      this.lastError = (e as Error).message
      client.end(true)
      return
    }
    if (client !== this.client) return
    this.connected = true
    this.attempts = 0
    this.inFlight = []
    this.sentSeq = this.o.log.acked
    this.lastAckAt = Date.now()
    this.logger.info({ broker: this.o.brokerUrl, ackedSeq: this.o.log.acked, backlog: this.status().backlog }, 'uplink connected')
    this.pump ??= this.drain().finally(() => { this.pump = undefined })
    this.poke()
  }

  private onClose (client: MqttClient): void {
    if (client !== this.client) return
    if (this.connected) this.logger.warn({ broker: this.o.brokerUrl, error: this.lastError }, 'uplink disconnected')
    this.connected = false
    this.client = undefined
    this.inFlight = []
    this.o.log.resetSent()
    client.removeAllListeners('close')
    client.end(true)
    this.poke()
    if (!this.running) return
    // Capped exponential backoff with full jitter, so a fleet that lost its broker does not
    // reconnect in lockstep.
    const cap = Math.min(this.o.reconnectMaxMs, this.o.reconnectMinMs * 2 ** Math.min(this.attempts, 20))
    const delay = Math.round(this.o.reconnectMinMs / 2 + Math.random() * cap)
    this.attempts++
    this.reconnects++
    this.retryTimer = setTimeout(() => { this.retryTimer = undefined; this.connect() }, delay)
  }

  private onMessage (topic: string, payload: Buffer): void {
    if (topic === deviceTopic(this.o.deviceId, 'policy')) {
      if (payload.byteLength > 0) this.o.onPolicy?.(new Uint8Array(payload))
      return
    }
    let ack: Ack
    try {
      ack = decodeAck(new Uint8Array(payload))
    } catch (e) {
      this.logger.warn({ error: (e as Error).message }, 'ignoring malformed ack')
      return
    }
    void this.applyAck(ack).catch(e => {
      this.lastError = (e as Error).message
      this.logger.error({ error: (e as Error).message }, 'applying ack failed')
    })
  }

  private async applyAck (ack: Ack): Promise<void> {
    const log = this.o.log
    const stored = Math.min(ack.storedSeq, log.head.seq)
    if (stored > log.acked) {
      // An ack names our record by hash: a gateway holding something else is a fault to report.
      const ours = await log.get(stored)
      if (ours !== undefined && !equalBytes(ours.hash, ack.storedHash)) {
        this.logger.error({ seq: stored, ours: toHex(ours.hash), theirs: toHex(ack.storedHash) }, 'gateway acknowledged a record that is not ours: ignoring the ack')
        return
      }
      await log.acknowledge(stored, { deleteAcked: this.o.keepUntil === 'stored' })
    }
    if (ack.anchoredSeq > this.anchoredSeq) {
      this.anchoredSeq = Math.min(ack.anchoredSeq, log.acked)
      if (this.o.keepUntil === 'anchored') await log.deleteAcknowledged(this.anchoredSeq)
    }
    this.lastAckAt = Date.now()
    while (this.inFlight.length > 0 && (this.inFlight[0] as number) <= log.acked) this.inFlight.shift()
    this.poke()
  }

  private poke (): void {
    const w = this.wake
    this.wake = undefined
    w?.()
  }

  private async sleep (ms: number): Promise<void> {
    await new Promise<void>(resolve => {
      const timer = setTimeout(() => { this.wake = undefined; resolve() }, ms)
      this.wake = () => { clearTimeout(timer); resolve() }
    })
  }

  /**
   * True when the records right after the last ack were dropped (fail-open budget): the gateway
   * can acknowledge nothing more until it holds the gap record that declares them, which comes
   * later in seq order, so the in-flight window must not hold the uplink back until then.
   */
  private async holeAtFront (): Promise<boolean> {
    const log = this.o.log
    const first = (await log.range(log.acked + 1, log.head.seq, 1))[0]
    return first !== undefined && first.record.seq > log.acked + 1
  }

  /** Sends batches while connected; one loop per connection lifetime. */
  private async drain (): Promise<void> {
    const log = this.o.log
    while (this.running && this.connected) {
      const client = this.client
      if (client === undefined) break
      if (this.inFlight.length > 0 && Date.now() - this.lastAckAt > this.o.ackTimeoutMs) {
        // No ack for long: the gateway may have lost them. Resend from the last ack.
        this.logger.warn({ ackedSeq: log.acked, inFlight: this.inFlight.length }, 'no ack in time: resending unacknowledged records')
        this.inFlight = []
        this.sentSeq = log.acked
        log.resetSent()
        this.lastAckAt = Date.now()
      }
      const from = Math.max(this.sentSeq, log.acked) + 1
      if (from > log.head.seq || (this.inFlight.length >= this.o.maxInFlightBatches && !(await this.holeAtFront()))) {
        await this.sleep(Math.min(this.o.ackTimeoutMs, 1000))
        continue
      }
      const records = await log.range(from, log.head.seq, this.o.batchRecords)
      // The connection may have changed while reading: what counts as sent was reset with it.
      if (client !== this.client || !this.connected) continue
      if (records.length === 0) {
        // Deleted under us (acked meanwhile): move on.
        this.sentSeq = Math.max(this.sentSeq, from)
        continue
      }
      const last = (records.at(-1) as (typeof records)[number]).record.seq
      log.markSent(last)
      this.sentSeq = last
      this.inFlight.push(last)
      try {
        await client.publishAsync(deviceTopic(this.o.deviceId, 'records'), Buffer.from(encodeRecordBatch(records.map(r => r.envelope))), { qos: 1 })
        this.sentMessages++
      } catch (e) {
        this.lastError = (e as Error).message
        // The connection is going down; onClose resets what counts as sent.
        await this.sleep(100)
      }
    }
  }

  /** Publishes `offline`, stops reconnecting and closes the connection. */
  async stop (): Promise<void> {
    if (!this.running) return
    this.running = false
    this.unsubscribe?.()
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer)
    const client = this.client
    this.poke()
    if (client !== undefined) {
      if (this.connected) {
        await Promise.race([
          client.publishAsync(deviceTopic(this.o.deviceId, 'status'), 'offline', { qos: 1, retain: true }).catch(() => {}),
          new Promise(resolve => setTimeout(resolve, 2000))
        ])
      }
      this.client = undefined
      this.connected = false
      await client.endAsync(true).catch(() => {})
    }
    await this.pump
  }
}
