/**
 * Generates the lineage vectors of docs/LINEAGE.md §4: dataset manifests (files and shards), RFC 8785
 * canonical JSON, DSSE PAE, a signed training-run statement, and a captures file whose entries carry
 * their records' inclusion proofs with the anchor facts they are judged against (§5.1).
 * Writes test/vectors/lineage.json.
 * Run: node --import tsx scripts/gen-lineage-vectors.ts. test/forensics/lineage/vectors.test.ts checks
 * that the file equals what the code produces now and re-derives each value independently.
 */
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises'
import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { commitSample, createSigner, deriveSalt, formatProof, hashLeaf, MerkleTree, sha256, signRecord, toHex, type BundleAnchor, type SignedRecord } from '../protocol/index.js'
import { buildCaptures, type CapturesFile } from '../forensics/lineage/captures.js'
import {
  buildTrainingStatement, canonicalJson, encodeStatement, hashTree, pae, signTrainingStatement, statementHashOf,
  type DsseEnvelope, type JsonValue, type Manifest
} from '../forensics/lineage/index.js'
import { isEntryPoint } from '../common/entry-point.js'

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..')
export const LINEAGE_VECTORS_PATH = join(ROOT, 'test', 'vectors', 'lineage.json')

export interface LineageVectors {
  source: string
  description: string
  files: Array<{ name: string, contentHex: string }>
  manifests: Array<{ description: string, shardSizeBytes: number | null, ignore: string[], manifest: Manifest }>
  canonicalJson: Array<{ input: string, canonical: string }>
  pae: Array<{ payloadType: string, payloadHex: string, paeHex: string }>
  trainingRun: { seed: string, publicKey: string, payload: string, statementHash: string, envelope: DsseEnvelope }
  captures: {
    description: string
    device: { id: string, seed: string, publicKey: string, saltSecret: string }
    /** Leaves of the anchored batch, in order: envelopes (hex); the captures' records among them. */
    batchEnvelopes: string[]
    anchor: BundleAnchor
    chain: { chainId: number, registry: string }
    /** The captures file, each entry with its proof (files data/0001.csv and data/0002.csv of `files`). */
    file: CapturesFile
  }
}

/** The captures vector: two files of the dataset kept by a device, their records in a batch of 4, anchored. */
function captureVectors (): LineageVectors['captures'] {
  const seed = Uint8Array.from({ length: 32 }, (_, i) => 0x60 + i)
  const saltSecret = Uint8Array.from({ length: 32 }, (_, i) => 0x80 + i)
  const signer = createSigner(seed)
  const deviceId = 'vector-cam'
  const kept = VECTOR_FILES.filter(f => f.name.startsWith('data/'))
  const records: SignedRecord[] = []
  let prev: Uint8Array = new Uint8Array(32)
  kept.forEach((f, i) => {
    const seq = i + 1
    const r = signRecord({
      deviceId, boot: 1, seq, timeMs: 1_767_323_045_000 + seq * 1000, prev,
      body: { kind: 'data-capture', commitment: commitSample(deriveSalt(saltSecret, seq), sha256(f.content)), sizeBytes: f.content.length, dataset: 'vector-dataset', label: 'row', capturedAtMs: 1_767_323_045_000 }
    }, signer)
    records.push(r)
    prev = r.hash
  })
  // Two leaves of other devices around them, so the proofs have siblings on both sides.
  const batch = [new TextEncoder().encode('a record of another device'), ...records.map(r => r.envelope), new TextEncoder().encode('and one more')]
  const tree = new MerkleTree(batch.map(e => hashLeaf(e)))
  const checkpoint = { origin: 'vector-gw/batch/3', size: tree.size, rootHash: tree.root() }
  const chain = { chainId: 31337, registry: '0x5FbDB2315678afecb367f032d93F642f64180aa3' }
  const anchor: BundleAnchor = {
    root: toHex(tree.root()), size: tree.size, onChainBatchId: '3', txHash: '0x' + '5a'.repeat(32), blockNumber: 12, blockHash: '0x' + '6b'.repeat(32),
    firstRecordTimeMs: 1_767_323_046_000, lastRecordTimeMs: 1_767_323_047_000, metadataHash: '7c'.repeat(32)
  }
  const file = buildCaptures(records.map((r, i) => {
    const index = i + 1
    const extra = [['device', deviceId], ['seq', String(r.record.seq)], ['gateway-batch', '3'], ['chain-id', String(chain.chainId)], ['contract', chain.registry],
      ['batch-id', anchor.onChainBatchId], ['tx-hash', anchor.txHash], ['block', String(anchor.blockNumber)], ['block-hash', anchor.blockHash]]
    return {
      name: (kept[i] as { name: string }).name, record: r, salt: deriveSalt(saltSecret, r.record.seq),
      proof: formatProof({ index, hashes: tree.proveInclusion(index), checkpoint, extra: extra.map(([key, value]) => ({ key: key as string, value: value as string })) })
    }
  }))
  return {
    description: 'data/0001.csv and data/0002.csv kept by vector-cam (seq 1, 2), leaves 1 and 2 of a batch of 4 anchored as registry batch 3',
    device: { id: deviceId, seed: toHex(seed), publicKey: toHex(signer.publicKey), saltSecret: toHex(saltSecret) },
    batchEnvelopes: batch.map(e => toHex(e)),
    anchor,
    chain,
    file
  }
}

