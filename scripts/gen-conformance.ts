/**
 * Writes the conformance suite for outside implementers (docs/FORENSICS.md §11): bundles, signed
 * checkpoints, proof files, COSE receipts and device tip proofs, valid and tampered, each with the verdict and
 * findings `provenance verify --offline` (or the protocol call) must give. Deterministic: fixed
 * seeds and times, no chain. Every expectation is checked against our code before anything is
 * written, so the suite never disagrees with the implementation it documents.
 *
 *     node --import tsx scripts/gen-conformance.ts           # (re)writes test/vectors/conformance/
 *     node --import tsx scripts/gen-conformance.ts --check   # exits 1 when the files differ
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  BUNDLE_FORMAT, MerkleTree, ProtocolError, buildReceipt, createSigner, encodeBundle, encodeBundleRecord, formatCheckpoint, formatProof,
  formatVerifierKey, hashLeaf, openCheckpoint, parseProof, parseVerifierKey, sha256, signCheckpoint, signNote, toHex, verifyProof, verifyReceipt,
  TipTree, formatTipExtension, formatTipProof, parseTipProof, verifyTipProof,
  type Bundle, type BundleModel, type Checkpoint, type SignedRecord
} from '../protocol/index.js'
import { verifyBundle } from '../forensics/verify/index.js'
import { ChainBuilder, fakeHash, makeMixedChain, resign } from '../test/helpers/records.js'
import { CertifiedChain, deterministicIdentity } from '../test/helpers/identity.js'
import { isEntryPoint } from '../common/entry-point.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
export const CONFORMANCE_DIR = join(ROOT, 'test', 'vectors', 'conformance')

const seed = (label: string): Uint8Array => sha256(new TextEncoder().encode(`conformance/${label}`))
const GATEWAY = createSigner(seed('gateway log key'))
const OTHER_GATEWAY = createSigner(seed('another gateway'))
const KEY_NAME = 'conformance.example/gw-1'
const GATEWAY_ENTRY = { id: 'gateway.gw-1', keyName: KEY_NAME, publicKey: toHex(GATEWAY.publicKey) }
const MODELS: BundleModel[] = [
  { hash: toHex(fakeHash('model/0')), name: 'detector', version: '1.0.0', parentHash: null, manifestHash: toHex(fakeHash('manifest/0')), status: 'approved', metadataUri: '' },
  { hash: toHex(fakeHash('model/1')), name: 'detector', version: '1.1.0', parentHash: toHex(fakeHash('model/0')), manifestHash: toHex(fakeHash('manifest/1')), status: 'approved', metadataUri: '' }
]

/** [reason, seq or null], in the order the verdict lists them (seq order). */
type Found = Array<[string, number | null]>
export interface ConformanceCase {
  name: string
  kind: 'bundle' | 'checkpoint' | 'proof' | 'receipt' | 'tip'
  /** File under test/vectors/conformance/, relative. */
  file: string
  description: string
  /** Inputs besides the file (hex / text), for checkpoints, proofs and receipts. */
  inputs?: Record<string, string | number | string[]>
  expect: { verdict: 'valid' | 'invalid', failures?: Found, warnings?: Found, error?: string }
}

// ---------------------------------------------------------------------------------------------
// Bundles

interface BundleOptions {
  batchSize?: number
  sign?: boolean
  gateways?: boolean
  /** Rewrites the records (after the proofs were made from the originals). */
  records?: (records: SignedRecord[]) => Array<SignedRecord | Uint8Array>
}

function history (): ChainBuilder {
  const b = makeMixedChain({ deviceId: 'dev-conformance', seed: seed('device') })
  return b
}

