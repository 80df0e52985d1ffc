// The model identity vectors (docs/PROTOCOL.md §11) are current, and manifestHash is recomputed
// from the rules of the doc alone: tensor bytes, line format, order, escaping, SHA-256.
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import t from 'tap'
import { MANIFEST_VECTORS, buildManifestVectors } from '../../scripts/gen-manifest-vectors.js'
import { makeClassifierWeights } from '../helpers/onnx-models.js'

interface Vector { name: string, model: string, fileHash: string, graphHash: string, manifestText: string, manifestHash: string, initializers: Array<{ name: string, dtype: string, dims: number[], sha256: string }> }
const vectors = (JSON.parse(readFileSync(MANIFEST_VECTORS, 'utf8')) as { vectors: Vector[] }).vectors
const sha = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex')

t.test('behavior: test/vectors/manifest.json is what the generator writes', async t => {
  t.equal(readFileSync(MANIFEST_VECTORS, 'utf8'), buildManifestVectors())
})

t.test('behavior: manifestHash recomputed from the doc rules matches; raw_data and float_data storage give one identity', async t => {
  const { W, b } = makeClassifierWeights({ seed: 7, inputSize: 3, classes: 2 })
  const le = (a: Float32Array): Uint8Array => { const out = Buffer.alloc(a.length * 4); a.forEach((v, i) => out.writeFloatLE(v, i * 4)); return out }
  for (const v of vectors) {
    t.equal(sha(Buffer.from(v.model, 'base64')), v.fileHash, `${v.name}: fileHash is SHA-256 of the file`)
    const byName = new Map(v.initializers.map(i => [i.name, i]))
    t.equal(byName.get('W')?.sha256, sha(le(W)), 'tensor hash: SHA-256 of the little-endian element bytes')
    t.equal(byName.get('b')?.sha256, sha(le(b)))
    const escape = (n: string): string => n.replace(/[\\\t\n\r]/g, c => ({ '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' })[c] as string)
    const lines = [...v.initializers].sort((x, y) => Buffer.compare(Buffer.from(x.name), Buffer.from(y.name)))
      .map(i => `${escape(i.name)}\t${i.dtype}\t${i.dims.join(',')}\t${i.sha256}\n`)
    const text = `graph\t${v.graphHash}\n` + lines.join('')
    t.equal(text, v.manifestText)
    t.equal(sha(Buffer.from(text, 'utf8')), v.manifestHash)
  }
  t.equal(vectors[0]?.manifestHash, vectors[1]?.manifestHash, 'where the weights are stored does not change the identity')
  t.not(vectors[0]?.fileHash, vectors[1]?.fileHash, 'the files differ')
})

t.test('behavior: the example in docs/PROTOCOL.md §11 is the first vector', async t => {
  const doc = readFileSync(new URL('../../docs/PROTOCOL.md', import.meta.url), 'utf8')
  const v = vectors[0] as Vector
  t.ok(doc.includes(`manifestHash = ${v.manifestHash}`))
  for (const line of v.manifestText.split('\n').filter(l => l !== '')) t.ok(doc.includes(line.replaceAll('\t', '\\t') + '\\n'), line.slice(0, 24))
})
