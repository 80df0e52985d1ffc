// The enrollment request is read from a file an operator carried by hand: every field is checked,
// nothing unknown passes, and no parser error escapes as anything but ENROLLMENT_INVALID.
import t from 'tap'
import { ENROLLMENT_FORMAT, EnrollmentError, parseEnrollmentRequest } from '../../protocol/index.js'

const GOOD = { format: ENROLLMENT_FORMAT, deviceId: 'cam-1', publicKey: 'ab'.repeat(32), validFromMs: 0, profile: 'raspberry-pi-4', agentVersion: '0.1.0', createdMs: 1 }

t.test('behavior: a well-formed request parses to itself (a leading byte order mark is tolerated)', async t => {
  t.same(parseEnrollmentRequest(JSON.stringify(GOOD)), GOOD)
  t.same(parseEnrollmentRequest('\uFEFF' + JSON.stringify(GOOD, null, 2)), GOOD)
})

t.test('error: hostile or broken requests are ENROLLMENT_INVALID naming each bad field', async t => {
  const cases: Array<[string, string, RegExp]> = [
    ['not JSON', '{', /not JSON/],
    ['an array', '[]', /JSON object/],
    ['null', 'null', /JSON object/],
    ['other format', JSON.stringify({ ...GOOD, format: 'v0' }), /format/],
    ['topic wildcard in id', JSON.stringify({ ...GOOD, deviceId: 'cam/+' }), /deviceId/],
    ['hash in id', JSON.stringify({ ...GOOD, deviceId: '#' }), /deviceId/],
    ['long id', JSON.stringify({ ...GOOD, deviceId: 'a'.repeat(129) }), /deviceId/],
    ['upper-case key', JSON.stringify({ ...GOOD, publicKey: 'AB'.repeat(32) }), /publicKey/],
    ['short key', JSON.stringify({ ...GOOD, publicKey: 'ab' }), /publicKey/],
    ['negative time', JSON.stringify({ ...GOOD, validFromMs: -1 }), /validFromMs/],
    ['fractional time', JSON.stringify({ ...GOOD, validFromMs: 1.5 }), /validFromMs/],
    ['time as string', JSON.stringify({ ...GOOD, createdMs: '1' }), /createdMs/],
    ['extra field', JSON.stringify({ ...GOOD, admin: true }), /admin: not an enrollment field/],
    ['__proto__ field', `{"__proto__":{"x":1},${JSON.stringify(GOOD).slice(1)}`, /__proto__: not an enrollment field/],
    ['huge', JSON.stringify({ ...GOOD, profile: 'x'.repeat(20_000) }), /over 16384 bytes/]
  ]
  for (const [label, text, why] of cases) {
    t.throws(() => parseEnrollmentRequest(text), { constructor: EnrollmentError, code: 'ENROLLMENT_INVALID', message: why }, label)
  }
  const e = t.throws(() => parseEnrollmentRequest(JSON.stringify({ ...GOOD, deviceId: '', publicKey: 1, profile: '' }))) as unknown as Error
  t.match(e.message, /deviceId.*publicKey.*profile/, 'every bad field in one message')
})
