// Oversight and session records written through the running daemon: `provenance-agent oversight`
// and `session start|end` (in-process CLI, through the 0600 socket) append signed, chained records
// that the compliance export accepts; bad requests are refused with every bad field named, cost no
// seq, and the CLI's own mistakes are usage errors. One daemon for the file.
import t from 'tap'
import { request } from 'node:http'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import fc from 'fast-check'
import { runCli, type CliIo } from '../../../agent/cli/index.js'
import { Daemon, DaemonError, parseStatementRequest } from '../../../agent/daemon/index.js'
import { resolveProfile } from '../../../agent/profile/index.js'
import { KeyRing } from '../../../agent/keys/index.js'
import { buildCompliance } from '../../../forensics/compliance/index.js'
import { sha256, toHex, type SignedRecord } from '../../../protocol/index.js'
import { offlineBundle } from '../../helpers/forensics-fixture.js'
import { makeClassifierModel } from '../../helpers/onnx-models.js'
import type { ChainBuilder } from '../../helpers/records.js'
import { makeTempDir } from '../../helpers/tmp.js'

ort.env.logLevel = 'fatal'
const DEVICE = 'station-7'
const dir = await makeTempDir(t, 'prov-statements-')
const model = makeClassifierModel({ seed: 1 })
await writeFile(join(dir, 'tiny.onnx'), model)
const reference = join(dir, 'watchlist.db')
await writeFile(reference, 'watchlist v3\n')
const config = join(dir, 'config.json')
await writeFile(config, JSON.stringify({ deviceId: DEVICE, stateDir: join(dir, 'state'), profile: 'generic-x86_64', models: [{ name: 'tiny', path: 'tiny.onnx' }] }))
const daemon = await Daemon.start({
  deviceId: DEVICE, stateDir: join(dir, 'state'), profile: await resolveProfile('generic-x86_64'), models: [{ name: 'tiny', path: join(dir, 'tiny.onnx') }],
  logger: { info: () => {}, warn: () => {}, error: () => {} }
})
t.teardown(async () => await daemon.stop('test teardown'))

async function agent (argv: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const io: CliIo = { env: {}, stdout: { write: (s) => { stdout += String(s) } }, stderr: { write: (s) => { stderr += String(s) } } }
  const code = await runCli(argv, io)
  return { code, stdout, stderr }
}

