// Dataset and model-folder manifests (docs/LINEAGE.md §1): the OMS v1.0 digest rule, name order,
// ignore patterns, shards, the symlink rule, unreadable and special files, many small files, and
// verification naming each added, removed and changed file.
import t, { type Test } from 'tap'
import fc from 'fast-check'
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdir, symlink, writeFile, unlink, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { makeTempDir } from '../../helpers/tmp.js'
import { ForensicsError } from '../../../forensics/errors.js'
import {
  hashTree, parseManifest, encodeManifest, verifyTree, rootDigest, compareNames, compileIgnore
} from '../../../forensics/lineage/index.js'

const sha = (b: string | Buffer): string => createHash('sha256').update(b).digest('hex')

async function tree (t: Parameters<typeof makeTempDir>[0], files: Record<string, string | Buffer>): Promise<string> {
  const dir = await makeTempDir(t, 'lineage-')
  for (const [name, content] of Object.entries(files)) {
    await mkdir(join(dir, name, '..'), { recursive: true })
    await writeFile(join(dir, name), content)
  }
  return dir
}

async function rejectsWith (t: Test, p: Promise<unknown>, code: string): Promise<void> {
  const e = await p.then(() => undefined, (x: unknown) => x)
  t.ok(e instanceof ForensicsError, `${code}: a ForensicsError`)
  t.equal((e as ForensicsError).code, code)
}

t.test('behavior: the digest is SHA-256 over the raw per-file digests in UTF-8 name order (OMS v1.0)', async t => {
  const dir = await tree(t, { 'b.txt': 'bee', 'a.txt': 'ay', 'sub/c.bin': Buffer.alloc(3_000_000, 1), empty: '' })
  const m = await hashTree(dir, { workers: 2, name: 'ds' })
  t.same(m.predicate.resources.map(r => r.name), ['a.txt', 'b.txt', 'empty', 'sub/c.bin'])
  t.same(m.predicate.resources.map(r => r.size), [2, 3, 0, 3_000_000])
  t.equal(m.predicate.resources[0]?.digest, sha('ay'))
  const expected = createHash('sha256')
  for (const x of ['ay', 'bee', '', Buffer.alloc(3_000_000, 1)]) expected.update(createHash('sha256').update(x).digest())
  t.equal(m.subject[0].digest.sha256, expected.digest('hex'))
  t.same(m.subject[0].name, 'ds')
  t.equal(m._type, 'https://in-toto.io/Statement/v1')
  t.equal(m.predicateType, 'https://model_signing/signature/v1.0')
  t.same(m.predicate.serialization, { method: 'files', hash_type: 'sha256', allow_symlinks: false, ignore_paths: [] })
  // Same result whatever the number of workers.
  t.equal((await hashTree(dir, { workers: 1, name: 'ds' })).subject[0].digest.sha256, m.subject[0].digest.sha256)
  t.same(parseManifest(Buffer.from(encodeManifest(m))), m, 'round trip through the file form')
})

t.test('behavior: names sort by UTF-8 bytes, not UTF-16 code units', async t => {
  // U+FF61 is one UTF-16 unit (sorts after the surrogate pair of U+1F600 in JS), but its UTF-8
  // bytes EF BD A1 come before F0 9F 98 80.
  t.ok(compareNames('\uff61', '\u{1f600}') < 0)
  t.ok('\uff61' > '\u{1f600}', 'JavaScript order differs')
  const dir = await tree(t, { '\u{1f600}': 'x', '\uff61': 'y', Z: 'z', a: 'a' })
  const m = await hashTree(dir)
  t.same(m.predicate.resources.map(r => r.name), ['Z', 'a', '\uff61', '\u{1f600}'])
  // The comparison encodes nothing: it must agree with the UTF-8 bytes on any well-formed names.
  fc.assert(fc.property(fc.string({ unit: 'grapheme' }), fc.string({ unit: 'grapheme' }), (a, b) =>
    Math.sign(compareNames(a, b)) === Math.sign(Buffer.compare(Buffer.from(a), Buffer.from(b)))), { numRuns: 3000 })
})

