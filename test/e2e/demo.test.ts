import t from 'tap'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { runDemo } from '../../scripts/demo.js'
import { decodeBundle } from '../../protocol/index.js'
import { makeTempDir } from '../helpers/tmp.js'

// The README's main job, end to end on embedded defaults: chain, gateway on the embedded broker,
// agent on the real PaddleOCR models with an offline spell, export through the gateway API,
// verification online and offline, the report, and one altered record caught; then the lineage
// story, a decision of the trained model traced against the chain to its dataset and capture records.
t.test('behavior: the demo verifies a whole device history, catches one altered record and traces a decision to its data', async t => {
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
  t.same(result, { valid: true, tamperCaught: true, traced: true }, lines.join('\n'))
  const bundle = decodeBundle(await readFile(join(out, 'bundle.json')))
  t.ok(bundle.records.length >= 19 + 7, 'every record exported, the offline backlog and the lineage story\'s included')
  t.match(lines.join('\n'), /TRACE OK: every link verified/)
  t.match(lines.join('\n'), /ok {2}sample-0\.csv by demo-jetson-01:\d+, anchored in batch \d+/, 'the capture records\' proofs are checked on chain')
  t.match(await readFile(join(out, 'trace-report.html'), 'utf8'), /<svg class="lineage"/)
  const report = await readFile(join(out, 'report.html'), 'utf8')
  t.match(report, /VALID/)
  t.match(await readFile(join(out, 'proof-6.txt'), 'utf8'), /^c2sp\.org\/tlog-proof@v1\n/)
})
