// The auditor's export (EU AI Act profile): a period of a small demo fleet (a camera's use of a
// watchlist, a reviewing station's oversight records) is VALID with every review accepted and the
// use, reference database and reviewers shown; forged oversight records (unknown station, wrong
// decision hash, a decision that does not exist, a record that is no decision) are each rejected
// with a named reason. HTML checked in headless Chromium; JSON and the CLI too. Offline, and once
// online against anvil, where the registry alone rejects a station nobody registered.
import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import {
  MerkleTree, decodeBundleRecord, decodeEnvelope, deriveSubjectRef, encodeBundle, formatCheckpoint, hashLeaf, pruningExtensionLine, sha256, signPruningStatement,
  signShreddingStatement, toHex, type Bundle
} from '../../protocol/index.js'
import { deviceIdOf, type DevChain } from '../../contracts/index.js'
import { buildCompliance, renderCompliance, type ComplianceReport } from '../../forensics/compliance/index.js'
import { buildTimeline } from '../../forensics/timeline/index.js'
import { runCli, type CliIo } from '../../forensics/cli.js'
import {
  FIXTURE_GATEWAY_ID, FIXTURE_GATEWAY_SIGNER, MAIN_DEVICE, clone, fixtureSignedCheckpoint, offlineBundle, registerFacts, startChain, startIncident
} from '../helpers/forensics-fixture.js'
import { ChainBuilder, fakeHash, sampleBody } from '../helpers/records.js'
import { CAMERA, REFERENCE_DB, ROGUE_STATION, STATION, makeDemoFleet, review } from '../helpers/compliance-fleet.js'
import { hasChromium, runChromium } from '../helpers/chromium.js'
import { makeTempDir } from '../helpers/tmp.js'

const fleet = makeDemoFleet()
const GENERATED = 1_700_000_900_000
const good = await buildCompliance([fleet.cameraBundle, fleet.stationBundle], { offline: true, reviewers: [STATION], generatedAtMs: GENERATED })

// Forgeries, each in a station's log as an attacker would write it.
const HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
const forgedStation = new ChainBuilder({ deviceId: STATION, seed: 'station' })
forgedStation.append({ ...sampleBody('boot'), profile: 'review-station' })
forgedStation.append({ ...review(fleet.reviewed.overridden, 'confirmed', HOSTILE), decisionHash: fakeHash('not the decision') }) // seq 1: wrong hash
forgedStation.append({ ...review(fleet.reviewed.confirmed, 'overridden', 'no such record'), decisionSeq: 999 }) // seq 2: no such decision
forgedStation.append(review(fleet.camera.records[0]!, 'confirmed', 'a boot is no decision')) // seq 3: a boot record
const rogue = new ChainBuilder({ deviceId: ROGUE_STATION, seed: 'rogue' })
rogue.append({ ...sampleBody('boot'), profile: 'review-station' })
rogue.append(review(fleet.reviewed.escalated, 'confirmed', 'all fine, trust me')) // a station nobody registered as a reviewer
const forged = await buildCompliance([fleet.cameraBundle, offlineBundle(forgedStation), offlineBundle(rogue)], { offline: true, reviewers: [STATION], generatedAtMs: GENERATED })

t.test('behavior: a period export of the demo fleet with oversight actions is VALID, every review accepted', async t => {
  t.equal(good.verdict, 'valid')
  t.equal(good.profile, 'eu-ai-act')
  t.same(good.devices.map(d => [d.device, d.verdict.verdict, d.roles]), [[CAMERA, 'valid', ['decisions']], [STATION, 'valid', ['reviewing-station']]])
  t.same(good.findings, [])
  t.same(good.oversight.map(o => [o.station, o.reviewer, o.verdict, o.decision.seq, o.status]), [
    [STATION, 'reviewer-17', 'confirmed', fleet.reviewed.confirmed.record.seq, 'accepted'],
    [STATION, 'reviewer-17', 'overridden', fleet.reviewed.overridden.record.seq, 'accepted'],
    [STATION, 'reviewer-21', 'escalated', fleet.reviewed.escalated.record.seq, 'accepted']
  ])
  t.equal(good.oversight[0]?.decision.hash, toHex(fleet.reviewed.confirmed.hash), 'the decision is named by its record hash')
  t.equal(good.oversight[0]?.decision.decision, 'match watchlist#0')
})

