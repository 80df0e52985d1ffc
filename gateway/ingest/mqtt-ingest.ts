/**
 * The gateway's MQTT side (MQTT.js): a persistent session that subscribes to every device's
 * records topic (through a shared subscription when several gateways split the load), hands
 * each message to the pipeline with flow control, and publishes retained QoS 1 acks.
 */
import mqtt, { type IClientOptions, type IPublishPacket, type MqttClient } from 'mqtt'
import { deviceTopic, topicFilter } from '../../protocol/index.js'
import { redactUrl } from '../../common/redact-url.js'
import { GatewayError } from '../errors.js'
import type { Logger } from '../../common/logger.js'

export interface MqttIngestOptions {
  /** Broker URL, e.g. `mqtt://127.0.0.1:1883`. */
  url: string
  /** MQTT client id: stable across restarts so the broker keeps the session. */
  clientId: string
  /** 5 for MQTT 5 (shared subscriptions, no-local); 4 for 3.1.1 brokers such as aedes. */
  protocolVersion: 4 | 5
  /** Shared subscription group, or undefined for a plain subscription. */
  shareGroup: string | undefined
  username: string | undefined
  password: string | undefined
  /** How long the broker keeps the session while the gateway is away (MQTT 5), in seconds. */
  sessionExpirySeconds: number
  /** Largest packet the broker may send (MQTT 5); bigger ones it drops. */
  maxPacketBytes: number
  /** Pause between reconnection attempts, ms. */
  reconnectPeriodMs: number
  /** Marks this gateway's acks (MQTT 5 user property) so peers can tell who wrote them. */
  gatewayName: string
  onRecords: (topic: string, payload: Uint8Array) => void
  onAck: (topic: string, payload: Uint8Array) => void
  /** Asked after each message: a promise makes the reader wait (bounded memory). */
  flowControl: () => Promise<void> | undefined
  /** Every (re)connection; `sessionPresent` false means the broker forgot us (and maybe its retained acks). */
  onConnect: (sessionPresent: boolean) => void
  /** The broker's maximum packet size from each CONNACK (MQTT 5), undefined when it sets none. */
  onBrokerMaxPacket?: (bytes: number | undefined) => void
  logger: Logger
}

export class MqttIngest {
  private readonly o: MqttIngestOptions
  private readonly client: MqttClient
  private readonly recordsFilter: string
  private readonly subscribeAcks: boolean
  private closed = false
  private paused = false

  private constructor (o: MqttIngestOptions) {
    this.o = o
    this.recordsFilter = o.shareGroup === undefined ? topicFilter('records') : `$share/${o.shareGroup}/${topicFilter('records')}`
    // Peers' acks matter only when several gateways share the records.
    this.subscribeAcks = o.shareGroup !== undefined
    const options: IClientOptions = {
      clientId: o.clientId,
      protocolVersion: o.protocolVersion,
      clean: false,
      keepalive: 30,
      reconnectPeriod: o.reconnectPeriodMs,
      connectTimeout: 10_000,
      resubscribe: false,
      username: o.username,
      password: o.password,
      ...(o.protocolVersion === 5
        ? { properties: { sessionExpiryInterval: o.sessionExpirySeconds, maximumPacketSize: o.maxPacketBytes, receiveMaximum: 1000 } }
        : {})
    }
    // Connecting starts on a later tick: the handlers below are in place before any packet.
    this.client = mqtt.connect(o.url, options)
    this.client.handleMessage = (packet, callback) => this.handle(packet, callback)
    this.client.on('connect', (connack) => {
      setNoDelay(this.client)
      const sessionPresent = connack.sessionPresent
      // Packets above the broker's limit are dropped by the broker: the gateway never sees them.
      const brokerMaxPacketBytes = connack.properties?.maximumPacketSize
      // And packets above our own limit (CONNECT Maximum Packet Size) the broker discards for us (MQTT 5 §3.1.2.11.4).
      this.o.logger.info({ broker: redactUrl(o.url), sessionPresent, brokerMaxPacketBytes: brokerMaxPacketBytes ?? null, gatewayMaxPacketBytes: o.maxPacketBytes }, 'connected to the broker')
      this.o.onBrokerMaxPacket?.(brokerMaxPacketBytes)
      if (!sessionPresent) this.subscribe()
      this.o.onConnect(sessionPresent)
    })
    this.client.on('close', () => {
      if (!this.closed) this.o.logger.warn({ broker: redactUrl(o.url) }, 'broker connection closed; reconnecting')
    })
    this.client.on('error', (e) => {
      this.o.logger.warn({ broker: redactUrl(o.url), error: e.message }, 'broker connection error')
    })
  }

