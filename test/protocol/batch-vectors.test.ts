/**
 * Batches (docs/PROTOCOL.md §7): the published tree, checkpoint, metadataHash, proof file,
 * Anchored event topic, signed checkpoint and COSE receipt against the code, the registry's
 * compiled ABI and the doc.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { Interface } from 'ethers'
import {
  createSigner, decodeReceipt, fromHex, hashLeaf, openCheckpoint, parseProof, parseVerifierKey, sha256, toHex, verifyProof, verifyInclusion,
  verifyReceipt
} from '../../protocol/index.js'
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

t.test('behavior: the signed checkpoint opens with the documented verifier key and starts with the checkpoint bytes', async t => {
  const { logKey, signedCheckpoint } = file
  t.equal(toHex(createSigner(fromHex(logKey.seed)).publicKey), logKey.publicKey, 'the fixed seed gives the documented key')
  const key = parseVerifierKey(logKey.verifierKey)
  t.equal(key.keyId.toString(16).padStart(8, '0'), logKey.keyId)
  t.equal(logKey.keyId, toHex(sha256(Buffer.from(`${logKey.name}\n`), Uint8Array.of(1), fromHex(logKey.publicKey)).subarray(0, 4)))
  t.ok(signedCheckpoint.note.startsWith(file.checkpoint), 'metadataHash is unchanged by the signature')
  t.equal(signedCheckpoint.signedText + '\n', file.checkpoint)
  for (const backend of ['node', 'noble'] as const) {
    t.equal(openCheckpoint(signedCheckpoint.note, [key], backend).checkpointText, file.checkpoint)
  }
})

t.test('behavior: the COSE receipt decodes to the documented fields and verifies against the anchored root', async t => {
  const { receipt, logKey } = file
  const bytes = fromHex(receipt.bytes)
  const d = decodeReceipt(bytes)
  t.equal(toHex(d.protectedHeader), receipt.protectedHeader)
  t.equal(toHex(d.kid as Uint8Array), receipt.kid)
  t.equal(toHex(d.signature), receipt.signature)
  t.same(d.path.map(toHex), file.proof.hashes, 'the same inclusion proof as the proof file')
  const leaf = hashLeaf(fromHex((file.leaves[receipt.index] as { envelope: string }).envelope))
  for (const backend of ['node', 'noble'] as const) {
    verifyReceipt(bytes, leaf, { root: fromHex(file.root), treeSize: file.leaves.length, publicKey: fromHex(logKey.publicKey) }, backend)
  }
  t.pass('verifies on both backends')
})