function bundleOf (b: ChainBuilder, o: BundleOptions = {}): Bundle {
  const records = b.records
  const size = o.batchSize ?? 8
  const proofs: Bundle['proofs'] = []
  const anchors: Bundle['anchors'] = []
  for (let at = 0, id = 1; at < records.length; at += size, id++) {
    const leaves = records.slice(at, at + size)
    const tree = new MerkleTree(leaves.map(r => hashLeaf(r.envelope)))
    const checkpoint: Checkpoint = { origin: `${KEY_NAME}/batch/${id}`, size: tree.size, rootHash: tree.root() }
    const signed = signCheckpoint(checkpoint, KEY_NAME, GATEWAY)
    const signatures = signed.slice(signed.indexOf('\n\n') + 2)
    leaves.forEach((r, i) => {
      const extra = [{ key: 'device', value: b.deviceId }, { key: 'seq', value: String(r.record.seq) }, { key: 'gateway-batch', value: String(id) }]
      const proof = formatProof({ index: i, hashes: tree.proveInclusion(i), checkpoint, extra })
      proofs.push({ seq: r.record.seq, proof: o.sign === false ? proof : proof + signatures })
    })
    const times = leaves.map(r => r.record.timeMs)
    anchors.push({
      root: toHex(tree.root()), size: tree.size, onChainBatchId: String(id), txHash: '0x' + toHex(fakeHash(`tx/${id}`)), blockNumber: 10 + id,
      blockHash: '0x' + toHex(fakeHash(`block/${id}`)), firstRecordTimeMs: Math.min(...times), lastRecordTimeMs: Math.max(...times),
      metadataHash: toHex(sha256(new TextEncoder().encode(formatCheckpoint(checkpoint))))
    })
  }
  const served = o.records === undefined ? records : o.records(records)
  return {
    format: BUNDLE_FORMAT,
    createdAtMs: 1_700_000_100_000,
    device: {
      id: b.deviceId,
      keys: b.keys.map((k, i) => ({ publicKey: toHex(k.publicKey), validFromMs: k.validFromMs, ...(i + 1 < b.keys.length ? { validUntilMs: b.keys[i + 1]?.validFromMs } : {}) }))
    },
    chain: { chainId: 31337, registry: '0x5FbDB2315678afecb367f032d93F642f64180aa3', readAtBlock: 42, readAtBlockHash: '0x' + toHex(fakeHash('block/42')) },
    models: MODELS,
    records: served.map(r => encodeBundleRecord(r instanceof Uint8Array ? r : r.envelope)),
    proofs,
    anchors,
    ...(o.gateways === false ? {} : { gateways: [GATEWAY_ENTRY] })
  }
}

