// The tip tree vectors (docs/PROTOCOL.md §7.10) are current, and the code's proofs verify, and fail,
// as the doc says: each attack on a proof is refused with the documented code.
import { readFileSync } from 'node:fs'
import fc from 'fast-check'
import t from 'tap'
import { TIP_VECTORS, buildTipVectors, spliceTipDoc } from '../../scripts/gen-tip-vectors.js'
import {
  ProtocolError, TipTree, formatTipProof, parseCheckpoint, parseTipProof, tipRootOfCheckpoint, verifyTipProof, type TipProof
} from '../../protocol/index.js'

const built = buildTipVectors()
const vectors = JSON.parse(built.json) as { root: string, checkpoint: string, proofs: Array<{ device: string, kind: string, file: string }> }
const root = Buffer.from(vectors.root, 'hex')

t.test('behavior: test/vectors/tips.json and the PROTOCOL.md §7.10 block are what the generator writes', async t => {
  t.equal(readFileSync(TIP_VECTORS, 'utf8'), built.json)
  const doc = readFileSync(new URL('../../docs/PROTOCOL.md', import.meta.url), 'utf8')
  t.equal(spliceTipDoc(doc, built.markdown), doc)
})

t.test('behavior: the checkpoint carries the tip root; each vector proof verifies to present or proven absent', async t => {
  t.same(tipRootOfCheckpoint(parseCheckpoint(vectors.checkpoint).extensions), root)
  t.same(vectors.proofs.map(p => p.kind), ['present', 'absent', 'absent-other'])
  for (const v of vectors.proofs) {
    const file = parseTipProof(v.file)
    t.equal(file.checkpoint, vectors.checkpoint)
    const tip = verifyTipProof(file.proof, root)
    t.equal(tip === undefined, v.kind !== 'present', v.device)
  }
  t.equal(tipRootOfCheckpoint(undefined), undefined, 'a checkpoint without the line says nothing')
  t.throws(() => tipRootOfCheckpoint(['edge-provenance/tips/v1 ' + root.toString('base64'), 'edge-provenance/tips/v1 ' + root.toString('base64')]), { code: 'MERKLE_INVALID_PROOF' })
})

t.test('behavior: forged proofs fail: altered tip, another device\'s proof, a proof against another root, an absence forged for a present device', async t => {
  const tree = new TipTree()
  for (let i = 0; i < 50; i++) tree.set(`dev-${i}`, i, Buffer.alloc(32, i))
  const r = tree.root()
  const p = tree.prove('dev-7')
  t.same(verifyTipProof(p, r), { seq: 7, hash: new Uint8Array(Buffer.alloc(32, 7)) })
  const forged: TipProof = { ...p, terminal: { kind: 'present', tip: { seq: 9, hash: Buffer.alloc(32, 7) } } }
  t.throws(() => verifyTipProof(forged, r), ProtocolError, 'a later seq claimed')
  t.throws(() => verifyTipProof(forged, r), { code: 'MERKLE_ROOT_MISMATCH' })
  t.throws(() => verifyTipProof({ ...p, deviceId: 'dev-8' }, r), { code: 'MERKLE_ROOT_MISMATCH' }, 'dev-7\'s proof presented for dev-8')
  const older = tree.snapshot()
  tree.set('dev-7', 70, Buffer.alloc(32, 70))
  t.throws(() => verifyTipProof(older.prove('dev-7'), tree.root()), { code: 'MERKLE_ROOT_MISMATCH' }, 'a proof of an older root')
  t.same(verifyTipProof(older.prove('dev-7'), older.root())?.seq, 7, 'the snapshot kept the old tree')
  t.throws(() => verifyTipProof({ ...p, terminal: { kind: 'absent' } }, r), { code: 'MERKLE_ROOT_MISMATCH' }, 'absence claimed for a present device')
  const absent = tree.prove('never-seen')
  t.equal(verifyTipProof(absent, tree.root()), undefined, 'a device never stored is proven absent')
  t.throws(() => verifyTipProof({ ...p, siblings: [...p.siblings, Buffer.alloc(32)] }, r), { code: 'MERKLE_ROOT_MISMATCH' }, 'a padded path')
  t.throws(() => verifyTipProof({ ...p, siblings: Array.from({ length: 257 }, () => Buffer.alloc(32)) }, r), { code: 'MERKLE_INVALID_PROOF' })
  t.equal(new TipTree().root().every(b => b === 0), true, 'the empty tree\'s root is EMPTY')
})

t.test('behavior: hostile proof files are refused with MERKLE_INVALID_PROOF', async t => {
  const good = vectors.proofs[0]?.file as string
  const bad = [
    good.replace('edge-provenance/tip-proof@v1', 'edge-provenance/tip-proof@v2'),
    good.replace(/\ntip (\d+)/, '\ntip 0$1'),
    good.replace(/\ntip \d+ [0-9a-f]+/, '\ntip 1 ABC'),
    good.replace(/\n\n[^]*$/, '\n'),
    good.replace('device rpi5-cam-17', 'device bad/id'),
    good.replace(/\n([A-Za-z0-9+/]{43}=)\n/, '\n$1x\n'),
    'x'.repeat(90 * 1024)
  ]
  for (const b of bad) t.throws(() => parseTipProof(b), { code: 'MERKLE_INVALID_PROOF' }, b.slice(0, 40))
  t.equal(formatTipProof(parseTipProof(good)), good)
})

t.test('behavior: any text, and any line of a valid proof replaced, parses to a proof or fails with MERKLE_INVALID_PROOF only', async t => {
  const good = (vectors.proofs[2]?.file as string).split('\n')
  const onlyProtocolErrors = (text: string): boolean => {
    try {
      const file = parseTipProof(text)
      try { verifyTipProof(file.proof, root) } catch (e) { if (!(e instanceof ProtocolError)) throw e }
    } catch (e) {
      if (!(e instanceof ProtocolError) || (e.code !== 'MERKLE_INVALID_PROOF' && e.code !== 'MERKLE_ROOT_MISMATCH')) throw e
    }
    return true
  }
  fc.assert(fc.property(fc.string({ maxLength: 400 }), onlyProtocolErrors), { numRuns: 300 })
  fc.assert(fc.property(fc.nat(good.length - 1), fc.string({ maxLength: 120 }), (i, line) => onlyProtocolErrors(good.map((l, j) => j === i ? line : l).join('\n'))), { numRuns: 300 })
  t.pass('no other exception')
})
