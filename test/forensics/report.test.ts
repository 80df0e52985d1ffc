// The HTML report, rendered by headless Chromium (Debian's `chromium`, installed by
// scripts/ensure-system-deps.sh): the dumped DOM shows the verdict, one row per failure, the SVG
// timeline, models, anchors and proofs; the page has no script and loads nothing; hostile text
// from records is escaped; keys and envelopes never appear. No chain needed.
import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { toHex } from '../../protocol/index.js'
import { buildTimeline } from '../../forensics/timeline/index.js'
import { verifyBundle } from '../../forensics/verify/index.js'
import { renderReport } from '../../forensics/report/index.js'
import { fakeHash, makeMixedChain, sampleInference } from '../helpers/records.js'
import { makeTempDir } from '../helpers/tmp.js'
import { hasChromium, runChromium } from '../helpers/chromium.js'
import { clone, offlineBundle } from '../helpers/forensics-fixture.js'

const HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
const builder = makeMixedChain()
builder.append({ ...sampleInference(builder.seq, fakeHash('model/1')), decision: HOSTILE })
builder.append(sampleInference(builder.seq, fakeHash('model/x'))) // a model the registry does not know
const bundle = offlineBundle(builder)
const tampered = clone(bundle)
tampered.records.splice(10, 1) // seq 12
const verdict = await verifyBundle(tampered, { offline: true })
const html = renderReport({ bundle: tampered, verdict, timeline: buildTimeline(tampered), generatedAtMs: 1_700_000_200_000 })

const dir = await makeTempDir(t, 'forensics-report-')
const page = join(dir, 'report.html')
await writeFile(page, html)

/** Runs chromium with a fresh profile; resolves with its stdout. */
async function chromium (args: string[]): Promise<string> {
  return await runChromium(t, args)
}

if (!hasChromium) t.fail('chromium is not installed: run scripts/ensure-system-deps.sh (apt-get install chromium)')

