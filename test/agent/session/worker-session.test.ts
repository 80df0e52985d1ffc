import t from 'tap'
import { readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Worker } from 'node:worker_threads'
import ort from 'onnxruntime-node'
import { ProvenanceAgent } from '../../../agent/session/index.js'
import { SPARE_SNAPSHOT_BYTES, loadModelInWorker } from '../../../agent/session/worker-session.js'
import { MAX_LENT_SLOT_BYTES } from '../../../agent/session/worker-messages.js'
import { AgentError } from '../../../agent/errors.js'
import { canonicalTensor, commitTensor, digestTensor, ProtocolError, type InferenceBody } from '../../../protocol/index.js'
import { hashCanonicalYielding } from '../../../agent/session/digest-feeds.js'
import { encodeModel, makeIdentityModel, makeTensorProto, mulberry32, ONNX_DTYPE } from '../../helpers/onnx-models.js'
import { makeTempDir } from '../../helpers/tmp.js'

/** x [n, n] multiplied `k` times by one weight W [n, n]: slow enough to watch the event loop. */
function makeMatMulChainModel (n: number, k: number): Uint8Array {
  const random = mulberry32(5)
  const W = Array.from({ length: n * n }, () => (random() - 0.5) / n)
  const node = Array.from({ length: k }, (_, i) => ({ name: `mm${i}`, opType: 'MatMul', input: [i === 0 ? 'x' : `h${i}`, 'W'], output: [i === k - 1 ? 'y' : `h${i + 1}`] }))
  const info = (name: string): object => ({ name, type: { tensorType: { elemType: ONNX_DTYPE.float32, shape: { dim: [{ dimValue: n }, { dimValue: n }] } } } })
  return encodeModel({ graph: { name: 'chain', node, initializer: [makeTensorProto('W', 'float32', [n, n], W, 'raw')], input: [info('x')], output: [info('y')] } })
}

async function startAgent (t: { teardown: (fn: () => unknown) => void }, model: Uint8Array): Promise<{ agent: ProvenanceAgent, modelPath: string }> {
  const dir = await makeTempDir(t, 'prov-worker-')
  const modelPath = join(dir, 'model.onnx')
  await writeFile(modelPath, model)
  const agent = await ProvenanceAgent.start({ stateDir: join(dir, 's'), deviceId: 'dev-1', intraOpNumThreads: 1 })
  t.teardown(async () => { await agent.stop() })
  return { agent, modelPath }
}

t.test('behavior: the event loop keeps turning while a model computes in its worker', async t => {
  const { agent, modelPath } = await startAgent(t, makeMatMulChainModel(384, 24))
  const model = await agent.loadModel(modelPath)
  const x = new ort.Tensor('float32', new Float32Array(384 * 384).fill(0.5), [384, 384])
  await model.run({ x })
  let ticks = 0
  const timer = setInterval(() => { ticks++ }, 1)
  try {
    await model.run({ x })
  } finally {
    clearInterval(timer)
  }
  // With run() on the main thread the timer could not fire at all until the run was over.
  t.ok(ticks >= 3, `timer fired ${ticks} times during one run`)
})

for (const [label, elements] of [['small (one slice)', 1000], ['large (many slices)', 1_500_000]] as const) {
  t.test(`attack: a caller that changes its feeds right after run() cannot split the commitment from what ran, ${label}`, async t => {
    const { agent, modelPath } = await startAgent(t, makeIdentityModel('float32'))
    const model = await agent.loadModel(modelPath)
    const data = Float32Array.from({ length: elements }, (_, i) => i % 251)
    const original = new ort.Tensor('float32', data.slice(), [elements])
    const x = new ort.Tensor('float32', data, [elements])
    const pending = model.run({ x })
    data.fill(7)
    const { outputs, record } = await pending
    const salt = agent.saltFor(record.record.seq)
    const body = record.record.body as InferenceBody
    t.same(body.inputs[0]?.hash, commitTensor(salt, 'x', original), 'the input commitment covers the bytes at the time of run()')
    const got = outputs.y?.data as Float32Array
    const want = original.data
    t.ok(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(want.buffer, want.byteOffset, want.byteLength)), 'the model computed on those bytes')
    t.same(body.outputs[0]?.hash, commitTensor(salt, 'y', outputs.y as ort.Tensor), 'the output commitment covers the returned outputs')
  })
}

