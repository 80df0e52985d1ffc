// Access control of ProvenanceRegistry: every role-protected function reverts with
// AccessControlUnauthorizedAccount(caller, role) for every account that lacks the role.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { ZeroHash } from 'ethers'
import {
  startDevChain, deviceIdOf, RegistryError, REGISTRY_ROLES, DEV_ACTORS, registryInterface,
  type DevActor, type RegistryClient, type RoleName
} from '../../contracts/index.js'

const chain = await startDevChain()
t.teardown(chain.stop)

// State the protected calls refer to, so that only the role check can make them fail.
const deviceId = deviceIdOf('roles-device')
const modelHash = '0x' + randomBytes(32).toString('hex')
await chain.registryAs('deviceRegistrar').registerDevice({ deviceId, publicKey: randomBytes(32), validFromMs: 1 })
await chain.registryAs('modelPublisher').registerModel({ modelHash, name: 'm', version: '1' })

interface Protected {
  name: string
  role: RoleName
  holder: DevActor
  call: (r: RegistryClient) => Promise<unknown>
}

const table: Protected[] = [
  { name: 'registerDevice', role: 'deviceRegistrar', holder: 'deviceRegistrar', call: async r => await r.registerDevice({ deviceId: deviceIdOf('other'), publicKey: randomBytes(32), validFromMs: 1 }) },
  { name: 'rotateDeviceKey', role: 'deviceRegistrar', holder: 'deviceRegistrar', call: async r => await r.rotateDeviceKey({ deviceId, publicKey: randomBytes(32), validFromMs: 2 }) },
  { name: 'revokeDevice', role: 'deviceRegistrar', holder: 'deviceRegistrar', call: async r => await r.revokeDevice(deviceId, 3) },
  { name: 'registerModel', role: 'modelPublisher', holder: 'modelPublisher', call: async r => await r.registerModel({ modelHash: randomBytes(32), name: 'n', version: '1' }) },
  { name: 'approveModel', role: 'modelPublisher', holder: 'modelPublisher', call: async r => await r.approveModel(modelHash) },
  { name: 'deprecateModel', role: 'modelPublisher', holder: 'modelPublisher', call: async r => await r.deprecateModel(modelHash) },
  { name: 'revokeModel', role: 'modelPublisher', holder: 'modelPublisher', call: async r => await r.revokeModel(modelHash) },
  { name: 'anchor', role: 'anchorer', holder: 'anchorer', call: async r => await r.anchor({ root: randomBytes(32), size: 1, firstRecordTimeMs: 1, lastRecordTimeMs: 1 }) },
  { name: 'grantRole', role: 'admin', holder: 'admin', call: async r => await r.grantRole('anchorer', chain.wallets.outsider.address) },
  { name: 'revokeRole', role: 'admin', holder: 'admin', call: async r => await r.revokeRole('anchorer', chain.wallets.anchorer.address) }
]

for (const entry of table) {
  t.test(`error: ${entry.name} reverts AccessControlUnauthorizedAccount for every account without ${entry.role}`, async t => {
    for (const actor of DEV_ACTORS.filter(a => a !== entry.holder)) {
      const caller = chain.wallets[actor].address
      const error = await entry.call(chain.registryAs(actor)).then(() => undefined, (e: unknown) => e)
      t.ok(error instanceof RegistryError, `${actor}: RegistryError`)
      t.equal((error as RegistryError).code, 'REGISTRY_UNAUTHORIZED', `${actor}: code`)
      t.same((error as RegistryError).revert, { name: 'AccessControlUnauthorizedAccount', args: [caller, REGISTRY_ROLES[entry.role]] }, `${actor}: revert args`)
    }
  })
}

t.test('behavior: the raw contract revert decodes by name with the registry interface', async t => {
  const raw = chain.registryAs('outsider').contract
  const error = await raw.getFunction('anchor').staticCall(ZeroHash, 1, 1, 1, ZeroHash).then(() => undefined, (e: unknown) => e) as
    { revert?: { name: string }, data?: string }
  t.equal(error.revert?.name, 'AccessControlUnauthorizedAccount')
  t.equal(registryInterface.parseError(error.data ?? '0x')?.name, 'AccessControlUnauthorizedAccount')
})

t.test('behavior: each role holder may make its calls; the admin holds no operational role', async t => {
  for (const role of ['deviceRegistrar', 'modelPublisher', 'anchorer'] as const) {
    t.equal(await chain.registryAs('outsider').hasRole(role, chain.wallets[role].address), true, `${role} holds its role`)
    t.equal(await chain.registryAs('outsider').hasRole(role, chain.wallets.admin.address), false, `admin lacks ${role}`)
  }
  t.equal(await chain.registryAs('outsider').hasRole('admin', chain.wallets.admin.address), true)
  for (const role of ['admin', 'deviceRegistrar', 'modelPublisher', 'anchorer'] as const) {
    t.equal(await chain.registryAs('outsider').getRoleAdmin(role), REGISTRY_ROLES.admin, `${role} is administered by the admin`)
  }
  t.equal(await chain.registryAs('outsider').registryVersion(), 1n)
  // The holder's call passes the role check (anchor stands for the rest, which other files exercise).
  const result = await chain.registryAs('anchorer').anchor({ root: randomBytes(32), size: 1, firstRecordTimeMs: 1, lastRecordTimeMs: 1 })
  t.ok(result.batchId >= 1n)
})

t.test('behavior: granting and revoking a role are evented and take effect at once', async t => {
  const admin = chain.registryAs('admin')
  const outsider = chain.wallets.outsider.address
  const granted = await admin.grantRole('anchorer', outsider)
  const grantLogs = await chain.provider.getLogs({ address: admin.address, fromBlock: granted.blockNumber, toBlock: granted.blockNumber })
  const grantEvent = grantLogs.map(l => registryInterface.parseLog(l)).find(e => e?.name === 'RoleGranted')
  t.same(grantEvent && [...grantEvent.args], [REGISTRY_ROLES.anchorer, outsider, chain.wallets.admin.address])
  await chain.registryAs('outsider').anchor({ root: randomBytes(32), size: 2, firstRecordTimeMs: 1, lastRecordTimeMs: 2 })

  const revoked = await admin.revokeRole('anchorer', outsider)
  const revokeLogs = await chain.provider.getLogs({ address: admin.address, fromBlock: revoked.blockNumber, toBlock: revoked.blockNumber })
  t.ok(revokeLogs.map(l => registryInterface.parseLog(l)).some(e => e?.name === 'RoleRevoked'))
  await t.rejects(chain.registryAs('outsider').anchor({ root: randomBytes(32), size: 2, firstRecordTimeMs: 1, lastRecordTimeMs: 2 }),
    { code: 'REGISTRY_UNAUTHORIZED' })
})
