// LineageRegistry on anvil: datasets only by curators (and versions only by the parent's curator),
// trainer keys, training runs only by ProvenanceRegistry publishers, registerTrainedModel as the
// way to require a run, and the ProvenanceRegistry left as it was.
import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { Wallet, hexlify, type Provider } from 'ethers'
import { startDevChain, deployLineage, lineageInterface, RegistryError, type LineageClient } from '../../contracts/index.js'

const chain = await startDevChain()
t.teardown(chain.stop)
const account = (i: number): Wallet => new Wallet((chain.anvil.accounts[i] as { privateKey: string }).privateKey, chain.provider)
const curator = account(5)
const otherCurator = account(6)
const trainerRegistrar = account(7)
const { lineage: admin, address } = await deployLineage(chain.wallets.admin, chain.deployment.address)
await admin.grantRole('dataCurator', curator.address)
await admin.grantRole('dataCurator', otherCurator.address)
await admin.grantRole('trainerRegistrar', trainerRegistrar.address)
const as = (w: Wallet): LineageClient => admin.connect(w)
const hash = (): string => hexlify(randomBytes(32))
const trainerKey = hash()
await as(trainerRegistrar).registerTrainerKey(trainerKey, 'ci-trainer')

async function rejects (t: Test, p: Promise<unknown>, code: string, name: string): Promise<void> {
  const e = await p.then(() => undefined, (x: unknown) => x)
  t.ok(e instanceof RegistryError, `${name}: RegistryError`)
  t.equal((e as RegistryError).code, code, `${name}: code`)
  t.equal((e as RegistryError).revert?.name, name)
}

async function events (provider: Provider, blockNumber: number): Promise<Array<{ name: string, args: unknown[] }>> {
  const logs = await provider.getLogs({ address, fromBlock: blockNumber, toBlock: blockNumber })
  return logs.map(l => lineageInterface.parseLog(l)).filter(e => e !== null).map(e => ({ name: e.name, args: JSON.parse(JSON.stringify([...e.args], (_, v) => typeof v === 'bigint' ? v.toString() : v)) as unknown[] }))
}

t.test('behavior: a curator registers a dataset and its next version; the fields and event are kept', async t => {
  const v1 = hash()
  const v2 = hash()
  await as(curator).registerDataset({ datasetHash: v1, name: 'street-photos', version: '1', uri: 's3://bucket/v1' })
  const tx = await as(curator).registerDataset({ datasetHash: v2, parentHash: v1, name: 'street-photos', version: '2' })
  t.same(await events(chain.provider, tx.blockNumber), [{ name: 'DatasetRegistered', args: [v2, v1, 'street-photos', '2', '', curator.address] }])
  t.match(await admin.connect(chain.wallets.outsider).getDataset(v2), { datasetHash: v2, parentHash: v1, curator: curator.address, name: 'street-photos', version: '2', uri: '' })
  t.match(await admin.getDataset(v1), { parentHash: undefined, uri: 's3://bucket/v1' })
  t.equal(await admin.getDataset(hash()), undefined)
})

t.test('error: a non-curator cannot register a dataset; a curator cannot add a version to another curator\'s dataset', async t => {
  await rejects(t, as(chain.wallets.outsider).registerDataset({ datasetHash: hash(), name: 'x', version: '1' }), 'REGISTRY_UNAUTHORIZED', 'AccessControlUnauthorizedAccount')
  await rejects(t, as(chain.wallets.modelPublisher).registerDataset({ datasetHash: hash(), name: 'x', version: '1' }), 'REGISTRY_UNAUTHORIZED', 'AccessControlUnauthorizedAccount')
  const mine = hash()
  await as(curator).registerDataset({ datasetHash: mine, name: 'mine', version: '1' })
  await rejects(t, as(otherCurator).registerDataset({ datasetHash: hash(), parentHash: mine, name: 'mine', version: '2' }), 'REGISTRY_REVERTED', 'NotDatasetCurator')
  await rejects(t, as(curator).registerDataset({ datasetHash: hash(), parentHash: hash(), name: 'x', version: '2' }), 'REGISTRY_REVERTED', 'UnknownDataset')
  await rejects(t, as(curator).registerDataset({ datasetHash: mine, name: 'again', version: '1' }), 'REGISTRY_REVERTED', 'DatasetAlreadyRegistered')
  await rejects(t, as(curator).registerDataset({ datasetHash: hexlify(new Uint8Array(32)), name: 'x', version: '1' }), 'REGISTRY_REVERTED', 'ZeroHash')
  await rejects(t, as(curator).registerDataset({ datasetHash: hash(), name: '', version: '1' }), 'REGISTRY_REVERTED', 'EmptyName')
  await rejects(t, as(curator).registerDataset({ datasetHash: hash(), name: 'x', version: '' }), 'REGISTRY_REVERTED', 'EmptyVersion')
})