  /** Starts connecting (and reconnecting for ever); does not wait for the broker. */
  static start (options: MqttIngestOptions): MqttIngest {
    return new MqttIngest(options)
  }

  get connected (): boolean {
    return this.client.connected
  }

  /**
   * Resolves on the first connection.
   * @throws GatewayError `BROKER_FAILED` when it takes longer than `timeoutMs`.
   */
  async waitConnected (timeoutMs: number): Promise<void> {
    if (this.client.connected) return
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.client.off('connect', done)
        reject(new GatewayError('BROKER_FAILED', `no connection to ${redactUrl(this.o.url)} within ${timeoutMs} ms`))
      }, timeoutMs)
      const done = (): void => { clearTimeout(timer); resolve() }
      this.client.once('connect', done)
    })
  }

  /** Publishes a retained QoS 1 ack; false when not connected (the caller retries on reconnect). */
  publishAck (deviceId: string, payload: Uint8Array): boolean {
    if (!this.client.connected || this.closed) return false
    this.client.publish(deviceTopic(deviceId, 'ack'), Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), {
      qos: 1,
      retain: true,
      ...(this.o.protocolVersion === 5 ? { properties: { userProperties: { gateway: this.o.gatewayName } } } : {})
    }, (e) => {
      if (e !== undefined && e !== null && !this.closed) this.o.logger.warn({ device: deviceId, error: e.message }, 'ack publish failed')
    })
    return true
  }

  /**
   * Stops taking messages: the next one is held without PUBACK, so the broker keeps it (and what
   * follows) in the session for the next start. Acks can still be published.
   */
  pause (): void {
    this.paused = true
  }

  /**
   * Lets what was written reach the socket, then closes it without DISCONNECT handshakes that
   * would wait on the held message. The session stays with the broker for `sessionExpirySeconds`.
   */
  async close (): Promise<void> {
    if (this.closed) return
    this.closed = true
    const stream = (this.client as unknown as { stream?: { writableLength?: number } }).stream
    for (let waited = 0; waited < 1000 && (stream?.writableLength ?? 0) > 0; waited += 10) {
      await new Promise(resolve => setTimeout(resolve, 10))
    }
    // No reconnection after this, even when closing while a connection attempt is under way.
    this.client.options.reconnectPeriod = 0
    await new Promise<void>((resolve) => { this.client.end(true, {}, () => resolve()) })
  }

  private subscribe (): void {
    const records = { [this.recordsFilter]: { qos: 1 as const } }
    const acks = this.subscribeAcks
      ? { [topicFilter('ack')]: { qos: 1 as const, ...(this.o.protocolVersion === 5 ? { nl: true } : {}) } }
      : {}
    this.client.subscribe({ ...acks, ...records }, (e, granted) => {
      if (e !== null && e !== undefined) {
        this.o.logger.error({ error: e.message }, 'subscribe failed')
        return
      }
      const refused = (granted ?? []).filter(g => g.qos > 2)
      if (refused.length > 0) this.o.logger.error({ refused: refused.map(g => g.topic) }, 'the broker refused a subscription')
    })
  }

  private handle (packet: IPublishPacket, callback: (error?: Error) => void): void {
    // Paused: never acknowledged, so the broker redelivers it to the next session.
    if (this.paused) return
    const topic = packet.topic
    const p = packet.payload
    // A plain view: the decoder's byte-string copies must not be Buffer views into MQTT's buffers.
    const payload = typeof p === 'string'
      ? new TextEncoder().encode(p)
      : new Uint8Array(p.buffer, p.byteOffset, p.byteLength)
    try {
      if (topic.endsWith('/ack')) {
        const mine = packet.properties?.userProperties?.gateway === this.o.gatewayName
        if (!mine) this.o.onAck(topic, payload)
      } else {
        this.o.onRecords(topic, payload)
      }
    } catch (e) {
      this.o.logger.error({ topic: topic.slice(0, 256), error: (e as Error).message }, 'message handling failed')
    }
    const wait = this.o.flowControl()
    if (wait === undefined) callback()
    else wait.then(() => callback(), () => callback())
  }
}

/**
 * Turns off Nagle's algorithm on the client's socket. MQTT.js leaves it on, and a small ack
 * written while the broker's delayed TCP ACK is pending then waits ~40 ms on Linux.
 */
export function setNoDelay (client: MqttClient): void {
  const stream = (client as unknown as { stream?: { setNoDelay?: (on: boolean) => unknown } }).stream
  stream?.setNoDelay?.(true)
}