/** The dataset of the vectors: names that exercise the byte order, an empty file, a folder. */
export const VECTOR_FILES: Array<{ name: string, content: Buffer }> = [
  { name: 'README', content: Buffer.from('edge provenance test dataset\n') },
  { name: 'data/0001.csv', content: Buffer.from('x,y\n1,2\n') },
  { name: 'data/0002.csv', content: Buffer.from('x,y\n3,4\n5,6\n') },
  { name: 'empty', content: Buffer.alloc(0) },
  { name: 'notes.tmp', content: Buffer.from('ignored scratch\n') },
  { name: '\uff61', content: Buffer.from('halfwidth ideographic full stop\n') },
  { name: '\u{1f600}', content: Buffer.from('emoji\n') }
]

const CANONICAL_INPUTS = [
  '{"b":2,"a":1,"c":{"z":null,"y":[true,false]}}',
  // RFC 8785 §3.2.2.3 number forms
  '[1e21,1e-7,0.000001,-0,100,1.5e300,5e-324,123456789012345680000]',
  // §3.2.3: keys sorted by UTF-16 code units (U+20AC before U+1F600's high surrogate D83D)
  '{"\\u20ac":1,"\\ud83d\\ude00":2,"\\r":3,"1":4,"\\u00e9":5}',
  '{"s":"tab\\tquote\\"slash/ctl\\u001f"}'
]

/** Builds every vector from the code (writes nothing). */
export async function buildLineageVectors (): Promise<LineageVectors> {
  const dir = await mkdtemp(join(tmpdir(), 'lineage-vectors-'))
  try {
    for (const f of VECTOR_FILES) {
      await mkdir(join(dir, f.name, '..'), { recursive: true })
      await writeFile(join(dir, f.name), f.content)
    }
    const manifests: LineageVectors['manifests'] = []
    for (const [description, shardSizeBytes, ignore] of [
      ['files, *.tmp ignored', null, ['*.tmp']],
      ['shards of 8 bytes, nothing ignored', 8, []]
    ] as Array<[string, number | null, string[]]>) {
      const manifest = await hashTree(dir, { name: 'vector-dataset', ignore, workers: 1, ...(shardSizeBytes === null ? {} : { shardSizeBytes }) })
      manifests.push({ description, shardSizeBytes, ignore, manifest })
    }
    const seed = Uint8Array.from({ length: 32 }, (_, i) => 0x40 + i)
    const signer = createSigner(seed)
    const statement = buildTrainingStatement({
      datasets: [{ name: 'vector-dataset', version: '1.0.0', digest: { sha256: (manifests[0] as { manifest: Manifest }).manifest.subject[0].digest.sha256 } }],
      baseModelHash: '11'.repeat(32),
      outputModel: { name: 'detector', hash: '22'.repeat(32), manifestHash: '33'.repeat(32), folderDigest: null },
      hyperparameters: { learningRate: 0.001, epochs: 20, batchSize: 64, optimizer: { name: 'adam', betas: [0.9, 0.999] }, augment: true },
      codeRevision: 'git:0123456789abcdef0123456789abcdef01234567',
      environment: { python: '3.11.9', torch: '2.3.1', accelerator: 'cpu' },
      startedAt: '2026-01-02T03:04:05Z',
      finishedAt: '2026-01-02T04:05:06Z'
    })
    const payload = encodeStatement(statement)
    const envelope = signTrainingStatement(statement, signer)
    const paeCases: Array<[string, Buffer]> = [
      ['application/vnd.in-toto+json', Buffer.from('{}')],
      ['http://example.com/HelloWorld', Buffer.from('hello world')]
    ]
    return {
      source: 'docs/LINEAGE.md §4 (OpenSSF model-signing v1.0 manifest layout; RFC 8785; DSSE v1 protocol.md)',
      description: 'Generated by scripts/gen-lineage-vectors.ts; do not edit by hand.',
      files: VECTOR_FILES.map(f => ({ name: f.name, contentHex: f.content.toString('hex') })),
      manifests,
      canonicalJson: CANONICAL_INPUTS.map(input => ({ input, canonical: canonicalJson(JSON.parse(input) as JsonValue) })),
      pae: paeCases.map(([payloadType, p]) => ({ payloadType, payloadHex: p.toString('hex'), paeHex: Buffer.from(pae(payloadType, p)).toString('hex') })),
      trainingRun: {
        seed: Buffer.from(seed).toString('hex'),
        publicKey: Buffer.from(signer.publicKey).toString('hex'),
        payload: Buffer.from(payload).toString('utf8'),
        statementHash: statementHashOf(payload),
        envelope
      },
      captures: captureVectors()
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

/** The exact bytes of test/vectors/lineage.json. */
export function serializeLineageVectors (v: LineageVectors): string {
  return JSON.stringify(v, null, 2) + '\n'
}

if (isEntryPoint(import.meta.url)) {
  const v = await buildLineageVectors()
  writeFileSync(LINEAGE_VECTORS_PATH, serializeLineageVectors(v))
  process.stdout.write(`${LINEAGE_VECTORS_PATH}\n`)
}
