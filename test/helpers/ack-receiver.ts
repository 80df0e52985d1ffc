/**
 * The smallest acking receiver for uplink tests: verifies one device's chain in order and acks
 * (retained, signed with a test gateway key) the contiguous tip, as a gateway would. The uplink's
 * own contract is tested with it; the real gateway has its own suite.
 */
import mqtt from 'mqtt'
import {
  ChainVerifier, createSigner, decodeEnvelope, decodeRecordBatch, deviceTopic, fixedKey, parseTopic, signAck, topicFilter, ZERO_HASH,
  type Ack, type Signer, type SignedRecord
} from '../../protocol/index.js'

/** The test gateway's log key: uplinks under test trust `TEST_GATEWAY_KEY.publicKey`. */
export const TEST_GATEWAY_KEY: Signer = createSigner(new Uint8Array(32).fill(8))
let issuedAtMs = 1

/** A signed ack of the test gateway, as published on the ack topic. */
export function testAck (deviceId: string, ack: Ack): Buffer {
  return Buffer.from(signAck({ deviceId, gatewayId: 'gateway.test', issuedAtMs: issuedAtMs++, ...ack }, TEST_GATEWAY_KEY).envelope)
}

export interface ReceiverState {
  stored: Map<number, SignedRecord>
  duplicates: number
  skipped: number
  failures: string[]
  tip: { seq: number, hash: Uint8Array }
  verifier: ChainVerifier
  /** Byte size of each records payload received, in order. */
  payloadSizes: number[]
}

export function newReceiverState (deviceId: string, devicePublicKey: Uint8Array): ReceiverState {
  return { stored: new Map(), duplicates: 0, skipped: 0, failures: [], tip: { seq: -1, hash: ZERO_HASH }, verifier: new ChainVerifier({ deviceId, keyAt: fixedKey(devicePublicKey) }), payloadSizes: [] }
}

/** Subscribes to every device's records on `url` and acks; `state` carries over a restart, as a gateway's store. */
export async function startReceiver (url: string, state: ReceiverState): Promise<ReceiverState & { close: () => Promise<void> }> {
  const client = await mqtt.connectAsync(url, { protocolVersion: 5, clientId: `receiver-${Math.random()}` })
  client.on('message', (topic, payload) => {
    const p = parseTopic(topic)
    if (p?.kind !== 'records') return
    state.payloadSizes.push(payload.byteLength)
    for (const env of decodeRecordBatch(new Uint8Array(payload))) {
      const r = decodeEnvelope(env)
      if (r.record.seq <= state.tip.seq) { state.duplicates++; continue }
      // A message published while nobody subscribed is lost in transit: the uplink resends on ack timeout.
      if (r.record.seq !== state.tip.seq + 1) { state.skipped++; continue }
      const f = state.verifier.push(r)
      if (f !== undefined) { state.failures.push(f.message); continue }
      state.stored.set(r.record.seq, r)
      state.tip = { seq: r.record.seq, hash: r.hash }
    }
    void client.publishAsync(deviceTopic(p.deviceId, 'ack'), testAck(p.deviceId, { storedSeq: state.tip.seq, storedHash: state.tip.hash, anchoredSeq: -1 }), { qos: 1, retain: true }).catch(() => {})
  })
  await client.subscribeAsync(topicFilter('records'), { qos: 1 })
  return Object.assign(state, { close: async () => { await client.endAsync() } })
}

export async function waitFor (what: string, fn: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 25))
  }
}