t.test('behavior: a folder hashed while it is listed gives the manifest of its sorted names, shards in start order', async t => {
  // More files than one chunk of the walk, of sizes 0..40 bytes, in shards of 16: the pool gets
  // ranges in listing order and the manifest must still be in name order, each file's shards in order.
  const dir = await makeTempDir(t, 'lineage-stream-')
  const files: Record<string, Buffer> = {}
  for (let i = 0; i < 700; i++) files[`${i % 7}/${(i * 7919) % 1000}`] = Buffer.alloc(i % 41, i)
  for (const [name, content] of Object.entries(files)) {
    await mkdir(join(dir, name, '..'), { recursive: true })
    await writeFile(join(dir, name), content)
  }
  const m = await hashTree(dir, { shardSizeBytes: 16, workers: 2 })
  const expected: string[] = []
  for (const name of Object.keys(files).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))) {
    const c = files[name] as Buffer
    if (c.length === 0) expected.push(`${name}:0:0=${sha('')}`)
    for (let s = 0; s < c.length; s += 16) expected.push(`${name}:${s}:${Math.min(s + 16, c.length)}=${sha(c.subarray(s, s + 16))}`)
  }
  t.same(m.predicate.resources.map(r => `${r.name}=${r.digest}`), expected)
  t.equal((await hashTree(dir, { shardSizeBytes: 16, workers: 1 })).subject[0].digest.sha256, m.subject[0].digest.sha256, 'one worker, same digest')
})

t.test('behavior: ignore patterns leave out names, folders and globs, and are recorded', async t => {
  const ignored = compileIgnore(['*.tmp', '.git', 'data/raw/**', 'x?.log'])
  t.ok(ignored('a.tmp')); t.ok(ignored('deep/b.tmp')); t.ok(ignored('.git/config')); t.ok(ignored('sub/.git/x'))
  t.ok(ignored('data/raw/a/b')); t.notOk(ignored('other/data/raw/a')); t.ok(ignored('x1.log')); t.notOk(ignored('x12.log'))
  t.notOk(ignored('a.tmpx'))
  const dir = await tree(t, { 'keep.txt': 'k', 'junk.tmp': 'j', '.git/HEAD': 'h', 'data/raw/1': '1', 'data/clean/1': '2' })
  const m = await hashTree(dir, { ignore: ['*.tmp', '.git', 'data/raw'] })
  t.same(m.predicate.resources.map(r => r.name), ['data/clean/1', 'keep.txt'])
  t.same(m.predicate.serialization.ignore_paths, ['*.tmp', '.git', 'data/raw'])
  // verify uses the recorded patterns: a change to an ignored file is not a difference.
  await writeFile(join(dir, 'junk.tmp'), 'changed')
  t.equal((await verifyTree(dir, m)).equal, true)
})

t.test('behavior: shards cover every byte once, in OMS name:start:end form, in start order', async t => {
  const big = Buffer.alloc(25, 7)
  const dir = await tree(t, { a: 'hello', 'a.b': big, e: '' })
  const m = await hashTree(dir, { shardSizeBytes: 10, workers: 2 })
  t.same(m.predicate.resources.map(r => r.name), ['a:0:5', 'a.b:0:10', 'a.b:10:20', 'a.b:20:25', 'e:0:0'])
  t.equal(m.predicate.resources[1]?.algorithm, 'sha256-sharded-10')
  t.equal(m.predicate.resources[3]?.digest, sha(big.subarray(20)))
  t.equal(m.subject[0].digest.sha256, rootDigest(m.predicate.resources))
  t.same(parseManifest(Buffer.from(encodeManifest(m))), m)
  await writeFile(join(dir, 'a.b'), Buffer.concat([big.subarray(0, 12), Buffer.from('X'), big.subarray(13)]))
  const d = await verifyTree(dir, m)
  t.same([d.equal, d.added, d.removed, d.changed], [false, [], [], ['a.b']])
})

t.test('behavior: verify names every added, removed and changed file', async t => {
  const dir = await tree(t, { keep: 'k', gone: 'g', edit: 'e1', 'sub/edit2': 'x' })
  const m = await hashTree(dir)
  await unlink(join(dir, 'gone'))
  await writeFile(join(dir, 'edit'), 'e2')
  await writeFile(join(dir, 'sub/edit2'), 'y')
  await writeFile(join(dir, 'new'), 'n')
  const d = await verifyTree(dir, m)
  t.equal(d.equal, false)
  t.same(d.added, ['new'])
  t.same(d.removed, ['gone'])
  t.same(d.changed, ['edit', 'sub/edit2'])
  t.not(d.actualRoot, d.expectedRoot)
})

t.test('behavior: a renamed file shows as one removed and one added', async t => {
  const dir = await tree(t, { a: 'same' })
  const m = await hashTree(dir)
  await rm(join(dir, 'a'))
  await writeFile(join(dir, 'b'), 'same')
  const d = await verifyTree(dir, m)
  t.same([d.added, d.removed, d.changed], [['b'], ['a'], []])
})

