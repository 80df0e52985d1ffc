// The gateway's reading of retained peer acks (scale-out shared tip): only a trusted gateway's
// signed ack for the topic's device counts; everything else is refused, counted and logged sparingly.
import t from 'tap'
import { createPeerAckReader, type GatewayLogger } from '../../gateway/index.js'
import { createSigner, encodeCanonical, sha256, signAck, type AckErrorCode } from '../../protocol/index.js'

const own = createSigner(new Uint8Array(32).fill(1))
const peer = createSigner(new Uint8Array(32).fill(2))
const stranger = createSigner(new Uint8Array(32).fill(3))
const hash = sha256(new Uint8Array([5]))
const ack = (signer: typeof own, deviceId = 'dev-1'): Uint8Array =>
  signAck({ deviceId, gatewayId: 'gateway.x', issuedAtMs: 1, storedSeq: 5, storedHash: hash, anchoredSeq: 4 }, signer).envelope

t.test('behavior: acks signed by this gateway or a trusted peer are read; the rest are refused with a code', async t => {
  const codes: AckErrorCode[] = []
  const warnings: string[] = []
  const logger: GatewayLogger = { debug () {}, info () {}, error () {}, warn (_f, m) { warnings.push(m ?? '') } }
  const read = createPeerAckReader({ trustedKeys: [own.publicKey, peer.publicKey], logger, onRejected: c => codes.push(c) })
  t.same(read('dev-1', ack(own)), { storedSeq: 5, storedHash: hash, anchoredSeq: 4 })
  t.same(read('dev-1', ack(peer)), { storedSeq: 5, storedHash: hash, anchoredSeq: 4 })
  t.equal(read('dev-1', new Uint8Array(0)), undefined, 'a cleared retained topic')
  t.same(codes, [], 'nothing refused so far')
  t.equal(read('dev-1', encodeCanonical([1, 6, hash, 5])), undefined)
  t.equal(read('dev-1', ack(stranger)), undefined)
  t.equal(read('dev-2', ack(peer)), undefined)
  const tampered = ack(peer)
  tampered[tampered.length - 1] = (tampered.at(-1) as number) ^ 1
  t.equal(read('dev-1', tampered), undefined)
  t.equal(read('dev-1', Uint8Array.of(0xff)), undefined)
  t.same(codes, ['ACK_UNSIGNED', 'ACK_UNKNOWN_KEY', 'ACK_FOREIGN_DEVICE', 'ACK_SIGNATURE_INVALID', 'ACK_MALFORMED'])
  for (let i = 0; i < 1000; i++) read('dev-1', ack(stranger))
  t.ok(warnings.length <= 5 + 10, `${warnings.length} warnings for 1005 refused acks`)
})