t.test('behavior: Art. 12(3): the use, its reference database, its matches with input commitments and who verified them', async t => {
  t.equal(good.sessions.length, 1)
  const u = good.sessions[0]!
  t.same([u.device, u.sessionId, u.startSeq, u.endSeq, u.referenceName, u.referenceHash], [CAMERA, 'use-0001', 2, 8, 'watchlist-2026-11', toHex(sha256(REFERENCE_DB))])
  t.equal(u.inferences, 5)
  t.same(u.decisions.map(d => d.seq), [3, 5, 7], 'the records whose search led to a match')
  t.match(u.decisions[0]?.inputs[0], /^input:[0-9a-f]{64}$/, 'each match names its input by commitment')
  t.equal(u.reviewedBy.length, 3, 'the persons who verified the results, with their stations')
  t.match(u.reviewedBy.join(' '), /reviewer-21 \(escalated, review-01 seq 3\)/)
})

t.test('behavior: Art. 12(2) events, models with registry and lineage entries, retention marked as not reported', async t => {
  const cam = good.devices[0]!
  t.ok(cam.articles['12(2)(a)'].events.some(e => e.kind === 'model-load'), '(a): a model load is a possible substantial modification')
  t.ok(cam.articles['12(2)(a)'].events.some(e => e.kind === 'oversight' && /overridden by reviewer-17/.test(e.summary)), '(a): an overridden decision is a risk signal on the camera')
  t.equal(cam.articles['12(2)(b)'].inferences, 5)
  t.same(cam.articles['12(2)(c)'].events.map(e => e.kind), ['boot', 'session', 'session', 'shutdown'])
  t.same(good.models.map(m => [m.name, m.version, m.status, m.lineage.map(p => p.version), m.devices, m.inferences]), [['detector', '1.1.0', 'approved', ['1.0.0'], [CAMERA], 5]])
  t.equal(cam.retention.policy, 'not-reported')
  t.match(cam.retention.note, /^NOT REPORTED/)
  t.equal(cam.retention.coversMinimum, true, 'the bundle reaches back to the device\'s first record')
  const reported = await buildCompliance([fleet.cameraBundle], { offline: true, retentionMs: 200 * 86_400_000, generatedAtMs: GENERATED })
  t.same([reported.devices[0]?.retention.policy, reported.devices[0]?.retention.retentionMs], ['reported', 200 * 86_400_000])
  t.ok(good.notCovered.length >= 5, 'the JSON says what it does not cover')
})

t.test('behavior: a pruned range and a shredded subject show as such in the retention status, and the period stays VALID', async t => {
  // The gateway pruned the camera's seqs 0..1 by retention (a signed statement committed by an
  // anchored checkpoint, as test/forensics/erasure.test.ts builds it); the camera shredded the subject of seq 3.
  const b = clone(fleet.cameraBundle)
  const seqOf = (b64: string): number => decodeEnvelope(decodeBundleRecord(b64)).record.seq
  b.records = b.records.filter(r => seqOf(r) > 1)
  b.proofs = b.proofs.filter(p => p.seq > 1)
  const pruning = signPruningStatement({
    gatewayId: FIXTURE_GATEWAY_ID, deviceId: CAMERA, firstSeq: 0, lastSeq: 1, lastHash: fleet.camera.records[1]!.hash,
    batches: [{ id: 1, root: Buffer.from(b.anchors[0]!.root, 'hex') }], retentionDays: 190, cutoffMs: GENERATED - 190 * 86_400_000, prunedAtMs: GENERATED, reason: 'retention'
  }, FIXTURE_GATEWAY_SIGNER)
  const tree = new MerkleTree([hashLeaf(Uint8Array.of(1))])
  const checkpoint = { origin: 'test-gateway/batch/2', size: 1, rootHash: tree.root(), extensions: [pruningExtensionLine(pruning.hash)] }
  b.prunings = [{ statement: Buffer.from(pruning.envelope).toString('base64'), checkpoint: fixtureSignedCheckpoint(checkpoint) }]
  b.anchors.push({
    root: toHex(tree.root()), size: 1, onChainBatchId: '2', txHash: '0x' + '12'.repeat(32), blockNumber: 8, blockHash: '0x' + '34'.repeat(32),
    firstRecordTimeMs: 1, lastRecordTimeMs: 1, metadataHash: toHex(sha256(new TextEncoder().encode(formatCheckpoint(checkpoint))))
  })
  const shredding = signShreddingStatement({
    deviceId: CAMERA, subjectRef: deriveSubjectRef(new Uint8Array(32).fill(5), 'face:subject-1'), ranges: [{ firstSeq: 3, lastSeq: 3 }], shreddedAtMs: GENERATED, reason: 'erasure request 7'
  }, fleet.camera.signer)
  b.shreddings = [Buffer.from(shredding.envelope).toString('base64')]
  const r = await buildCompliance([b, fleet.stationBundle], { offline: true, reviewers: [STATION], generatedAtMs: GENERATED })
  t.equal(r.verdict, 'valid', JSON.stringify(r.devices[0]?.verdict.failures))
  const ret = r.devices[0]!.retention
  t.same([ret.policy, ret.retentionMs, ret.coversMinimum], ['by-pruning-statement', 190 * 86_400_000, true])
  t.match(ret.pruned, [{ firstSeq: 0, lastSeq: 1, gatewayId: FIXTURE_GATEWAY_ID, reason: 'retention', retentionDays: 190, committed: true }])
  t.match(ret.shredded, [{ firstSeq: 3, lastSeq: 3, reason: 'erasure request 7' }])
  t.same(r.oversight.map(o => o.status), ['accepted', 'accepted', 'accepted'], 'a review of a shredded decision still names it by hash')
  const page = renderCompliance(r)
  t.match(page, /<span class="pruned">PRUNED 0\.\.1<\/span>/)
  t.match(page, /<span class="shredded">SHREDDED 3\.\.3<\/span>/)
})