t.test('behavior: feeds over part of a larger buffer or over a SharedArrayBuffer run and commit exactly their bytes', async t => {
  const { agent, modelPath } = await startAgent(t, makeIdentityModel('float32'))
  const model = await agent.loadModel(modelPath)
  const big = new Float32Array(4096).map((_, i) => i)
  const view = new ort.Tensor('float32', big.subarray(1000, 1010), [10])
  const shared = new Float32Array(new SharedArrayBuffer(40)).map((_, i) => i * 2)
  const sab = new ort.Tensor('float32', shared, [10])
  for (const x of [view, sab]) {
    const { outputs, record } = await model.run({ x })
    t.same([...(outputs.y?.data as Float32Array)], [...(x.data)])
    t.same((record.record.body as InferenceBody).inputs[0]?.hash, commitTensor(agent.saltFor(record.record.seq), 'x', x))
  }
})

t.test('behavior: runs in a row and at once each compute on and commit to their own inputs, though snapshot and input buffers are reused', async t => {
  const { agent, modelPath } = await startAgent(t, makeIdentityModel('float32'))
  const model = await agent.loadModel(modelPath)
  // 64 Ki elements: 256 KiB, large enough for the snapshot pool; an Identity node may hand back
  // the worker's input buffer itself as its output.
  const elements = 64 * 1024
  const tensorOf = (k: number): ort.Tensor => new ort.Tensor('float32', Float32Array.from({ length: elements }, (_, i) => (i * 7 + k) % 1009), [elements])
  const check = (k: number, outputs: ort.InferenceSession.OnnxValueMapType, record: { record: { seq: number, body: unknown } }): void => {
    const want = tensorOf(k)
    t.same(Buffer.from((outputs.y?.data as Float32Array).buffer), Buffer.from((want.data as Float32Array).buffer), `run ${k}: the model computed on its own input`)
    const body = record.record.body as InferenceBody
    t.same(body.inputs[0]?.hash, commitTensor(agent.saltFor(record.record.seq), 'x', want), `run ${k}: the commitment covers its own input`)
  }
  const inRow: Array<Awaited<ReturnType<typeof model.run>>> = []
  for (let k = 0; k < 3; k++) inRow.push(await model.run({ x: tensorOf(k) }))
  // Checked only after the later runs: an earlier result must not change under a reused buffer.
  for (const [k, r] of inRow.entries()) check(k, r.outputs, r.record)
  const atOnce = await Promise.all([10, 11, 12, 13, 14, 15].map(async k => ({ k, r: await model.run({ x: tensorOf(k) }) })))
  for (const { k, r } of atOnce) check(k, r.outputs, r.record)
})

t.test('behavior: a held snapshot is not reused for a later run until it is let go; then it is', async t => {
  const dir = await makeTempDir(t, 'prov-worker-')
  const modelPath = join(dir, 'identity.onnx')
  await writeFile(modelPath, makeIdentityModel('float32'))
  const loaded = await loadModelInWorker(modelPath, { intraOpNumThreads: 1 })
  t.teardown(async () => { await loaded.release() })
  const session = loaded.session
  // 256 KiB: large enough for the snapshot pool.
  const elements = 64 * 1024
  const feeds = (v: number): Record<string, ort.Tensor> => ({ x: new ort.Tensor('float32', new Float32Array(elements).fill(v), [elements]) })
  let view: Float32Array | undefined
  let release: (() => void) | undefined
  const first = session.startRun(feeds(1), { onInputs: (inputs, hold) => { view = inputs.x?.data as Float32Array; release = hold() } })
  await Promise.all([first.inputs, first.result])
  t.ok(view !== undefined && view.buffer instanceof SharedArrayBuffer, 'the snapshot is shared memory')
  for (let v = 2; v < 6; v++) {
    const later = session.startRun(feeds(v))
    await Promise.all([later.inputs, later.result])
    // Two turns: a snapshot goes back after both of a run's promises settle.
    await new Promise(resolve => setImmediate(resolve))
  }
  t.ok(view!.every(x => x === 1), 'four later runs of the same size left the held snapshot as it was')
  release!()
  release!()
  await new Promise(resolve => setImmediate(resolve))
  const after = session.startRun(feeds(7))
  await Promise.all([after.inputs, after.result])
  let reused = view!.every(x => x === 7)
  for (let v = 8; v < 16 && !reused; v++) {
    const more = session.startRun(feeds(v))
    await Promise.all([more.inputs, more.result])
    await new Promise(resolve => setImmediate(resolve))
    reused = view!.every(x => x === v)
  }
  t.ok(reused, 'once let go, a later run snapshots into it')
})

