// The Mosquitto files the fleet CLI writes: mosquitto_passwd's own format, one block per user that
// a second registration replaces, hand-written lines kept, and names that could widen a topic refused.
import t from 'tap'
import { execFile } from 'node:child_process'
import { access, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { FleetError, aclLines, checkMosquittoPassword, hashMosquittoPassword, removeBrokerUser, upsertBrokerUser } from '../../fleet/index.js'
import { makeTempDir } from '../helpers/tmp.js'

const MOSQUITTO_PASSWD = '/usr/bin/mosquitto_passwd'

t.test('behavior: password lines match mosquitto_passwd both ways', async t => {
  // Vector: `mosquitto_passwd -b` (Mosquitto 2.0.11) wrote this line for password "secret".
  t.equal(hashMosquittoPassword('alice', 'secret', Buffer.from('nvNmbiFOTc+o2y3n', 'base64')),
    'alice:$7$101$nvNmbiFOTc+o2y3n$szExnOSkTK2QH/8gq8FzNlWcgIU/Nral1z76lcL4QhVCSfssaqzRc7ZKNEjPEWmD6mrwcJ5NpTVRm6iihUuEmA==')
  t.ok(checkMosquittoPassword(hashMosquittoPassword('u', 'secret'), 'secret'))
  t.notOk(checkMosquittoPassword(hashMosquittoPassword('u', 'secret'), 'Secret'))
  const ok = await access(MOSQUITTO_PASSWD).then(() => true, () => false)
  if (!ok) { t.comment('mosquitto_passwd is not installed: cross-check skipped'); return }
  const dir = await makeTempDir(t)
  const file = join(dir, 'passwd')
  await writeFile(file, '')
  await promisify(execFile)(MOSQUITTO_PASSWD, ['-b', file, 'alice', 's3cret'])
  const theirs = (await readFile(file, 'utf8')).trim()
  t.ok(checkMosquittoPassword(theirs, 's3cret'), 'our check accepts mosquitto_passwd\'s line')
  t.notOk(checkMosquittoPassword(theirs, 'other'))
})

t.test('behavior: a device may write only its records and status and read only its ack and policy', async t => {
  t.same(aclLines('cam-1', 'device'), ['user cam-1', 'topic write prov/v1/cam-1/records', 'topic write prov/v1/cam-1/status', 'topic read prov/v1/cam-1/ack', 'topic read prov/v1/cam-1/policy'])
  t.same(aclLines('gw', 'gateway'), ['user gw', 'topic read prov/v1/+/records', 'topic read prov/v1/+/status', 'topic readwrite prov/v1/+/ack'])
  t.same(aclLines('pub', 'publisher'), ['user pub', 'topic readwrite prov/v1/+/policy'])
})

t.test('behavior: registering a user again replaces its block and line; other lines are kept; remove takes them out', async t => {
  const dir = await makeTempDir(t)
  const acl = join(dir, 'acl')
  const passwd = join(dir, 'passwd')
  await writeFile(acl, '# hand-written\npattern read $SYS/#\n', { mode: 0o640 })
  await upsertBrokerUser({ username: 'cam-1', role: 'device', aclPath: acl, passwdPath: passwd, password: 'a' })
  await upsertBrokerUser({ username: 'cam-2', role: 'device', aclPath: acl, passwdPath: passwd, password: 'b' })
  await upsertBrokerUser({ username: 'cam-1', role: 'device', aclPath: acl, passwdPath: passwd, password: 'c' })
  const text = await readFile(acl, 'utf8')
  t.ok(text.startsWith('# hand-written\npattern read $SYS/#\n'), 'hand-written lines first, unchanged')
  t.equal(text.match(/^user cam-1$/gm)?.length, 1, 'one block per user')
  t.equal((await stat(acl)).mode & 0o777, 0o640, 'the file keeps its mode')
  t.equal((await stat(passwd)).mode & 0o777, 0o600, 'a new password file is 0600')
  const lines = (await readFile(passwd, 'utf8')).trim().split('\n')
  t.equal(lines.length, 2)
  t.ok(checkMosquittoPassword(lines.find(l => l.startsWith('cam-1:')) ?? '', 'c'), 'the newest password holds')
  t.same(await removeBrokerUser({ username: 'cam-1', aclPath: acl, passwdPath: passwd }), { acl: true, passwd: true })
  t.notMatch(await readFile(acl, 'utf8'), /cam-1/)
  t.match(await readFile(acl, 'utf8'), /user cam-2/)
  t.same(await removeBrokerUser({ username: 'cam-1', aclPath: acl, passwdPath: passwd }), { acl: false, passwd: false })
  const dry = await upsertBrokerUser({ username: 'cam-3', role: 'device', aclPath: acl, passwdPath: passwd, password: 'd', dryRun: true })
  t.match(dry, { acl: { written: false }, passwd: { written: false } })
  t.notMatch(await readFile(acl, 'utf8'), /cam-3/, 'a dry run writes nothing')
})

t.test('error: names that could widen a topic or split a line are BROKER_USERNAME_INVALID', async t => {
  for (const name of ['a:b', 'a b', 'a/b', '+', '#', 'a#', '', 'x'.repeat(129), 'a\nuser gw']) {
    t.throws(() => aclLines(name, 'device'), { constructor: FleetError, code: 'BROKER_USERNAME_INVALID' }, JSON.stringify(name))
    t.throws(() => hashMosquittoPassword(name, 'p'), { code: 'BROKER_USERNAME_INVALID' }, JSON.stringify(name))
  }
})

t.test('error: a hand-written section for the same user, a broken block or a bad password line is BROKER_FILE_INVALID', async t => {
  const dir = await makeTempDir(t)
  const cases: Array<[string, string]> = [
    ['acl', 'user cam-1\ntopic readwrite #\n'],
    ['acl', '# provenance-fleet begin cam-9\nuser cam-9\n'],
    ['acl', '# provenance-fleet end cam-9\n'],
    ['passwd', 'no-colon-here\n']
  ]
  for (const [kind, content] of cases) {
    const path = join(dir, kind)
    await writeFile(path, content)
    await t.rejects(upsertBrokerUser({ username: 'cam-1', role: 'device', ...(kind === 'acl' ? { aclPath: path } : { passwdPath: path, password: 'p' }) }),
      { constructor: FleetError, code: 'BROKER_FILE_INVALID' }, JSON.stringify(content))
    t.equal(await readFile(path, 'utf8'), content, 'the file is left as it was')
  }
})

t.test('behavior: the example ACL (fleet/mosquitto/provenance.acl) is what the CLI writes for its users', async t => {
  const example = await readFile(new URL('../../fleet/mosquitto/provenance.acl', import.meta.url), 'utf8')
  const header = example.slice(0, example.indexOf('\n\n# provenance-fleet begin') + 1)
  const dir = await makeTempDir(t)
  const acl = join(dir, 'acl')
  await writeFile(acl, header)
  await upsertBrokerUser({ username: 'gateway-1', role: 'gateway', aclPath: acl })
  await upsertBrokerUser({ username: 'policy-publisher', role: 'publisher', aclPath: acl })
  await upsertBrokerUser({ username: 'cam-1', role: 'device', aclPath: acl })
  t.equal(await readFile(acl, 'utf8'), example)
})
