// The completeness rules of PROTOCOL.md §7.10 on their own (no chain: the anchors are given as the
// chain would answer): an anchor from before tip trees says nothing, a tip with another record
// hash is another history, a record proven in an earlier batch beyond the tip contradicts it.
import t from 'tap'
import { judgeCompleteness } from '../../forensics/verify/completeness.js'
import {
  BUNDLE_FORMAT, MerkleTree, TipTree, encodeBundleRecord, formatCheckpoint, formatProof, formatTipExtension, formatTipProof, hashLeaf, sha256, toHex,
  type Bundle, type BundleAnchor, type Checkpoint
} from '../../protocol/index.js'
import { makeChain } from '../helpers/records.js'

const DEVICE = 'dev-rules'
const records = makeChain({ deviceId: DEVICE, count: 6 })
const ORIGIN = 'edge-provenance/gw-r'

/** Batch n of the given records, its anchor entry, and proofs of its records. */
function batch (n: number, seqs: number[], extensions?: string[]): { checkpoint: string, anchor: BundleAnchor, proofs: Bundle['proofs'] } {
  const leaves = seqs.map(s => hashLeaf(records[s]?.envelope as Uint8Array))
  const tree = new MerkleTree(leaves)
  const head: Checkpoint = { origin: `${ORIGIN}/batch/${n}`, size: tree.size, rootHash: tree.root(), ...(extensions === undefined ? {} : { extensions }) }
  const checkpoint = formatCheckpoint(head)
  const anchor: BundleAnchor = {
    root: toHex(tree.root()), size: tree.size, onChainBatchId: String(n), txHash: '0x' + '11'.repeat(32), blockNumber: n, blockHash: '0x' + '22'.repeat(32),
    firstRecordTimeMs: 0, lastRecordTimeMs: 2 ** 52, metadataHash: toHex(sha256(new TextEncoder().encode(checkpoint)))
  }
  return { checkpoint, anchor, proofs: seqs.map((s, i) => ({ seq: s, proof: formatProof({ index: i, hashes: tree.proveInclusion(i), checkpoint: head }) })) }
}

function judge (tipTree: TipTree, opts: { tipBatch: ReturnType<typeof batch>, others?: Array<ReturnType<typeof batch>>, keep?: number, windowed?: boolean }): ReturnType<typeof judgeCompleteness> {
  const all = [opts.tipBatch, ...(opts.others ?? [])]
  const bundle: Bundle = {
    format: BUNDLE_FORMAT, createdAtMs: 0, device: { id: DEVICE, keys: [{ publicKey: '00'.repeat(32), validFromMs: 0 }] },
    chain: { chainId: 1, registry: '0x' + '00'.repeat(20), readAtBlock: 10 }, models: [],
    records: records.slice(0, opts.keep ?? records.length).map(r => encodeBundleRecord(r.envelope)),
    proofs: all.flatMap(b => b.proofs), anchors: all.map(b => b.anchor),
    tip: { proof: formatTipProof({ proof: tipTree.prove(DEVICE), checkpoint: opts.tipBatch.checkpoint }) }
  }
  return judgeCompleteness({ bundle, mode: 'online', anchors: new Map(all.map(b => [b.anchor.root, b.anchor])), windowed: opts.windowed ?? false, verifier: 'node' })
}

t.test('behavior: an anchor from before tip trees or a judged window: completeness unknown, no finding; a cut tail names its seqs', async t => {
  const tips = new TipTree()
  tips.set(DEVICE, 5, records[5]?.hash as Uint8Array)
  const old = judge(tips, { tipBatch: batch(1, [0, 1, 2, 3, 4, 5]) })
  t.equal(old.completeness.status, 'unknown')
  t.match(old.completeness.message, /sealed before tip trees/)
  t.same(old.findings, [])
  const b = batch(1, [0, 1, 2, 3, 4, 5], [formatTipExtension(tips.root())])
  t.equal(judge(tips, { tipBatch: b, windowed: true }).completeness.status, 'unknown')
  t.equal(judge(tips, { tipBatch: b }).completeness.status, 'complete')
  t.same(judge(tips, { tipBatch: b, keep: 3 }).completeness.missing, { fromSeq: 3, toSeq: 5 })
})

t.test('error: a tip with another record hash at its seq is tip-mismatch (another history)', async t => {
  const tips = new TipTree()
  tips.set(DEVICE, 5, sha256(Uint8Array.of(9)))
  const r = judge(tips, { tipBatch: batch(1, [0, 1, 2, 3, 4, 5], [formatTipExtension(tips.root())]) })
  t.match(r.findings, [{ reason: 'tip-mismatch', seq: 5 }])
})

t.test('error: a record proven in a batch up to the tip\'s beyond the tip is tip-mismatch', async t => {
  const tips = new TipTree()
  tips.set(DEVICE, 3, records[3]?.hash as Uint8Array)
  // The gateway claims seq 3 as the tip at batch 2, yet seq 4 is in its batch 1.
  const r = judge(tips, { tipBatch: batch(2, [3], [formatTipExtension(tips.root())]), others: [batch(1, [0, 1, 2, 4, 5])] })
  t.match(r.findings, [{ reason: 'tip-mismatch', seq: 4 }])
  const absent = new TipTree()
  absent.set('someone-else', 1, sha256(Uint8Array.of(1)))
  const a = judge(absent, { tipBatch: batch(2, [3], [formatTipExtension(absent.root())]), others: [batch(1, [0, 1, 2, 4, 5])] })
  t.match(a.findings, [{ reason: 'tip-mismatch' }], 'absence claimed while records are in earlier batches')
})