t.test('behavior: trainer keys are listed and revoked by the trainer registrar only', async t => {
  const key = hash()
  await rejects(t, as(curator).registerTrainerKey(key, 'k'), 'REGISTRY_UNAUTHORIZED', 'AccessControlUnauthorizedAccount')
  await as(trainerRegistrar).registerTrainerKey(key, 'k')
  t.match(await admin.getTrainerKey(key), { publicKey: key, name: 'k', revokedAtSec: undefined })
  await rejects(t, as(trainerRegistrar).registerTrainerKey(key, 'k'), 'REGISTRY_REVERTED', 'TrainerKeyAlreadyRegistered')
  await as(trainerRegistrar).revokeTrainerKey(key)
  t.ok((await admin.getTrainerKey(key))?.revokedAtSec !== undefined)
  await rejects(t, as(trainerRegistrar).revokeTrainerKey(key), 'REGISTRY_REVERTED', 'TrainerKeyNotValid')
  t.equal(await admin.getTrainerKey(hash()), undefined)
})

t.test('behavior: a publisher attaches a training run once; error: a non-publisher cannot', async t => {
  const ds = hash()
  await as(curator).registerDataset({ datasetHash: ds, name: 'd', version: '1' })
  const modelHash = hash()
  await chain.registryAs('modelPublisher').registerModel({ modelHash, name: 'm', version: '1' })
  const statementHash = hash()
  const run = { modelHash, statementHash, trainerKey, datasetHashes: [ds] }
  await rejects(t, as(chain.wallets.outsider).attachTrainingRun(run), 'REGISTRY_UNAUTHORIZED', 'AccessControlUnauthorizedAccount')
  await rejects(t, as(curator).attachTrainingRun(run), 'REGISTRY_UNAUTHORIZED', 'AccessControlUnauthorizedAccount')
  await rejects(t, as(chain.wallets.modelPublisher).attachTrainingRun({ ...run, modelHash: hash() }), 'REGISTRY_REVERTED', 'UnknownModel')
  await rejects(t, as(chain.wallets.modelPublisher).attachTrainingRun({ ...run, trainerKey: hash() }), 'REGISTRY_REVERTED', 'UnknownTrainerKey')
  await rejects(t, as(chain.wallets.modelPublisher).attachTrainingRun({ ...run, datasetHashes: [ds, hash()] }), 'REGISTRY_REVERTED', 'UnknownDataset')
  await rejects(t, as(chain.wallets.modelPublisher).attachTrainingRun({ ...run, statementHash: hexlify(new Uint8Array(32)) }), 'REGISTRY_REVERTED', 'ZeroHash')
  const tx = await as(chain.wallets.modelPublisher).attachTrainingRun(run)
  t.same(await events(chain.provider, tx.blockNumber), [{ name: 'TrainingRunAttached', args: [modelHash, statementHash, trainerKey, [ds], chain.wallets.modelPublisher.address] }])
  t.match(await admin.getTrainingRun(modelHash), { statementHash, trainerKey, publisher: chain.wallets.modelPublisher.address })
  await rejects(t, as(chain.wallets.modelPublisher).attachTrainingRun({ ...run, statementHash: hash() }), 'REGISTRY_REVERTED', 'TrainingRunAlreadyAttached')
  t.equal(await admin.getTrainingRun(hash()), undefined)
})

