import t from 'tap'
import {
  deviceTopic, topicFilter, parseTopic, encodeRecordBatch, decodeRecordBatch,
  encodeCanonical, ProtocolError, MAX_BATCH_RECORDS
} from '../../protocol/index.js'

t.test('behavior: topics round-trip and foreign topics are not ours', async t => {
  t.equal(deviceTopic('dev-1', 'records'), 'prov/v1/dev-1/records')
  t.equal(topicFilter('ack'), 'prov/v1/+/ack')
  t.same(parseTopic('prov/v1/dev-1/records'), { deviceId: 'dev-1', kind: 'records' })
  for (const bad of ['prov/v1/dev-1', 'prov/v2/dev-1/records', 'prov/v1/dev 1/records', 'prov/v1/dev-1/other', 'prov/v1//records', 'x/prov/v1/d/ack']) {
    t.equal(parseTopic(bad), undefined, bad)
  }
  t.throws(() => deviceTopic('a/b', 'records'), RangeError)
  t.throws(() => deviceTopic('+', 'records'), RangeError)
})

t.test('behavior: record batches round-trip', async t => {
  const envs = [new Uint8Array([1, 2]), new Uint8Array(64)]
  t.same(decodeRecordBatch(encodeRecordBatch(envs)), envs)
})

t.test('error: malformed payloads give ProtocolError', async t => {
  const cases: Array<[string, Uint8Array, (b: Uint8Array) => unknown]> = [
    ['batch of non-bytes', encodeCanonical([1, 2]), decodeRecordBatch],
    ['batch not an array', encodeCanonical('x'), decodeRecordBatch],
    ['too many records', encodeCanonical(Array.from({ length: MAX_BATCH_RECORDS + 1 }, () => new Uint8Array(1))), decodeRecordBatch],
    ['garbage', new Uint8Array([0xff, 0x00]), decodeRecordBatch]
  ]
  for (const [name, bytes, fn] of cases) {
    const err = (() => { try { fn(bytes); return undefined } catch (e) { return e } })()
    t.type(err, ProtocolError, name)
  }
})

t.test('behavior: byte strings decoded from a Buffer are copies, not views of the input', async t => {
  const input = Buffer.from(encodeRecordBatch([new Uint8Array([1, 2, 3])]))
  const [env] = decodeRecordBatch(input)
  input.fill(0)
  t.same(env, new Uint8Array([1, 2, 3]))
})
