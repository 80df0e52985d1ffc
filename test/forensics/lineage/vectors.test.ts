// test/vectors/lineage.json is what scripts/gen-lineage-vectors.ts produces from the code now, and
// each value re-derives from the bytes with node:crypto and noble alone (docs/LINEAGE.md §4).
import t from 'tap'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { verifySignature } from '../../../protocol/index.js'
import { buildLineageVectors, serializeLineageVectors, LINEAGE_VECTORS_PATH, type LineageVectors } from '../../../scripts/gen-lineage-vectors.js'

const committed = readFileSync(LINEAGE_VECTORS_PATH, 'utf8')
const v = JSON.parse(committed) as LineageVectors
const sha = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest()

t.test('behavior: the committed vectors equal a fresh run of the generator', async t => {
  t.ok(committed === serializeLineageVectors(await buildLineageVectors()), 'run node --import tsx scripts/gen-lineage-vectors.ts after a format change')
})

t.test('behavior: each manifest digest is SHA-256 over the file digests in UTF-8 name order', async t => {
  const files = new Map(v.files.map(f => [f.name, Buffer.from(f.contentHex, 'hex')]))
  for (const m of v.manifests) {
    const names = [...files.keys()].filter(n => !m.ignore.some(p => n.endsWith(p.replace('*', '')))).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
    const digests: Buffer[] = []
    for (const n of names) {
      const c = files.get(n) as Buffer
      if (m.shardSizeBytes === null) { digests.push(sha(c)); continue }
      if (c.length === 0) digests.push(sha(c))
      for (let s = 0; s < c.length; s += m.shardSizeBytes) digests.push(sha(c.subarray(s, s + m.shardSizeBytes)))
    }
    t.same(m.manifest.predicate.resources.map(r => r.digest), digests.map(d => d.toString('hex')), m.description)
    t.equal(m.manifest.subject[0].digest.sha256, sha(Buffer.concat(digests)).toString('hex'), m.description)
  }
})

t.test('behavior: the PAE vectors and the training run verify from their bytes', async t => {
  for (const p of v.pae) {
    const body = Buffer.from(p.payloadHex, 'hex')
    t.equal(p.paeHex, Buffer.concat([Buffer.from(`DSSEv1 ${Buffer.byteLength(p.payloadType)} ${p.payloadType} ${body.length} `), body]).toString('hex'))
  }
  const r = v.trainingRun
  const payload = Buffer.from(r.envelope.payload, 'base64')
  t.equal(payload.toString('utf8'), r.payload)
  t.equal(r.statementHash, sha(payload).toString('hex'))
  const message = Buffer.concat([Buffer.from(`DSSEv1 28 application/vnd.in-toto+json ${payload.length} `), payload])
  t.ok(verifySignature(Buffer.from(r.envelope.signatures[0]?.sig as string, 'base64'), message, Buffer.from(r.publicKey, 'hex'), 'noble'))
  t.equal(r.envelope.signatures[0]?.keyid, r.publicKey)
})

t.test('behavior: each capture vector\'s proof leads from its record to the anchored root (RFC 9162 §2.1.3.2, re-derived with node:crypto), and the captures check accepts it', async t => {
  const c = v.captures
  const node = (l: Buffer, r: Buffer): Buffer => sha(Buffer.concat([Buffer.from([1]), l, r]))
  for (const entry of c.file.captures) {
    // The tlog-proof text: header, extra, index, hashes, empty line, checkpoint (docs/PROTOCOL.md §7.5).
    const lines = (entry.proof as string).split('\n')
    t.equal(lines[0], 'c2sp.org/tlog-proof@v1')
    const extra = Buffer.from((lines[1] as string).replace(/^extra /, ''), 'base64').toString('utf8')
    t.match(extra, new RegExp(`^device vector-cam\nseq \\d+\n.*batch-id ${c.anchor.onChainBatchId}\ntx-hash ${c.anchor.txHash}\n`, 's'))
    const index = Number((lines[2] as string).replace(/^index /, ''))
    const path = lines.slice(3, lines.indexOf('')).map(h => Buffer.from(h, 'base64'))
    t.equal(c.batchEnvelopes[index], entry.envelope, 'the proof\'s index is the record\'s leaf')
    // RFC 9162 §2.1.3.2 for a tree of c.anchor.size leaves.
    let fn = index
    let sn = c.anchor.size - 1
    let r = sha(Buffer.concat([Buffer.from([0]), Buffer.from(entry.envelope, 'hex')]))
    for (const p of path) {
      if (fn % 2 === 1 || fn === sn) {
        r = node(p, r)
        while (fn % 2 === 0 && fn !== 0) { fn >>= 1; sn >>= 1 }
      } else r = node(r, p)
      fn >>= 1
      sn >>= 1
    }
    t.equal(r.toString('hex'), c.anchor.root, entry.name)
  }
  const { checkCaptures } = await import('../../../forensics/lineage/captures.js')
  const files = v.manifests[0]!.manifest
  const key = { publicKey: Buffer.from(c.device.publicKey, 'hex'), revoked: false }
  const checks = await checkCaptures(files, c.file, async id => id === c.device.id ? key : undefined, {
    requireProofs: true, anchors: { ...c.chain, authoritative: true, read: async () => new Map([[c.anchor.root, c.anchor]]) }
  })
  t.same(checks.map(x => [x.name, x.ok, x.proof, x.anchor?.batchId]), [['data/0001.csv', true, 'verified', '3'], ['data/0002.csv', true, 'verified', '3']])
})
