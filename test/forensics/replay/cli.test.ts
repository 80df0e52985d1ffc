import t from 'tap'
import { join } from 'node:path'
import { mkdir, writeFile, copyFile } from 'node:fs/promises'
import ort from 'onnxruntime-node'
import { runReplayCli, decodeRecordsFile, ReplayError, type ReplayCliIo } from '../../../forensics/replay/index.js'
import { encodeCanonical, type SignedRecord } from '../../../protocol/index.js'
import { makeClassifierModel } from '../../helpers/onnx-models.js'
import { makeTempDir } from '../../helpers/tmp.js'
import { editCapture, flipByte, runScenario } from '../../helpers/replay.js'

function io (extra: Partial<ReplayCliIo> = {}): ReplayCliIo & { out: () => string, err: () => string } {
  let out = ''
  let err = ''
  return { stdout: { write: s => { out += s } }, stderr: { write: s => { err += s } }, out: () => out, err: () => err, ...extra }
}

t.test('behavior: provenance replay over files: exit 0 when every run is ok, 1 when one is not', async t => {
  const feeds = [0.3, 0.6].map(v => ({ x: new ort.Tensor('float32', Float32Array.from([v, 0, v, 1]), [1, 4]) }))
  const s = await runScenario(t, makeClassifierModel({ seed: 1 }), feeds)
  const capturePath = join(s.dir, 'incident.capture')
  const recordsPath = join(s.dir, 'records.cbor')
  const models = join(s.dir, 'models')
  await mkdir(models)
  await copyFile(s.modelPath, join(models, 'classifier.onnx'))
  await writeFile(capturePath, s.frozen.bytes)
  await writeFile(recordsPath, encodeCanonical(s.records.map(r => r.envelope)))

  const human = io()
  t.equal(await runReplayCli(['--capture', capturePath, '--records', recordsPath, '--models', models], human), 0)
  t.match(human.out(), /seq 2: ok \(exact\)\nseq 3: ok \(exact\)/)
  t.match(human.out(), /2 ok \(2 exact, 0 within tolerance/)

  const json = io()
  t.equal(await runReplayCli(['--capture', capturePath, '--records', recordsPath, '--model', `${s.modelHashHex.toUpperCase()}=${s.modelPath}`, '--json'], json), 0)
  const report = JSON.parse(json.out())
  t.equal(report.summary.ok, true)
  t.same(report.entries.map((e: { verdict: string }) => e.verdict), ['ok', 'ok'])

  const tampered = join(s.dir, 'tampered.capture')
  await writeFile(tampered, editCapture(s.frozen.bytes, c => flipByte(c.entries[1]!.inputs[0]!.data, 2)))
  const bad = io()
  t.equal(await runReplayCli(['--capture', tampered, '--records', recordsPath, '--models', models, '--tolerance', '1e-6'], bad), 1)
  t.match(bad.out(), /seq 3: input-mismatch\n {2}input-mismatch: captured input "x" does not open/)
  t.match(bad.err(), /^REPLAY_NOT_OK: 1 of \d+ run\(s\) not ok$/m, 'the failure named on stderr, after the report')

  // --bundle goes through the bundle reader the provenance CLI supplies.
  const viaBundle = io({ readBundle: (bytes: Uint8Array): SignedRecord[] => decodeRecordsFile(bytes) })
  t.equal(await runReplayCli(['--capture', capturePath, '--bundle', recordsPath, '--models', models], viaBundle), 0)
})

t.test('error: usage errors exit 2, unreadable or invalid files exit 1 with CODE: message', async t => {
  const h = io()
  t.equal(await runReplayCli(['--help'], h), 0)
  t.match(h.out(), /Usage: provenance replay/)
  for (const argv of [
    [], ['--capture', 'c'], ['--capture', 'c', '--records', 'r'], ['--capture', 'c', '--records', 'r', '--bundle', 'b', '--models', 'd'],
    ['--capture', 'c', '--bundle', 'b', '--models', 'd'], ['--capture', 'c', '--records', 'r', '--models', 'd', '--tolerance', '-1'],
    ['--capture', 'c', '--records', 'r', '--model', 'abc=path'], ['--unknown'], ['positional']
  ]) {
    const e = io()
    t.equal(await runReplayCli(argv, e), 2, argv.join(' '))
    t.match(e.err(), /^usage: /)
  }
  const dir = await makeTempDir(t, 'prov-replay-cli-')
  await writeFile(join(dir, 'garbage.capture'), 'not cbor')
  await writeFile(join(dir, 'records.cbor'), 'not cbor either')
  const missing = io()
  t.equal(await runReplayCli(['--capture', join(dir, 'nope'), '--records', join(dir, 'records.cbor'), '--models', dir], missing), 1)
  t.match(missing.err(), /^REPLAY_FILE_UNREADABLE: /m)
  const records = io()
  t.equal(await runReplayCli(['--capture', join(dir, 'garbage.capture'), '--records', join(dir, 'records.cbor'), '--models', dir], records), 1)
  t.match(records.err(), /^REPLAY_RECORDS_INVALID: /m)
  await writeFile(join(dir, 'records.cbor'), encodeCanonical([]))
  const capture = io()
  t.equal(await runReplayCli(['--capture', join(dir, 'garbage.capture'), '--records', join(dir, 'records.cbor'), '--models', dir], capture), 1)
  t.match(capture.err(), /^CAPTURE_MALFORMED: /m)

  t.throws(() => decodeRecordsFile(encodeCanonical([new Uint8Array(3)])), ReplayError)
  t.throws(() => decodeRecordsFile(encodeCanonical(['text'])), { code: 'REPLAY_RECORDS_INVALID' })
})
