/**
 * Data-capture records (kind 10) behind a dataset: a real agent keeps samples, the folder is hashed
 * into a manifest, and the captures file proves each file came from a registered device; tampering
 * with a file, the key or the revocation shows as a named reason. One agent and folder per file.
 */
import t from 'tap'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { ProvenanceAgent } from '../../../agent/session/index.js'
import { AgentError } from '../../../agent/errors.js'
import {
  commitSample, createSigner, decodeEnvelope, deriveSalt, equalBytes, formatProof, fromHex, hashLeaf, MerkleTree, sha256, signRecord, toHex, verifyChain, fixedKey,
  type BundleAnchor, type DataCaptureBody
} from '../../../protocol/index.js'
import { attachCaptureProofs, buildCaptures, checkCaptures, parseCaptures, type CaptureAnchorFacts, type CapturesFile, type DeviceKeyLookup } from '../../../forensics/lineage/captures.js'
import { hashTree } from '../../../forensics/lineage/manifest.js'
import { ForensicsError } from '../../../forensics/errors.js'
import { runCli } from '../../../forensics/cli.js'
import { makeTempDir } from '../../helpers/tmp.js'

const samples: Record<string, string> = { 'cars/0001.csv': 'speed\n42\n', 'cars/0002.csv': 'speed\n57\n', 'bikes/0001.csv': 'speed\n18\n' }

async function setup (t: { teardown: (fn: () => unknown) => void }): Promise<{ dir: string, agent: ProvenanceAgent, captures: ReturnType<typeof buildCaptures>, lookup: DeviceKeyLookup }> {
  const dir = await makeTempDir(t, 'prov-captures-')
  const agent = await ProvenanceAgent.start({ stateDir: join(dir, 'state'), deviceId: 'cam-7', clock: () => 1_700_000_000_000 })
  t.teardown(async () => { await agent.stop() })
  const entries = []
  for (const [name, text] of Object.entries(samples)) {
    const bytes = new TextEncoder().encode(text)
    await mkdir(join(dir, 'data', name.split('/')[0] as string), { recursive: true })
    await writeFile(join(dir, 'data', name), bytes)
    const receipt = await agent.recordDataCapture(bytes, { dataset: 'street-counts', label: name.split('/')[0], capturedAtMs: 1_699_999_999_000 })
    entries.push({ name, record: receipt.record, salt: receipt.salt })
  }
  const key = agent.publicKey
  const lookup: DeviceKeyLookup = async (deviceId) => deviceId === 'cam-7' ? { publicKey: key, revoked: false } : undefined
  return { dir, agent, captures: buildCaptures(entries), lookup }
}

t.test('behavior: each kept sample is a signed data-capture record whose commitment opens with the file and its salt', async t => {
  const { dir, agent, captures, lookup } = await setup(t)
  const manifest = await hashTree(join(dir, 'data'), { name: 'street-counts', workers: 1 })
  const checks = await checkCaptures(manifest, parseCaptures(new TextEncoder().encode(JSON.stringify(captures))), lookup)
  t.same(checks.map(c => [c.name, c.ok, c.deviceId, c.dataset]), Object.keys(samples).map(n => [n, true, 'cam-7', 'street-counts']))
  t.same(checks.map(c => c.label), ['cars', 'cars', 'bikes'])
  // The records are in the device's one hash chain, after the boot record, and hold no content hash.
  const records = []
  for await (const r of agent.log.iterate(0, agent.log.head.seq)) records.push(r)
  t.same(verifyChain(records, { deviceId: 'cam-7', keyAt: fixedKey(agent.publicKey) }).failure, undefined)
  const body = records[1]!.record.body as DataCaptureBody
  t.equal(body.kind, 'data-capture')
  const contentHash = sha256(new TextEncoder().encode(samples['cars/0001.csv']))
  t.ok(equalBytes(body.commitment, commitSample(agent.saltFor(1), contentHash)), 'salt(seq) opens the commitment')
  t.notOk(equalBytes(body.commitment, commitSample(deriveSalt(new Uint8Array(32), 1), contentHash)), 'another salt does not')
  t.equal(body.capturedAtMs, 1_699_999_999_000)
})

