/**
 * Issue 9 point 7, the gateway's side: a payload above the broker's packet limit never reaches the
 * gateway, so the gateway says where that limit is (log, metric) and warns when it is below what
 * the gateway would accept.
 */
import t from 'tap'
import { startGatewayEnv, httpGet } from '../../fixtures/gateway-env.js'
import type { GatewayLogger } from '../../../gateway/index.js'

t.test('behavior: the broker\'s maximum packet size (MQTT 5 CONNACK) is logged, exported, and warned about when below maxPayloadBytes', async t => {
  const env = await startGatewayEnv(t, { mosquittoConfig: ['max_packet_size 100000'] })
  const warnings: Array<{ fields: Record<string, unknown>, message: string | undefined }> = []
  const infos: Array<Record<string, unknown>> = []
  const logger: GatewayLogger = {
    debug: () => {},
    info: (fields) => { infos.push(fields as Record<string, unknown>) },
    warn: (fields, message) => { warnings.push({ fields: fields as Record<string, unknown>, message }) },
    error: () => {}
  }
  const gw = await env.gateway({ processMetrics: false, logger, maxPayloadBytes: 1024 * 1024 })
  t.ok(infos.some(f => f.brokerMaxPacketBytes === 100000 && f.gatewayMaxPacketBytes === 2 * 1024 * 1024 + 64 * 1024), 'the connection log names both limits')
  t.match(warnings.find(w => w.fields.brokerMaxPacketBytes === 100000), { fields: { maxPayloadBytes: 1024 * 1024 }, message: /vanish at the broker/ })
  t.match((await httpGet(`${gw.httpUrl}/metrics`)).text, /provenance_gateway_broker_max_packet_bytes 100000\b/)
})

t.test('behavior: no warning when the broker takes what the gateway accepts', async t => {
  const env = await startGatewayEnv(t)
  const warnings: unknown[] = []
  const logger: GatewayLogger = { debug: () => {}, info: () => {}, warn: (f) => { warnings.push(f) }, error: () => {} }
  const gw = await env.gateway({ processMetrics: false, logger })
  // Other warnings (an unregistered log key) are not this test's business.
  t.same(warnings.filter(w => (w as Record<string, unknown>).brokerMaxPacketBytes !== undefined), [])
  t.match((await httpGet(`${gw.httpUrl}/metrics`)).text, /provenance_gateway_broker_max_packet_bytes \d+\b/)
})
