/**
 * JSON-RPC reads of the registry in the bundle's shapes (device keys, models, anchors at a block).
 * Loaded lazily by verify: offline verification never imports it.
 */
export {
  openChainReader, readLatestBlock, readBlockHash, readDeviceFacts, readModelFacts, readAnchorFacts,
  type ChainReader, type ChainReaderOptions, type BlockTag
} from './chain-facts.js'
