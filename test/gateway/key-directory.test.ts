import t from 'tap'
import { createSigner } from '../../protocol/index.js'
import { deviceIdOf, startDevChain } from '../../contracts/index.js'
import { GatewayError, RegistryKeyDirectory } from '../../gateway/index.js'
import { seedFrom } from '../helpers/records.js'

const key = (label: string): Uint8Array => createSigner(seedFrom(label)).publicKey

t.test('behavior: keys come from the registry per device time, through rotation and revocation', async t => {
  const chain = await startDevChain()
  t.teardown(async () => await chain.stop())
  const registrar = chain.registryAs('deviceRegistrar')
  await registrar.registerDevice({ deviceId: deviceIdOf('cam-1'), publicKey: key('k1'), validFromMs: 1000 })
  await registrar.rotateDeviceKey({ deviceId: deviceIdOf('cam-1'), publicKey: key('k2'), validFromMs: 5000 })
  await registrar.revokeDevice(deviceIdOf('cam-1'), 9000)
  const dir = new RegistryKeyDirectory({ registry: chain.registryAs('outsider') })

  t.same(await dir.keyAt('cam-1', 6000), { publicKey: key('k2'), revoked: false })
  t.same(await dir.keyAt('cam-1', 1500), { publicKey: key('k1'), revoked: false }, 'an older period is fetched on demand')
  t.same(await dir.keyAt('cam-1', 500), { revoked: false }, 'no key before the first period')
  t.same(await dir.keyAt('cam-1', 9500), { publicKey: key('k2'), revoked: true })
  t.same(dir.peek('cam-1', 8999), { publicKey: key('k2'), revoked: false }, 'revocation applies from its exact time')
  t.same(await dir.keyAt('nobody', 1000), { revoked: false, unknown: true })
})

t.test('behavior: answers are cached for the TTL; refresh() makes the next lookup ask again', async t => {
  const chain = await startDevChain()
  t.teardown(async () => await chain.stop())
  const registrar = chain.registryAs('deviceRegistrar')
  await registrar.registerDevice({ deviceId: deviceIdOf('cam-2'), publicKey: key('old'), validFromMs: 0 })
  let now = 1_000_000
  const dir = new RegistryKeyDirectory({ registry: chain.registryAs('outsider'), ttlMs: 10_000, unknownTtlMs: 1_000, refreshMinIntervalMs: 0, now: () => now })
  t.same((await dir.keyAt('cam-2', 2000)).publicKey, key('old'))
  await registrar.rotateDeviceKey({ deviceId: deviceIdOf('cam-2'), publicKey: key('new'), validFromMs: 1500 })
  t.same((await dir.keyAt('cam-2', 2000)).publicKey, key('old'), 'cached within the TTL')
  dir.refresh('cam-2')
  t.equal(dir.peek('cam-2', 2000), undefined, 'refresh drops the fresh answer')
  t.same((await dir.keyAt('cam-2', 2000)).publicKey, key('new'))
  await registrar.revokeDevice(deviceIdOf('cam-2'), 0)
  t.same(await dir.keyAt('cam-2', 2000), { publicKey: key('new'), revoked: false }, 'revocation seen only after the TTL')
  now += 10_001
  t.same(await dir.keyAt('cam-2', 2000), { publicKey: key('new'), revoked: true })

  t.same(await dir.keyAt('late', 0), { revoked: false, unknown: true })
  await registrar.registerDevice({ deviceId: deviceIdOf('late'), publicKey: key('late'), validFromMs: 0 })
  t.same(await dir.keyAt('late', 0), { revoked: false, unknown: true }, 'unknown is cached too')
  now += 1_001
  t.same(await dir.keyAt('late', 0), { publicKey: key('late'), revoked: false }, 'a registration is seen after unknownTtlMs')
})

t.test('behavior: while the chain is down, stale answers are served; with none, KEY_LOOKUP_FAILED', async t => {
  const chain = await startDevChain()
  t.teardown(async () => await chain.stop())
  await chain.registryAs('deviceRegistrar').registerDevice({ deviceId: deviceIdOf('cam-3'), publicKey: key('k3'), validFromMs: 0 })
  let now = 0
  const errors: string[] = []
  const dir = new RegistryKeyDirectory({ registry: chain.registryAs('outsider'), ttlMs: 100, now: () => now, onLookupError: (c) => errors.push(c) })
  t.same((await dir.keyAt('cam-3', 5)).publicKey, key('k3'))
  await chain.anvil.stop()
  now += 1000
  t.same((await dir.keyAt('cam-3', 5)).publicKey, key('k3'), 'stale but usable')
  const e = await dir.keyAt('cam-4', 5).catch((e: unknown) => e)
  t.ok(e instanceof GatewayError)
  t.equal((e as GatewayError).code, 'KEY_LOOKUP_FAILED')
  t.ok(errors.length >= 2, 'each failed read is reported')
  t.match(errors[0], /^REGISTRY_/)
})

t.test('error: bad arguments are TypeError / RangeError', async t => {
  const chain = await startDevChain()
  t.teardown(async () => await chain.stop())
  const dir = new RegistryKeyDirectory({ registry: chain.registryAs('outsider') })
  await t.rejects(dir.keyAt('', 1), TypeError)
  await t.rejects(dir.keyAt('x', -1), RangeError)
  t.throws(() => new RegistryKeyDirectory({ registry: chain.registryAs('outsider'), ttlMs: -1 }), RangeError)
})