t.test('error: a watcher that holds a run\'s snapshot and then throws, or gives no end, lets it go: the snapshot serves later runs', async t => {
  const dir = await makeTempDir(t, 'prov-worker-')
  const modelPath = join(dir, 'identity.onnx')
  await writeFile(modelPath, makeIdentityModel('float32'))
  let mode: 'throw' | 'no end' = 'throw'
  const agent = await ProvenanceAgent.start({
    stateDir: join(dir, 's'),
    deviceId: 'dev-1',
    intraOpNumThreads: 1,
    syncWrites: false,
    watchRun: (_inputs, hold) => {
      hold()
      if (mode === 'throw') throw new Error('watcher broke after holding')
      return undefined
    }
  })
  t.teardown(async () => { await agent.stop() })
  const model = await agent.loadModel(modelPath)
  // 256 KiB: large enough for the snapshot pool, which starts empty.
  const x = new ort.Tensor('float32', new Float32Array(64 * 1024).fill(3), [64 * 1024])
  for (const m of ['throw', 'no end'] as const) {
    mode = m
    const { record } = await model.run({ x })
    t.ok(record.record.seq > 1, `${m}: the run has its record`)
    await new Promise(resolve => setImmediate(resolve))
    t.equal(model.loaded.session.heldBytes.snapshots, 64 * 1024 * 4, `${m}: the snapshot went back to the pool`)
  }
})

t.test('behavior: lent outputs are never overwritten before their release, come in reused shared buffers after it, and commit to what the caller sees', async t => {
  const { agent, modelPath } = await startAgent(t, makeIdentityModel('float32'))
  const model = await agent.loadModel(modelPath)
  const elements = 64 * 1024
  const tensorOf = (k: number): ort.Tensor => new ort.Tensor('float32', Float32Array.from({ length: elements }, (_, i) => (i * 7 + k) % 1009), [elements])
  const check = (k: number, r: Awaited<ReturnType<typeof model.run>>, what: string): void => {
    const want = tensorOf(k)
    const y = r.outputs.y?.data as Float32Array
    t.same(Buffer.from(y.buffer, y.byteOffset, y.byteLength), Buffer.from((want.data as Float32Array).buffer), `${what}: run ${k}'s output`)
    const body = r.record.record.body as InferenceBody
    t.same(body.outputs[0]?.hash, commitTensor(agent.saltFor(r.record.record.seq), 'y', want), `${what}: run ${k}'s output commitment`)
  }
  // Held: 12 lent runs, none released. The pool has 8 slots of a size; the rest come by transfer.
  const held: Array<Awaited<ReturnType<typeof model.run>>> = []
  for (let k = 0; k < 12; k++) held.push(await model.run({ x: tensorOf(k) }, { lendOutputs: true }))
  const shared = held.filter(r => (r.outputs.y?.data as Float32Array).buffer instanceof SharedArrayBuffer)
  t.equal(shared.length, 8, 'eight runs lent, the others given')
  t.equal(new Set(shared.map(r => (r.outputs.y?.data as Float32Array).buffer)).size, 8, 'no two held runs share a buffer')
  for (const [k, r] of held.entries()) check(k, r, 'held')
  // Released: the next runs reuse those buffers (no new one), and still see their own bytes.
  const buffers = new Set(shared.map(r => (r.outputs.y?.data as Float32Array).buffer))
  for (const r of held) { r.release(); r.release() }
  for (let k = 20; k < 30; k++) {
    const r = await model.run({ x: tensorOf(k) }, { lendOutputs: true })
    t.ok(buffers.has((r.outputs.y?.data as Float32Array).buffer), `run ${k} reuses a released buffer`)
    check(k, r, 'reused')
    r.release()
  }
  // Runs at once, lent: each its own slot until released.
  const atOnce = await Promise.all([40, 41, 42, 43].map(async k => ({ k, r: await model.run({ x: tensorOf(k) }, { lendOutputs: true }) })))
  for (const { k, r } of atOnce) check(k, r, 'at once')
  for (const { r } of atOnce) r.release()
  // Not lent: the caller's own buffer, for good; release() does nothing.
  const given = await model.run({ x: tensorOf(50) })
  t.ok((given.outputs.y?.data as Float32Array).buffer instanceof ArrayBuffer, 'a run that is not lent gives a plain buffer')
  given.release()
  check(50, given, 'given')
})

/** x [n] → Neg → y [n]: onnxruntime hands back a fresh output buffer each run (not the input's). */
function makeNegModel (): Uint8Array {
  const info = (name: string): object => ({ name, type: { tensorType: { elemType: ONNX_DTYPE.float32, shape: { dim: [{ dimParam: 'n' }] } } } })
  return encodeModel({ graph: { name: 'neg', node: [{ name: 'neg', opType: 'Neg', input: ['x'], output: ['y'] }], input: [info('x')], output: [info('y')] } })
}

