// Secrets for CLIs: a key file must be the owner's alone; the environment is the other way in;
// a malformed secret is refused without echoing it.
import t from 'tap'
import { chmod, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { CommonError, parseHexSecret32, readOwnerOnlyFile, readSecret, type OwnerOnlyFileProblem } from '../../common/index.js'
import { makeTempDir } from '../helpers/tmp.js'

const KEY = 'ab'.repeat(32)

t.test('behavior: reads a 0600 file (trimmed), else the environment variable', async t => {
  const dir = await makeTempDir(t)
  const file = join(dir, 'k')
  await writeFile(file, `  0x${KEY}\n`, { mode: 0o600 })
  t.equal(await readSecret({ file, what: 'key' }), `0x${KEY}`)
  t.equal(await readSecret({ envName: 'K', env: { K: ` ${KEY} ` }, what: 'key' }), KEY)
  t.equal(parseHexSecret32(`0x${KEY.toUpperCase()}`, 'key'), KEY)
})

t.test('error: a file others may read is SECRET_INSECURE; a missing one SECRET_UNREADABLE; none at all SECRET_MISSING', async t => {
  const dir = await makeTempDir(t)
  const file = join(dir, 'k')
  await writeFile(file, KEY)
  await chmod(file, 0o640)
  await t.rejects(readSecret({ file, what: 'key' }), { constructor: CommonError, code: 'SECRET_INSECURE' })
  await t.rejects(readSecret({ file: join(dir, 'none'), what: 'key' }), { constructor: CommonError, code: 'SECRET_UNREADABLE' })
  await t.rejects(readSecret({ envName: 'K', env: { K: ' ' }, what: 'key', fileOption: '--key-file' }), { constructor: CommonError, code: 'SECRET_MISSING', message: /--key-file or set K/ })
})

t.test('error: a malformed secret is SECRET_INVALID and its value is not in the message', async t => {
  const secret = 'not-a-key-but-a-secret-password'
  const e = t.throws(() => parseHexSecret32(secret, 'the key')) as unknown as CommonError
  t.equal(e.code, 'SECRET_INVALID')
  t.notMatch(e.message, secret)
})

t.test('behavior: readOwnerOnlyFile reads a 0600 file, answers undefined for a missing one, and names each problem for the caller to map', async t => {
  const dir = await makeTempDir(t)
  class Refused extends Error { constructor (readonly problem: OwnerOnlyFileProblem, message: string) { super(message) } }
  const options = { maxBytes: 64, what: 'key file', error: (problem: OwnerOnlyFileProblem, message: string) => new Refused(problem, message) }
  const file = join(dir, 'k')
  await writeFile(file, 'secret', { mode: 0o600 })
  t.equal(await readOwnerOnlyFile(file, options), 'secret')
  t.equal(await readOwnerOnlyFile(join(dir, 'missing'), options), undefined)
  await chmod(file, 0o640)
  await t.rejects(readOwnerOnlyFile(file, options), { problem: 'insecure', message: /mode 640/ })
  await writeFile(join(dir, 'big'), 'x'.repeat(65), { mode: 0o600 })
  await t.rejects(readOwnerOnlyFile(join(dir, 'big'), options), { problem: 'invalid', message: /65 bytes/ })
  await t.rejects(readOwnerOnlyFile(dir, { ...options, maxBytes: 1 << 20 }), { problem: 'unreadable', message: /not a regular file/ })
})