t.test('attack: a changed file, an unknown device, a forged record, a revoked device and a stray name each get their reason', async t => {
  const { dir, captures, lookup } = await setup(t)
  await writeFile(join(dir, 'data', 'cars/0002.csv'), 'speed\n12\n') // same size, other bytes
  const manifest = await hashTree(join(dir, 'data'), { name: 'street-counts', workers: 1 })
  const byName = async (c: typeof captures, l: DeviceKeyLookup = lookup): Promise<Record<string, string>> =>
    Object.fromEntries((await checkCaptures(manifest, c, l)).map(x => [x.name, x.reason ?? 'ok']))
  t.same(await byName(captures), { 'cars/0001.csv': 'ok', 'cars/0002.csv': 'COMMITMENT_MISMATCH', 'bikes/0001.csv': 'ok' })
  t.same(Object.values(await byName(captures, async () => undefined)), ['DEVICE_UNKNOWN', 'DEVICE_UNKNOWN', 'DEVICE_UNKNOWN'])
  t.same(Object.values(await byName(captures, async (id, at) => ({ ...(await lookup(id, at))!, revoked: true }))), ['DEVICE_REVOKED', 'DEVICE_REVOKED', 'DEVICE_REVOKED'])
  // A record made by another key under the device's id: it decodes, but its signature does not verify.
  const forger = createSigner(new Uint8Array(32).fill(9))
  const forged = signRecord({ deviceId: 'cam-7', boot: 1, seq: 1, timeMs: 1, prev: new Uint8Array(32), body: { kind: 'data-capture', commitment: new Uint8Array(32), sizeBytes: 9, dataset: 'street-counts', label: null, capturedAtMs: 1 } }, forger)
  const withForged = buildCaptures([{ name: 'cars/0001.csv', record: forged, salt: new Uint8Array(32) }])
  t.same(await byName(withForged), { 'cars/0001.csv': 'SIGNATURE_INVALID' })
  t.same(await byName({ ...captures, captures: [{ ...captures.captures[0]!, name: 'cars/9999.csv' }] }), { 'cars/9999.csv': 'FILE_NOT_IN_MANIFEST' })
  t.same(await byName({ ...captures, captures: [{ ...captures.captures[0]!, envelope: '00' }] }), { 'cars/0001.csv': 'RECORD_INVALID' })
})

t.test('error: malformed captures files and bad capture input get one code', async t => {
  const enc = (v: unknown): Uint8Array => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v))
  for (const [what, bytes] of [
    ['not JSON', enc('{')], ['wrong format', enc({ format: 'x', captures: [] })], ['captures not an array', enc({ format: 'edge-provenance/data-captures/v1', captures: {} })],
    ['salt too short', enc({ format: 'edge-provenance/data-captures/v1', captures: [{ name: 'a', envelope: '00', salt: 'ab' }] })],
    ['extra field', enc({ format: 'edge-provenance/data-captures/v1', captures: [{ name: 'a', envelope: '00', salt: '0'.repeat(64), x: 1 }] })]
  ] as const) {
    t.throws(() => parseCaptures(bytes), { constructor: ForensicsError, code: 'CAPTURES_INVALID' }, what)
  }
  const dir = await makeTempDir(t, 'prov-captures-bad-')
  const agent = await ProvenanceAgent.start({ stateDir: join(dir, 'state'), deviceId: 'cam-8' })
  t.teardown(async () => { await agent.stop() })
  await t.rejects(agent.recordDataCapture(new Uint8Array(3), { dataset: '' }), { constructor: AgentError, code: 'INPUT_INVALID' }, 'empty dataset')
  await t.rejects(agent.recordDataCapture(new Uint8Array(3), { dataset: 'd', label: 'l'.repeat(300) }), { constructor: AgentError, code: 'INPUT_INVALID' }, 'label too long')
  await t.rejects(agent.recordDataCapture(new Uint8Array(3), { dataset: 'd', capturedAtMs: -5 }), { constructor: AgentError, code: 'INPUT_INVALID' }, 'negative time')
})

