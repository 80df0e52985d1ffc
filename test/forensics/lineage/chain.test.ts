// `provenance training verify --rpc-url --lineage` against anvil: a run recorded with the CLI,
// registered through LineageRegistry, verifies end to end; an unknown or revoked trainer key, an
// unregistered dataset and a model whose registered run differs each fail with their reason; a
// dataset version registered by its curator only; a federated round's contributors checked on chain.
import t from 'tap'
import { mkdir, writeFile, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { createHash } from 'node:crypto'
import { Wallet } from 'ethers'
import { commitSample, createSigner, sha256, signRecord } from '../../../protocol/index.js'
import { startDevChain, deployLineage, deviceIdOf } from '../../../contracts/index.js'
import { buildLogisticModel } from '../../../forensics/lineage/fl-model.js'
import { aggregateRound, buildContribution, encodeFlUpdate, flDatasetOf, FL_CONTRIBUTIONS_FORMAT, FL_UPDATE_LABEL } from '../../../forensics/lineage/federated.js'
import { runCli, type CliIo } from '../../../forensics/cli.js'
import { makeTempDir } from '../../helpers/tmp.js'

const chain = await startDevChain()
t.teardown(chain.stop)
const curator = new Wallet((chain.anvil.accounts[5] as { privateKey: string }).privateKey, chain.provider)
const { lineage, address } = await deployLineage(chain.wallets.admin, chain.deployment.address)
await lineage.grantRole('dataCurator', curator.address)
await lineage.grantRole('trainerRegistrar', chain.wallets.admin.address)
const publisher = lineage.connect(chain.wallets.modelPublisher)

async function run (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const io: CliIo = { stdout: s => { stdout += s }, stderr: { write: s => { stderr += s }, isTTY: false }, env: {} }
  return { code: await runCli(args, io), stdout, stderr }
}

const dir = await makeTempDir(t, 'lineage-chain-')
await mkdir(join(dir, 'ds'))
await writeFile(join(dir, 'ds', 'a.csv'), 'x\n1\n')
const trainerSeed = Buffer.alloc(32, 11)
const strangerSeed = Buffer.alloc(32, 12)
await writeFile(join(dir, 'trainer.key'), trainerSeed.toString('hex'))
await writeFile(join(dir, 'stranger.key'), strangerSeed.toString('hex'))
const trainerKey = '0x' + Buffer.from(createSigner(trainerSeed).publicKey).toString('hex')
await lineage.registerTrainerKey(trainerKey, 'ci')
// Set-up outside any subtest: fail loudly, not with a top-level assertion (which would end the root test).
const hashed = await run(['dataset', 'hash', join(dir, 'ds'), '--out', join(dir, 'm.json'), '--name', 'ds'])
if (hashed.code !== 0) throw new Error(hashed.stderr)
const datasetHash = '0x' + (JSON.parse(await readFile(join(dir, 'm.json'), 'utf8')) as { subject: Array<{ digest: { sha256: string } }> }).subject[0]?.digest.sha256
await lineage.connect(curator).registerDataset({ datasetHash, name: 'ds', version: '1' })

let n = 0
async function recordModel (key: string, datasets = `ds@1=${join(dir, 'm.json')}`): Promise<{ file: string, modelHash: string, statementHash: string, envelope: string }> {
  const file = join(dir, `model${++n}.onnx`)
  await writeFile(file, `model ${n}`)
  const envelope = join(dir, `run${n}.json`)
  const r = await run(['training', 'record', '--model', file, '--name', 'det', '--code-revision', 'git:1', '--key-file', join(dir, key), '--datasets', datasets, '--out', envelope, '--json'])
  if (r.code !== 0) throw new Error(r.stderr)
  const s = JSON.parse(r.stdout) as { model: string, statementHash: string }
  return { file, modelHash: '0x' + s.model, statementHash: '0x' + s.statementHash, envelope }
}
const verify = async (envelope: string, extra: string[] = []): Promise<{ code: number, stdout: string, stderr: string }> =>
  await run(['training', 'verify', envelope, '--rpc-url', chain.anvil.rpcUrl, '--lineage', address, '--json', ...extra])
const failed = (stdout: string): string[] => (JSON.parse(stdout) as { checks: Array<{ ok: boolean, reason?: string }> }).checks.filter(c => !c.ok).map(c => c.reason as string)

t.test('behavior: a run registered with its model verifies against the files and the chain', async t => {
  await chain.registryAs('admin').grantRole('modelPublisher', address)
  const m = await recordModel('trainer.key')
  await publisher.registerTrainedModel({ modelHash: m.modelHash, name: 'det', version: '1', statementHash: m.statementHash, trainerKey, datasetHashes: [datasetHash] })
  const r = await verify(m.envelope, ['--model', m.file, '--datasets', `ds=${join(dir, 'm.json')}=${join(dir, 'ds')}`])
  t.equal(r.code, 0, r.stdout + r.stderr)
  t.same(failed(r.stdout), [])
})

t.test('error: a statement signed by an unknown key fails TRAINER_UNKNOWN', async t => {
  const m = await recordModel('stranger.key')
  await chain.registryAs('modelPublisher').registerModel({ modelHash: m.modelHash, name: 'det', version: '2' })
  const r = await verify(m.envelope)
  t.equal(r.code, 1)
  t.same(failed(r.stdout), ['TRAINER_UNKNOWN', 'TRAINING_RUN_MISSING'])
})

t.test('error: a model whose registered training run is another statement fails TRAINING_RUN_MISMATCH', async t => {
  const m = await recordModel('trainer.key')
  await publisher.registerTrainedModel({ modelHash: m.modelHash, name: 'det', version: '3', statementHash: '0x' + createHash('sha256').update('other').digest('hex'), trainerKey, datasetHashes: [] })
  t.same(failed((await verify(m.envelope)).stdout), ['TRAINING_RUN_MISMATCH'])
})

t.test('error: an unregistered dataset fails DATASET_NOT_REGISTERED; a revoked trainer key counts as unknown', async t => {
  await mkdir(join(dir, 'ds2'))
  await writeFile(join(dir, 'ds2', 'b'), 'b')
  t.equal((await run(['dataset', 'hash', join(dir, 'ds2'), '--out', join(dir, 'm2.json')])).code, 0)
  const m = await recordModel('trainer.key', `ds2@1=${join(dir, 'm2.json')}`)
  t.same(failed((await verify(m.envelope)).stdout), ['DATASET_NOT_REGISTERED', 'TRAINING_RUN_MISSING'])
  await lineage.revokeTrainerKey(trainerKey)
  t.same(failed((await verify(m.envelope)).stdout), ['TRAINER_UNKNOWN', 'DATASET_NOT_REGISTERED', 'TRAINING_RUN_MISSING'])
})

t.test('error: an unreachable node is RPC_FAILED', async t => {
  const m = await recordModel('trainer.key')
  const r = await run(['training', 'verify', m.envelope, '--rpc-url', 'http://127.0.0.1:9', '--lineage', address])
  t.equal(r.code, 1)
  t.match(r.stderr, /^RPC_FAILED: /)
})

t.test('behavior: provenance dataset register writes a child version by the curator; a non-curator is refused with REGISTRY_UNAUTHORIZED', async t => {
  await writeFile(join(dir, 'ds', 'b.csv'), 'x\n2\n')
  t.teardown(async () => { await rm(join(dir, 'ds', 'b.csv')) })
  const hashed = await run(['dataset', 'hash', join(dir, 'ds'), '--out', join(dir, 'm-v2.json'), '--name', 'ds'])
  t.equal(hashed.code, 0, hashed.stderr)
  await writeFile(join(dir, 'curator.key'), curator.privateKey.slice(2) + '\n', { mode: 0o600 })
  await writeFile(join(dir, 'other.key'), (chain.anvil.accounts[6] as { privateKey: string }).privateKey + '\n', { mode: 0o600 })
  const args = (key: string): string[] => ['dataset', 'register', '--manifest', join(dir, 'm-v2.json'), '--dataset-version', '2', '--parent', join(dir, 'm.json'),
    '--uri', 'file:///data/ds', '--rpc-url', chain.anvil.rpcUrl, '--lineage', address, '--key-file', join(dir, key), '--json']
  const refused = await run(args('other.key'))
  t.equal(refused.code, 1)
  t.match(refused.stderr, /^REGISTRY_UNAUTHORIZED: /)
  const ok = await run(args('curator.key'))
  t.equal(ok.code, 0, ok.stderr)
  const out = JSON.parse(ok.stdout) as { datasetHash: string, parentHash: string, curator: string }
  t.equal(out.parentHash, datasetHash.slice(2))
  const info = await lineage.getDataset('0x' + out.datasetHash)
  t.match(info, { parentHash: datasetHash, curator: curator.address }, 'on chain: parent and curator')
  const usage = await run(['dataset', 'register', '--manifest', join(dir, 'm-v2.json')])
  t.equal(usage.code, 2)
})

t.test('behavior: fl contributors checks a round against the chain; a contributor revoked at its record\'s time breaks it', async t => {
  const base = buildLogisticModel({ inputSize: 2, W: new Float32Array(4), b: new Float32Array(2) })
  const baseHash = createHash('sha256').update(base).digest('hex')
  // Two devices registered in the ProvenanceRegistry; each signs the record of its update.
  const contributions = []
  for (const [i, id] of ['fl-dev-1', 'fl-dev-2'].entries()) {
    const device = createSigner(Buffer.alloc(32, 40 + i))
    await chain.registryAs('deviceRegistrar').registerDevice({ deviceId: deviceIdOf(id), publicKey: device.publicKey, validFromMs: 0 })
    const update = encodeFlUpdate({ roundId: 'chain-round', baseModelHash: baseHash, sampleCount: 10 + i, weights: { inputSize: 2, W: Float32Array.from([i, 1, 2, 3]), b: Float32Array.from([0, i]) } })
    const salt = Buffer.alloc(32, 60 + i)
    const record = signRecord({
      deviceId: id, boot: 1, seq: 1, timeMs: 1_000 + i, prev: new Uint8Array(32),
      body: { kind: 'data-capture', commitment: commitSample(salt, sha256(update)), sizeBytes: update.byteLength, dataset: flDatasetOf('chain-round'), label: FL_UPDATE_LABEL, capturedAtMs: 1_000 }
    }, device)
    contributions.push(buildContribution(record, salt, update))
  }
  const aggregator = createSigner(Buffer.alloc(32, 13))
  await lineage.registerTrainerKey(aggregator.publicKey, 'aggregator')
  const result = await aggregateRound({ baseModel: base, roundId: 'chain-round', contributions: { format: FL_CONTRIBUTIONS_FORMAT, contributions }, keyAt: async (id) => await Promise.resolve(id.startsWith('fl-dev-') ? { publicKey: createSigner(Buffer.alloc(32, id === 'fl-dev-1' ? 40 : 41)).publicKey, revoked: false } : undefined), signer: aggregator, name: 'fl' })
  await publisher.registerTrainedModel({ modelHash: '0x' + result.modelHash, name: 'fl', version: '1', statementHash: '0x' + result.statementHash, trainerKey: aggregator.publicKey, datasetHashes: [] })
  await writeFile(join(dir, 'round.json'), JSON.stringify(result.envelope))
  await writeFile(join(dir, 'contributions.json'), JSON.stringify({ format: FL_CONTRIBUTIONS_FORMAT, contributions }))
  const args = ['fl', 'contributors', result.modelHash, '--statement', join(dir, 'round.json'), '--rpc-url', chain.anvil.rpcUrl, '--lineage', address,
    '--registry', chain.deployment.address, '--contributions', join(dir, 'contributions.json'), '--json']
  const ok = await run(args)
  t.equal(ok.code, 0, ok.stdout + ok.stderr)
  t.same((JSON.parse(ok.stdout) as { contributors: Array<{ deviceId: string, sampleCount: number }> }).contributors.map(c => [c.deviceId, c.sampleCount]), [['fl-dev-1', 10], ['fl-dev-2', 11]])
  await chain.registryAs('deviceRegistrar').revokeDevice(deviceIdOf('fl-dev-2'), 500)
  const revoked = await run(args)
  t.equal(revoked.code, 1)
  t.match(revoked.stderr, /^ROUND_INVALID: CONTRIBUTION_INVALID\n$/)
  t.match(revoked.stdout, /DEVICE_REVOKED/)
})
