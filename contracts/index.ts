/**
 * Public API of the contracts part: the ProvenanceRegistry bindings, its deployment, the local
 * anvil chain and the build of the Solidity source.
 */

export {
  RegistryClient,
  deployRegistry,
  deviceIdOf,
  decodeRegistryRevert,
  registryInterface,
  REGISTRY_ABI,
  REGISTRY_BYTECODE,
  REGISTRY_ROLES,
  MODEL_STATUSES,
  MAX_UINT64
} from './registry.js'
export type {
  RoleName,
  ModelStatus,
  TxResult,
  RegistryDeployment,
  DeviceRegistration,
  DeviceInfo,
  KeyPeriod,
  KeyAtResult,
  ModelRegistration,
  ModelInfo,
  ModelStatusChange,
  LineageResult,
  AnchorInput,
  AnchorResult,
  StoredAnchor,
  AnchorEvent,
  BlockRange
} from './registry.js'
export {
  LineageClient, deployLineage, decodeLineageRevert, lineageInterface, LINEAGE_ABI, LINEAGE_BYTECODE, LINEAGE_ROLES
} from './lineage.js'
export type {
  LineageRoleName, LineageDeployment, DatasetRegistration, DatasetInfo, TrainerKeyInfo, TrainingRunAttachment, TrainingRunInfo,
  TrainedModelRegistration
} from './lineage.js'
export { RegistryError } from './errors.js'
export type { RegistryErrorCode, DecodedRevert } from './errors.js'
export { createRpcProvider, DEFAULT_POLLING_INTERVAL_MS } from './provider.js'
export type { RpcProviderOptions } from './provider.js'
export {
  startAnvil,
  resolveAnvilBinary,
  deriveAnvilAccounts,
  ANVIL_MNEMONIC,
  DEFAULT_ANVIL_CHAIN_ID,
  DEFAULT_ANVIL_ACCOUNT_COUNT,
  DEFAULT_ANVIL_START_TIMEOUT_MS,
  DEFAULT_ANVIL_STOP_TIMEOUT_MS
} from './anvil.js'
export type { AnvilOptions, AnvilAccount, AnvilInstance } from './anvil.js'
export { runDeployCli, deployToRpc, fetchChainId, DEPLOYER_KEY_ENV, DEFAULT_DEPLOY_TIMEOUT_MS } from './deploy.js'
export type { DeployCliIo, DeployOutcome } from './deploy.js'
export {
  compileRegistry,
  compileLineage,
  serializeArtifact,
  writeRegistryArtifact,
  writeLineageArtifact,
  LINEAGE_ARTIFACT_PATH,
  LINEAGE_SOURCE_NAME,
  LINEAGE_CONTRACT_NAME,
  REGISTRY_ARTIFACT_PATH,
  REGISTRY_SOURCE_NAME,
  REGISTRY_CONTRACT_NAME,
  COMPILER_SETTINGS
} from './compile.js'
export type { RegistryArtifact } from './compile.js'
export { startDevChain, DEV_ACTORS } from './dev-chain.js'
export type { DevChain, DevActor } from './dev-chain.js'
export { waitForReceipt } from './receipt.js'