t.test('behavior: provenance dataset captures checks a captures file against a manifest (offline keys)', async t => {
  const { dir, captures, agent } = await setup(t)
  const manifestPath = join(dir, 'm.json')
  const capturesPath = join(dir, 'captures.json')
  t.equal(await runCli(['dataset', 'hash', join(dir, 'data'), '--out', manifestPath, '--quiet'], io().io), 0)
  await writeFile(capturesPath, JSON.stringify(captures))
  const keys = `cam-7=${Buffer.from(agent.publicKey).toString('hex')}`
  const ok = io()
  t.equal(await runCli(['dataset', 'captures', '--manifest', manifestPath, '--captures', capturesPath, '--device-keys', keys, '--json'], ok.io), 0, ok.err())
  t.match(JSON.parse(ok.out()), { ok: true, covered: 3, files: 3 })
  const bad = io()
  t.equal(await runCli(['dataset', 'captures', '--manifest', manifestPath, '--captures', capturesPath, '--device-keys', `cam-7=${'00'.repeat(32)}`], bad.io), 1)
  t.match(bad.err(), /^CAPTURES_UNVERIFIED: /m)
  t.match(bad.out(), /SIGNATURE_INVALID/)
  const usage = io()
  t.equal(await runCli(['dataset', 'captures', '--manifest', manifestPath], usage.io), 2)
  const missing = io()
  t.equal(await runCli(['dataset', 'captures', '--manifest', manifestPath, '--captures', capturesPath, '--device-keys', keys, '--require-proofs'], missing.io), 1)
  t.match(missing.out(), /PROOF_MISSING/)
  // A malformed proof in the file: one line with the code, no stack.
  await writeFile(capturesPath, JSON.stringify({ ...captures, captures: [{ ...captures.captures[0], proof: 'c2sp.org/tlog-proof@v1\nindex x\n' }] }))
  const malformed = io()
  t.equal(await runCli(['dataset', 'captures', '--manifest', manifestPath, '--captures', capturesPath, '--device-keys', keys], malformed.io), 1)
  t.match(malformed.err(), /^CAPTURES_INVALID: captures\[0\]\.proof: not a C2SP tlog-proof \(.*\)\n$/)
  const help = io()
  t.equal(await runCli(['dataset', 'capture-proofs', '--help'], help.io), 0)
  t.match(help.out(), /GET \/v1\/proof/)
  const noGateway = io()
  t.equal(await runCli(['dataset', 'capture-proofs', '--captures', capturesPath], noGateway.io), 2)
})

const REGISTRY = '0x5FbDB2315678afecb367f032d93F642f64180aa3'

/**
 * Proofs as the gateway serves them: the captures' records in one batch (after a stranger's leaf),
 * anchored as batch 4; `facts` answers from those anchor facts like the chain does.
 */
function prove (captures: CapturesFile): { proved: Promise<CapturesFile>, anchor: BundleAnchor, facts: CaptureAnchorFacts, tree: MerkleTree } {
  const envelopes = [new Uint8Array(40).fill(7), ...captures.captures.map(c => fromHex(c.envelope))]
  const tree = new MerkleTree(envelopes.map(e => hashLeaf(e)))
  const times = captures.captures.map(c => decodeEnvelope(fromHex(c.envelope)).record.timeMs)
  const anchor: BundleAnchor = {
    root: toHex(tree.root()), size: tree.size, onChainBatchId: '4', txHash: '0x' + 'cd'.repeat(32), blockNumber: 9, blockHash: '0x' + 'ef'.repeat(32),
    firstRecordTimeMs: Math.min(...times), lastRecordTimeMs: Math.max(...times), metadataHash: '00'.repeat(32)
  }
  const checkpoint = { origin: 'gw-1/batch/17', size: tree.size, rootHash: tree.root() }
  const facts: CaptureAnchorFacts = { chainId: 31337, registry: REGISTRY, authoritative: true, read: async roots => new Map(roots.includes(anchor.root) ? [[anchor.root, anchor]] : []) }
  const proved = attachCaptureProofs(captures, async (device, seq) => {
    const i = 1 + captures.captures.findIndex(c => decodeEnvelope(fromHex(c.envelope)).record.seq === seq)
    return formatProof({
      index: i, hashes: tree.proveInclusion(i), checkpoint,
      extra: [['device', device], ['seq', String(seq)], ['chain-id', '31337'], ['contract', REGISTRY], ['batch-id', '4'], ['tx-hash', anchor.txHash]].map(([key, value]) => ({ key: key as string, value: value as string }))
    })
  }).then(r => r.captures)
  return { proved, anchor, facts, tree }
}

t.test('behavior: each capture carries its record\'s inclusion proof, checked against the anchored root, batch and transaction', async t => {
  const { dir, captures, lookup } = await setup(t)
  const manifest = await hashTree(join(dir, 'data'), { name: 'street-counts', workers: 1 })
  const { proved, anchor, facts } = prove(captures)
  const file = parseCaptures(new TextEncoder().encode(JSON.stringify(await proved)))
  const checks = await checkCaptures(manifest, file, lookup, { anchors: facts, requireProofs: true })
  t.same(checks.map(c => [c.ok, c.proof, c.anchor?.batchId, c.anchor?.txHash, c.anchor?.leafIndex]), [[true, 'verified', '4', anchor.txHash, 1], [true, 'verified', '4', anchor.txHash, 2], [true, 'verified', '4', anchor.txHash, 3]])
  const offline = await checkCaptures(manifest, file, lookup)
  t.same(offline.map(c => [c.ok, c.proof]), [[true, 'unchecked'], [true, 'unchecked'], [true, 'unchecked']], 'without anchor facts a proof is only checked against its own checkpoint, and says so')
  t.same((await checkCaptures(manifest, captures, lookup, { anchors: facts })).map(c => c.proof), ['none', 'none', 'none'])
  t.same((await checkCaptures(manifest, captures, lookup, { anchors: facts, requireProofs: true })).map(c => c.reason), ['PROOF_MISSING', 'PROOF_MISSING', 'PROOF_MISSING'])
})

