/**
 * Reads a training run's chain facts from the LineageRegistry (trainer keys, datasets, the model's
 * registered statement hash) for `provenance training verify --rpc-url`.
 */
import { ForensicsError } from '../errors.js'
import { setChainFactsLoader } from './cli.js'

setChainFactsLoader(async () => { throw new ForensicsError('RPC_FAILED', 'chain facts for training runs are not available yet') })