function rssMiB (): number {
  return process.memoryUsage().rss / 1048576
}

t.test('attack: a stream of lent runs with large outputs does not pile onnxruntime\'s copies up in the worker', async t => {
  // 4 MiB out per run, 64 runs: the worker's copies piled up until its GC noticed them had it not
  // freed each one once it sat in its slot (measured: RSS +25..+29 MiB without, +1..+7 with).
  const { agent, modelPath } = await startAgent(t, makeNegModel())
  const model = await agent.loadModel(modelPath)
  const elements = 1024 * 1024
  const x = new ort.Tensor('float32', Float32Array.from({ length: elements }, (_, i) => i % 1000), [elements])
  const runReleased = async (): Promise<void> => {
    const r = await model.run({ x }, { lendOutputs: true })
    const y = r.outputs.y?.data as Float32Array
    if (y[999] !== -999 || !(y.buffer instanceof SharedArrayBuffer)) t.fail('a lent run gave the wrong output')
    r.release()
  }
  for (let i = 0; i < 8; i++) await runReleased()
  const before = rssMiB()
  let peak = before
  for (let i = 0; i < 64; i++) {
    await runReleased()
    peak = Math.max(peak, rssMiB())
  }
  t.ok(peak - before < 16, `RSS grew ${(peak - before).toFixed(1)} MiB over 64 runs of 4 MiB outputs (under 16)`)
})

t.test('attack: lent runs of ever other sizes keep the spare snapshots and output slots within their byte bounds', async t => {
  // A model with a dynamic dimension fed 48 sizes of 0.5–2.4 MiB, each run lent, several at once,
  // then released: pools bounded per size only kept a snapshot and a slot of every size (~140 MiB).
  const dir = await makeTempDir(t, 'prov-worker-sizes-')
  const modelPath = join(dir, 'neg.onnx')
  await writeFile(modelPath, makeNegModel())
  const loaded = await loadModelInWorker(modelPath, { intraOpNumThreads: 1 })
  t.teardown(async () => { await loaded.session.release() })
  const session = loaded.session
  const lengths = Array.from({ length: 48 }, (_, k) => 128 * 1024 + k * 10_000)
  let worst = { snapshots: 0, slots: 0 }
  for (let k = 0; k < lengths.length; k += 3) {
    const runs = lengths.slice(k, k + 3).map(n => {
      const x = new ort.Tensor('float32', Float32Array.from({ length: n }, (_, i) => i % 7), [n])
      return { n, run: session.startRun({ x }, { lendOutputs: true }) }
    })
    for (const { n, run } of runs) {
      const r = await run.result
      const y = r.outputs.y?.data as Float32Array
      t.ok(y.length === n && y[n - 1] === -((n - 1) % 7) && y.buffer instanceof SharedArrayBuffer, `run of ${n} elements: its own output, lent`)
      await run.inputs
      r.release()
    }
    const held = session.heldBytes
    worst = { snapshots: Math.max(worst.snapshots, held.snapshots), slots: Math.max(worst.slots, held.slots) }
  }
  t.ok(worst.snapshots <= SPARE_SNAPSHOT_BYTES, `spare snapshots at most ${worst.snapshots} bytes (bound ${SPARE_SNAPSHOT_BYTES})`)
  t.ok(worst.slots <= MAX_LENT_SLOT_BYTES, `output slots known here at most ${worst.slots} bytes (bound ${MAX_LENT_SLOT_BYTES})`)
  t.ok(worst.snapshots > 16 * 1024 * 1024 && worst.slots > 16 * 1024 * 1024, 'and both were used up to near their bounds')
})

t.test('behavior: input hashing starts only after a turn of the event loop, then yields between slices, and gives digestTensor\'s digest', async t => {
  const bytes = new Uint8Array(600 * 1024).map((_, i) => i % 253)
  const canonical = canonicalTensor('x', { type: 'uint8', dims: [bytes.length], data: bytes })
  const [part] = [...canonical.parts()] as [Uint8Array<ArrayBuffer>]
  let sliced = 0
  // Every slice is cut with subarray just before it is hashed: this counts them as they come.
  part.subarray = function (this: Uint8Array<ArrayBuffer>, begin?: number, end?: number): Uint8Array<ArrayBuffer> {
    sliced++
    return Uint8Array.prototype.subarray.call(this, begin, end) as Uint8Array<ArrayBuffer>
  }
  const hashing = hashCanonicalYielding(canonical, 256 * 1024)
  t.equal(sliced, 0, 'nothing is hashed in the caller\'s synchronous part')
  const immediate = new Promise<number>(resolve => setImmediate(() => { resolve(sliced) }))
  // The hashing queued its turn first: one slice per turn of the loop.
  t.equal(await immediate, 1, 'a callback queued right after the call runs after the first slice, before the second')
  const digest = await hashing
  t.equal(sliced, 3, 'three slices of 256 KiB at most')
  t.same(digest, digestTensor('x', { type: 'uint8', dims: [bytes.length], data: new Uint8Array(bytes) }))
})

