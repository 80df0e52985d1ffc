import t from 'tap'
import { createSigner } from '../../protocol/index.js'
import { deviceIdOf, startDevChain } from '../../contracts/index.js'
import { GatewayError, RegistryKeyDirectory, cachedBytesOf } from '../../gateway/index.js'
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

t.test('behavior: one miss reads the whole key history: any device time is answered without another call', async t => {
  const chain = await startDevChain()
  t.teardown(async () => await chain.stop())
  const registrar = chain.registryAs('deviceRegistrar')
  await registrar.registerDevice({ deviceId: deviceIdOf('cam-h'), publicKey: key('h1'), validFromMs: 1000 })
  await registrar.rotateDeviceKey({ deviceId: deviceIdOf('cam-h'), publicKey: key('h2'), validFromMs: 5000 })
  const dir = new RegistryKeyDirectory({ registry: chain.registryAs('outsider') })
  t.same(await dir.keyAt('cam-h', 6000), { publicKey: key('h2'), revoked: false })
  // Records dated before the first key's validity (issue 9: ≈ 300 calls for 500 such records).
  for (let time = 0; time < 1000; time += 7) t.same(await dir.keyAt('cam-h', time), { revoked: false })
  t.same(await dir.keyAt('cam-h', 1500), { publicKey: key('h1'), revoked: false })
  t.equal(dir.stats().registryCalls, 2, 'getDevice and deviceKeys, once')
  t.same(await dir.keyAt('nobody-h', 1), { revoked: false, unknown: true })
  t.same(await dir.keyAt('nobody-h', 2), { revoked: false, unknown: true })
  t.equal(dir.stats().registryCalls, 3, 'an unknown id costs one getDevice, then the negative cache answers')
})

t.test('behavior: look-ups of new ids beyond the rate are refused with KEY_LOOKUP_LIMITED; known devices still refresh', async t => {
  const chain = await startDevChain()
  t.teardown(async () => await chain.stop())
  await chain.registryAs('deviceRegistrar').registerDevice({ deviceId: deviceIdOf('cam-r'), publicKey: key('r'), validFromMs: 0 })
  let now = 1_000_000
  const dir = new RegistryKeyDirectory({ registry: chain.registryAs('outsider'), lookupsPerSecond: 1, lookupBurst: 2, ttlMs: 100, now: () => now })
  t.same((await dir.keyAt('cam-r', 5)).publicKey, key('r'))
  t.same(await dir.keyAt('ghost-1', 5), { revoked: false, unknown: true })
  const e = await dir.keyAt('ghost-2', 5).catch((e: unknown) => e)
  t.ok(e instanceof GatewayError)
  t.equal((e as GatewayError).code, 'KEY_LOOKUP_LIMITED')
  t.same(await dir.keyAt('ghost-1', 5), { revoked: false, unknown: true }, 'the negative cache answers without a token')
  await chain.registryAs('deviceRegistrar').revokeDevice(deviceIdOf('cam-r'), 0)
  now += 200
  t.same(await dir.keyAt('cam-r', 5), { publicKey: key('r'), revoked: true }, 'out of tokens, a known device still refreshes after its TTL: the revocation is seen')
  t.equal(dir.stats().limited, 1)
  t.equal(dir.stats().registryCalls, 5, 'refused look-ups cost no call')
  now += 1000
  t.same(await dir.keyAt('ghost-2', 5), { revoked: false, unknown: true }, 'a token per second comes back')
})

t.test('behavior: made-up ids go to a bounded negative cache and never evict known devices; the cache is bounded in bytes', async t => {
  const chain = await startDevChain()
  t.teardown(async () => await chain.stop())
  const registrar = chain.registryAs('deviceRegistrar')
  for (const id of ['cam-a', 'cam-b', 'cam-c']) await registrar.registerDevice({ deviceId: deviceIdOf(id), publicKey: key(id), validFromMs: 0 })
  const maxBytes = 2 * cachedBytesOf('cam-a', 1)
  const dir = new RegistryKeyDirectory({ registry: chain.registryAs('outsider'), maxUnknownEntries: 3, maxBytes })
  await dir.keyAt('cam-a', 1)
  for (let i = 0; i < 10; i++) await dir.keyAt(`ghost-${i}`, 1)
  t.same(dir.peek('cam-a', 1), { publicKey: key('cam-a'), revoked: false }, 'still cached after the flood')
  t.equal(dir.stats().unknownEntries, 3)
  t.equal(dir.peek('ghost-0', 1), undefined, 'the oldest unknown ids went first')
  await dir.keyAt('cam-b', 1)
  await dir.keyAt('cam-c', 1)
  t.match(dir.stats(), { cachedDevices: 2, cachedBytes: maxBytes })
  t.equal(dir.peek('cam-a', 1), undefined, 'the least recently used device went first')
  t.throws(() => new RegistryKeyDirectory({ registry: chain.registryAs('outsider'), lookupsPerSecond: 0 }), RangeError)
  t.throws(() => new RegistryKeyDirectory({ registry: chain.registryAs('outsider'), maxBytes: 0 }), RangeError)
})
