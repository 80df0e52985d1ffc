// Completeness (PROTOCOL.md §7.10) end to end on a real gateway, Mosquitto and anvil: the gateway
// serves each device's anchored tip, export puts it in the bundle, and verify --online names the
// records a cut tail lost; forged, foreign and misplaced tip proofs are refused, absence is proven.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { exportBundle, runCli, verifyBundle, type CliIo } from '../../forensics/index.js'
import { encodeBundle, parseTipProof, type Bundle } from '../../protocol/index.js'
import { startGatewayEnv, httpGet, TEST_HTTP_TOKEN } from '../fixtures/gateway-env.js'
import { DeviceFleet, makeDevices, registerDevices } from '../fixtures/gateway-fleet.js'

const COUNT = 20

t.test('behavior: tips served, exported and judged online; attacks on the tip proof fail with tip-proof-invalid', async t => {
  const env = await startGatewayEnv(t)
  const devices = makeDevices('tips', 3, COUNT)
  const [a, b, late] = devices as [typeof devices[0], typeof devices[0], typeof devices[0]]
  await registerDevices(env.chain.registryAs('deviceRegistrar'), devices)
  const gw = await env.gateway({ batchMaxRecords: 16 })
  const fleet = new DeviceFleet({ brokerUrl: env.broker.url, devices: [a, b] })
  t.teardown(async () => await fleet.stop())
  await fleet.start()
  await fleet.waitAllStored(20_000)
  await fleet.waitAllAnchored(20_000)

  const tipOf = async (id: string): Promise<string> => {
    const res = await httpGet(`${gw.httpUrl}/v1/tip/${id}`)
    t.equal(res.status, 200, `tip of ${id}`)
    return res.text
  }
  const tipA = await tipOf(a.id)
  t.equal(parseTipProof(tipA).proof.terminal.kind, 'present')
  t.match(tipA, new RegExp(`\ntip ${COUNT - 1} `), 'the anchored tip is the last record')
  const absentEarly = await tipOf(late.id)
  t.equal(parseTipProof(absentEarly).proof.terminal.kind !== 'present', true, 'a device never seen is proven absent')
  t.equal((await httpGet(`${gw.httpUrl}/v1/tip/${a.id}`, null)).status, 401, 'the tip route follows the token rules of the proof routes')
  t.equal((await httpGet(`${gw.httpUrl}/v1/tip/bad%2Fid`)).status, 400)
  const json = (await httpGet(`${gw.httpUrl}/v1/tip/${a.id}?format=json`)).json()
  t.match(json, { device: a.id, tip: { seq: COUNT - 1 }, anchor: { state: 'confirmed' } })

  const rpcUrl = env.chain.anvil.rpcUrl
  const exportOf = async (id: string): Promise<Bundle> => await exportBundle({ gatewayUrl: gw.httpUrl as string, gatewayToken: TEST_HTTP_TOKEN, rpcUrl, registry: env.chain.deployment.address, deviceId: id })
  const bundleA = await exportOf(a.id)
  t.ok(bundleA.tip !== undefined, 'export carries the tip proof')
  const online = async (bundle: Bundle): Promise<Awaited<ReturnType<typeof verifyBundle>>> => await verifyBundle(bundle, { rpcUrl })

  const whole = await online(bundleA)
  t.equal(whole.completeness.status, 'complete', whole.completeness.message)
  t.notOk(whole.reasons.incomplete)
  const offline = await verifyBundle(bundleA, { offline: true })
  t.equal(offline.completeness.status, 'unknown')
  t.match(offline.completeness.message, /offline.*cannot be judged/)

  // The must-show: the tail cut, verify --online (the CLI) fails and names the missing range.
  const cut = 5
  const keep = COUNT - cut
  const cutBundle: Bundle = { ...bundleA, records: bundleA.records.slice(0, keep), proofs: bundleA.proofs.filter(p => p.seq < keep) }
  const dir = await mkdtemp(join(tmpdir(), 'prov-tips-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'cut.json')
  await writeFile(file, encodeBundle(cutBundle))
  let stdout = ''
  const io: CliIo = { stdout: s => { stdout += s }, stderr: { write: () => true, isTTY: false }, env: {} }
  const code = await runCli(['verify', file, '--rpc-url', rpcUrl, '--quiet'], io)
  t.equal(code, 1, 'verify --online fails')
  t.match(stdout, /^INVALID \(INCOMPLETE\)/)
  t.match(stdout, new RegExp(`missing seq ${keep}\\.\\.${COUNT - 1}`))
  t.match(stdout, new RegExp(`seq ${keep}\\.\\.${COUNT - 1} +incomplete`))
  const cutVerdict = await online(cutBundle)
  t.same(cutVerdict.completeness.missing, { fromSeq: keep, toSeq: COUNT - 1 })
  t.match(cutVerdict.failures.find(f => f.reason === 'incomplete'), { seq: keep, lastSeq: COUNT - 1 })
  const cutOffline = await verifyBundle(cutBundle, { offline: true })
  t.notOk(cutOffline.reasons.incomplete, 'offline cannot see it (and says so)')

  const rejected = async (bundle: Bundle, why: RegExp, what: string): Promise<void> => {
    const v = await online(bundle)
    t.equal(v.reasons['tip-proof-invalid'], 1, what)
    t.match(v.failures.find(f => f.reason === 'tip-proof-invalid')?.message, why, what)
    t.not(v.completeness.status, 'complete', what)
  }
  // A forged tip: the cut bundle's last seq claimed as the tip.
  const forged = (bundleA.tip?.proof as string).replace(/\ntip \d+ [0-9a-f]{64}\n/, `\ntip ${keep - 1} ${'00'.repeat(32)}\n`)
  await rejected({ ...cutBundle, tip: { proof: forged } }, /MERKLE_ROOT_MISMATCH/, 'forged tip')
  // Another device's tip proof, its device line rewritten or not.
  const tipB = await tipOf(b.id)
  await rejected({ ...cutBundle, tip: { proof: tipB } }, /proves device/, 'another device\'s proof')
  await rejected({ ...cutBundle, tip: { proof: tipB.replace(`device ${b.id}`, `device ${a.id}`) } }, /MERKLE_ROOT_MISMATCH/, 'another device\'s proof, relabelled')
  // The proof against another anchored batch's checkpoint (batch 1 is anchored too).
  const batch1 = (await httpGet(`${gw.httpUrl}/v1/batches/1`)).json() as { checkpoint: string }
  const head = (bundleA.tip?.proof as string).slice(0, (bundleA.tip?.proof as string).indexOf('\n\n') + 2)
  await rejected({ ...cutBundle, tip: { proof: head + batch1.checkpoint } }, /MERKLE_ROOT_MISMATCH/, 'proof against another anchor')
  // A checkpoint made up to carry a forged tip root: its root is anchored, its metadataHash is not.
  const lines = batch1.checkpoint.split('\n')
  const madeUp = [lines[0], lines[1], lines[2], 'edge-provenance/tips/v1 ' + Buffer.alloc(32, 1).toString('base64'), '', ''].join('\n')
  await rejected({ ...cutBundle, tip: { proof: head + madeUp } }, /not the one anchored/, 'a made-up checkpoint')

  // A device absent at an anchor: its early absence proof, then its records (all later).
  const fleet2 = new DeviceFleet({ brokerUrl: env.broker.url, devices: [late] })
  t.teardown(async () => await fleet2.stop())
  await fleet2.start()
  await fleet2.waitAllAnchored(20_000)
  const bundleLate = await exportOf(late.id)
  t.equal((await online(bundleLate)).completeness.status, 'complete')
  const absent = await online({ ...bundleLate, tip: { proof: absentEarly } })
  t.equal(absent.completeness.status, 'absent', absent.completeness.message)
  t.match(absent.completeness.message, /proven absent/)
})