function bundleCases (): Array<{ c: ConformanceCase, bundle: Bundle }> {
  const out: Array<{ c: ConformanceCase, bundle: Bundle }> = []
  const add = (name: string, description: string, bundle: Bundle, expect: ConformanceCase['expect']): void => {
    out.push({ c: { name, kind: 'bundle', file: `bundles/${name}.json`, description, expect }, bundle })
  }
  const h = history()
  const seqAt = (i: number): number => (h.records[i] as SignedRecord).record.seq

  add('valid-full', 'boots, model loads, inferences, an honest gap, a key rotation, a reboot; signed checkpoints', bundleOf(h), { verdict: 'valid', failures: [], warnings: [] })

  const old = bundleOf(h, { sign: false, gateways: false })
  add('valid-unsigned-checkpoints', 'proofs from before signed checkpoints and no gateways: one warning per checkpoint', old,
    { verdict: 'valid', failures: [], warnings: [['checkpoint-unsigned', 0], ['checkpoint-unsigned', seqAt(8)], ['checkpoint-unsigned', seqAt(16)]] })

  const gapAt = h.records.findIndex(r => r.record.body.kind === 'gap')
  const window = bundleOf(h)
  window.records = window.records.slice(gapAt)
  window.proofs = window.proofs.filter(p => p.seq >= seqAt(gapAt))
  window.window = { fromMs: (h.records[gapAt] as SignedRecord).record.timeMs }
  add('valid-window-starts-at-gap', 'an export window whose first record is a gap record (the range lies before the window)', window, { verdict: 'valid', failures: [], warnings: [] })

  add('invalid-bit-flip', 'one byte of the record at seq 3 flipped inside its body', bundleOf(h, {
    records: rs => rs.map((r, i) => {
      if (i !== 3) return r
      const bytes = Uint8Array.from(r.envelope)
      bytes[bytes.length - 80] = (bytes[bytes.length - 80] as number) ^ 1
      return bytes
    })
  }), { verdict: 'invalid', failures: [['bad-signature', 3], ['root-mismatch', 3]], warnings: [] })

  const deleted = bundleOf(h)
  deleted.records.splice(4, 1)
  add('invalid-deleted-record', 'the record at seq 4 removed (its proof too)', { ...deleted, proofs: deleted.proofs.filter(p => p.seq !== 4) },
    { verdict: 'invalid', failures: [['seq-gap', 4]], warnings: [] })

  const swapped = bundleOf(h)
  ;[swapped.records[3], swapped.records[4]] = [swapped.records[4] as string, swapped.records[3] as string]
  add('invalid-swapped', 'the records at seq 3 and 4 swapped', swapped, { verdict: 'invalid', failures: [['seq-reuse', 3]], warnings: [] })

  const malformed = bundleOf(h)
  malformed.records[5] = Buffer.from('not an envelope').toString('base64')
  add('invalid-record-malformed', 'the entry of seq 5 is valid base64 of bytes that are no envelope', malformed,
    { verdict: 'invalid', failures: [['record-malformed', 5]], warnings: [] })

  const genesis = history()
  const badGenesis = resign({ ...(genesis.records[0] as SignedRecord).record, prev: fakeHash('not zero') }, seed('device'))
  add('invalid-bad-genesis', 'seq 0 with a non-zero prev (re-signed by the device key)', bundleOf(h, { records: rs => [badGenesis, ...rs.slice(1)] }),
    { verdict: 'invalid', failures: [['bad-genesis', 0], ['root-mismatch', 0]], warnings: [] })

  const unanchored = bundleOf(h)
  unanchored.anchors = unanchored.anchors.slice(1)
  add('invalid-root-not-anchored', 'the anchor of the first batch left out', unanchored,
    { verdict: 'invalid', failures: h.records.slice(0, 8).map(r => ['root-not-anchored', r.record.seq] as [string, number]), warnings: [] })

  const resized = bundleOf(h)
  resized.anchors[0] = { ...resized.anchors[0] as Bundle['anchors'][number], size: 7 }
  // Leaves 0..5 have proofs of the same shape in trees of 7 and 8 and lead to the same root: only
  // the checkpoint's size gives them away (anchor-mismatch); leaves 6 and 7 cannot be proven in 7.
  add('invalid-anchor-size', 'the first anchor claims 7 leaves, its proofs were made for 8', resized, {
    verdict: 'invalid',
    failures: [...[0, 1, 2, 3, 4, 5].map(seq => ['anchor-mismatch', seq] as [string, number]), ['proof-invalid', seqAt(6)], ['anchor-mismatch', seqAt(6)], ['proof-invalid', seqAt(7)], ['anchor-mismatch', seqAt(7)]],
    warnings: []
  })

  const forged = bundleOf(h)
  forged.proofs = forged.proofs.map(p => {
    if (!p.proof.includes('/batch/2\n')) return p
    const last = p.proof.lastIndexOf(' ') + 1
    const sig = Buffer.from(p.proof.slice(last, -1), 'base64')
    sig[20] = (sig[20] as number) ^ 1
    return { seq: p.seq, proof: p.proof.slice(0, last) + sig.toString('base64') + '\n' }
  })
  add('invalid-checkpoint-signature', 'the note signature of batch 2\'s checkpoint altered', forged,
    { verdict: 'invalid', failures: [['checkpoint-signature-invalid', seqAt(8)]], warnings: [] })

  const otherKey = bundleOf(h)
  otherKey.gateways = [{ ...GATEWAY_ENTRY, publicKey: toHex(OTHER_GATEWAY.publicKey) }]
  add('invalid-gateway-key', 'the bundle names another gateway key than the one that signed', otherKey,
    { verdict: 'invalid', failures: [['checkpoint-signature-invalid', 0], ['checkpoint-signature-invalid', seqAt(8)], ['checkpoint-signature-invalid', seqAt(16)]], warnings: [] })

  const unknownModel = bundleOf(h)
  unknownModel.models = unknownModel.models.slice(0, 1)
  add('invalid-model-unknown', 'model 1 missing from the facts: its load and inferences', unknownModel, {
    verdict: 'invalid',
    failures: h.records.filter(r => (r.record.body.kind === 'model-load' || r.record.body.kind === 'inference') && toHex(r.record.body.modelHash) === MODELS[1]?.hash)
      .map(r => ['model-unknown', r.record.seq] as [string, number]),
    warnings: []
  })
  return out
}

