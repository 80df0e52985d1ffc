/**
 * Store and forward: the device's MQTT uplink. On every connection it drains the log from the
 * last acknowledged seq, oldest first, in messages sized to the broker's limit, while new records
 * keep coming; it deletes only what a trusted gateway's signed ack proves stored (or anchored,
 * per profile); it reconnects with capped exponential backoff and full jitter, under a fresh
 * client id per connection so that a client reusing the device's name cannot keep it offline; a
 * retained last will marks it offline.
 */
import { randomBytes } from 'node:crypto'
import mqtt, { type IConnackPacket, type IDisconnectPacket, type MqttClient } from 'mqtt'
import { deviceTopic, encodeRecordBatch, MAX_BATCH_RECORDS } from '../../protocol/index.js'
import { backoffDelayMs } from '../../common/backoff.js'
import type { RecordLog } from '../log/index.js'
import { SILENT_LOGGER, type Logger } from '../../common/logger.js'
import { AckHandler, type UplinkAckStatus } from './ack-handler.js'
import { MQTT_MAX_PACKET_BYTES, envelopesThatFit, maxPayloadBytes, publishPacketBytes } from './packet-size.js'

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
  /**
   * Log keys (raw 32-byte Ed25519 public keys) of the gateways whose signed acks may delete
   * records. Empty (default): no ack deletes anything, records stay until the disk budget
   * decides (docs/OPERATIONS.md §Signed acks).
   */
  gatewayPublicKeys?: readonly Uint8Array[]
  /**
   * Largest packet sent when the broker does not state its Maximum Packet Size (MQTT 3.1.1, or an
   * MQTT 5 broker without one), bytes. Default MQTT's own ceiling (then the protocol's 4 MiB
   * message limit is what bounds a message).
   */
  maxPacketBytes?: number
  /**
   * MQTT client id. Default `prov-agent-<deviceId>-<random>`, new for each connection: another
   * client using the device's name takes nothing over, and one that took a connection's id
   * over holds a name the uplink no longer uses.
   */
  clientId?: string
}

export const DEFAULT_UPLINK_BATCH_RECORDS = 256
export const DEFAULT_MAX_IN_FLIGHT_BATCHES = 8
/** A connection up this long resets the reconnect backoff, ms. */
const STABLE_CONNECTION_MS = 10_000
/** MQTT 5 reason codes the uplink acts on (MQTT 5 §2.4). */
export const REASON_SESSION_TAKEN_OVER = 0x8e
export const REASON_PACKET_TOO_LARGE = 0x95

/** A record that no message the broker takes can carry: the uplink stops before it, keeping it. */
export interface UplinkBlocked {
  code: 'RECORD_TOO_LARGE_FOR_BROKER'
  seq: number
  /** Bytes of the smallest packet that carries the record. */
  packetBytes: number
  /** The broker's limit. */
  maxPacketBytes: number
}

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
  /** Connections ended by the broker because another client took the client id over. */
  takeovers: number
  /** Client id of the current (or next) connection. */
  clientId: string
  /** The broker's Maximum Packet Size from its CONNACK; absent when it stated none. */
  brokerMaxPacketBytes?: number
  /** Set while a record too large for the broker holds the uplink up. */
  blocked?: UplinkBlocked
  acks: UplinkAckStatus
  lastError?: string
}

