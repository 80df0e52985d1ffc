/**
 * Batches (docs/PROTOCOL.md §7): the published tree, checkpoint, metadataHash, proof file and
 * Anchored event topic against the code, the registry's compiled ABI and the doc.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { Interface } from 'ethers'
import { fromHex, hashLeaf, parseProof, sha256, toHex, verifyProof, verifyInclusion } from '../../protocol/index.js'
import {
  buildBatchVectors, renderBatchMarkdown, ANCHORED_EVENT_SIGNATURE, BATCH_VECTORS_PATH, DOC_BEGIN, DOC_END, PROTOCOL_DOC_PATH, type BatchVectors
} from '../../scripts/gen-batch-vectors.js'

const file = JSON.parse(readFileSync(BATCH_VECTORS_PATH, 'utf8')) as BatchVectors

t.test('behavior: test/vectors/batch.json is exactly what the code produces now', async t => {
  t.ok(file.source.startsWith('docs/PROTOCOL.md §7'), 'source names the spec')
  t.same(file, buildBatchVectors(), 'rerun `npx tsx scripts/gen-batch-vectors.ts --doc` after a deliberate format change')
})

t.test('behavior: the batch block in docs/PROTOCOL.md is rendered from batch.json, byte for byte', async t => {
  const doc = readFileSync(PROTOCOL_DOC_PATH, 'utf8')
  const a = doc.indexOf(DOC_BEGIN)
  const b = doc.indexOf(DOC_END)
  t.ok(a >= 0 && b > a, 'the doc has the batch markers')
  t.equal(doc.slice(a, b + DOC_END.length), renderBatchMarkdown(file))
})

t.test('behavior: metadataHash covers the checkpoint text including its final empty line', async t => {
  t.ok(file.checkpoint.endsWith('\n\n'), 'checkpoint ends in 0a 0a')
  t.equal(file.metadataHash, toHex(sha256(Buffer.from(file.checkpoint, 'utf8'))))
})

t.test('behavior: the proof file verifies the leaf of the envelope, and only that leaf', async t => {
  const proof = parseProof(file.proof.file)
  const leaf = fromHex((file.leaves[file.proof.index] as { envelope: string }).envelope)
  verifyProof(proof, hashLeaf(leaf))
  t.pass('proof verifies')
  t.same(proof.extra?.map(e => `${e.key} ${e.value}\n`).join(''), file.proof.extraText, 'extra data decodes to the documented lines, in order')
  t.throws(() => verifyInclusion(hashLeaf(fromHex((file.leaves[0] as { envelope: string }).envelope)), proof.index, proof.checkpoint.size, proof.hashes, proof.checkpoint.rootHash),
    { code: 'MERKLE_ROOT_MISMATCH' }, 'another leaf at that index fails')
})

t.test('behavior: the documented Anchored event signature is the compiled registry\'s event', async t => {
  const artifact = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'contracts', 'build', 'ProvenanceRegistry.json'), 'utf8')) as { abi: unknown[] }
  const event = new Interface(artifact.abi as never).getEvent('Anchored')
  t.equal(event?.format('sighash'), ANCHORED_EVENT_SIGNATURE)
  t.equal(event?.topicHash, file.anchoredEvent.topic0)
})