/**
 * A TPM-rooted device (docs/PROTOCOL.md §13): the registry slot holds the identity key id, each
 * boot record carries the identity's certification of that boot's record key. RFC 6979 signatures
 * stand in for the TPM's random ones.
 */
async function identityCases (): Promise<Array<{ c: ConformanceCase, bundle: Bundle }>> {
  const out: Array<{ c: ConformanceCase, bundle: Bundle }> = []
  const add = (name: string, description: string, chain: CertifiedChain, expect: ConformanceCase['expect']): void => {
    const bundle = bundleOf(chain.b)
    bundle.device.keys = [{ publicKey: toHex(chain.registryKey), validFromMs: 0 }]
    out.push({ c: { name, kind: 'bundle', file: `bundles/${name}.json`, description, expect }, bundle })
  }
  const identity = deterministicIdentity('conformance')
  const honest = async (): Promise<CertifiedChain> => {
    const c = new CertifiedChain(identity, { deviceId: 'dev-tpm' })
    await c.boot()
    c.inferences(4)
    await c.boot()
    c.inferences(4)
    return c
  }
  add('valid-tpm-identity', 'two boots, each record key certified by the P-256 identity in its boot record', await honest(), { verdict: 'valid', failures: [], warnings: [] })

  const foreign = new CertifiedChain(identity, { deviceId: 'dev-tpm' })
  await foreign.boot()
  foreign.inferences(4)
  await foreign.boot({ by: deterministicIdentity('another TPM') })
  foreign.inferences(4)
  add('invalid-tpm-foreign-identity', 'the second boot certified by another TPM\'s identity (a copied disk)', foreign,
    { verdict: 'invalid', failures: [['bad-certification', 5], ...[6, 7, 8, 9].map(seq => ['uncertified-key', seq] as [string, number])], warnings: [] })

  const replayed = new CertifiedChain(identity, { deviceId: 'dev-tpm' })
  await replayed.boot()
  replayed.inferences(4)
  await replayed.boot({ replay: replayed.lastCertification })
  replayed.inferences(4)
  add('invalid-tpm-certification-replayed', 'boot 1\'s certification carried by the boot record of boot 2', replayed,
    { verdict: 'invalid', failures: [['certification-replayed', 5], ...[6, 7, 8, 9].map(seq => ['uncertified-key', seq] as [string, number])], warnings: [] })

  const uncertified = new CertifiedChain(identity, { deviceId: 'dev-tpm' })
  await uncertified.boot()
  uncertified.inferences(4)
  await uncertified.boot({ certify: false })
  uncertified.inferences(4)
  add('invalid-tpm-uncertified-boot', 'the second boot has no certification (an image run without the TPM)', uncertified,
    { verdict: 'invalid', failures: [5, 6, 7, 8, 9].map(seq => ['uncertified-key', seq] as [string, number]), warnings: [] })
  return out
}

// ---------------------------------------------------------------------------------------------
// Checkpoints, proofs, receipts

