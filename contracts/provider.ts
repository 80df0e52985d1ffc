/**
 * JSON-RPC provider settings that suit a registry client: the network is fixed up front (no
 * endless detection loop against a dead URL), no request cache (fresh nonces for back-to-back
 * transactions) and receipts are polled quickly on fast local chains.
 */

import { JsonRpcProvider, Network } from 'ethers'

export const DEFAULT_POLLING_INTERVAL_MS = 250

export interface RpcProviderOptions {
  /** Chain id, when known; otherwise detected once on the first request. */
  chainId?: number
  /** How often to poll for new blocks and receipts. Default 250 ms. */
  pollingIntervalMs?: number
}

/** An ethers JsonRpcProvider for `rpcUrl`; call `destroy()` when done so the process can exit. */
export function createRpcProvider (rpcUrl: string, options: RpcProviderOptions = {}): JsonRpcProvider {
  const network = options.chainId === undefined ? undefined : Network.from(options.chainId)
  return new JsonRpcProvider(rpcUrl, network, {
    staticNetwork: network ?? true,
    pollingInterval: options.pollingIntervalMs ?? DEFAULT_POLLING_INTERVAL_MS,
    // ethers caches identical requests for 250 ms by default: two transactions from one signer
    // within that window would read the same pending nonce and the second one would fail.
    cacheTimeout: -1,
    // Batching makes every request wait 10 ms for company; a client's calls are sequential anyway.
    batchMaxCount: 1
  })
}
