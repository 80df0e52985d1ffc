// The proof file the gateway serves, byte for byte against docs/PROTOCOL.md §7.5 and §7.8: the
// extra lines in the documented order, case and final newline, and the checkpoint signed by the
// log key after the unsigned bytes (so metadataHash is unchanged); unsigned batches stay as they were.
import t from 'tap'
import {
  MerkleTree, createSigner, formatCheckpoint, formatVerifierKey, hashLeaf, openCheckpoint, parseProof, parseVerifierKey, sha256, signCheckpoint, verifyProof
} from '../../protocol/index.js'
import { formatRecordProof, type RecordProof } from '../../gateway/batch/index.js'

const KEY = 'edge-provenance/gw-t'
const signer = createSigner(sha256(Uint8Array.of(1, 2, 3)))
const envelopes = [1, 2, 3].map(i => Uint8Array.of(i, i))
const tree = new MerkleTree(envelopes.map(e => hashLeaf(e)))
const head = { origin: `${KEY}/batch/4`, size: 3, rootHash: tree.root() }

function proofWith (checkpoint: string): RecordProof {
  return {
    deviceId: 'dev-1', seq: 9, envelope: envelopes[1] as Uint8Array, leafHash: hashLeaf(envelopes[1] as Uint8Array), leafIndex: 1,
    batch: { id: 4, size: 3, root: tree.root(), firstRecordTimeMs: 1, lastRecordTimeMs: 2, checkpoint, metadataHash: sha256(new TextEncoder().encode(formatCheckpoint(head))), sealedAtMs: 3 },
    hashes: tree.proveInclusion(1),
    anchorState: 'confirmed',
    receipt: { batch: 4, chainId: 31337, contract: '0x5FbDB2315678afecb367f032d93F642f64180aa3', onChainBatchId: '12', txHash: '0x' + 'ab'.repeat(32), blockNumber: 40, blockHash: '0x' + 'cd'.repeat(32), confirmations: 1 }
  }
}

t.test('behavior: extra lines are device, seq, gateway-batch, chain-id, contract, batch-id, tx-hash, block, block-hash, each ending in a newline', async t => {
  const text = formatRecordProof(proofWith(signCheckpoint(head, KEY, signer)))
  const extraLine = text.split('\n')[1] as string
  t.match(extraLine, /^extra [A-Za-z0-9+/]+=*$/)
  t.equal(Buffer.from(extraLine.slice(6), 'base64').toString('utf8'),
    'device dev-1\nseq 9\ngateway-batch 4\nchain-id 31337\ncontract 0x5FbDB2315678afecb367f032d93F642f64180aa3\nbatch-id 12\n' +
    `tx-hash 0x${'ab'.repeat(32)}\nblock 40\nblock-hash 0x${'cd'.repeat(32)}\n`)
  verifyProof(parseProof(text), hashLeaf(envelopes[1] as Uint8Array))
})

t.test('behavior: a signed batch gives a proof ending in the signed checkpoint; its unsigned bytes are what metadataHash covers', async t => {
  const text = formatRecordProof(proofWith(signCheckpoint(head, KEY, signer)))
  const note = text.slice(text.indexOf('\n\n') + 2)
  const opened = openCheckpoint(note, [parseVerifierKey(formatVerifierKey(KEY, signer.publicKey))])
  t.equal(opened.checkpointText, formatCheckpoint(head))
  t.same(sha256(new TextEncoder().encode(opened.checkpointText)), proofWith('').batch.metadataHash)
  t.ok(note.startsWith(formatCheckpoint(head)), 'the signed note begins with the unsigned checkpoint bytes')
})

t.test('behavior: a batch sealed before signing gives the same proof file as before (unsigned checkpoint)', async t => {
  const text = formatRecordProof(proofWith(formatCheckpoint(head)))
  t.ok(text.endsWith('\n\n' + formatCheckpoint(head)))
  t.notMatch(text, /\u2014/)
})