t.test('behavior: headless Chromium shows the verdict, a row per failure, the SVG timeline and the tables', { skip: !hasChromium }, async t => {
  t.same(verdict.failures.map(f => [f.seq, f.reason]), [[12, 'seq-gap'], [23, 'model-unknown']])
  const dom = await chromium(['--dump-dom', `file://${page}`])
  t.match(dom, /<span class="verdict invalid" id="verdict-value">INVALID<\/span>/)
  const section = (id: string): string => {
    const start = dom.indexOf(`<section id="${id}">`)
    return dom.slice(start, dom.indexOf('</section>', start))
  }
  const rows = (fragment: string, className: string): number => {
    const start = fragment.indexOf(`<table class="${className}">`)
    if (start === -1) return 0
    const body = fragment.slice(start, fragment.indexOf('</table>', start))
    return (body.match(/<tr>/g) ?? []).length - 1 // minus the header row
  }
  t.equal(rows(section('verdict'), 'failures'), 2, 'one row per failure')
  t.match(section('verdict'), /seq-gap/)
  t.match(section('verdict'), /model-unknown/)
  t.match(dom, /<svg class="chart"[^>]*role="img"/)
  t.ok((section('timeline').match(/<rect x="[^"]+" y="[^"]+" width="[^"]+" height="[^"]+" fill="#/g) ?? []).length >= 10, 'bars drawn')
  t.equal((section('timeline').match(/class="m-fail"/g) ?? []).length, 1, 'a red line at the failing record with a known time')
  t.equal(rows(section('models'), 'models'), 3, 'models 0, 1 and the unknown one')
  t.equal(rows(section('anchors'), 'anchors'), 1)
  t.equal((section('anchors').match(/<h4>Seq /g) ?? []).length, 3, 'three inclusion proofs shown')
  t.equal(rows(section('gaps'), 'gaps'), 2, 'the honest gap and the deletion')
  t.notMatch(dom, /<script/i, 'no script element after parsing, hostile decision included')
  t.notMatch(dom, /<img/i)
  t.match(dom, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/, 'the hostile decision is shown as text')

  // The per-record table: every record, the deleted seq as a row of its own, failing rows marked
  // with their reasons, and the script-free filter.
  const records = section('records')
  t.equal((records.match(/<tr class="rec/g) ?? []).length, tampered.records.length + 1, 'a row per record and one for the hole')
  t.match(records, /<tr class="rec fail gap missing"><td>12\.\.12<\/td>/, 'the deleted record shown where it is missing')
  t.match(records, /<tr class="rec fail"><td>23<\/td>[\s\S]*?<span class="reason"[^>]*>model-unknown<\/span>/, 'the failing record with why')
  t.match(records, /<tr class="rec gap"><td>8<\/td><td>[^<]*<\/td><td>gap 6\.\.7 \(disk-budget\)/, 'the honest gap record in amber')
  t.match(records, /policy: approved/, 'the policy verdict of each model load')
  t.match(records, /<input type="radio" name="rf" id="rf-fail">/)
  t.equal((records.match(/<tr class="rec[^"]*"><td>\d+<\/td>.*?<\/td><td>verified<\/td>/g) ?? []).length > 10, true, 'proof status per record')

  const png = join(dir, 'report.png')
  await chromium(['--window-size=1000,2400', `--screenshot=${png}`, `file://${page}`])
  const image = await readFile(png)
  t.same([...image.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG')
  t.ok(image.byteLength > 20_000, 'with something drawn on it')
})

t.test('behavior: the report is one self-contained file: no script, no external resource, no key, no envelope', async t => {
  t.match(html, /<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">/)
  t.notMatch(html, /<script/i)
  t.notMatch(html, /https?:\/\//, 'no URL at all (model metadata URIs are not shown)')
  t.notMatch(html, /<[^>]*\s(src|href)=/i, 'no element with src or href')
  t.notMatch(html, /<link/i)
  for (const k of tampered.device.keys) t.notOk(html.includes(k.publicKey), 'no public key')
  t.notOk(html.includes(toHex(builder.keys[1]?.publicKey as Uint8Array)), 'not the rotated key either')
  for (const r of tampered.records.slice(0, 5)) t.notOk(html.includes(r), 'no envelope')
  const valid = renderReport({ bundle, verdict: await verifyBundle(bundle, { offline: true, toMs: builder.records[20]?.record.timeMs as number }), timeline: buildTimeline(bundle) })
  t.match(valid, /<span class="verdict valid" id="verdict-value">VALID<\/span>/)
  t.match(valid, /<h3>Failures<\/h3>\n<p class="empty">None\.<\/p>/)
})

t.test('behavior: decisions are grouped by label, scores folded, largest group first', async t => {
  const { groupDecisions } = await import('../../forensics/report/render-report.js')
  t.same(groupDecisions([
    { decision: 'person 0.91', count: 3 }, { decision: 'car', count: 5 }, { decision: 'person 0.87', count: 4 }, { decision: null, count: 1 }, { decision: 'class-1', count: 2 }, { decision: 'class-2', count: 2 }
  ]), [
    { label: 'person …', count: 7, distinct: 2 }, { label: 'car', count: 5, distinct: 1 }, { label: 'class-1', count: 2, distinct: 1 }, { label: 'class-2', count: 2, distinct: 1 }, { label: null, count: 1, distinct: 1 }
  ])
  t.match(html, /<table class="decisions"><thead><tr><th>Decision<\/th><th>Count<\/th><th>Share<\/th><th>Values folded<\/th>/)
})

t.test('behavior: the script-free record filter hides the rows that are not failing, in Chromium', { skip: !hasChromium }, async t => {
  // The same page with "failing only" selected instead of "all records": CSS alone must hide rows.
  const filtered = html.replace('<input type="radio" name="rf" id="rf-all" checked>', '<input type="radio" name="rf" id="rf-all">')
    .replace('<input type="radio" name="rf" id="rf-fail">', '<input type="radio" name="rf" id="rf-fail" checked>')
  t.not(filtered, html)
  const shots: number[] = []
  for (const [name, text] of [['all', html], ['failing', filtered]] as const) {
    const file = join(dir, `filter-${name}.html`)
    await writeFile(file, text.replace(/<section id="(timeline|models|gaps|anchors)">[\s\S]*?<\/section>/g, ''))
    const png = join(dir, `filter-${name}.png`)
    await chromium(['--window-size=1000,3000', `--screenshot=${png}`, `file://${file}`])
    shots.push((await readFile(png)).byteLength)
  }
  t.ok((shots[1] as number) < (shots[0] as number) * 0.8, `failing only draws much less (${shots.join(' vs ')} bytes of PNG)`)
})