function otherCases (): Array<{ c: ConformanceCase, bytes: Uint8Array }> {
  const out: Array<{ c: ConformanceCase, bytes: Uint8Array }> = []
  const leaves = Array.from({ length: 7 }, (_, i) => hashLeaf(new TextEncoder().encode(`leaf ${i}`)))
  const tree = new MerkleTree(leaves)
  const checkpoint: Checkpoint = { origin: `${KEY_NAME}/batch/1`, size: tree.size, rootHash: tree.root() }
  const verifierKey = formatVerifierKey(KEY_NAME, GATEWAY.publicKey)
  const text = (s: string): Uint8Array => new TextEncoder().encode(s)
  const signed = signCheckpoint(checkpoint, KEY_NAME, GATEWAY)
  const cp = (name: string, description: string, note: string, expect: ConformanceCase['expect']): void => {
    out.push({ c: { name, kind: 'checkpoint', file: `checkpoints/${name}.note`, description, inputs: { verifierKey }, expect }, bytes: text(note) })
  }
  cp('checkpoint-signed', 'a checkpoint signed by the log key (Go note.Open accepts it)', signed, { verdict: 'valid' })
  const cosigned = signed + signNote(signed.slice(0, signed.indexOf('\n\n') + 1), 'witness.example/w1', createSigner(seed('witness'))).split('\n\n')[1]
  cp('checkpoint-cosigned', 'signed by the log key and by an unknown witness: the unknown signature is ignored', cosigned, { verdict: 'valid' })
  const sigAt = signed.lastIndexOf(' ') + 1
  const raw = Buffer.from(signed.slice(sigAt, -1), 'base64')
  raw[30] = (raw[30] as number) ^ 1
  cp('checkpoint-bad-signature', 'the log key\'s signature altered', signed.slice(0, sigAt) + raw.toString('base64') + '\n', { verdict: 'invalid', error: 'SIGNATURE_INVALID' })
  cp('checkpoint-other-key', 'signed by another key under the same name', signCheckpoint(checkpoint, KEY_NAME, OTHER_GATEWAY), { verdict: 'invalid', error: 'NOTE_UNVERIFIED' })
  cp('checkpoint-unsigned', 'no signature line', formatCheckpoint(checkpoint), { verdict: 'invalid', error: 'NOTE_MALFORMED' })
  cp('checkpoint-root-changed', 'the root line changed after signing', signed.replace(/\n([A-Za-z0-9+/]{43}=)\n/, '\n' + Buffer.from(fakeHash('other root')).toString('base64') + '\n'),
    { verdict: 'invalid', error: 'SIGNATURE_INVALID' })

  const proofOf = (i: number): string => formatProof({ index: i, hashes: tree.proveInclusion(i), checkpoint }) + signed.slice(signed.indexOf('\n\n') + 2)
  const pf = (name: string, description: string, file: string, leaf: Uint8Array, expect: ConformanceCase['expect']): void => {
    out.push({ c: { name, kind: 'proof', file: `proofs/${name}.tlog-proof`, description, inputs: { leafHash: toHex(leaf), anchoredRoot: toHex(tree.root()), anchoredSize: tree.size, verifierKey }, expect }, bytes: text(file) })
  }
  pf('proof-valid', 'leaf 5 of 7, signed checkpoint', proofOf(5), leaves[5] as Uint8Array, { verdict: 'valid' })
  pf('proof-wrong-leaf', 'the proof of leaf 5 given the hash of leaf 4', proofOf(5), leaves[4] as Uint8Array, { verdict: 'invalid', error: 'MERKLE_ROOT_MISMATCH' })
  const short = proofOf(5).split('\n')
  short.splice(3, 1)
  pf('proof-short', 'one hash of the path removed', short.join('\n'), leaves[5] as Uint8Array, { verdict: 'invalid', error: 'MERKLE_INVALID_PROOF' })

  const rc = (name: string, description: string, bytes: Uint8Array, leaf: Uint8Array, size: number, expect: ConformanceCase['expect']): void => {
    out.push({ c: { name, kind: 'receipt', file: `receipts/${name}.cose`, description, inputs: { leafHash: toHex(leaf), anchoredRoot: toHex(tree.root()), anchoredSize: size, publicKey: toHex(GATEWAY.publicKey) }, expect }, bytes })
  }
  const receipt = buildReceipt({ leafHash: leaves[2] as Uint8Array, leafIndex: 2, treeSize: tree.size, path: tree.proveInclusion(2), root: tree.root() }, GATEWAY)
  rc('receipt-valid', 'COSE receipt of leaf 2 of 7', receipt, leaves[2] as Uint8Array, tree.size, { verdict: 'valid' })
  rc('receipt-size-mismatch', 'the same receipt checked against an anchored size of 8', receipt, leaves[2] as Uint8Array, 8, { verdict: 'invalid', error: 'RECEIPT_ANCHOR_MISMATCH' })
  const badSig = Uint8Array.from(receipt)
  badSig[badSig.length - 1] = (badSig[badSig.length - 1] as number) ^ 1
  rc('receipt-bad-signature', 'the last signature byte flipped', badSig, leaves[2] as Uint8Array, tree.size, { verdict: 'invalid', error: 'SIGNATURE_INVALID' })

  // Device tip proofs (PROTOCOL.md §7.10): checked for `device` against the tip root of the
  // anchored checkpoint (`anchoredTipRoot`); a valid case states the tip (`tipSeq`, `tipHash`) or absence.
  const tips = new TipTree()
  for (let i = 0; i < 12; i++) tips.set(`cam-${i}`, 10 + i, sha256(text(`cam-${i}/${10 + i}`)))
  const older = tips.snapshot()
  tips.set('cam-3', 40, sha256(text('cam-3/40')))
  const tipCheckpoint = signCheckpoint({ ...checkpoint, extensions: [formatTipExtension(tips.root())] }, KEY_NAME, GATEWAY)
  const tipFile = (tree: TipTree, device: string): string => formatTipProof({ proof: tree.prove(device), checkpoint: tipCheckpoint })
  let absentEmpty = ''
  let absentOther = ''
  for (let i = 0; absentEmpty === '' || absentOther === ''; i++) {
    const kind = tips.prove(`unknown-${i}`).terminal.kind
    if (kind === 'absent' && absentEmpty === '') absentEmpty = `unknown-${i}`
    if (kind === 'absent-other' && absentOther === '') absentOther = `unknown-${i}`
  }
  const tp = (name: string, description: string, file: string, device: string, root: Uint8Array, expect: ConformanceCase['expect'], tip?: { seq: number, hash: Uint8Array }): void => {
    const inputs: Record<string, string | number> = { device, anchoredTipRoot: toHex(root), ...(tip === undefined ? {} : { tipSeq: tip.seq, tipHash: toHex(tip.hash) }) }
    out.push({ c: { name, kind: 'tip', file: `tips/${name}.tip-proof`, description, inputs, expect }, bytes: text(file) })
  }
  tp('tip-present', 'the tip of cam-3 (seq 40) in a tree of 12 devices', tipFile(tips, 'cam-3'), 'cam-3', tips.root(), { verdict: 'valid' }, { seq: 40, hash: sha256(text('cam-3/40')) })
  tp('tip-absent-empty', 'a device never stored: its path ends in an empty subtree', tipFile(tips, absentEmpty), absentEmpty, tips.root(), { verdict: 'valid' })
  tp('tip-absent-other', 'a device never stored: its path ends in another device\'s leaf', tipFile(tips, absentOther), absentOther, tips.root(), { verdict: 'valid' })
  tp('tip-forged-seq', 'cam-3\'s tip rewritten to an earlier seq (a cut tail made to look complete)', tipFile(tips, 'cam-3').replace('\ntip 40 ', '\ntip 13 '), 'cam-3', tips.root(), { verdict: 'invalid', error: 'MERKLE_ROOT_MISMATCH' })
  tp('tip-other-device', 'the proof of cam-4 checked for cam-3', tipFile(tips, 'cam-4').replace('device cam-4', 'device cam-3'), 'cam-3', tips.root(), { verdict: 'invalid', error: 'MERKLE_ROOT_MISMATCH' })
  tp('tip-other-anchor', 'cam-3\'s proof from an earlier anchor (seq 13) checked against the later tip root', tipFile(older, 'cam-3'), 'cam-3', tips.root(), { verdict: 'invalid', error: 'MERKLE_ROOT_MISMATCH' })
  tp('tip-malformed', 'a sibling line that is not base64 of 32 bytes', tipFile(tips, 'cam-3').replace(/\n([A-Za-z0-9+/]{43}=)\n/, '\n$1$1\n'), 'cam-3', tips.root(), { verdict: 'invalid', error: 'MERKLE_INVALID_PROOF' })
  return out
}

