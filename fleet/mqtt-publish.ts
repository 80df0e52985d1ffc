/**
 * Publishes retained messages to the broker for the fleet CLI (policy envelopes), over MQTT 5 so
 * that a broker refusing the message (an ACL) answers with a reason code instead of dropping it.
 */
import mqtt from 'mqtt'
import { FleetError } from './errors.js'

export const DEFAULT_MQTT_CONNECT_TIMEOUT_MS = 10_000

export interface RetainedPublishOptions {
  brokerUrl: string
  username?: string
  password?: string
  /** Give up connecting after this long. Default 10 000 ms. */
  connectTimeoutMs?: number
}

/**
 * Publishes each payload retained with QoS 1 and waits for every PUBACK.
 * @throws FleetError `MQTT_PUBLISH_FAILED` (unreachable broker, bad credentials, refused publish).
 */
export async function publishRetained (o: RetainedPublishOptions, messages: ReadonlyArray<{ topic: string, payload: Uint8Array }>): Promise<void> {
  let client
  try {
    client = await mqtt.connectAsync(o.brokerUrl, {
      protocolVersion: 5,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: o.connectTimeoutMs ?? DEFAULT_MQTT_CONNECT_TIMEOUT_MS,
      clientId: `provenance-fleet-${process.pid}-${Date.now().toString(36)}`,
      ...(o.username !== undefined ? { username: o.username } : {}),
      ...(o.password !== undefined ? { password: o.password } : {})
    })
  } catch (e) {
    throw new FleetError('MQTT_PUBLISH_FAILED', `cannot connect to ${redact(o.brokerUrl)}: ${(e as Error).message}`, { cause: e })
  }
  try {
    for (const m of messages) {
      try {
        await client.publishAsync(m.topic, Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength), { qos: 1, retain: true })
      } catch (e) {
        throw new FleetError('MQTT_PUBLISH_FAILED', `the broker refused ${m.topic}: ${(e as Error).message}`, { cause: e })
      }
    }
  } finally {
    await client.endAsync().catch(() => {})
  }
}

function redact (url: string): string {
  try {
    const u = new URL(url)
    if (u.password !== '') u.password = '***'
    return u.toString()
  } catch {
    return '<invalid url>'
  }
}