t.test('error: forged oversight records are rejected, each with a named reason', async t => {
  t.equal(forged.verdict, 'invalid')
  t.same(forged.devices.map(d => d.verdict.verdict), ['valid', 'valid', 'valid'], 'every bundle verifies on its own: only the cross-bundle check catches them')
  t.same(forged.findings.filter(f => f.severity === 'failure').map(f => [f.device, f.seq, f.reason]), [
    [STATION, 1, 'oversight-decision-mismatch'],
    [STATION, 2, 'oversight-decision-unknown'],
    [STATION, 3, 'oversight-decision-not-inference'],
    [ROGUE_STATION, 1, 'oversight-reviewer-unknown']
  ])
  t.same(forged.oversight.map(o => o.status), ['oversight-decision-mismatch', 'oversight-decision-unknown', 'oversight-decision-not-inference', 'oversight-reviewer-unknown'])
  t.match(forged.findings.find(f => f.reason === 'oversight-reviewer-unknown')?.message, /review-99 is not one of the reviewing stations review-01/)
  t.equal(forged.sessions[0]?.reviewedBy.length, 0, 'a rejected review verifies nothing')
})

t.test('error: without a reviewer list, a station whose key the bundle does not give it is still an unknown reviewer', async t => {
  const stolen = offlineBundle(fleet.station)
  stolen.device.keys = [{ publicKey: toHex(fakeHash('another key')), validFromMs: 0 }]
  const r = await buildCompliance([fleet.cameraBundle, stolen], { offline: true, generatedAtMs: GENERATED })
  t.equal(r.verdict, 'invalid')
  t.same([...new Set(r.oversight.map(o => o.status))], ['oversight-reviewer-unknown'])
})

t.test('behavior: a use that never ends, or ends without a start, is a warning, not a failure', async t => {
  const b = new ChainBuilder({ deviceId: 'cam-0002', seed: 'camera-2' })
  b.append(sampleBody('boot'))
  b.append({ kind: 'session', phase: 'end', sessionId: 'use-x', referenceName: '', referenceHash: null })
  b.append({ kind: 'session', phase: 'start', sessionId: 'use-y', referenceName: '', referenceHash: null })
  const r = await buildCompliance([offlineBundle(b)], { offline: true, generatedAtMs: GENERATED })
  t.equal(r.verdict, 'valid')
  t.same(r.findings.map(f => [f.reason, f.severity, f.seq]), [['session-end-unmatched', 'warning', 1], ['session-open', 'warning', 2]])
})

t.test('behavior: the timeline lists oversight and session records', async t => {
  const tl = buildTimeline(fleet.stationBundle)
  t.same(tl.oversight.map(o => [o.seq, o.verdict, o.decisionDeviceId, o.decisionSeq]), [[1, 'confirmed', CAMERA, 3], [2, 'overridden', CAMERA, 5], [3, 'escalated', CAMERA, 7]])
  t.same(buildTimeline(fleet.cameraBundle).sessions.map(s => [s.seq, s.phase, s.sessionId]), [[2, 'start', 'use-0001'], [8, 'end', 'use-0001']])
})