t.test('error: a revoked trainer key cannot sign for a new run', async t => {
  const key = hash()
  await as(trainerRegistrar).registerTrainerKey(key, 'leaked')
  await as(trainerRegistrar).revokeTrainerKey(key)
  const modelHash = hash()
  await chain.registryAs('modelPublisher').registerModel({ modelHash, name: 'm', version: '1' })
  await rejects(t, as(chain.wallets.modelPublisher).attachTrainingRun({ modelHash, statementHash: hash(), trainerKey: key, datasetHashes: [] }), 'REGISTRY_REVERTED', 'TrainerKeyNotValid')
})

t.test('behavior: registerTrainedModel registers model and run in one transaction when the lineage contract publishes', async t => {
  const input = { modelHash: hash(), name: 'det', version: '2', statementHash: hash(), trainerKey, datasetHashes: [] as string[] }
  // Without MODEL_PUBLISHER_ROLE in the ProvenanceRegistry, the contract cannot register for anyone.
  await rejects(t, as(chain.wallets.modelPublisher).registerTrainedModel(input), 'REGISTRY_UNAUTHORIZED', 'AccessControlUnauthorizedAccount')
  await chain.registryAs('admin').grantRole('modelPublisher', address)
  await rejects(t, as(chain.wallets.outsider).registerTrainedModel(input), 'REGISTRY_UNAUTHORIZED', 'AccessControlUnauthorizedAccount')
  await as(chain.wallets.modelPublisher).registerTrainedModel(input)
  t.match(await chain.registryAs('outsider').getModel(input.modelHash), { name: 'det', version: '2', status: 'registered', publisher: address })
  t.match(await admin.getTrainingRun(input.modelHash), { statementHash: input.statementHash, publisher: chain.wallets.modelPublisher.address })
  // A revert inside the ProvenanceRegistry comes back decoded with its ABI.
  await rejects(t, as(chain.wallets.modelPublisher).registerTrainedModel(input), 'REGISTRY_REVERTED', 'ModelAlreadyRegistered')
})

t.test('behavior: required mode: only the lineage contract publishes in the registry, so every model has a run', async t => {
  // A second pair of contracts, so the roles of the tests above stay as they were.
  const registry = (await (await import('../../contracts/index.js')).deployRegistry(chain.wallets.admin)).registry
  const { lineage, address: lineageAddress } = await deployLineage(chain.wallets.admin, registry.address)
  const person = account(8)
  await registry.grantRole('modelPublisher', lineageAddress)
  await lineage.grantRole('modelPublisher', person.address)
  await lineage.grantRole('trainerRegistrar', chain.wallets.admin.address)
  await lineage.registerTrainerKey(trainerKey, 'ci')
  const modelHash = hash()
  // The person cannot register in the registry directly, only with a run through the lineage contract.
  await rejects(t, registry.connect(person).registerModel({ modelHash, name: 'm', version: '1' }), 'REGISTRY_UNAUTHORIZED', 'AccessControlUnauthorizedAccount')
  await lineage.connect(person).registerTrainedModel({ modelHash, name: 'm', version: '1', statementHash: hash(), trainerKey, datasetHashes: [] })
  await lineage.connect(person).approveModel(modelHash)
  t.equal(await registry.modelStatus(modelHash), 'approved')
  await rejects(t, lineage.connect(chain.wallets.outsider).approveModel(modelHash), 'REGISTRY_UNAUTHORIZED', 'AccessControlUnauthorizedAccount')
  t.ok((await lineage.getTrainingRun(modelHash)) !== undefined)
})

t.test('behavior: the lineage contract points at its registry', async t => {
  t.equal(await admin.registryAddress(), chain.deployment.address)
  t.ok(await admin.hasRole('admin', chain.wallets.admin.address))
})
