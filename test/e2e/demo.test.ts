import t from 'tap'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { runDemo } from '../../scripts/demo.js'
import { decodeBundle } from '../../protocol/index.js'
import { makeTempDir } from '../helpers/tmp.js'

// The README's main job, end to end on embedded defaults: chain, gateway on the embedded broker,
// agent on the real PaddleOCR models with an offline spell, export through the gateway API,
// verification online and offline, the report, and one altered record caught.
t.test('behavior: the demo verifies a whole device history and catches one altered record', async t => {
  const out = await makeTempDir(t, 'prov-demo-out-')
  const lines: string[] = []
  const log = console.log
  console.log = (...args: unknown[]) => { lines.push(args.join(' ')) }
  let result
  try {
    result = await runDemo(out)
  } finally {
    console.log = log
  }
  t.same(result, { valid: true, tamperCaught: true }, lines.join('\n'))
  const bundle = decodeBundle(await readFile(join(out, 'bundle.json')))
  t.ok(bundle.records.length >= 19, 'every record exported, the offline backlog included')
  const report = await readFile(join(out, 'report.html'), 'utf8')
  t.match(report, /VALID/)
  t.match(await readFile(join(out, 'proof-6.txt'), 'utf8'), /^c2sp\.org\/tlog-proof@v1\n/)
})