t.test('behavior: headless Chromium shows the verdict, the oversight rows with their status, the use and the marked retention', { skip: !hasChromium }, async t => {
  const dir = await makeTempDir(t, 'compliance-report-')
  const page = join(dir, 'good.html')
  await writeFile(page, renderCompliance(good))
  const section = (dom: string, id: string): string => {
    const start = dom.indexOf(`<section id="${id}">`)
    return dom.slice(start, dom.indexOf('</section>', start))
  }
  const rows = (fragment: string): number => (fragment.match(/<tr>/g) ?? []).length - 1
  const ok = await runChromium(t, ['--dump-dom', `file://${page}`])
  t.match(ok, /<span class="verdict valid" id="verdict-value">VALID<\/span>/)
  t.equal(rows(section(ok, 'oversight')), 3, 'one row per oversight action')
  t.equal((section(ok, 'oversight').match(/>accepted</g) ?? []).length, 3)
  t.match(section(ok, 'sessions'), /watchlist-2026-11/)
  t.match(section(ok, 'devices'), /class="marked retention-not-reported">not reported</)
  t.match(section(ok, 'not-covered'), /<li>/)
})

t.test('behavior: the report of the forgeries is INVALID, names each reason, and shows hostile text as text', async t => {
  // The page's markup is the renderer's own (Chromium reads the valid page above): checked as text.
  const bad = renderCompliance(forged)
  t.match(bad, /<span class="verdict invalid" id="verdict-value">INVALID<\/span>/)
  const findings = bad.slice(bad.indexOf('<table class="findings">'), bad.indexOf('</table>', bad.indexOf('<table class="findings">')))
  t.equal((findings.match(/<tr>/g) ?? []).length - 1, 4, 'one row per rejected record')
  const oversight = bad.slice(bad.indexOf('<section id="oversight">'))
  for (const reason of ['oversight-reviewer-unknown', 'oversight-decision-mismatch', 'oversight-decision-unknown', 'oversight-decision-not-inference']) {
    t.match(oversight, new RegExp(`class="reason">${reason}<`), reason)
  }
  t.notMatch(bad, /<script>alert|<img src=x/, 'a hostile reason is text, not markup')
  t.match(bad, /&lt;script&gt;alert\(1\)/)
})

t.test('behavior: provenance compliance writes the HTML and the JSON; exit 0 valid, 1 with the first reason for a forgery', async t => {
  const dir = await makeTempDir(t, 'compliance-cli-')
  const paths = { cam: join(dir, 'cam.json'), station: join(dir, 'station.json'), forged: join(dir, 'forged.json'), html: join(dir, 'r.html'), json: join(dir, 'r.json') }
  await writeFile(paths.cam, encodeBundle(fleet.cameraBundle))
  await writeFile(paths.station, encodeBundle(fleet.stationBundle))
  await writeFile(paths.forged, encodeBundle(offlineBundle(forgedStation)))
  const run = async (argv: string[]): Promise<{ code: number, out: string, err: string }> => {
    let out = ''
    let err = ''
    const io: CliIo = { stdout: s => { out += s }, stderr: { write: (s: string) => { err += s; return true } }, env: {} }
    return { code: await runCli(argv, io), out, err }
  }
  const ok = await run(['compliance', paths.cam, paths.station, '--offline', '--reviewers', STATION, '--out', paths.html, '--json-out', paths.json, '--quiet'])
  t.equal(ok.code, 0, ok.err)
  t.match(ok.out, /^VALID {2}2 bundle\(s\), 3 oversight action\(s\) \(0 rejected\), 1 use session\(s\)/)
  const json = JSON.parse(await readFile(paths.json, 'utf8')) as ComplianceReport
  t.same([json.format, json.verdict, json.oversight.length], ['edge-provenance/compliance/v1', 'valid', 3])
  t.match(await readFile(paths.html, 'utf8'), /^<!doctype html>/)
  const bad = await run(['compliance', paths.cam, paths.forged, '--offline', '--reviewers', STATION, '--json', '--quiet'])
  t.equal(bad.code, 1)
  t.match(bad.err, /^VERDICT_INVALID: oversight-decision-mismatch: review-01 seq 1: /)
  t.equal((JSON.parse(bad.out) as ComplianceReport).verdict, 'invalid')
  t.equal((await run(['compliance', paths.cam, '--offline', '--profile', 'iso-42001'])).code, 2, 'an unknown profile is a usage error')
  t.equal((await run(['compliance', paths.cam, paths.cam, '--offline'])).code, 2, 'the same device twice is a usage error')
  t.equal((await run(['compliance', '--offline'])).code, 2, 'no bundle is a usage error')
  const help = await run(['compliance', '--help'])
  t.equal(help.code, 0)
  t.match(help.out, /--reviewers ID,ID/)
})

