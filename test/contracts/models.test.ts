// Model registry: registration with lineage, the status lifecycle (forward only, revoked final),
// events, and the custom errors for bad input.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { ZeroHash, hexlify } from 'ethers'
import { startDevChain, MODEL_STATUSES, type ModelStatus, type RegistryClient } from '../../contracts/index.js'
import { expectRevert, eventsIn as eventsAt } from '../helpers/registry.js'

const chain = await startDevChain()
t.teardown(chain.stop)
const publisher = chain.registryAs('modelPublisher')
const reader = chain.registryAs('outsider')
const hash = (): string => hexlify(randomBytes(32))

const eventsIn = async (blockNumber: number): Promise<Array<{ name: string, args: unknown[] }>> => await eventsAt(chain.provider, publisher.address, blockNumber)


const statusIndex = (s: ModelStatus): bigint => BigInt(MODEL_STATUSES.indexOf(s))

t.test('behavior: registration stores every field and emits ModelRegistered and ModelStatusChanged', async t => {
  const parent = hash()
  await publisher.registerModel({ modelHash: parent, name: 'ocr-det', version: '1.0.0' })
  const modelHash = hash()
  const manifestHash = hash()
  const tx = await publisher.registerModel({ modelHash, name: 'ocr-det', version: '1.1.0', parentHash: parent, manifestHash, metadataURI: 'ipfs://meta' })
  const by = chain.wallets.modelPublisher.address
  t.same(await eventsIn(tx.blockNumber), [
    { name: 'ModelRegistered', args: [modelHash, parent, 'ocr-det', '1.1.0', manifestHash, 'ipfs://meta', by] },
    { name: 'ModelStatusChanged', args: [modelHash, 0n, statusIndex('registered'), by] }
  ])
  const model = await reader.getModel(modelHash)
  t.match(model, { modelHash, name: 'ocr-det', version: '1.1.0', parentHash: parent, manifestHash, metadataURI: 'ipfs://meta', publisher: by, status: 'registered' })
  t.match(await reader.getModel(parent), { parentHash: undefined, manifestHash: ZeroHash, metadataURI: '' })
  t.equal(await reader.getModel(hash()), undefined)
  t.equal(await reader.modelStatus(hash()), 'none')
})

// [MODEL-STATUS] allowed transitions: a status only moves forward; revoked is final.
const actions = {
  approved: async (r: RegistryClient, h: string) => await r.approveModel(h),
  deprecated: async (r: RegistryClient, h: string) => await r.deprecateModel(h),
  revoked: async (r: RegistryClient, h: string) => await r.revokeModel(h)
} as const
const reach: Record<Exclude<ModelStatus, 'none'>, Array<keyof typeof actions>> = {
  registered: [],
  approved: ['approved'],
  deprecated: ['deprecated'],
  revoked: ['revoked']
}

for (const from of ['registered', 'approved', 'deprecated', 'revoked'] as const) {
  for (const to of ['approved', 'deprecated', 'revoked'] as const) {
    const allowed = MODEL_STATUSES.indexOf(to) > MODEL_STATUSES.indexOf(from)
    t.test(`${allowed ? 'behavior' : 'error'}: ${from} → ${to} is ${allowed ? 'allowed' : 'refused'}`, async t => {
      const modelHash = hash()
      await publisher.registerModel({ modelHash, name: 'm', version: '1' })
      for (const step of reach[from]) await actions[step](publisher, modelHash)
      t.equal(await reader.modelStatus(modelHash), from)
      if (allowed) {
        const change = await actions[to](publisher, modelHash)
        t.match(change, { from, to })
        t.same(await eventsIn(change.blockNumber), [{
          name: 'ModelStatusChanged', args: [modelHash, statusIndex(from), statusIndex(to), chain.wallets.modelPublisher.address]
        }])
        t.equal(await reader.modelStatus(modelHash), to)
      } else {
        await expectRevert(t, actions[to](publisher, modelHash), 'InvalidStatusTransition', [modelHash, statusIndex(from), statusIndex(to)])
        t.equal(await reader.modelStatus(modelHash), from)
      }
    })
  }
}

t.test('behavior: a revoked model reads as revoked everywhere', async t => {
  const modelHash = hash()
  await publisher.registerModel({ modelHash, name: 'm', version: '1' })
  await publisher.approveModel(modelHash)
  await publisher.revokeModel(modelHash)
  t.equal(await reader.modelStatus(modelHash), 'revoked')
  t.equal((await reader.getModel(modelHash))?.status, 'revoked')
})

t.test('behavior: lineage walks the parent chain, child first, in pages beyond the contract bound', async t => {
  const hashes: string[] = []
  let parent: string | undefined
  for (let i = 0; i < 70; i++) {
    const modelHash = hash()
    await publisher.registerModel({ modelHash, name: 'm', version: String(i), parentHash: parent })
    hashes.push(modelHash)
    parent = modelHash
  }
  const leaf = hashes[hashes.length - 1] as string
  const expected = [...hashes].reverse()
  t.same(await reader.lineage(leaf), { chain: expected, complete: true })
  t.same(await reader.lineage(leaf, 5), { chain: expected.slice(0, 5), complete: false })
  t.same(await reader.lineage(hashes[0] as string), { chain: [hashes[0]], complete: true })
  // The contract itself caps one call at MAX_LINEAGE_DEPTH (64).
  const [page, complete] = await reader.contract.getFunction('lineage').staticCall(leaf, 0) as [string[], boolean]
  t.equal(page.length, 64)
  t.equal(complete, false)
})

t.test('error: bad model input reverts with named custom errors', async t => {
  const existing = hash()
  await publisher.registerModel({ modelHash: existing, name: 'm', version: '1' })
  const unknown = hash()
  await expectRevert(t, publisher.registerModel({ modelHash: ZeroHash, name: 'm', version: '1' }), 'ZeroModelHash', [])
  await expectRevert(t, publisher.registerModel({ modelHash: hash(), name: '', version: '1' }), 'EmptyName', [])
  await expectRevert(t, publisher.registerModel({ modelHash: hash(), name: 'm', version: '' }), 'EmptyVersion', [])
  await expectRevert(t, publisher.registerModel({ modelHash: existing, name: 'm', version: '2' }), 'ModelAlreadyRegistered', [existing])
  await expectRevert(t, publisher.registerModel({ modelHash: hash(), name: 'm', version: '1', parentHash: unknown }), 'UnknownModel', [unknown])
  await expectRevert(t, publisher.approveModel(unknown), 'UnknownModel', [unknown])
  await expectRevert(t, publisher.deprecateModel(unknown), 'UnknownModel', [unknown])
  await expectRevert(t, publisher.revokeModel(unknown), 'UnknownModel', [unknown])
  await expectRevert(t, reader.lineage(unknown), 'UnknownModel', [unknown])
  await t.rejects(publisher.registerModel({ modelHash: randomBytes(16), name: 'm', version: '1' }), RangeError)
})
