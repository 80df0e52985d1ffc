// The conformance suite for outside implementers (test/vectors/conformance/, docs/FORENSICS.md
// §11): the files are what scripts/gen-conformance.ts writes, and every case gives its stated
// verdict and findings through `provenance verify --offline` (bundles) or the protocol calls.
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { runCli, type CliIo } from '../../forensics/cli.js'
import { CONFORMANCE_DIR, buildConformance, findingsOf, runProtocolCase, type ConformanceCase } from '../../scripts/gen-conformance.js'

const manifest = JSON.parse(readFileSync(join(CONFORMANCE_DIR, 'cases.json'), 'utf8')) as { cases: ConformanceCase[] }

t.test('behavior: the suite on disk is exactly what the generator writes (deterministic, and checked against the code)', async t => {
  const files = await buildConformance()
  for (const [path, bytes] of files) t.ok(Buffer.from(readFileSync(join(CONFORMANCE_DIR, path))).equals(bytes), `${path} is current`)
  t.ok(manifest.cases.length >= 20, 'bundles, checkpoints, proofs and receipts')
  t.same(new Set(manifest.cases.map(c => c.kind)), new Set(['bundle', 'checkpoint', 'proof', 'receipt', 'tip']))
})

t.test('behavior: every bundle case gives its verdict and findings through provenance verify --offline --json', async t => {
  for (const c of manifest.cases.filter(c => c.kind === 'bundle')) {
    let stdout = ''
    const io: CliIo = { stdout: s => { stdout += s }, stderr: { write: () => {}, isTTY: false }, env: {} }
    const code = await runCli(['verify', join(CONFORMANCE_DIR, c.file), '--offline', '--json'], io)
    const verdict = JSON.parse(stdout) as Parameters<typeof findingsOf>[0] & { verdict: string }
    t.equal(code, c.expect.verdict === 'valid' ? 0 : 1, `${c.name}: exit code`)
    t.equal(verdict.verdict, c.expect.verdict, `${c.name}: verdict`)
    t.same(findingsOf(verdict), { failures: c.expect.failures, warnings: c.expect.warnings }, `${c.name}: findings`)
  }
})

t.test('behavior: every checkpoint, proof, receipt and tip case gives its verdict and error code', async t => {
  for (const c of manifest.cases.filter(c => c.kind !== 'bundle')) {
    const error = runProtocolCase(c, readFileSync(join(CONFORMANCE_DIR, c.file)))
    t.equal(error, c.expect.error, `${c.name}: ${c.expect.verdict}`)
  }
})
