// Pruning and shredding as verification shows them (docs/FORENSICS.md §Retention and erasure): a
// range pruned by a gateway's signed, anchored statement and a shredded subject leave the verdict
// VALID and are listed as such; forged, foreign or unlinked statements fail with a reason. Offline
// bundles: no chain needed.
import t from 'tap'
import {
  MerkleTree, createSigner, decodeBundleRecord, decodeEnvelope, deriveSubjectRef, formatCheckpoint, hashLeaf, sha256, signPruningStatement,
  signShreddingStatement, pruningExtensionLine, toHex, type Bundle
} from '../../protocol/index.js'
import { verifyBundle } from '../../forensics/verify/index.js'
import { formatVerdict } from '../../forensics/cli.js'
import { FIXTURE_GATEWAY_ID, FIXTURE_GATEWAY_SIGNER, clone, fixtureSignedCheckpoint, makeDeviceHistory, offlineBundle } from '../helpers/forensics-fixture.js'

const device = makeDeviceHistory()
const full = offlineBundle(device)
const PRUNED_THROUGH = 4
const NOW = 1_700_100_000_000

const seqOf = (b64: string): number => decodeEnvelope(decodeBundleRecord(b64)).record.seq
const statementFor = (signer = FIXTURE_GATEWAY_SIGNER, lastHash = (device.records[PRUNED_THROUGH] as { hash: Uint8Array }).hash) => signPruningStatement({
  gatewayId: FIXTURE_GATEWAY_ID, deviceId: device.deviceId, firstSeq: 0, lastSeq: PRUNED_THROUGH, lastHash,
  batches: [{ id: 1, root: Buffer.from(full.anchors[0]?.root ?? '', 'hex') }], retentionDays: 183, cutoffMs: NOW - 183 * 86_400_000, prunedAtMs: NOW, reason: 'retention'
}, signer)

/** The bundle as the gateway exports it after pruning seqs 0..4: those records and proofs gone, the statement in, committed by batch 2's anchored checkpoint. */
function prunedBundle (options: { signer?: typeof FIXTURE_GATEWAY_SIGNER, lastHash?: Uint8Array, committed?: boolean } = {}): Bundle {
  const b = clone(full)
  b.records = b.records.filter(r => seqOf(r) > PRUNED_THROUGH)
  b.proofs = b.proofs.filter(p => p.seq > PRUNED_THROUGH)
  const signed = statementFor(options.signer, options.lastHash)
  const tree = new MerkleTree([hashLeaf(Uint8Array.of(1))])
  const checkpoint = { origin: 'test-gateway/batch/2', size: 1, rootHash: tree.root(), extensions: [pruningExtensionLine(signed.hash)] }
  b.prunings = [{ statement: Buffer.from(signed.envelope).toString('base64'), ...(options.committed === false ? {} : { checkpoint: fixtureSignedCheckpoint(checkpoint) }) }]
  b.anchors.push({
    root: toHex(tree.root()), size: 1, onChainBatchId: '2', txHash: '0x' + '12'.repeat(32), blockNumber: 8, blockHash: '0x' + '34'.repeat(32),
    firstRecordTimeMs: 1, lastRecordTimeMs: 1, metadataHash: toHex(sha256(new TextEncoder().encode(formatCheckpoint(checkpoint))))
  })
  return b
}

t.test('behavior: a range pruned by a signed, anchored statement is PRUNED and the verdict stays VALID', async t => {
  const v = await verifyBundle(prunedBundle(), { offline: true })
  t.equal(v.verdict, 'valid')
  t.same(v.failures, [])
  t.same(v.warnings, [])
  t.equal(v.fromGenesis, false)
  t.equal(v.prunedFromGenesis, true, 'the pruned range and the records go back to seq 0')
  t.match(v.pruned, [{ firstSeq: 0, lastSeq: PRUNED_THROUGH, statement: toHex(statementFor().hash), gatewayId: FIXTURE_GATEWAY_ID, reason: 'retention', retentionDays: 183, batches: [1], links: true, committed: true }])
  t.match(formatVerdict(v), new RegExp(`PRUNED    seq 0\\.\\.${PRUNED_THROUGH} by statement ${toHex(statementFor().hash)} \\(gateway ${FIXTURE_GATEWAY_ID}, retention, retention 183 days`))
})

