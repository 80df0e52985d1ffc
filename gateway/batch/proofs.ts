/**
 * Inclusion proofs of stored records: the RFC 9162 audit path of the record's leaf in its sealed
 * batch, the batch checkpoint, and the anchoring of the batch once confirmed, as a C2SP
 * tlog-proof text (anchoring in its extra data) or as JSON. Trees of recent batches stay cached.
 */
import { MerkleTree, assembleReceipt, formatProof, hashLeaf, parseCheckpoint, signReceiptRoot, toHex, type ProofExtra, type ReceiptRootSignature, type Signer } from '../../protocol/index.js'
import type { AnchorReceipt, AnchorState } from '../anchor/index.js'
import { GatewayError } from '../errors.js'
import type { GatewayStore, StoredBatch } from '../store/index.js'

/** The part of the Anchorer that proofs read. */
export interface AnchorReader {
  state: (id: number) => Promise<AnchorState | undefined>
  receipt: (id: number) => Promise<AnchorReceipt | undefined>
}

export interface RecordProof {
  deviceId: string
  seq: number
  envelope: Uint8Array
  leafHash: Uint8Array
  leafIndex: number
  batch: StoredBatch
  /** Audit path, leaf sibling first (RFC 9162 §2.1.3.1). */
  hashes: Uint8Array[]
  /** Anchoring state of the batch; undefined when no anchorer runs. */
  anchorState: AnchorState | undefined
  /** Set once the anchor is confirmed. */
  receipt: AnchorReceipt | undefined
}

export type ProofLookup =
  | { status: 'ok', proof: RecordProof }
  | { status: 'not-found' }
  | { status: 'batch-open', batchId: number }

export const DEFAULT_PROOF_CACHE_BATCHES = 4

export class ProofService {
  private readonly store: GatewayStore
  private readonly anchors: AnchorReader | undefined
  private readonly maxCached: number
  private readonly trees = new Map<number, MerkleTree>()
  private readonly receiptSigner: Signer | undefined
  // One root signature serves every receipt of a batch (§7.9): signed once, kept with the tree.
  private readonly rootSignatures = new Map<number, ReceiptRootSignature>()

  /** `receiptSigner`: the gateway's log key, which signs COSE receipts; without it none are issued. */
  constructor (options: { store: GatewayStore, anchors?: AnchorReader, cacheBatches?: number, receiptSigner?: Signer }) {
    this.store = options.store
    this.anchors = options.anchors
    this.maxCached = options.cacheBatches ?? DEFAULT_PROOF_CACHE_BATCHES
    this.receiptSigner = options.receiptSigner
  }

  /**
   * The COSE receipt (RFC 9942, PROTOCOL.md §7.9) of a record proof, signed by the log key;
   * undefined when this service has no key.
   */
  receipt (p: RecordProof): Uint8Array | undefined {
    if (this.receiptSigner === undefined) return undefined
    let signed = this.rootSignatures.get(p.batch.id)
    if (signed === undefined) {
      signed = signReceiptRoot(p.batch.root, this.receiptSigner)
      this.rootSignatures.set(p.batch.id, signed)
      while (this.rootSignatures.size > this.maxCached) {
        const oldest = this.rootSignatures.keys().next().value
        if (oldest === undefined) break
        this.rootSignatures.delete(oldest)
      }
    }
    return assembleReceipt({ leafHash: p.leafHash, leafIndex: p.leafIndex, treeSize: p.batch.size, path: p.hashes, root: p.batch.root }, signed)
  }

  /** Seeds the cache with a batch just sealed (its tree was built for the seal anyway). */
  remember (batchId: number, tree: MerkleTree): void {
    this.cache(batchId, tree)
  }

  /**
   * The proof of record (device, seq) when this gateway stored it and its batch is sealed.
   * @throws GatewayError `STORE_CORRUPT` when stored leaves do not match the sealed root.
   */
  async prove (deviceId: string, seq: number): Promise<ProofLookup> {
    const record = await this.store.getRecord(deviceId, seq)
    if (record === undefined) return { status: 'not-found' }
    const batch = await this.store.getBatch(record.batchId)
    if (batch === undefined) return { status: 'batch-open', batchId: record.batchId }
    const tree = await this.tree(batch)
    const [anchorState, receipt] = this.anchors === undefined
      ? [undefined, undefined]
      : await Promise.all([this.anchors.state(batch.id), this.anchors.receipt(batch.id)])
    return {
      status: 'ok',
      proof: {
        deviceId,
        seq,
        envelope: record.envelope,
        leafHash: hashLeaf(record.envelope),
        leafIndex: record.index,
        batch,
        hashes: tree.proveInclusion(record.index),
        anchorState,
        receipt
      }
    }
  }

