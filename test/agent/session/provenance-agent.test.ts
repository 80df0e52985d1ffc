import t from 'tap'
import { chmod, readFile, writeFile } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import { ProvenanceAgent, type Logger } from '../../../agent/session/index.js'
import { AgentError } from '../../../agent/errors.js'
import { paddleOcrModelPaths, makeTextLikeImage } from '../../../agent/input/index.js'
import { commitTensor, verifyChain, fixedKey, toHex, type InferenceBody } from '../../../protocol/index.js'
import { makeClassifierModel } from '../../helpers/onnx-models.js'
import { makeTempDir } from '../../helpers/tmp.js'

function captureLogger (): Logger & { lines: string[] } {
  const lines: string[] = []
  const put = (obj: object, msg?: string): void => { lines.push(JSON.stringify({ ...obj, msg })) }
  return { lines, info: put, warn: put, error: put }
}

async function setup (t: { teardown: (fn: () => unknown) => void }): Promise<{ dir: string, modelPath: string }> {
  const dir = await makeTempDir(t, 'prov-agent-')
  const modelPath = join(dir, 'tiny.onnx')
  await writeFile(modelPath, makeClassifierModel({ seed: 1 }))
  return { dir, modelPath }
}

t.test('behavior: a model-load record precedes inference records whose commitments an investigator can recompute', async t => {
  const { dir, modelPath } = await setup(t)
  const logger = captureLogger()
  const agent = await ProvenanceAgent.start({ stateDir: join(dir, 's'), deviceId: 'dev-1', logger })
  const model = await agent.loadModel(modelPath, { name: 'tiny' })
  t.equal(model.loadRecord.record.seq, 1)
  t.equal(model.loadRecord.record.body.kind, 'model-load')
  const fileHash = createHash('sha256').update(await readFile(modelPath)).digest('hex')
  t.equal(toHex(model.fileHash), fileHash, 'model hash is the sha256 of the file bytes')
  const x = new ort.Tensor('float32', Float32Array.from([0.1, 0.2, 0.3, 0.4]), [1, 4])
  const { outputs, record } = await model.run({ x }, { decide: (o) => `top=${(o.probs?.data as Float32Array).indexOf(Math.max(...(o.probs?.data as Float32Array)))}` })
  const body = record.record.body as InferenceBody
  t.equal(body.kind, 'inference')
  t.equal(toHex(body.modelHash), fileHash)
  const salt = agent.saltFor(record.record.seq)
  t.same(body.inputs[0]?.hash, commitTensor(salt, 'x', x), 'input commitment recomputes with the salt')
  t.same(body.outputs[0]?.hash, commitTensor(salt, 'probs', outputs.probs as ort.Tensor), 'output commitment recomputes')
  t.notSame(body.inputs[0]?.hash, commitTensor(agent.saltFor(record.record.seq + 1), 'x', x), 'salt is per record')
  t.match(body.decision, /^top=\d$/)
  const publicKey = agent.publicKey
  await agent.stop('test done')
  const keyText = await readFile(join(dir, 's', 'device-key.json'), 'utf8')
  const seed = JSON.parse(keyText).seed as string
  t.notOk(logger.lines.some(l => l.includes(seed)), 'the key never reaches the log')

  const again = await ProvenanceAgent.start({ stateDir: join(dir, 's'), deviceId: 'dev-1' })
  t.same(again.publicKey, publicKey, 'same identity after restart')
  const records = await again.log.range(0, 100)
  t.same(records.map(r => r.record.body.kind), ['boot', 'model-load', 'inference', 'shutdown', 'boot'])
  t.equal(verifyChain(records, { deviceId: 'dev-1', keyAt: fixedKey(publicKey) }).failure, undefined)
  await again.stop()
})

t.test('error: bad feeds give typed errors, the agent stays up and the chain stays whole', async t => {
  const { dir, modelPath } = await setup(t)
  const agent = await ProvenanceAgent.start({ stateDir: join(dir, 's'), deviceId: 'dev-1' })
  t.teardown(async () => await agent.stop())
  const model = await agent.loadModel(modelPath)
  const wrongName = await model.run({ y: new ort.Tensor('float32', new Float32Array(4), [1, 4]) }).catch(e => e)
  t.type(wrongName, AgentError)
  t.equal(wrongName.code, 'INPUT_INVALID')
  const wrongType = await model.run({ x: new ort.Tensor('int32', new Int32Array(4), [1, 4]) }).catch(e => e)
  t.type(wrongType, AgentError)
  t.equal(wrongType.code, 'INFERENCE_FAILED')
  const wrongShape = await model.run({ x: new ort.Tensor('float32', new Float32Array(6), [1, 6]) }).catch(e => e)
  t.equal(wrongShape.code, 'INFERENCE_FAILED')
  const ok = await model.run({ x: new ort.Tensor('float32', new Float32Array(4), [1, 4]) })
  t.equal(ok.record.record.seq, 2, 'failed runs cost no seq')
  const records = await agent.log.range(0, 100)
  t.equal(verifyChain(records, { deviceId: 'dev-1', keyAt: fixedKey(agent.publicKey) }).failure, undefined)
})

t.test('error: key files that are insecure, garbage or unreadable', async t => {
  const { dir } = await setup(t)
  const keyPath = join(dir, 'key.json')
  const agent = await ProvenanceAgent.start({ stateDir: join(dir, 's'), deviceId: 'dev-1', keyPath })
  await agent.stop()
  await chmod(keyPath, 0o644)
  await t.rejects(ProvenanceAgent.start({ stateDir: join(dir, 's'), deviceId: 'dev-1', keyPath }), { code: 'KEY_INSECURE' })
  await chmod(keyPath, 0o600)
  await writeFile(keyPath, '{"v":1,"seed":"zz"}')
  await t.rejects(ProvenanceAgent.start({ stateDir: join(dir, 's'), deviceId: 'dev-1', keyPath }), { code: 'KEY_INVALID' })
  await t.rejects(ProvenanceAgent.start({ stateDir: join(dir, 's'), deviceId: 'dev-1', keyPath: dir }), { code: 'KEY_UNREADABLE' }, 'a directory is no key file')
})

t.test('error: a stopped agent refuses work', async t => {
  const { dir, modelPath } = await setup(t)
  const agent = await ProvenanceAgent.start({ stateDir: join(dir, 's'), deviceId: 'dev-1' })
  await agent.stop()
  await t.rejects(agent.loadModel(modelPath), { code: 'AGENT_STOPPED' })
})

t.test('behavior: the real PaddleOCR detector runs under provenance on a synthetic page', async t => {
  const dir = await makeTempDir(t, 'prov-agent-')
  const agent = await ProvenanceAgent.start({ stateDir: dir, deviceId: 'dev-ocr' })
  t.teardown(async () => await agent.stop())
  const det = await agent.loadModel(paddleOcrModelPaths().detection, { name: 'ppocr-det' })
  const image = new ort.Tensor('float32', makeTextLikeImage({ width: 320, height: 320, seed: 4 }).data, [1, 3, 320, 320])
  const { outputs, record } = await det.run({ x: image })
  const map = outputs[det.outputNames[0] as string] as ort.Tensor
  t.same(map.dims, [1, 1, 320, 320])
  t.equal((record.record.body as InferenceBody).outputs.length, 1)
})