t.test('behavior: the same records gone without a statement are not shown as pruned (loss is not policy)', async t => {
  const b = prunedBundle()
  delete b.prunings
  const v = await verifyBundle(b, { offline: true })
  t.same(v.pruned, [])
  t.equal(v.prunedFromGenesis, false)
  t.equal(v.fromGenesis, false, 'the history before the first record is not accounted for')
})

t.test('behavior: a statement not yet committed by an anchored checkpoint is a warning', async t => {
  const v = await verifyBundle(prunedBundle({ committed: false }), { offline: true })
  t.equal(v.verdict, 'valid')
  t.same(v.warnings.map(w => w.reason), ['pruning-uncommitted'])
  t.match(v.pruned, [{ committed: false, links: true }])
})

t.test('error: a forged or unlinked pruning statement fails with pruning-invalid', async t => {
  const forged = await verifyBundle(prunedBundle({ signer: createSigner(new Uint8Array(32).fill(66)) }), { offline: true })
  t.equal(forged.verdict, 'invalid')
  t.match(forged.failures, [{ reason: 'pruning-invalid', message: /STATEMENT_UNKNOWN_KEY/ }])
  t.same(forged.pruned, [])
  const unlinked = await verifyBundle(prunedBundle({ lastHash: sha256(Uint8Array.of(0)) }), { offline: true })
  t.match(unlinked.failures, [{ reason: 'pruning-invalid', seq: PRUNED_THROUGH + 1, message: /not the prev of record/ }])
  const b = prunedBundle()
  // The checkpoint of another statement: it does not commit to this one.
  b.prunings = [{ statement: b.prunings?.[0]?.statement ?? '', checkpoint: fixtureSignedCheckpoint({ origin: 'test-gateway/batch/2', size: 1, rootHash: sha256(Uint8Array.of(5)), extensions: [pruningExtensionLine(sha256(Uint8Array.of(6)))] }) }]
  t.match((await verifyBundle(b, { offline: true })).failures, [{ reason: 'pruning-invalid', message: /does not commit to the statement/ }])
  // The gateway key pruned records of a batch that was never anchored.
  const early = prunedBundle()
  early.anchors = early.anchors.filter(a => a.root !== full.anchors[0]?.root)
  early.records = []
  early.proofs = []
  t.match((await verifyBundle(early, { offline: true })).failures, [{ reason: 'pruning-invalid', message: /not anchored: only anchored records may be pruned/ }, { reason: 'no-records' }])
})

t.test('behavior: a shredded subject is SHREDDED, every signature and proof still checked, verdict VALID', async t => {
  const b = clone(full)
  const secret = new Uint8Array(32).fill(1)
  const signed = signShreddingStatement({
    deviceId: device.deviceId, subjectRef: deriveSubjectRef(secret, 'plate:AB-123'), ranges: [{ firstSeq: 23, lastSeq: 24 }, { firstSeq: 27, lastSeq: 27 }],
    shreddedAtMs: device.records.at(-1)?.record.timeMs ?? 0, reason: 'erasure request 42'
  }, device.signer)
  b.shreddings = [Buffer.from(signed.envelope).toString('base64')]
  const v = await verifyBundle(b, { offline: true })
  t.equal(v.verdict, 'valid')
  t.same(v.failures, [])
  t.equal(v.counts.signaturesValid, b.records.length, 'the shredded records\' signatures verify')
  t.equal(v.counts.proofsValid, b.records.length, 'and their proofs')
  t.match(v.shredded, [{ firstSeq: 23, lastSeq: 24, records: 2, reason: 'erasure request 42' }, { firstSeq: 27, lastSeq: 27, records: 1 }])
  t.match(formatVerdict(v), /SHREDDED  seq 23\.\.24 \(2 record\(s\) here\)/)

  const foreign = clone(full)
  foreign.shreddings = [Buffer.from(signShreddingStatement({ ...signed.statement }, createSigner(new Uint8Array(32).fill(9))).envelope).toString('base64')]
  const bad = await verifyBundle(foreign, { offline: true })
  t.match(bad.failures, [{ reason: 'shredding-invalid', message: /STATEMENT_SIGNATURE_INVALID/ }], 'not signed by the device key')
})