t.test('attack: a proof for another root, another record\'s proof, a forged path, a wrong transaction and a revoked device are named', async t => {
  const { dir, captures, lookup } = await setup(t)
  const manifest = await hashTree(join(dir, 'data'), { name: 'street-counts', workers: 1 })
  const { proved, facts, tree } = prove(captures)
  const good = await proved
  const reasons = async (c: CapturesFile, l: DeviceKeyLookup = lookup, anchors: CaptureAnchorFacts | undefined = facts): Promise<Array<string | undefined>> =>
    (await checkCaptures(manifest, c, l, anchors === undefined ? {} : { anchors })).map(x => x.reason)
  const swap = (i: number, proof: string): CapturesFile => ({ ...good, captures: good.captures.map((c, k) => k === i ? { ...c, proof } : c) })
  // A tree of the attacker's own, never anchored: its root is unknown to the registry.
  const other = new MerkleTree([hashLeaf(fromHex(good.captures[0]!.envelope)), hashLeaf(new Uint8Array(1))])
  const foreign = formatProof({ index: 0, hashes: other.proveInclusion(0), checkpoint: { origin: 'evil/batch/1', size: 2, rootHash: other.root() } })
  t.same(await reasons(swap(0, foreign)), ['PROOF_UNANCHORED', undefined, undefined])
  // The same foreign proof offline (no chain facts): self-consistent, so unchecked, never verified.
  t.same((await checkCaptures(manifest, swap(0, foreign), lookup)).map(c => c.proof), ['unchecked', 'unchecked', 'unchecked'])
  t.same(await reasons(swap(0, good.captures[1]!.proof!)), ['PROOF_INVALID', undefined, undefined], 'another record\'s proof of the anchored root')
  const forged = formatProof({ index: 1, hashes: tree.proveInclusion(1).map((h, i) => i === 0 ? new Uint8Array(32).fill(1) : h), checkpoint: { origin: 'gw-1/batch/17', size: tree.size, rootHash: tree.root() } })
  t.same(await reasons(swap(0, forged)), ['PROOF_INVALID', undefined, undefined])
  t.same(await reasons(swap(0, forged), lookup, undefined), ['PROOF_INVALID', undefined, undefined], 'offline too: the path does not reach its own checkpoint')
  t.same(await reasons(swap(0, good.captures[0]!.proof!.replace(/^extra .*$/m, l => 'extra ' + Buffer.from(Buffer.from(l.slice(6), 'base64').toString('utf8').replace(/tx-hash 0x\w+/, 'tx-hash 0x' + 'ab'.repeat(32))).toString('base64')))),
    ['ANCHOR_MISMATCH', undefined, undefined], 'a proof claiming another transaction')
  t.same(await reasons(good, async (id, at) => ({ ...(await lookup(id, at))!, revoked: true })), ['DEVICE_REVOKED', 'DEVICE_REVOKED', 'DEVICE_REVOKED'], 'anchored, but from a revoked device')
  for (const [what, proof] of [['not a proof', 'hello'], ['empty', ''], ['a number', 5], ['too long', 'x'.repeat(200_000)], ['bad index', good.captures[0]!.proof!.replace(/^index \d+$/m, 'index 01')]] as const) {
    const bytes = new TextEncoder().encode(JSON.stringify({ ...good, captures: [{ ...good.captures[0], proof }] }))
    t.throws(() => parseCaptures(bytes), { constructor: ForensicsError, code: 'CAPTURES_INVALID' }, what)
  }
})

function io (): { io: Parameters<typeof runCli>[1] & object, out: () => string, err: () => string } {
  let out = ''
  let err = ''
  return {
    io: { stdout: (s: string) => { out += s }, stderr: { write: (s: string) => { err += s; return true }, isTTY: false }, env: {} },
    out: () => out,
    err: () => err
  }
}
