// Binary run answers on a real model (#11): PaddleOCR detection served by the daemon answers the
// same output bytes in JSON (base64) and in the binary form (Accept: application/octet-stream),
// for JSON and binary request bodies, equal to a bare onnxruntime run of the same input.
import t from 'tap'
import { request } from 'node:http'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import { Daemon, decodeBinaryRunAnswer, encodeBinaryRunBody, RUN_BINARY_ANSWER_TYPE, RUN_BINARY_CONTENT_TYPE } from '../../../agent/daemon/index.js'
import { resolveProfile } from '../../../agent/profile/index.js'
import { makeTextLikeImage, paddleOcrModelPaths } from '../../../agent/input/index.js'
import { toHex } from '../../../protocol/index.js'
import { makeTempDir } from '../../helpers/tmp.js'

ort.env.logLevel = 'fatal'
const quiet = { info: () => {}, warn: () => {}, error: () => {} }

async function post (socketPath: string, body: string | Buffer, contentType: string, accept?: string): Promise<{ status: number, type: string, bytes: Buffer }> {
  return await new Promise((resolve, reject) => {
    const req = request({ socketPath, method: 'POST', path: '/v1/models/det/run', headers: { 'content-type': contentType, ...(accept !== undefined ? { accept } : {}) } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), bytes: Buffer.concat(chunks) }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

t.test('behavior: PaddleOCR det answers the same bytes in JSON and binary, for JSON and binary bodies, as bare onnxruntime', async t => {
  const dir = await makeTempDir(t, 'prov-answer-')
  const modelPath = paddleOcrModelPaths().detection
  const daemon = await Daemon.start({ deviceId: 'dev-a', stateDir: join(dir, 'state'), profile: await resolveProfile('generic-x86_64'), models: [{ name: 'det', path: modelPath }], logger: quiet })
  t.teardown(async () => await daemon.stop('test teardown'))
  const input = (await daemon.status()).models[0]?.inputs?.[0]?.name ?? 'x'
  const image = makeTextLikeImage({ width: 320, height: 320, seed: 4 }).data
  const dims = [1, 3, 320, 320]
  const bare = await ort.InferenceSession.create(modelPath)
  const expected = Object.values(await bare.run({ [bare.inputNames[0] as string]: new ort.Tensor('float32', image, dims) }))[0] as ort.Tensor
  await bare.release()
  const expectedBytes = Buffer.from((expected.data as Float32Array).buffer, (expected.data as Float32Array).byteOffset, (expected.data as Float32Array).byteLength)

  const json = JSON.stringify({ inputs: { [input]: { type: 'float32', dims, data: Buffer.from(image.buffer, image.byteOffset, image.byteLength).toString('base64') } } })
  const binary = encodeBinaryRunBody({ [input]: { type: 'float32', dims, data: image } })
  const seqs: number[] = []
  for (const [body, type] of [[json, 'application/json'], [binary, RUN_BINARY_CONTENT_TYPE]] as const) {
    const a = await post(daemon.socketPath, body, type)
    t.equal(a.status, 200, `${type} body, JSON answer`)
    t.match(a.type, /^application\/json/)
    const answer = JSON.parse(a.bytes.toString('utf8'))
    const [name, out] = Object.entries(answer.outputs)[0] as [string, { dims: number[], data: string }]
    t.same(out.dims, expected.dims)
    t.ok(Buffer.from(out.data, 'base64').equals(expectedBytes), 'JSON answer: the bare run\'s output bytes')
    seqs.push(answer.record.seq)

    const b = await post(daemon.socketPath, body, type, 'application/octet-stream')
    t.equal(b.status, 200, `${type} body, binary answer`)
    t.equal(b.type, RUN_BINARY_ANSWER_TYPE)
    const decoded = decodeBinaryRunAnswer(b.bytes)
    t.equal(b.bytes.byteLength, 4 + b.bytes.readUInt32BE(0) + expectedBytes.byteLength, 'length prefix, header, raw bytes: nothing else')
    const raw = decoded.outputs[name]?.data as Float32Array
    t.ok(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).equals(expectedBytes), 'binary answer: the same bytes, raw')
    t.same(decoded.outputs[name]?.dims, expected.dims)
    t.match(decoded, { model: 'det', modelHash: answer.modelHash })
    const stored = await daemon.log.get(decoded.record.seq as number)
    t.equal(toHex(stored?.hash ?? new Uint8Array()), decoded.record.hash, 'the binary answer\'s record is the one in the log')
    seqs.push(decoded.record.seq as number)
  }
  t.same(seqs, [seqs[0], (seqs[0] as number) + 1, (seqs[0] as number) + 2, (seqs[0] as number) + 3], 'one record per run')
  const refused = await post(daemon.socketPath, binary, RUN_BINARY_CONTENT_TYPE, 'text/csv')
  t.equal(refused.status, 406)
  t.equal((await daemon.status()).seq, (seqs[3] as number), 'a refused Accept runs nothing')
})

t.test('behavior: a run answer held by a slow reader keeps its own bytes while later runs reuse the lent output buffers', async t => {
  const dir = await makeTempDir(t, 'prov-answer-')
  const daemon = await Daemon.start({ deviceId: 'dev-a', stateDir: join(dir, 'state'), profile: await resolveProfile('generic-x86_64'), models: [{ name: 'det', path: paddleOcrModelPaths().detection }], logger: quiet })
  t.teardown(async () => await daemon.stop('test teardown'))
  const input = (await daemon.status()).models[0]?.inputs?.[0]?.name ?? 'x'
  // 640 × 640: a 1.6 MB answer, more than the socket's buffers hold, so its writes wait on the reader.
  const dims = [1, 3, 640, 640]
  const imageOf = (seed: number): Float32Array => makeTextLikeImage({ width: 640, height: 640, seed }).data
  // Given, not lent: this one is ours for good.
  const expected = Object.values((await daemon.run('det', { [input]: new ort.Tensor('float32', imageOf(4), dims) })).outputs)[0] as ort.Tensor
  const expectedBytes = Buffer.from((expected.data as Float32Array).buffer, (expected.data as Float32Array).byteOffset, (expected.data as Float32Array).byteLength)
  const slow = await new Promise<{ chunks: Buffer[], resume: () => Promise<void> }>((resolve, reject) => {
    const req = request({ socketPath: daemon.socketPath, method: 'POST', path: '/v1/models/det/run', headers: { 'content-type': RUN_BINARY_CONTENT_TYPE, accept: 'application/octet-stream' } }, (res) => {
      const chunks: Buffer[] = []
      const ended = new Promise<void>(resolve => res.on('end', resolve))
      res.once('data', (c: Buffer) => {
        chunks.push(c)
        res.pause()
        resolve({ chunks, resume: async () => { res.on('data', (c: Buffer) => chunks.push(c)); res.resume(); await ended } })
      })
    })
    req.on('error', reject)
    req.end(encodeBinaryRunBody({ [input]: { type: 'float32', dims, data: imageOf(4) } }))
  })
  // Twelve later runs of another image through the API, each lent and released: more than the
  // worker's pool of a size, so they cycle through every free buffer while the slow answer holds one.
  for (let i = 0; i < 12; i++) {
    const other = await post(daemon.socketPath, encodeBinaryRunBody({ [input]: { type: 'float32', dims, data: imageOf(5) } }), RUN_BINARY_CONTENT_TYPE, 'application/octet-stream')
    t.equal(other.status, 200)
  }
  await slow.resume()
  const decoded = decodeBinaryRunAnswer(Buffer.concat(slow.chunks))
  const raw = Object.values(decoded.outputs)[0]?.data as Float32Array
  t.ok(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).equals(expectedBytes), 'the slow answer is its own run\'s output')
})
