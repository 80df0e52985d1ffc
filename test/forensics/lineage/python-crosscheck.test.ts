// A second implementation of the OMS v1.0 rule, in Python with hashlib (as model_signing's
// signing.py Payload computes it: files sorted by path, which Python orders by code point = UTF-8
// bytes; root = SHA-256 over the raw digests), agrees with hashTree on the same folder.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { makeTempDir } from '../../helpers/tmp.js'
import { hashTree } from '../../../forensics/lineage/index.js'

const PY = `
import hashlib, os, sys, json
root = sys.argv[1]
names = []
for d, _, files in os.walk(root):
    for f in files:
        names.append(os.path.relpath(os.path.join(d, f), root).replace(os.sep, '/'))
names.sort()
h = hashlib.sha256()
out = []
for n in names:
    with open(os.path.join(root, n), 'rb') as fh:
        digest = hashlib.sha256(fh.read()).digest()
    h.update(digest)
    out.append([n, digest.hex()])
print(json.dumps({'root': h.hexdigest(), 'resources': out}))
`

let python = true
try { execFileSync('python3', ['-c', 'pass']) } catch { python = false }

t.test('behavior: Python hashlib computes the same root digest and resource order', { skip: python ? false : 'python3 not installed' }, async t => {
  const dir = await makeTempDir(t, 'lineage-py-')
  const files: Record<string, Buffer> = {
    'a.txt': Buffer.from('a'), 'B.txt': Buffer.from('B'), 'sub/dir/c.bin': Buffer.alloc(70_000, 9), empty: Buffer.alloc(0),
    '\uff61': Buffer.from('halfwidth'), '\u{1f600}.png': Buffer.from('emoji'), 'é': Buffer.from('e acute'), 'sub-x': Buffer.from('dash sorts before slash? no: 0x2d < 0x2f')
  }
  for (const [name, content] of Object.entries(files)) {
    await mkdir(join(dir, name, '..'), { recursive: true })
    await writeFile(join(dir, name), content)
  }
  const py = JSON.parse(execFileSync('python3', ['-c', PY, dir], { encoding: 'utf8' })) as { root: string, resources: Array<[string, string]> }
  const m = await hashTree(dir)
  t.same(m.predicate.resources.map(r => [r.name, r.digest]), py.resources)
  t.equal(m.subject[0].digest.sha256, py.root)
})