// ---------------------------------------------------------------------------------------------
// Checking and writing

/** Runs one non-bundle case through the protocol calls; returns the error code, or undefined. */
export function runProtocolCase (c: ConformanceCase, bytes: Uint8Array): string | undefined {
  const inputs = c.inputs ?? {}
  try {
    if (c.kind === 'checkpoint') {
      openCheckpoint(bytes, [parseVerifierKey(inputs.verifierKey)])
    } else if (c.kind === 'proof') {
      const text = new TextDecoder().decode(bytes)
      const proof = parseProof(text)
      verifyProof({ ...proof, checkpoint: { ...proof.checkpoint, size: Number(inputs.anchoredSize), rootHash: Buffer.from(String(inputs.anchoredRoot), 'hex') } }, Buffer.from(String(inputs.leafHash), 'hex'))
      openCheckpoint(text.slice(text.indexOf('\n\n') + 2), [parseVerifierKey(inputs.verifierKey)])
    } else if (c.kind === 'tip') {
      const file = parseTipProof(new TextDecoder().decode(bytes))
      // Checked for the device asked about, whatever the file's device line says.
      const tip = verifyTipProof({ ...file.proof, deviceId: String(inputs.device) }, Buffer.from(String(inputs.anchoredTipRoot), 'hex'))
      const want = inputs.tipSeq === undefined ? undefined : { seq: Number(inputs.tipSeq), hash: String(inputs.tipHash) }
      if ((tip === undefined) !== (want === undefined) || (tip !== undefined && (tip.seq !== want?.seq || toHex(tip.hash) !== want.hash))) {
        throw new Error(`case ${c.name}: the proof gives ${JSON.stringify(tip === undefined ? 'absent' : { seq: tip.seq, hash: toHex(tip.hash) })}`)
      }
    } else if (c.kind === 'receipt') {
      verifyReceipt(bytes, Buffer.from(String(inputs.leafHash), 'hex'), {
        root: Buffer.from(String(inputs.anchoredRoot), 'hex'), treeSize: Number(inputs.anchoredSize), publicKey: Buffer.from(String(inputs.publicKey), 'hex')
      })
    }
    return undefined
  } catch (e) {
    if (e instanceof ProtocolError) return e.code
    throw e
  }
}