export class Uplink {
  private readonly o: Required<Omit<UplinkOptions, 'onPolicy' | 'username' | 'password' | 'logger' | 'gatewayPublicKeys' | 'clientId'>> & Pick<UplinkOptions, 'onPolicy' | 'username' | 'password' | 'clientId'>
  private readonly logger: Logger
  private readonly acks: AckHandler
  private clientId: string
  private connectedAtMs = 0
  private takeovers = 0
  private brokerMaxPacketBytes: number | undefined
  private blocked: UplinkBlocked | undefined
  private client: MqttClient | undefined
  private connected = false
  private running = false
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
      password: options.password,
      maxPacketBytes: options.maxPacketBytes ?? MQTT_MAX_PACKET_BYTES,
      clientId: options.clientId
    }
    if (!(this.o.batchRecords >= 1) || !(this.o.maxInFlightBatches >= 1)) throw new RangeError('batchRecords and maxInFlightBatches must be at least 1')
    if (!Number.isSafeInteger(this.o.maxPacketBytes) || this.o.maxPacketBytes < 64) throw new RangeError('maxPacketBytes must be an integer of at least 64')
    this.logger = options.logger ?? SILENT_LOGGER
    this.acks = new AckHandler({
      log: options.log,
      deviceId: options.deviceId,
      gatewayPublicKeys: options.gatewayPublicKeys ?? [],
      keepUntil: this.o.keepUntil,
      logger: this.logger,
      sentSeq: () => this.sentSeq,
      onProgress: (through) => this.afterAck(through),
      onError: (e) => {
        this.lastError = e.message
        this.logger.error({ error: e.message }, 'applying ack failed')
      }
    })
    this.clientId = this.newClientId()
  }

  private newClientId (): string {
    return this.o.clientId ?? `prov-agent-${this.o.deviceId}-${randomBytes(4).toString('hex')}`
  }

  status (): UplinkStatus {
    const log = this.o.log
    return {
      connected: this.connected,
      ackedSeq: log.acked,
      anchoredSeq: this.acks.anchoredSeq,
      backlog: Math.max(0, log.nextSeq - 1 - log.acked),
      sentMessages: this.sentMessages,
      reconnects: this.reconnects,
      takeovers: this.takeovers,
      clientId: this.clientId,
      ...(this.brokerMaxPacketBytes !== undefined ? { brokerMaxPacketBytes: this.brokerMaxPacketBytes } : {}),
      ...(this.blocked !== undefined ? { blocked: { ...this.blocked } } : {}),
      acks: this.acks.status(),
      ...(this.lastError !== undefined ? { lastError: this.lastError } : {})
    }
  }

  /** Connects (in the background: an unreachable broker is retried, never thrown). Returns a promise for callers that treat uplinks alike. */
  start (): Promise<void> {
    if (this.running) return Promise.resolve()
    this.running = true
    this.unsubscribe = this.o.log.onDurable(() => this.poke())
    if (this.acks.mode === 'keep-all') {
      this.logger.warn({ deviceId: this.o.deviceId }, 'no gateway public key configured: acks are not trusted and delete nothing; records stay until the disk budget decides (set gatewayPublicKeys)')
    }
    this.connect()
    return Promise.resolve()
  }

  private connect (): void {
    if (!this.running) return
    const status = deviceTopic(this.o.deviceId, 'status')
    const client = mqtt.connect(this.o.brokerUrl, {
      protocolVersion: this.o.mqttProtocolVersion,
      clientId: this.clientId,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: this.o.connectTimeoutMs,
      keepalive: 30,
      will: { topic: status, payload: Buffer.from('offline'), qos: 1, retain: true },
      ...(this.o.username !== undefined ? { username: this.o.username } : {}),
      ...(this.o.password !== undefined ? { password: this.o.password } : {})
    })
    this.client = client
    client.on('connect', (connack) => { void this.onConnect(client, connack) })
    client.on('message', (topic, payload) => { this.onMessage(topic, payload) })
    client.on('error', (e) => { this.lastError = e.message })
    client.on('disconnect', (packet) => { this.onDisconnect(client, packet) })
    client.on('close', () => { this.onClose(client) })
  }

  private async onConnect (client: MqttClient, connack: IConnackPacket): Promise<void> {
    // MQTT 5 §3.2.2.3.6: absent means no limit beyond the protocol's.
    this.brokerMaxPacketBytes = connack.properties?.maximumPacketSize
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
    this.connectedAtMs = Date.now()
    this.inFlight = []
    this.sentSeq = this.o.log.acked
    this.acks.resetConnection()
    this.blocked = undefined
    this.lastAckAt = Date.now()
    this.logger.info({ broker: this.o.brokerUrl, clientId: this.clientId, ackedSeq: this.o.log.acked, backlog: this.status().backlog, maxPacketBytes: this.brokerMaxPacketBytes ?? null }, 'uplink connected')
    this.pump ??= this.drain().finally(() => { this.pump = undefined })
    this.poke()
  }

  // The broker ends the connection with a reason (MQTT 5 §3.14.2.1).
  private onDisconnect (client: MqttClient, packet: IDisconnectPacket): void {
    if (client !== this.client) return
    const reason = packet.reasonCode ?? 0
    if (reason === REASON_SESSION_TAKEN_OVER) {
      // Another client connected with our client id. Coming back under the same id would take it
      // back and start a takeover ping-pong: come back under a fresh one instead.
      // (Not every broker says so: Mosquitto 2.0.11 just closes. onClose copes either way.)
      this.takeovers++
      this.lastError = 'session taken over by another client with the same client id'
      this.logger.warn({ takeovers: this.takeovers, fixedClientId: this.o.clientId !== undefined }, 'uplink session taken over by a client using its client id')
    } else if (reason === REASON_PACKET_TOO_LARGE) {
      this.lastError = 'broker refused a packet as too large'
      this.logger.error({ maxPacketBytes: this.brokerMaxPacketBytes ?? null }, 'broker disconnected the uplink: packet too large')
    } else if (reason !== 0) {
      this.lastError = `broker disconnected the uplink with reason 0x${reason.toString(16)}`
    }
  }

  private onClose (client: MqttClient): void {
    if (client !== this.client) return
    if (this.connected) this.logger.warn({ broker: this.o.brokerUrl, error: this.lastError }, 'uplink disconnected')
    // Only a connection that lasted resets the backoff: one that a takeover (or a flapping
    // broker) ends at once must not bring the uplink back at full speed, in a ping-pong.
    if (this.connected && Date.now() - this.connectedAtMs >= STABLE_CONNECTION_MS) this.attempts = 0
    this.connected = false
    this.client = undefined
    this.inFlight = []
    this.o.log.resetSent()
    client.removeAllListeners('close')
    client.end(true)
    this.poke()
    if (!this.running) return
    // Sessions are clean, so a client id carries nothing over: each connection gets a fresh one,
    // and a client that took the last one over (the broker may not say so) holds a dead name.
    if (this.o.clientId === undefined) this.clientId = this.newClientId()
    // Capped exponential backoff with full jitter, so a fleet that lost its broker does not
    // reconnect in lockstep.
    const delay = backoffDelayMs(this.attempts, { initialMs: this.o.reconnectMinMs, maxMs: this.o.reconnectMaxMs, jitter: 'full' })
    this.attempts++
    this.reconnects++
    this.retryTimer = setTimeout(() => { this.retryTimer = undefined; this.connect() }, delay)
  }

  private onMessage (topic: string, payload: Buffer): void {
    if (topic === deviceTopic(this.o.deviceId, 'policy')) {
      if (payload.byteLength > 0) this.o.onPolicy?.(new Uint8Array(payload))
      return
    }
    this.acks.receive(new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength))
  }

  private afterAck (through: number): void {
    this.lastAckAt = Date.now()
    while (this.inFlight.length > 0 && (this.inFlight[0] as number) <= through) this.inFlight.shift()
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
      const read = await log.range(from, log.head.seq, this.o.batchRecords)
      // The connection may have changed while reading: what counts as sent was reset with it.
      if (client !== this.client || !this.connected) continue
      if (read.length === 0) {
        // Deleted under us (acked meanwhile): move on.
        this.sentSeq = Math.max(this.sentSeq, from)
        continue
      }
      // As many records as one packet the broker takes can carry (never a packet it would drop).
      const topic = deviceTopic(this.o.deviceId, 'records')
      const maxPacket = Math.min(this.brokerMaxPacketBytes ?? this.o.maxPacketBytes, this.o.maxPacketBytes)
      const fit = envelopesThatFit(read.map(r => r.envelope), maxPayloadBytes(topic, maxPacket, this.o.mqttProtocolVersion))
      if (fit === 0) {
        this.block(read[0] as (typeof read)[number], topic, maxPacket)
        await this.sleep(Math.min(this.o.ackTimeoutMs, 1000))
        continue
      }
      const records = read.slice(0, fit)
      const payload = encodeRecordBatch(records.map(r => r.envelope))
      const last = (records.at(-1) as (typeof records)[number]).record.seq
      log.markSent(last)
      this.sentSeq = last
      this.inFlight.push(last)
      try {
        await client.publishAsync(topic, Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), { qos: 1 })
        this.sentMessages++
      } catch (e) {
        this.lastError = (e as Error).message
        // The connection is going down; onClose resets what counts as sent.
        await this.sleep(100)
      }
    }
  }

  // The record stays in the log, and the uplink waits before it: skipping it would break the
  // chain the gateway verifies. A broker with a larger limit (next connection) unblocks it.
  private block (record: { record: { seq: number }, envelope: Uint8Array }, topic: string, maxPacketBytes: number): void {
    const packetBytes = publishPacketBytes(topic, envelopesPayloadBytes(record.envelope), this.o.mqttProtocolVersion)
    if (this.blocked?.seq === record.record.seq) return
    this.blocked = { code: 'RECORD_TOO_LARGE_FOR_BROKER', seq: record.record.seq, packetBytes, maxPacketBytes }
    this.lastError = `record ${record.record.seq} needs a ${packetBytes}-byte packet, the broker takes at most ${maxPacketBytes}`
    this.logger.error({ ...this.blocked }, 'uplink blocked: a record is too large for the broker (kept in the log; raise the broker\'s max_packet_size)')
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
    // An ack being applied finishes before the caller closes the log.
    await this.acks.idle()
  }
}

function envelopesPayloadBytes (envelope: Uint8Array): number {
  return encodeRecordBatch([envelope]).byteLength
}
