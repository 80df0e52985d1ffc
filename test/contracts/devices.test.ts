// Device registry: registration, key rotation with validity periods, revocation, events and the
// custom errors for bad input.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { ZeroHash, hexlify } from 'ethers'
import { startDevChain, deviceIdOf, type RegistryClient } from '../../contracts/index.js'
import { expectRevert, eventsIn as eventsAt } from '../helpers/registry.js'

const chain = await startDevChain()
t.teardown(chain.stop)
const registrar = chain.registryAs('deviceRegistrar')
const reader = chain.registryAs('outsider')
const key = (): string => hexlify(randomBytes(32))

const eventsIn = async (blockNumber: number): Promise<Array<{ name: string, args: unknown[] }>> => await eventsAt(chain.provider, registrar.address, blockNumber)


t.test('behavior: deviceIdOf is sha256 of the UTF-8 id string', async t => {
  t.equal(deviceIdOf('abc'), '0xba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
  t.throws(() => deviceIdOf(''), TypeError)
})

t.test('behavior: registration stores the key and emits DeviceRegistered with every field', async t => {
  const deviceId = deviceIdOf('dev-register')
  const publicKey = key()
  const tx = await registrar.registerDevice({ deviceId, publicKey, validFromMs: 1_700_000_000_000 })
  t.same(await eventsIn(tx.blockNumber), [{
    name: 'DeviceRegistered', args: [deviceId, publicKey, 1_700_000_000_000n, chain.wallets.deviceRegistrar.address]
  }])
  const device = await reader.getDevice(deviceId)
  t.match(device, { deviceId, revoked: false, revokedFromMs: undefined, keyCount: 1 })
  t.ok((device?.registeredAtSec ?? 0n) > 0n)
  t.same(await reader.getDeviceKeys(deviceId), [{ publicKey, validFromMs: 1_700_000_000_000n, validUntilMs: undefined }])
  t.equal(await reader.getDevice(deviceIdOf('never-registered')), undefined)
})

t.test('behavior: rotation keeps every old key queryable for its own period', async t => {
  const deviceId = deviceIdOf('dev-rotate')
  const [k0, k1, k2] = [key(), key(), key()]
  await registrar.registerDevice({ deviceId, publicKey: k0, validFromMs: 1000 })
  const r1 = await registrar.rotateDeviceKey({ deviceId, publicKey: k1, validFromMs: 2000 })
  t.equal(r1.keyIndex, 1)
  t.same(await eventsIn(r1.blockNumber), [{
    name: 'DeviceKeyRotated', args: [deviceId, 1n, k0, k1, 2000n, chain.wallets.deviceRegistrar.address]
  }])
  const r2 = await registrar.rotateDeviceKey({ deviceId, publicKey: k2, validFromMs: 3000 })
  t.equal(r2.keyIndex, 2)

  const cases: Array<[number, string | undefined, bigint | undefined]> = [
    [0, undefined, undefined], [999, undefined, undefined],
    [1000, k0, 1000n], [1999, k0, 1000n],
    [2000, k1, 2000n], [2999, k1, 2000n],
    [3000, k2, 3000n], [Number.MAX_SAFE_INTEGER, k2, 3000n]
  ]
  for (const [timeMs, publicKey, validFromMs] of cases) {
    t.same(await reader.keyAt(deviceId, timeMs), { publicKey, validFromMs, revoked: false }, `keyAt ${timeMs}`)
  }
  t.same(await reader.getDeviceKeys(deviceId), [
    { publicKey: k0, validFromMs: 1000n, validUntilMs: 2000n },
    { publicKey: k1, validFromMs: 2000n, validUntilMs: 3000n },
    { publicKey: k2, validFromMs: 3000n, validUntilMs: undefined }
  ])
})

t.test('behavior: a revoked device reads as revoked from its revocation time on, and earlier keys stay valid', async t => {
  const deviceId = deviceIdOf('dev-revoke')
  const k0 = key()
  await registrar.registerDevice({ deviceId, publicKey: k0, validFromMs: 1000 })
  const tx = await registrar.revokeDevice(deviceId, 5000)
  t.same(await eventsIn(tx.blockNumber), [{ name: 'DeviceRevoked', args: [deviceId, 5000n, chain.wallets.deviceRegistrar.address] }])
  t.same(await reader.keyAt(deviceId, 4999), { publicKey: k0, validFromMs: 1000n, revoked: false })
  t.same(await reader.keyAt(deviceId, 5000), { publicKey: k0, validFromMs: 1000n, revoked: true })
  t.match(await reader.getDevice(deviceId), { revoked: true, revokedFromMs: 5000n })
  // Revocation is final: no second revocation, no new key.
  await expectRevert(t, registrar.revokeDevice(deviceId, 6000), 'DeviceAlreadyRevoked', [deviceId])
  await expectRevert(t, registrar.rotateDeviceKey({ deviceId, publicKey: key(), validFromMs: 9000 }), 'DeviceAlreadyRevoked', [deviceId])
})

t.test('error: bad device input reverts with named custom errors', async t => {
  const deviceId = deviceIdOf('dev-errors')
  const k0 = key()
  await registrar.registerDevice({ deviceId, publicKey: k0, validFromMs: 1000 })
  const unknown = deviceIdOf('dev-unknown')
  const r: RegistryClient = registrar

  await expectRevert(t, r.registerDevice({ deviceId: deviceIdOf('dev-zero-key'), publicKey: ZeroHash, validFromMs: 1 }), 'InvalidPublicKey', [])
  await expectRevert(t, r.registerDevice({ deviceId: ZeroHash, publicKey: key(), validFromMs: 1 }), 'ZeroDeviceId', [])
  await expectRevert(t, r.registerDevice({ deviceId, publicKey: key(), validFromMs: 1 }), 'DeviceAlreadyRegistered', [deviceId])
  await expectRevert(t, r.rotateDeviceKey({ deviceId, publicKey: ZeroHash, validFromMs: 2000 }), 'InvalidPublicKey', [])
  await expectRevert(t, r.rotateDeviceKey({ deviceId: unknown, publicKey: key(), validFromMs: 2000 }), 'UnknownDevice', [unknown])
  await expectRevert(t, r.rotateDeviceKey({ deviceId, publicKey: key(), validFromMs: 1000 }), 'KeyValidityNotIncreasing', [1000n, 1000n])
  await expectRevert(t, r.rotateDeviceKey({ deviceId, publicKey: key(), validFromMs: 999 }), 'KeyValidityNotIncreasing', [1000n, 999n])
  await expectRevert(t, r.rotateDeviceKey({ deviceId, publicKey: k0, validFromMs: 2000 }), 'KeyUnchanged', [deviceId])
  await expectRevert(t, r.revokeDevice(unknown, 1), 'UnknownDevice', [unknown])
  await expectRevert(t, reader.keyAt(unknown, 1), 'UnknownDevice', [unknown])
  await expectRevert(t, reader.getDeviceKeys(unknown), 'UnknownDevice', [unknown])
})

t.test('error: a key that is not exactly 32 bytes is refused before any transaction', async t => {
  const deviceId = deviceIdOf('dev-length')
  await t.rejects(registrar.registerDevice({ deviceId, publicKey: randomBytes(31), validFromMs: 1 }), RangeError)
  await t.rejects(registrar.registerDevice({ deviceId, publicKey: randomBytes(33), validFromMs: 1 }), RangeError)
  await t.rejects(registrar.registerDevice({ deviceId, publicKey: 'not hex', validFromMs: 1 }), TypeError)
  await t.rejects(registrar.registerDevice({ deviceId, publicKey: key(), validFromMs: -1 }), RangeError)
  await t.rejects(registrar.registerDevice({ deviceId, publicKey: key(), validFromMs: 2n ** 64n }), RangeError)
  t.equal(await reader.getDevice(deviceId), undefined)
})
