/**
 * Reads a training run's chain facts from the LineageRegistry for `provenance training verify
 * --rpc-url`: which of the envelope's keys are valid trainer keys, which named datasets are
 * registered, and the statement hash attached to the model. Loaded only for online checks.
 */
import { LineageClient, RegistryError, createRpcProvider } from '../../contracts/index.js'
import { ForensicsError } from '../errors.js'
import { setChainFactsLoader, type ChainFactsLoader } from './cli.js'
import type { TrainingFacts } from './training.js'

const bare = (hex: string): string => hex.replace(/^0x/, '').toLowerCase()

/**
 * The facts for `run` at the chain's latest block. A revoked trainer key counts as unknown.
 * @throws ForensicsError RPC_FAILED (wrapping the RegistryError)
 */
export const readTrainingChainFacts: ChainFactsLoader = async (rpcUrl, lineageAddress, run) => {
  const provider = createRpcProvider(rpcUrl)
  try {
    const lineage = new LineageClient(lineageAddress, provider)
    const trainerKeys: Uint8Array[] = []
    for (const s of run.envelope.signatures) {
      if (typeof s.keyid !== 'string' || !/^[0-9a-f]{64}$/.test(s.keyid)) continue
      const key = await lineage.getTrainerKey('0x' + s.keyid)
      if (key !== undefined && key.revokedAtSec === undefined) trainerKeys.push(new Uint8Array(Buffer.from(s.keyid, 'hex')))
    }
    const registeredDatasets = new Set<string>()
    for (const d of run.statement.predicate.datasets) {
      if ((await lineage.getDataset('0x' + d.digest.sha256)) !== undefined) registeredDatasets.add(d.digest.sha256)
    }
    const attached = await lineage.getTrainingRun('0x' + run.statement.subject[0].digest.sha256)
    const facts: Pick<TrainingFacts, 'trainerKeys' | 'registeredStatementHash' | 'registeredDatasets'> = {
      trainerKeys,
      registeredDatasets,
      registeredStatementHash: attached === undefined ? null : bare(attached.statementHash)
    }
    return facts
  } catch (e) {
    if (e instanceof RegistryError) throw new ForensicsError('RPC_FAILED', `lineage registry: ${e.message}`, { cause: e })
    throw e
  } finally {
    provider.destroy()
  }
}

setChainFactsLoader(readTrainingChainFacts)
