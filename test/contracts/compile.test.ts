// The committed build output must be exactly what the Solidity source compiles to, so the
// artifact and the source never drift apart.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { compileRegistry, compileLineage, serializeArtifact, REGISTRY_ARTIFACT_PATH, LINEAGE_ARTIFACT_PATH, registryInterface, lineageInterface } from '../../contracts/index.js'
import { resolveSolidityImport } from '../../contracts/compile.js'

t.test('behavior: the committed artifact matches a fresh compile of the source', async t => {
  const fresh = serializeArtifact(compileRegistry())
  const committed = readFileSync(REGISTRY_ARTIFACT_PATH, 'utf8')
  // Compare a summary first so a drift fails with a readable message, then byte for byte.
  t.equal(committed.length, fresh.length, 'same length (run `node --import tsx contracts/compile.ts` after editing the .sol)')
  t.ok(committed === fresh, 'committed artifact is byte-identical to a fresh compile')
})

t.test('behavior: the ABI names every custom error of the contract and of AccessControl', async t => {
  const errors = new Set<string>()
  registryInterface.forEachError(e => { errors.add(e.name) })
  for (const name of [
    'AccessControlUnauthorizedAccount', 'AccessControlBadConfirmation', 'ZeroAddress', 'ZeroDeviceId', 'InvalidPublicKey',
    'UnknownDevice', 'DeviceAlreadyRegistered', 'DeviceAlreadyRevoked', 'KeyUnchanged', 'KeyValidityNotIncreasing',
    'ZeroModelHash', 'EmptyName', 'EmptyVersion', 'UnknownModel', 'ModelAlreadyRegistered', 'InvalidStatusTransition',
    'ZeroRoot', 'EmptyBatch', 'InvalidTimeOrder', 'RootAlreadyAnchored'
  ]) t.ok(errors.has(name), name)
})

t.test('behavior: solc imports resolve only inside @openzeppelin/contracts', async t => {
  t.match(resolveSolidityImport('@openzeppelin/contracts/access/AccessControl.sol'), { contents: /abstract contract AccessControl/ })
  t.match(resolveSolidityImport('@openzeppelin/contracts/../../package.json'), { error: /not allowed/ })
  t.match(resolveSolidityImport('/etc/passwd'), { error: /not allowed/ })
  t.match(resolveSolidityImport('@openzeppelin/contracts/nope/Missing.sol'), { error: /cannot read/ })
})

t.test('behavior: the committed LineageRegistry artifact matches a fresh compile of its source', async t => {
  const fresh = serializeArtifact(compileLineage())
  const committed = readFileSync(LINEAGE_ARTIFACT_PATH, 'utf8')
  t.equal(committed.length, fresh.length, 'same length (run `node --import tsx contracts/compile.ts` after editing the .sol)')
  t.ok(committed === fresh, 'committed artifact is byte-identical to a fresh compile')
  const errors = new Set<string>()
  lineageInterface.forEachError(e => { errors.add(e.name) })
  for (const name of ['AccessControlUnauthorizedAccount', 'NotDatasetCurator', 'UnknownDataset', 'UnknownTrainerKey', 'TrainerKeyNotValid', 'TrainingRunAlreadyAttached', 'UnknownModel']) t.ok(errors.has(name), name)
})
