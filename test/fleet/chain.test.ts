// provenance-fleet against a real anvil chain: every chain subcommand, --dry-run changing nothing,
// --json, and the contract's custom errors explained with the exit-code table.
import t from 'tap'
import { chmod, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { RegistryClient, createRpcProvider, deviceIdOf, startAnvil } from '../../contracts/index.js'
import { ENROLLMENT_FORMAT, createSigner, generateSeed, toHex } from '../../protocol/index.js'
import { loadModel } from '../../agent/model/index.js'
import { makeClassifierModel } from '../helpers/onnx-models.js'
import { makeTempDir } from '../helpers/tmp.js'
import { fleet } from '../helpers/fleet.js'

const anvil = await startAnvil({ accountCount: 4 })
t.teardown(anvil.stop)
const provider = createRpcProvider(anvil.rpcUrl, { chainId: anvil.chainId })
t.teardown(() => { provider.destroy() })
const [admin, registrar, publisher, outsider] = anvil.accounts as [typeof anvil.accounts[0], typeof anvil.accounts[0], typeof anvil.accounts[0], typeof anvil.accounts[0]]
const dir = await makeTempDir(t, 'prov-fleet-chain-')

const envOf = (key: string, extra: Record<string, string> = {}): Record<string, string> => ({ PROVENANCE_RPC_URL: anvil.rpcUrl, PROVENANCE_FLEET_KEY: key, ...extra })

// ---------------------------------------------------------------- deploy
const dry = await fleet(['deploy', '--dry-run', '--json'], envOf(admin.privateKey))
const blockBefore = await provider.getBlockNumber()
const deployed = await fleet(['deploy', '--json'], envOf(admin.privateKey))
const registryAddress = deployed.json().address as string
const registry = new RegistryClient(registryAddress, provider)
const env = (key: string): Record<string, string> => envOf(key, { PROVENANCE_REGISTRY: registryAddress })

t.test('behavior: deploy prints the address of a registry whose admin is the operator; --dry-run deploys nothing', async t => {
  t.equal(dry.code, 0, dry.stderr)
  t.match(dry.json(), { dryRun: true, chainId: anvil.chainId, deployer: admin.address, admin: admin.address, estimatedGas: /^\d+$/ })
  t.equal(blockBefore, 0, 'the dry run mined nothing')
  t.equal(deployed.code, 0, deployed.stderr)
  t.match(deployed.json(), { dryRun: false, address: /^0x[0-9a-fA-F]{40}$/, txHash: /^0x/, chainId: anvil.chainId, admin: admin.address, gasUsed: /^\d+$/ })
  t.equal(await registry.hasRole('admin', admin.address), true)
  const text = await fleet(['deploy'], envOf(admin.privateKey))
  t.match(text.stdout, /^0x[0-9a-fA-F]{40}\n$/, 'without --json: the address alone')
  t.match(text.stderr, /deploying a registry from/, 'progress on stderr')
})

t.test('behavior: role grant, check and revoke; --dry-run grants nothing', async t => {
  const grantDry = await fleet(['role', 'grant', '--role', 'device-registrar', '--account', registrar.address, '--dry-run', '--json'], env(admin.privateKey))
  t.equal(grantDry.code, 0, grantDry.stderr)
  t.match(grantDry.json(), { dryRun: true, role: 'device-registrar', account: registrar.address, from: admin.address })
  t.equal(await registry.hasRole('deviceRegistrar', registrar.address), false, 'dry run changed nothing')
  for (const [role, who] of [['device-registrar', registrar], ['model-publisher', publisher], ['anchorer', outsider]] as const) {
    const r = await fleet(['role', 'grant', '--role', role, '--account', who.address, '--json'], env(admin.privateKey))
    t.equal(r.code, 0, r.stderr)
    t.match(r.json(), { dryRun: false, txHash: /^0x/ })
  }
  t.equal(await registry.hasRole('deviceRegistrar', registrar.address), true)
  t.match((await fleet(['role', 'check', '--role', 'model-publisher', '--account', publisher.address, '--json'], env(admin.privateKey))).json(), { hasRole: true })
  const revoke = await fleet(['role', 'revoke', '--role', 'anchorer', '--account', outsider.address], env(admin.privateKey))
  t.equal(revoke.code, 0, revoke.stderr)
  t.match(revoke.stdout, /^revoked anchorer from 0x/)
  t.equal(await registry.hasRole('anchorer', outsider.address), false)
})

t.test('error: a non-admin granting fails with REGISTRY_UNAUTHORIZED naming the missing role, exit 1, also in a dry run', async t => {
  for (const extra of [[], ['--dry-run']]) {
    const r = await fleet(['role', 'grant', '--role', 'anchorer', '--account', outsider.address, ...extra], env(outsider.privateKey))
    t.equal(r.code, 1, extra.join(' '))
    t.equal(r.stdout, '')
    t.match(r.last, /^REGISTRY_UNAUTHORIZED: AccessControlUnauthorizedAccount\(0x[0-9a-fA-F]{40}, 0x0{64}\): account 0x\w+ lacks the admin role/)
    t.equal(r.stderr.trimEnd().split('\n').filter(l => /^[A-Z_]+: /.test(l)).length, 1, 'one error line')
  }
  t.equal(await registry.hasRole('anchorer', outsider.address), false)
})

const deviceKey = createSigner(generateSeed())
const enrollmentFile = join(dir, 'cam-1.json')
await writeFile(enrollmentFile, JSON.stringify({ format: ENROLLMENT_FORMAT, deviceId: 'cam-1', publicKey: toHex(deviceKey.publicKey), validFromMs: 0, profile: 'generic-x86_64', agentVersion: '0.1.0', createdMs: 1 }))

t.test('behavior: device register from an enrollment file; --dry-run registers nothing', async t => {
  const d = await fleet(['device', 'register', '--enrollment', enrollmentFile, '--dry-run', '--json'], env(registrar.privateKey))
  t.equal(d.code, 0, d.stderr)
  t.match(d.json(), { dryRun: true, deviceId: 'cam-1', idHash: deviceIdOf('cam-1'), publicKey: toHex(deviceKey.publicKey), validFromMs: 0 })
  t.equal(await registry.getDevice(deviceIdOf('cam-1')), undefined, 'dry run changed nothing')
  const r = await fleet(['device', 'register', '--enrollment', enrollmentFile, '--json'], env(registrar.privateKey))
  t.equal(r.code, 0, r.stderr)
  t.match(r.json(), { dryRun: false, deviceId: 'cam-1', txHash: /^0x/, blockNumber: Number })
  t.same(await registry.keyAt(deviceIdOf('cam-1'), 0), { publicKey: '0x' + toHex(deviceKey.publicKey), validFromMs: 0n, revoked: false })
})

t.test('error: registering a device twice fails with DeviceAlreadyRegistered and says to rotate, exit 1', async t => {
  for (const extra of [['--dry-run'], []]) {
    const r = await fleet(['device', 'register', '--enrollment', enrollmentFile, ...extra], env(registrar.privateKey))
    t.equal(r.code, 1)
    t.match(r.last, /^REGISTRY_REVERTED: DeviceAlreadyRegistered\(0x[0-9a-f]{64}\): .*device rotate/)
  }
  const unauthorized = await fleet(['device', 'register', '--id', 'cam-9', '--public-key', toHex(deviceKey.publicKey)], env(publisher.privateKey))
  t.equal(unauthorized.code, 1)
  t.match(unauthorized.last, /^REGISTRY_UNAUTHORIZED: .*lacks the device-registrar role; .*role grant --role device-registrar/)
})

t.test('behavior: device rotate, show and revoke', async t => {
  const next = createSigner(generateSeed())
  const stale = await fleet(['device', 'rotate', '--id', 'cam-1', '--public-key', toHex(next.publicKey), '--valid-from-ms', '0'], env(registrar.privateKey))
  t.equal(stale.code, 1)
  t.match(stale.last, /^REGISTRY_REVERTED: KeyValidityNotIncreasing\(0, 0\)/)
  const rotated = await fleet(['device', 'rotate', '--id', 'cam-1', '--public-key', toHex(next.publicKey), '--valid-from-ms', '5000', '--json'], env(registrar.privateKey))
  t.equal(rotated.code, 0, rotated.stderr)
  t.match(rotated.json(), { keyIndex: 1, validFromMs: 5000 })
  const shown = await fleet(['device', 'show', '--id', 'cam-1', '--json'], env(''))
  t.equal(shown.code, 0, shown.stderr)
  t.match(shown.json(), { registered: true, revoked: false, keys: [{ publicKey: toHex(deviceKey.publicKey), validFromMs: '0', validUntilMs: '5000' }, { publicKey: toHex(next.publicKey), validFromMs: '5000' }] })
  const revokeDry = await fleet(['device', 'revoke', '--id', 'cam-1', '--revoked-from-ms', '9000', '--dry-run'], env(registrar.privateKey))
  t.equal(revokeDry.code, 0, revokeDry.stderr)
  t.equal((await registry.getDevice(deviceIdOf('cam-1')))?.revoked, false, 'dry run changed nothing')
  t.equal((await fleet(['device', 'revoke', '--id', 'cam-1', '--revoked-from-ms', '9000'], env(registrar.privateKey))).code, 0)
  t.match(await registry.getDevice(deviceIdOf('cam-1')), { revoked: true, revokedFromMs: 9000n })
  const again = await fleet(['device', 'revoke', '--id', 'cam-1'], env(registrar.privateKey))
  t.match(again.last, /^REGISTRY_REVERTED: DeviceAlreadyRevoked/)
  t.match((await fleet(['device', 'show', '--id', 'nobody', '--json'], env(''))).json(), { registered: false })
})

t.test('behavior: gateway register puts the gateway key in the device registry under sha256(gateway id)', async t => {
  const gatewayKey = createSigner(generateSeed())
  const r = await fleet(['gateway', 'register', '--id', 'gateway-1', '--public-key', toHex(gatewayKey.publicKey), '--json'], env(registrar.privateKey))
  t.equal(r.code, 0, r.stderr)
  t.match(r.json(), { gatewayId: 'gateway-1', idHash: deviceIdOf('gateway-1'), validFromMs: 0 })
  t.equal((await registry.keyAt(deviceIdOf('gateway-1'), Date.now())).publicKey, '0x' + toHex(gatewayKey.publicKey))
})

const modelFile = join(dir, 'classifier.onnx')
await writeFile(modelFile, makeClassifierModel({ seed: 11 }))
const parentFile = join(dir, 'parent.onnx')
await writeFile(parentFile, makeClassifierModel({ seed: 12 }))

t.test('behavior: model register hashes the file as the agent does when it loads it', async t => {
  const loaded = await loadModel(modelFile)
  t.teardown(loaded.release)
  const hashed = await fleet(['model', 'hash', '--file', modelFile, '--json'])
  t.equal(hashed.code, 0, hashed.stderr)
  t.match(hashed.json(), { fileHash: loaded.fileHashHex, manifestHash: loaded.manifest.manifestHash })
  const dryRun = await fleet(['model', 'register', '--file', modelFile, '--name', 'cls', '--model-version', '1', '--dry-run', '--json'], env(publisher.privateKey))
  t.equal(dryRun.code, 0, dryRun.stderr)
  t.equal(await registry.modelStatus('0x' + loaded.fileHashHex), 'none', 'dry run changed nothing')
  t.equal((await fleet(['model', 'register', '--file', parentFile, '--name', 'cls', '--model-version', '0'], env(publisher.privateKey))).code, 0)
  const parentHash = (await fleet(['model', 'hash', '--file', parentFile, '--json'])).json().fileHash as string
  const r = await fleet(['model', 'register', '--file', modelFile, '--name', 'cls', '--model-version', '1', '--parent', parentHash, '--metadata-uri', 'https://example.org/cls', '--json'], env(publisher.privateKey))
  t.equal(r.code, 0, r.stderr)
  t.match(await registry.getModel('0x' + loaded.fileHashHex), { name: 'cls', version: '1', status: 'registered', manifestHash: '0x' + loaded.manifest.manifestHash, parentHash: '0x' + parentHash, metadataURI: 'https://example.org/cls' })
  const shown = await fleet(['model', 'show', '--file', modelFile, '--json'], env(''))
  t.match(shown.json(), { status: 'registered', manifestMatchesFile: true, parentHash })
})

t.test('behavior: model approve, deprecate, revoke move the status forward; --dry-run moves nothing', async t => {
  const hash = '0x' + ((await fleet(['model', 'hash', '--file', modelFile, '--json'])).json().fileHash as string)
  t.equal((await fleet(['model', 'approve', '--hash', hash, '--dry-run'], env(publisher.privateKey))).code, 0)
  t.equal(await registry.modelStatus(hash), 'registered')
  const approved = await fleet(['model', 'approve', '--file', modelFile, '--json'], env(publisher.privateKey))
  t.match(approved.json(), { from: 'registered', to: 'approved' })
  t.match((await fleet(['model', 'deprecate', '--hash', hash, '--json'], env(publisher.privateKey))).json(), { from: 'approved', to: 'deprecated' })
  const back = await fleet(['model', 'approve', '--hash', hash], env(publisher.privateKey))
  t.equal(back.code, 1)
  t.match(back.last, /^REGISTRY_REVERTED: InvalidStatusTransition\(0x[0-9a-f]{64}, deprecated, approved\): a model status only moves forward/)
  t.match((await fleet(['model', 'revoke', '--hash', hash, '--json'], env(publisher.privateKey))).json(), { to: 'revoked' })
  const twice = await fleet(['model', 'register', '--file', modelFile, '--name', 'cls', '--model-version', '1'], env(publisher.privateKey))
  t.match(twice.last, /^REGISTRY_REVERTED: ModelAlreadyRegistered/)
  const unknownParent = await fleet(['model', 'register', '--file', join(dir, 'classifier.onnx'), '--name', 'x', '--model-version', '2', '--parent', 'ab'.repeat(32), '--dry-run'], env(publisher.privateKey))
  t.equal(unknownParent.code, 1)
})

t.test('error: configuration problems exit 78 and name the fix; usage problems exit 2', async t => {
  const keyFile = join(dir, 'operator.key')
  await writeFile(keyFile, registrar.privateKey + '\n', { mode: 0o600 })
  await chmod(keyFile, 0o644)
  const insecure = await fleet(['role', 'check', '--role', 'admin', '--account', admin.address], env(''))
  t.equal(insecure.code, 0, 'a read-only command needs no key')
  const worldReadable = await fleet(['device', 'register', '--id', 'cam-2', '--public-key', 'ab'.repeat(32), '--key-file', keyFile], { PROVENANCE_RPC_URL: anvil.rpcUrl, PROVENANCE_REGISTRY: registryAddress })
  t.equal(worldReadable.code, 78)
  t.match(worldReadable.last, /^SECRET_INSECURE: operator key file .*\(chmod 600\)/)
  const missing = await fleet(['device', 'register', '--id', 'cam-2', '--public-key', 'ab'.repeat(32)], { PROVENANCE_RPC_URL: anvil.rpcUrl, PROVENANCE_REGISTRY: registryAddress })
  t.equal(missing.code, 78)
  t.match(missing.last, /^SECRET_MISSING: no operator key: pass --key-file or set PROVENANCE_FLEET_KEY/)
  const badKey = await fleet(['device', 'register', '--id', 'cam-2', '--public-key', 'ab'.repeat(32)], env('hunter2'))
  t.equal(badKey.code, 78)
  t.notMatch(badKey.stderr, 'hunter2', 'the secret is not echoed')
  const badEnrollment = join(dir, 'bad.json')
  await writeFile(badEnrollment, JSON.stringify({ format: ENROLLMENT_FORMAT, deviceId: 'cam/evil', publicKey: 'zz', validFromMs: -1, extra: 1 }))
  const invalid = await fleet(['device', 'register', '--enrollment', badEnrollment], env(registrar.privateKey))
  t.equal(invalid.code, 78)
  t.match(invalid.last, /^ENROLLMENT_INVALID: .*deviceId.*publicKey.*validFromMs.*extra: not an enrollment field/)
  for (const args of [
    ['device', 'register', '--id', 'cam-2'],
    ['device', 'register', '--enrollment', enrollmentFile, '--id', 'other'],
    ['device', 'register', '--id', 'cam-2', '--public-key', 'abc'],
    ['role', 'grant', '--role', 'king', '--account', admin.address],
    ['model', 'approve', '--file', modelFile, '--hash', 'ab'.repeat(32)],
    ['deploy', '--rpc-url', 'ftp://x']
  ]) {
    const r = await fleet(args, env(registrar.privateKey))
    t.equal(r.code, 2, args.join(' '))
    t.match(r.stderr, /^usage: /, args.join(' '))
  }
  const noRpc = await fleet(['device', 'show', '--id', 'cam-1'])
  t.equal(noRpc.code, 2)
  t.match(noRpc.stderr, /^usage: .*--rpc-url is required/)
})

t.test('error: an address without a registry is FLEET_NO_REGISTRY; a dead RPC is REGISTRY_RPC_FAILED', async t => {
  const none = await fleet(['device', 'show', '--id', 'cam-1', '--registry', outsider.address], env(''))
  t.equal(none.code, 1)
  t.match(none.last, /^FLEET_NO_REGISTRY: no contract at/)
  const dead = await fleet(['device', 'show', '--id', 'cam-1', '--rpc-url', 'http://127.0.0.1:1'], env(''))
  t.equal(dead.code, 1)
  t.match(dead.last, /^REGISTRY_RPC_FAILED: /)
})

t.test('behavior: nothing secret reaches stdout or stderr', async t => {
  const r = await fleet(['device', 'show', '--id', 'cam-1', '--json'], env(registrar.privateKey))
  t.notMatch(r.stdout + r.stderr, registrar.privateKey.slice(2))
  t.notMatch(await readFile(enrollmentFile, 'utf8'), /seed|secret/i)
})

t.test('behavior: device register --dry-run with broker files writes no file; a name Mosquitto cannot hold is refused before any transaction', async t => {
  const files = ['--mosquitto-acl', join(dir, 'acl'), '--mosquitto-passwd', join(dir, 'passwd'), '--mqtt-password-file', join(dir, 'cam-5.pw')]
  const key = toHex(createSigner(generateSeed()).publicKey)
  const dryRun = await fleet(['device', 'register', '--id', 'cam-5', '--public-key', key, ...files, '--dry-run', '--json'], env(registrar.privateKey))
  t.equal(dryRun.code, 0, dryRun.stderr)
  t.match(dryRun.json(), { dryRun: true, broker: { acl: { written: false, lines: ['user cam-5', 'topic write prov/v1/cam-5/records', String, String, String] }, passwd: { written: false }, passwordGenerated: true } })
  for (const f of ['acl', 'passwd', 'cam-5.pw']) t.equal(await readFile(join(dir, f)).then(() => 'exists', () => 'absent'), 'absent', `${f} not written`)
  t.equal(await registry.getDevice(deviceIdOf('cam-5')), undefined)
  const colon = await fleet(['device', 'register', '--id', 'site:cam-6', '--public-key', key, ...files], env(registrar.privateKey))
  t.equal(colon.code, 1)
  t.match(colon.last, /^BROKER_USERNAME_INVALID: /)
  t.equal(await registry.getDevice(deviceIdOf('site:cam-6')), undefined, 'nothing registered on chain')
  t.equal((await fleet(['device', 'register', '--id', 'cam-5', '--public-key', key, '--mosquitto-passwd', join(dir, 'passwd')], env(registrar.privateKey))).code, 2, 'a password file needs --mqtt-password-file')
})