t.test('error: a symlink is refused by default; --follow-symlinks hashes its target; a loop is refused', async t => {
  const dir = await tree(t, { 'real.txt': 'r', 'folder/in.txt': 'i' })
  await symlink(join(dir, 'real.txt'), join(dir, 'link.txt'))
  await rejectsWith(t, hashTree(dir), 'LINEAGE_SYMLINK')
  const m = await hashTree(dir, { followSymlinks: true })
  t.same(m.predicate.resources.map(r => [r.name, r.digest]), [['folder/in.txt', sha('i')], ['link.txt', sha('r')], ['real.txt', sha('r')]])
  t.equal(m.predicate.serialization.allow_symlinks, true)
  await symlink(dir, join(dir, 'folder', 'loop'))
  await rejectsWith(t, hashTree(dir, { followSymlinks: true }), 'LINEAGE_SYMLINK')
  await unlink(join(dir, 'folder', 'loop'))
  await symlink(join(dir, 'missing'), join(dir, 'dangling'))
  await rejectsWith(t, hashTree(dir, { followSymlinks: true }), 'LINEAGE_UNREADABLE')
})

t.test('error: a FIFO is not read (it could block for ever) but refused with a code', async t => {
  const dir = await tree(t, { a: 'a' })
  execFileSync('mkfifo', [join(dir, 'pipe')])
  await rejectsWith(t, hashTree(dir), 'LINEAGE_NOT_REGULAR_FILE')
})

t.test('error: an unreadable file is named with LINEAGE_UNREADABLE', async t => {
  const dir = await tree(t, { a: 'a' })
  // Given files: one vanished between listing and hashing is the same failure as EACCES (tests
  // run as root here, where chmod 000 does not stop a read).
  await rejectsWith(t, hashTree(dir, { files: [join(dir, 'a'), join(dir, 'missing')] }), 'LINEAGE_UNREADABLE')
  await rejectsWith(t, hashTree(dir, { files: [join(dir, '../etc/passwd')] }), 'LINEAGE_PATH_OUTSIDE_ROOT')
  await rejectsWith(t, hashTree(dir, { files: ['/etc/passwd'] }), 'LINEAGE_PATH_OUTSIDE_ROOT')
  // Attack: a folder link inside the root leads outside it; the file itself is not a link.
  await symlink('/etc', join(dir, 'etc-link'))
  await rejectsWith(t, hashTree(dir, { files: [join(dir, 'etc-link', 'hostname')] }), 'LINEAGE_SYMLINK')
  await writeFile(join(dir, '..dots'), 'a file whose name starts with two dots is inside')
  t.equal((await hashTree(dir, { files: [join(dir, '..dots')] })).predicate.resources[0]?.name, '..dots')
  await rejectsWith(t, hashTree(join(dir, 'nope')), 'LINEAGE_UNREADABLE')
  if (process.getuid?.() !== 0) {
    const { chmod } = await import('node:fs/promises')
    await chmod(join(dir, 'a'), 0o000)
    await rejectsWith(t, hashTree(dir), 'LINEAGE_UNREADABLE')
  }
})

t.test('behavior: 20 000 small files hash in one pass with bounded batches', async t => {
  const dir = await makeTempDir(t, 'lineage-many-')
  const N = 20_000
  for (let d = 0; d < 20; d++) {
    await mkdir(join(dir, `d${d}`))
    await Promise.all(Array.from({ length: N / 20 }, async (_, i) => await writeFile(join(dir, `d${d}`, `f${i}`), `${d}/${i}`)))
  }
  const m = await hashTree(dir, { workers: 2 })
  t.equal(m.predicate.resources.length, N)
  t.equal(m.predicate.resources.find(r => r.name === 'd3/f7')?.digest, sha('3/7'))
  t.ok(m.predicate.resources.every((r, i, all) => i === 0 || compareNames((all[i - 1] as typeof r).name, r.name) < 0), 'sorted')
  t.equal((await verifyTree(dir, m)).equal, true)
})

// ---------------------------------------------------------------------------------------------
// Malformed manifests: one code, never a crash.