async function post (path: string, body: string): Promise<{ status: number, body: { error?: { code: string, message: string } } }> {
  return await new Promise((resolve, reject) => {
    const req = request({ socketPath: daemon.socketPath, method: 'POST', path, headers: { 'content-type': 'application/json' } }, res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

t.test('behavior: a use with a reference database and a review of its decision, through the CLI, make a VALID compliance export', async t => {
  const start = await agent(['session', 'start', '--config', config, '--id', 'use-1', '--reference', reference, '--json'])
  t.equal(start.code, 0, start.stderr)
  const tensor = new ort.Tensor('float32', Float32Array.from([0.1, -0.2, 0.3, 0.4]), [1, 4])
  const run = await daemon.run('tiny', { x: tensor }, 'match #2')
  const decision = run.record
  const end = await agent(['session', 'end', '--config', config, '--id', 'use-1', '--reference', reference])
  t.equal(end.code, 0, end.stderr)
  t.match(end.stdout, new RegExp(`^session use-1 end: record seq \\d+ .*reference watchlist.db sha256 ${toHex(sha256(new TextEncoder().encode('watchlist v3\n')))}`))
  const review = await agent(['oversight', '--config', config, '--decision', toHex(decision.hash), '--decision-device', DEVICE, '--decision-seq', String(decision.record.seq),
    '--verdict', 'overridden', '--reviewer', 'reviewer-17', '--reason', 'not the same person', '--json'])
  t.equal(review.code, 0, review.stderr)
  const written = JSON.parse(review.stdout) as { record: { kind: string, seq: number, hash: string } }
  t.equal(written.record.kind, 'oversight')

  const records: SignedRecord[] = await daemon.log.range(0, daemon.log.head.seq)
  t.same(records.map(r => r.record.body.kind), ['boot', 'model-load', 'session', 'inference', 'session', 'oversight'])
  t.equal(toHex(records[5]!.hash), written.record.hash, 'the record the CLI reports is the one in the log')
  const ring = await KeyRing.open(join(dir, 'state', 'keys', 'device-key.json'))
  const bundle = offlineBundle({ deviceId: DEVICE, records, keys: [{ validFromMs: 0, publicKey: ring.publicKey }] } as unknown as ChainBuilder,
    [{ hash: toHex(sha256(model)), name: 'tiny', version: '1', parentHash: null, manifestHash: '0'.repeat(64), status: 'approved', metadataUri: '' }])
  const report = await buildCompliance([bundle], { offline: true, reviewers: [DEVICE] })
  t.equal(report.verdict, 'valid', JSON.stringify(report.findings))
  t.same(report.oversight.map(o => [o.reviewer, o.verdict, o.decision.seq, o.status]), [['reviewer-17', 'overridden', decision.record.seq, 'accepted']])
  t.same(report.sessions.map(s => [s.sessionId, s.referenceName, s.inferences, s.decisions.map(d => d.decision), s.reviewedBy.length]), [['use-1', 'watchlist.db', 1, ['match #2'], 1]])
})

t.test('error: malformed statements are refused with each bad field named, and cost no seq', async t => {
  const before = daemon.log.head.seq
  const cases: Array<[string, string, RegExp]> = [
    ['not JSON', '{', /body is not JSON/],
    ['unknown kind', JSON.stringify({ kind: 'inference' }), /kind: must be "oversight" or "session"/],
    ['bad verdict and hash', JSON.stringify({ kind: 'oversight', reviewer: 'r', decisionDeviceId: 'd', decisionSeq: 1, decisionHash: 'zz', verdict: 'maybe' }), /verdict: must be one of.*decisionHash: must be 64 hex digits/],
    ['extra field', JSON.stringify({ kind: 'session', phase: 'start', sessionId: 's', boot: 9 }), /boot: not a field of a session record/],
    ['record rules', JSON.stringify({ kind: 'oversight', reviewer: '', decisionDeviceId: 'a/b', decisionSeq: -1, decisionHash: 'ab'.repeat(32), verdict: 'confirmed' }),
      /decisionSeq: not a non-negative safe integer.*reviewer: must not be empty.*decisionDeviceId: must match/],
    ['long session id', JSON.stringify({ kind: 'session', phase: 'end', sessionId: 's'.repeat(300) }), /sessionId: not a string of at most 256 bytes/]
  ]
  for (const [what, body, message] of cases) {
    const r = await post('/v1/records', body)
    t.equal(r.status, 400, what)
    t.equal(r.body.error?.code, 'REQUEST_INVALID', what)
    t.match(r.body.error?.message, message, what)
  }
  t.equal(daemon.log.head.seq, before, 'no record was written')
})

t.test('error: the CLI refuses a bad verdict, hash or missing option as a usage error, and an unreadable reference', async t => {
  const base = ['oversight', '--config', config, '--decision-device', DEVICE, '--decision-seq', '3', '--reviewer', 'r']
  for (const [what, argv] of [
    ['bad verdict', [...base, '--decision', 'ab'.repeat(32), '--verdict', 'maybe']],
    ['bad hash', [...base, '--decision', 'abc', '--verdict', 'confirmed']],
    ['no decision', [...base, '--verdict', 'confirmed']],
    ['no id', ['session', 'start', '--config', config]],
    ['unreadable reference', ['session', 'start', '--config', config, '--id', 'u', '--reference', join(dir, 'missing.db')]]
  ] as Array<[string, string[]]>) {
    const r = await agent(argv)
    t.equal(r.code, 2, `${what}: ${r.stderr}`)
    t.match(r.stderr, /^usage: /, what)
  }
})

t.test('error: any JSON value is either a well-formed statement or REQUEST_INVALID, never another exception', async t => {
  const near = fc.record({
    kind: fc.constantFrom('oversight', 'session', 'inference', 7),
    reviewer: fc.oneof(fc.string(), fc.integer()), decisionDeviceId: fc.oneof(fc.string(), fc.constant('cam-1')), decisionSeq: fc.oneof(fc.integer(), fc.double(), fc.string()),
    decisionHash: fc.oneof(fc.string(), fc.constant('ab'.repeat(32))), verdict: fc.constantFrom('confirmed', 'x', 0), reason: fc.oneof(fc.string(), fc.constant(null)),
    phase: fc.constantFrom('start', 'end', 1), sessionId: fc.oneof(fc.string(), fc.array(fc.string())), referenceHash: fc.oneof(fc.constant(null), fc.string())
  }, { requiredKeys: ['kind'] })
  fc.assert(fc.property(fc.oneof(fc.jsonValue(), near), (value) => {
    try {
      const body = parseStatementRequest(value)
      return body.kind === 'oversight' || body.kind === 'session'
    } catch (e) {
      return e instanceof DaemonError && e.code === 'REQUEST_INVALID'
    }
  }), { numRuns: 2000 })
  t.pass('2000 random bodies')
})

t.test('behavior: provenance-agent capture sample keeps a file as a data-capture record and prints a captures entry that checks against the dataset', async t => {
  const { buildCaptures, checkCaptures, parseCaptures } = await import('../../../forensics/lineage/captures.js')
  const { hashTree } = await import('../../../forensics/lineage/manifest.js')
  const data = join(dir, 'roadside')
  await mkdir(data, { recursive: true })
  await writeFile(join(data, 'truck-1.csv'), 'speed,length\n0.3,0.9\n')
  const r = await agent(['capture', 'sample', '--config', config, '--file', join(data, 'truck-1.csv'), '--dataset', 'roadside', '--label', 'truck', '--captured-at', '1700000000000', '--json'])
  t.equal(r.code, 0, r.stderr)
  const receipt = JSON.parse(r.stdout) as { record: { seq: number, hash: string }, capture: { name: string, envelope: string, salt: string }, contentHash: string }
  t.equal(receipt.capture.name, 'truck-1.csv')
  t.equal(receipt.contentHash, toHex(sha256(new TextEncoder().encode('speed,length\n0.3,0.9\n'))))
  const stored = (await daemon.log.range(receipt.record.seq, receipt.record.seq))[0]!
  t.equal(toHex(stored.hash), receipt.record.hash, 'the record the CLI reports is the one in the log')
  t.match(stored.record.body, { kind: 'data-capture', dataset: 'roadside', label: 'truck', capturedAtMs: 1_700_000_000_000 })
  // The entry is a captures-file entry as printed: it checks against the folder's manifest.
  const file = parseCaptures(new TextEncoder().encode(JSON.stringify({ ...buildCaptures([]), captures: [receipt.capture] })))
  const ring = await KeyRing.open(join(dir, 'state', 'keys', 'device-key.json'))
  const checks = await checkCaptures(await hashTree(data, { workers: 1 }), file, async id => id === DEVICE ? { publicKey: ring.publicKey, revoked: false } : undefined)
  t.same(checks.map(c => [c.ok, c.label]), [[true, 'truck']])
  const human = await agent(['capture', 'sample', '--config', config, '--file', join(data, 'truck-1.csv'), '--dataset', 'roadside', '--name', 'trucks/1.csv'])
  t.equal(human.code, 0, human.stderr)
  t.match(human.stdout, /^data-capture record seq \d+ \(\w{64}\): trucks\/1\.csv, 21 bytes, sha256 \w{64}, kept for roadside\n.*\n\{"name":"trucks\/1\.csv","envelope":"[0-9a-f]+","salt":"[0-9a-f]{64}"\}\n$/)
  const help = await agent(['capture', 'sample', '--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /POST \/v1\/data-captures/)
})

t.test('error: capture sample refuses a missing file, dataset or bad time as a usage error before asking the daemon, and says when no daemon answers', async t => {
  const before = daemon.log.head.seq
  const file = join(dir, 'tiny.onnx')
  for (const [what, argv] of [
    ['no file', ['--dataset', 'd']],
    ['missing file', ['--file', join(dir, 'nope.bin'), '--dataset', 'd']],
    ['a folder', ['--file', dir, '--dataset', 'd']],
    ['no dataset', ['--file', file]],
    ['empty label', ['--file', file, '--dataset', 'd', '--label', '']],
    ['long label', ['--file', file, '--dataset', 'd', '--label', 'l'.repeat(300)]],
    ['bad time', ['--file', file, '--dataset', 'd', '--captured-at', 'yesterday']]
  ] as Array<[string, string[]]>) {
    const r = await agent(['capture', 'sample', '--config', config, ...argv])
    t.equal(r.code, 2, `${what}: ${r.stderr}`)
    t.match(r.stderr, /^usage: /, what)
  }
  t.equal(daemon.log.head.seq, before, 'no record was written')
  const stopped = await agent(['capture', 'sample', '--config', config, '--file', file, '--dataset', 'd', '--port', '9'])
  t.equal(stopped.code, 1)
  t.match(stopped.stderr, /^DAEMON_NOT_RUNNING: /)
})
