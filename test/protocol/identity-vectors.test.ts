/**
 * The device identity vectors of docs/PROTOCOL.md §13: the JSON is what the code produces now, the
 * doc holds exactly its block, and the published bytes verify (and the high-s twin does not) on
 * both backends, as another implementation would check them.
 */
import t from 'tap'
import { readFileSync } from 'node:fs'
import {
  checkKeyCertification, decodeEnvelope, decodeKeyCertification, fromHex, keyCertificationMessage, toHex, verifyP256, verifyRecordSignature
} from '../../protocol/index.js'
import {
  IDENTITY_DOC_BEGIN, IDENTITY_DOC_END, IDENTITY_VECTORS_PATH, PROTOCOL_DOC_PATH, buildIdentityVectors, renderIdentityVectorsMarkdown, type IdentityVectors
} from '../../scripts/gen-identity-vectors.js'

const file = JSON.parse(readFileSync(IDENTITY_VECTORS_PATH, 'utf8')) as IdentityVectors

t.test('behavior: test/vectors/identity.json is exactly what the code produces now', async t => {
  t.ok(file.source.startsWith('docs/PROTOCOL.md'), 'source names the spec')
  t.same(file, buildIdentityVectors(), 'rerun `node --import tsx scripts/gen-identity-vectors.ts --doc` after a deliberate format change')
})

t.test('behavior: the identity vector block in docs/PROTOCOL.md is rendered from identity.json, byte for byte', async t => {
  const doc = readFileSync(PROTOCOL_DOC_PATH, 'utf8')
  const a = doc.indexOf(IDENTITY_DOC_BEGIN)
  const b = doc.indexOf(IDENTITY_DOC_END)
  t.ok(a >= 0 && b > a, 'the doc has the identity vector markers')
  t.equal(doc.slice(a, b + IDENTITY_DOC_END.length), renderIdentityVectorsMarkdown(file))
})

t.test('behavior: the published certification and boot record verify on both backends; the high-s twin does not', async t => {
  const c = file.certification
  const bytes = fromHex(c.bytes)
  t.equal(toHex(keyCertificationMessage(bytes)), c.message)
  t.same(toHex(decodeKeyCertification(bytes).recordKey), c.fields.recordKey)
  for (const backend of ['node', 'noble'] as const) {
    t.ok(verifyP256(fromHex(c.signature), fromHex(c.message), fromHex(file.identity.publicKey), backend), backend)
    t.notOk(verifyP256(fromHex(c.highSTwin), fromHex(c.message), fromHex(file.identity.publicKey), backend), `${backend}: high s`)
    const checked = checkKeyCertification(bytes, fromHex(c.signature), { registryKey: fromHex(file.identity.registryKey), deviceId: c.fields.deviceId, boot: c.fields.boot, timeMs: c.fields.validFromMs }, backend)
    t.notOk('problem' in checked, `${backend}: certification checks`)
  }
  const boot = decodeEnvelope(fromHex(file.bootRecord.envelope))
  t.equal(toHex(boot.hash), file.bootRecord.hash)
  t.ok(verifyRecordSignature(boot, fromHex(file.recordKey.publicKey), 'noble'))
  t.ok(boot.record.body.kind === 'boot' && toHex(boot.record.body.certification?.bytes ?? new Uint8Array()) === c.bytes)
})