t.test('error: truncated, garbage, huge and inconsistent manifests are MANIFEST_INVALID or LINEAGE_INPUT_TOO_LARGE', async t => {
  const dir = await tree(t, { a: 'a', b: 'b' })
  const good = encodeManifest(await hashTree(dir))
  const expectCode = (bytes: Uint8Array | string, code: string, what: string, max?: number): void => {
    try {
      parseManifest(typeof bytes === 'string' ? Buffer.from(bytes) : bytes, max)
      t.fail(`${what}: accepted`)
    } catch (e) {
      t.ok(e instanceof ForensicsError, `${what}: ForensicsError`)
      t.equal((e as ForensicsError).code, code, what)
    }
  }
  for (let cut = 0; cut < good.trimEnd().length; cut += 37) expectCode(good.slice(0, cut), 'MANIFEST_INVALID', `truncated at ${cut}`)
  expectCode(new Uint8Array([0xff, 0xfe, 0x00, 0x01]), 'MANIFEST_INVALID', 'binary garbage')
  expectCode('null', 'MANIFEST_INVALID', 'null')
  expectCode('[]', 'MANIFEST_INVALID', 'array')
  expectCode('"x"', 'MANIFEST_INVALID', 'string')
  expectCode(good, 'LINEAGE_INPUT_TOO_LARGE', 'over the limit', 100)
  const edit = (f: (m: any) => void): string => { const m = JSON.parse(good); f(m); return JSON.stringify(m) }
  expectCode(edit(m => { m.predicate.resources[0].digest = sha('other') }), 'MANIFEST_INVALID', 'root digest does not match resources')
  expectCode(edit(m => { m.predicate.resources.reverse() }), 'MANIFEST_INVALID', 'unsorted')
  expectCode(edit(m => { m.predicate.resources[1] = m.predicate.resources[0] }), 'MANIFEST_INVALID', 'duplicate')
  expectCode(edit(m => { m.predicate.resources[0].name = '../x' }), 'MANIFEST_INVALID', 'path escape')
  expectCode(edit(m => { m.predicate.resources[0].name = '/abs' }), 'MANIFEST_INVALID', 'absolute')
  expectCode(edit(m => { m.predicate.resources[0].size = -1 }), 'MANIFEST_INVALID', 'negative size')
  expectCode(edit(m => { m.predicate.resources[0].algorithm = 'md5' }), 'MANIFEST_INVALID', 'algorithm')
  expectCode(edit(m => { m.predicateType = 'x' }), 'MANIFEST_INVALID', 'predicate type')
  expectCode(edit(m => { m.subject = [] }), 'MANIFEST_INVALID', 'no subject')
  expectCode(edit(m => { m.predicate.serialization.method = 'tar' }), 'MANIFEST_INVALID', 'method')
  expectCode(edit(m => { m.predicate.serialization.ignore_paths = [1] }), 'MANIFEST_INVALID', 'ignore_paths')
  expectCode(edit(m => { m.predicate.resources = 'x' }), 'MANIFEST_INVALID', 'resources')
  // Deep nesting: JSON.parse handles it; the shape check refuses it without recursion.
  expectCode('['.repeat(100_000) + ']'.repeat(100_000), 'MANIFEST_INVALID', 'deep nesting')
  const msg = (() => { try { parseManifest(Buffer.from(edit(m => { m.predicate.resources[0].size = 'x'; m.predicate.resources[1].digest = 'zz' }))) } catch (e) { return (e as Error).message } return '' })()
  t.match(msg, /resources\[0\]\.size/)
  t.match(msg, /resources\[1\]\.digest/)
})

t.test('behavior: a model folder manifest covers the ONNX file and its external-data files', async t => {
  const dir = await tree(t, { 'model.onnx': 'graph with external refs', 'model.onnx.data': Buffer.alloc(4096, 1), 'weights/conv1.bin': Buffer.alloc(100, 2) })
  const m = await hashTree(dir, { name: 'detector' })
  t.same(m.predicate.resources.map(r => r.name), ['model.onnx', 'model.onnx.data', 'weights/conv1.bin'])
  await writeFile(join(dir, 'weights/conv1.bin'), Buffer.alloc(100, 3))
  const d = await verifyTree(dir, m)
  t.same(d.changed, ['weights/conv1.bin'], 'a changed external weight file changes the model folder identity')
  t.not(d.actualRoot, d.expectedRoot)
})

t.test('error: a hash worker that dies mid-run fails the call instead of leaving it waiting', async t => {
  const { hashRanges } = await import('../../../forensics/lineage/hash-pool.js')
  const { Worker } = await import('node:worker_threads')
  const dir = await tree(t, { a: 'a' })
  // Kill every worker the pool starts, as the OOM killer would.
  const original = Object.getOwnPropertyDescriptor(Worker.prototype, 'postMessage') as PropertyDescriptor
  Worker.prototype.postMessage = function (this: InstanceType<typeof Worker>) { void this.terminate() }
  t.teardown(() => { Object.defineProperty(Worker.prototype, 'postMessage', original) })
  await rejectsWith(t, hashRanges([{ path: join(dir, 'a'), startByte: 0, endByte: null }], { workers: 1 }), 'LINEAGE_UNREADABLE')
})