t.test('behavior: input hashing yields to the event loop between slices, from the first slice on', async t => {
  const { agent, modelPath } = await startAgent(t, makeIdentityModel('float32'))
  const model = await agent.loadModel(modelPath)
  const x = new ort.Tensor('float32', new Float32Array(1024 * 1024).fill(1), [1024 * 1024])
  const started = model.loaded.session.startRun({ x })
  let turned = false
  setImmediate(() => { turned = true })
  await started.inputs
  t.ok(turned, 'a callback queued after the run was posted ran before the 4 MiB input was hashed')
  await started.result
})

t.test('behavior: inferenceNiceness lowers the model worker\'s threads, not the main thread; bad values are RangeErrors', { skip: process.platform !== 'linux' && 'thread nice values are read from Linux /proc' }, async t => {
  const dir = await makeTempDir(t, 'prov-worker-nice-')
  const modelPath = join(dir, 'model.onnx')
  await writeFile(modelPath, makeIdentityModel('float32'))
  const agent = await ProvenanceAgent.start({ stateDir: join(dir, 's'), deviceId: 'dev-1', inferenceNiceness: 7 })
  t.teardown(async () => { await agent.stop() })
  const niceOf = async (): Promise<Map<number, number>> => {
    const out = new Map<number, number>()
    for (const tid of await readdir('/proc/self/task')) {
      const stat = await readFile(`/proc/self/task/${tid}/stat`, 'utf8').catch(() => '')
      // Field 19 (nice) counted from field 3, the first after the command name's ')'.
      if (stat !== '') out.set(Number(tid), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]))
    }
    return out
  }
  const before = [...(await niceOf()).values()].filter(n => n === 7).length
  const model = await agent.loadModel(modelPath)
  await model.run({ x: new ort.Tensor('float32', new Float32Array(4), [4]) })
  const after = await niceOf()
  t.ok([...after.values()].filter(n => n === 7).length > before, 'the model worker runs at nice 7')
  t.equal(after.get(process.pid), 0, 'the main thread stays at nice 0')
  for (const niceness of [-1, 20, 1.5]) {
    await t.rejects(loadModelInWorker(modelPath, { niceness }), RangeError, `niceness ${niceness}`)
  }
})

t.test('error: invalid tensors are refused before anything runs, with TENSOR_INVALID', async t => {
  const { agent, modelPath } = await startAgent(t, makeIdentityModel('float32'))
  const model = await agent.loadModel(modelPath)
  const x = { type: 'float32', dims: [5], data: new Float32Array(4) } as unknown as ort.Tensor
  await t.rejects(model.run({ x }), ProtocolError)
  await t.rejects(model.run({ x }), { code: 'TENSOR_INVALID' })
  const ok = await model.run({ x: new ort.Tensor('float32', new Float32Array(4), [4]) })
  t.equal(ok.record.record.body.kind, 'inference', 'the model still runs')
})

t.test('error: a model worker that dies fails its runs with INFERENCE_FAILED; the agent and other models stay up', async t => {
  const { agent, modelPath } = await startAgent(t, makeIdentityModel('float32'))
  const doomed = await agent.loadModel(modelPath, { name: 'doomed' })
  const other = await agent.loadModel(modelPath, { name: 'other' })
  const x = new ort.Tensor('float32', new Float32Array(4), [4])
  await (doomed.loaded.session as unknown as { worker: Worker }).worker.terminate()
  await t.rejects(doomed.run({ x }), AgentError)
  await t.rejects(doomed.run({ x }), { code: 'INFERENCE_FAILED' })
  const { record } = await other.run({ x })
  t.equal(record.record.body.kind, 'inference')
  await doomed.release()
})

t.test('behavior: the record names the providers the worker session registered', async t => {
  const { agent, modelPath } = await startAgent(t, makeIdentityModel('float32'))
  const model = await agent.loadModel(modelPath)
  t.same(model.loaded.executionProviders, ['cpu'])
  t.same((model.loadRecord.record.body as { providers: string[] }).providers, ['cpu'])
  t.equal(model.loaded.bytes.byteLength, makeIdentityModel('float32').byteLength, 'the hashed buffer came back from the worker whole')
})