/** [reason, seq] lists of a verdict, as the cases state them. */
export function findingsOf (v: { failures: Array<{ reason: string, seq?: number }>, warnings: Array<{ reason: string, seq?: number }> }): { failures: Found, warnings: Found } {
  return { failures: v.failures.map(f => [f.reason, f.seq ?? null]), warnings: v.warnings.map(f => [f.reason, f.seq ?? null]) }
}

/** The suite as files: path relative to CONFORMANCE_DIR → bytes. Throws when the code disagrees with a case. */
export async function buildConformance (): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>()
  const cases: ConformanceCase[] = []
  for (const { c, bundle } of [...bundleCases(), ...await identityCases()]) {
    const v = await verifyBundle(bundle, { offline: true })
    const got = findingsOf(v)
    if (v.verdict !== c.expect.verdict || JSON.stringify(got.failures) !== JSON.stringify(c.expect.failures) || JSON.stringify(got.warnings) !== JSON.stringify(c.expect.warnings)) {
      throw new Error(`case ${c.name}: the code says ${v.verdict} ${JSON.stringify(got)}, the case ${JSON.stringify(c.expect)}`)
    }
    files.set(c.file, new TextEncoder().encode(encodeBundle(bundle)))
    cases.push(c)
  }
  for (const { c, bytes } of otherCases()) {
    const error = runProtocolCase(c, bytes)
    if ((error === undefined) !== (c.expect.verdict === 'valid') || error !== c.expect.error) {
      throw new Error(`case ${c.name}: the code says ${error ?? 'valid'}, the case ${JSON.stringify(c.expect)}`)
    }
    files.set(c.file, bytes)
    cases.push(c)
  }
  const manifest = {
    description: 'edge-provenance conformance suite: docs/FORENSICS.md §11. Generated by scripts/gen-conformance.ts; do not edit.',
    gateway: { ...GATEWAY_ENTRY, verifierKey: formatVerifierKey(KEY_NAME, GATEWAY.publicKey) },
    cases
  }
  files.set('cases.json', new TextEncoder().encode(JSON.stringify(manifest, null, 2) + '\n'))
  return files
}

async function main (): Promise<void> {
  const files = await buildConformance()
  if (process.argv.includes('--check')) {
    const stale = [...files].filter(([p, b]) => !existsSync(join(CONFORMANCE_DIR, p)) || !Buffer.from(readFileSync(join(CONFORMANCE_DIR, p))).equals(b))
    if (stale.length > 0) {
      console.error(`stale: ${stale.map(([p]) => p).join(', ')}`)
      process.exit(1)
    }
    return
  }
  rmSync(CONFORMANCE_DIR, { recursive: true, force: true })
  for (const [p, b] of files) {
    mkdirSync(dirname(join(CONFORMANCE_DIR, p)), { recursive: true })
    writeFileSync(join(CONFORMANCE_DIR, p), b)
  }
  console.log(`wrote ${files.size} files to ${CONFORMANCE_DIR}`)
}

if (isEntryPoint(import.meta.url)) await main()