/** offlineBundle's made-up anchor replaced by a real one on `chain`, and the chain facts read from it. */
async function anchoredBundle (chain: DevChain, device: ChainBuilder): Promise<Bundle> {
  const bundle = offlineBundle(device)
  const a = bundle.anchors[0] as Bundle['anchors'][number]
  const tree = new MerkleTree(device.records.map(r => hashLeaf(r.envelope)))
  const r = await chain.registryAs('anchorer').anchor({
    root: tree.root(), size: tree.size, firstRecordTimeMs: a.firstRecordTimeMs, lastRecordTimeMs: a.lastRecordTimeMs, metadataHash: Buffer.from(a.metadataHash, 'hex')
  })
  const block = await chain.provider.getBlock(r.blockNumber)
  bundle.anchors = [{ ...a, onChainBatchId: r.batchId.toString(), txHash: r.txHash, blockNumber: r.blockNumber, blockHash: block?.hash as string }]
  return bundle
}

async function readAt (chain: DevChain, bundles: Bundle[]): Promise<void> {
  const latest = await chain.provider.getBlock('latest')
  for (const b of bundles) b.chain = { chainId: chain.anvil.chainId, registry: chain.deployment.address, readAtBlock: latest?.number as number, readAtBlockHash: latest?.hash as string }
}

t.test('behavior: online, registered stations need no reviewer list, an unregistered one is rejected by the registry; compliance exports from a gateway itself', async t => {
  const chain = await startChain(t)
  const fleet = makeDemoFleet()
  await registerFacts(chain, fleet.camera)
  await chain.registryAs('deviceRegistrar').registerDevice({ deviceId: deviceIdOf(fleet.station.deviceId), publicKey: fleet.station.signer.publicKey, validFromMs: 0 })
  const rogue = new ChainBuilder({ deviceId: ROGUE_STATION, seed: 'rogue' })
  rogue.append({ ...sampleBody('boot'), profile: 'review-station' })
  rogue.append(review(fleet.reviewed.escalated, 'confirmed', 'all fine, trust me'))
  const bundles = [await anchoredBundle(chain, fleet.camera), await anchoredBundle(chain, fleet.station), await anchoredBundle(chain, rogue)]
  await readAt(chain, bundles)
  const rpcUrl = chain.anvil.rpcUrl

  const good = await buildCompliance(bundles.slice(0, 2), { rpcUrl })
  t.equal(good.mode, 'online')
  t.equal(good.verdict, 'valid', JSON.stringify([good.findings, good.devices.map(d => d.verdict.failures)]))
  t.same(good.oversight.map(o => o.status), ['accepted', 'accepted', 'accepted'])

  const bad = await buildCompliance(bundles, { rpcUrl })
  t.equal(bad.verdict, 'invalid')
  t.ok(bad.devices.find(d => d.device === ROGUE_STATION)?.verdict.failures.some(f => f.reason === 'device-unknown'), 'the registry does not know the rogue station')
  t.same(bad.findings.map(f => [f.device, f.reason]), [[ROGUE_STATION, 'oversight-reviewer-unknown']])

  // The same chain serves a gateway's export: compliance exports the devices itself, then judges.
  const incident = await startIncident(t, chain)
  const dir = await makeTempDir(t, 'compliance-export-')
  let out = ''
  let err = ''
  const io: CliIo = { stdout: s => { out += s }, stderr: { write: (s: string) => { err += s; return true } }, env: { PROVENANCE_GATEWAY_TOKEN: incident.gatewayToken } }
  const code = await runCli(['compliance', '--gateway', incident.gatewayUrl, '--registry', chain.deployment.address, '--devices', MAIN_DEVICE, '--rpc-url', rpcUrl,
    '--bundles-dir', dir, '--json-out', join(dir, 'compliance.json'), '--out', join(dir, 'compliance.html'), '--quiet'], io)
  t.equal(code, 0, err)
  t.match(out, /^VALID {2}1 bundle\(s\)/)
  const exported = JSON.parse(await readFile(join(dir, `${MAIN_DEVICE}.bundle.json`), 'utf8')) as Bundle
  t.equal(exported.records.length, incident.device.records.length, 'the exported bundle is kept')
  const json = JSON.parse(await readFile(join(dir, 'compliance.json'), 'utf8')) as ComplianceReport
  t.same([json.mode, json.devices.map(d => d.device)], ['online', [MAIN_DEVICE]])
})