  private async tree (batch: StoredBatch): Promise<MerkleTree> {
    const cached = this.trees.get(batch.id)
    if (cached !== undefined) {
      this.trees.delete(batch.id)
      this.trees.set(batch.id, cached)
      return cached
    }
    const leaves = await this.store.leaves(batch.id)
    const tree = new MerkleTree(leaves.slice(0, batch.size).map(l => l.leafHash))
    if (tree.size !== batch.size || !Buffer.from(tree.root()).equals(batch.root)) {
      throw new GatewayError('STORE_CORRUPT', `leaves of batch ${batch.id} do not give its sealed root`)
    }
    this.cache(batch.id, tree)
    return tree
  }

  private cache (id: number, tree: MerkleTree): void {
    this.trees.set(id, tree)
    while (this.trees.size > this.maxCached) {
      const oldest = this.trees.keys().next().value
      if (oldest === undefined) break
      this.trees.delete(oldest)
    }
  }
}

/** The anchoring facts carried in a proof's extra data (unauthenticated: check them on chain). */
export function anchorExtra (p: RecordProof): ProofExtra[] {
  const extra: ProofExtra[] = [
    { key: 'device', value: p.deviceId },
    { key: 'seq', value: String(p.seq) },
    { key: 'gateway-batch', value: String(p.batch.id) }
  ]
  const r = p.receipt
  if (r !== undefined) {
    extra.push(
      { key: 'chain-id', value: String(r.chainId) },
      { key: 'contract', value: r.contract },
      { key: 'batch-id', value: r.onChainBatchId },
      { key: 'tx-hash', value: r.txHash },
      { key: 'block', value: String(r.blockNumber) },
      { key: 'block-hash', value: r.blockHash }
    )
  }
  return extra
}

/**
 * The C2SP tlog-proof text of a record proof, anchoring in the extra data, ending in the batch's
 * checkpoint exactly as stored: signed by the log key (§7.8) when it was sealed with one.
 */
export function formatRecordProof (p: RecordProof): string {
  const unsigned = formatProof({ index: p.leafIndex, hashes: p.hashes, checkpoint: parseCheckpoint(p.batch.checkpoint), extra: anchorExtra(p) })
  // A signed checkpoint is the unsigned bytes followed by signature lines (§7.8): append those.
  return unsigned + checkpointSignatureLines(p.batch.checkpoint)
}

/** The signature lines of a stored checkpoint: what follows its first empty line ('' when unsigned). */
export function checkpointSignatureLines (checkpoint: string): string {
  const split = checkpoint.indexOf('\n\n')
  return split === -1 ? '' : checkpoint.slice(split + 2)
}

/** The JSON form of a record proof (hex hashes, base64 envelope). */
export function recordProofJson (p: RecordProof): Record<string, unknown> {
  const r = p.receipt
  return {
    device: p.deviceId,
    seq: p.seq,
    envelope: Buffer.from(p.envelope).toString('base64'),
    leafHash: toHex(p.leafHash),
    leafIndex: p.leafIndex,
    proof: p.hashes.map(toHex),
    batch: {
      id: p.batch.id,
      size: p.batch.size,
      root: toHex(p.batch.root),
      firstRecordTimeMs: p.batch.firstRecordTimeMs,
      lastRecordTimeMs: p.batch.lastRecordTimeMs,
      metadataHash: toHex(p.batch.metadataHash),
      checkpoint: p.batch.checkpoint
    },
    anchor: {
      state: p.anchorState ?? null,
      ...(r === undefined
        ? {}
        : {
            chainId: r.chainId,
            contract: r.contract,
            onChainBatchId: r.onChainBatchId,
            txHash: r.txHash,
            blockNumber: r.blockNumber,
            blockHash: r.blockHash,
            confirmations: r.confirmations
          })
    }
  }
}
