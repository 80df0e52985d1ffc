/**
 * Hostile model files: garbage, every truncation, random byte changes and splices. Whatever the
 * bytes, loading ends in a model or in a ModelError with a fitting code, never another exception.
 */
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import fc from 'fast-check'
import { ModelError, buildModelManifest, loadModel, type ModelErrorCode } from '../../../agent/model/index.js'
import { makeTempDir } from '../../helpers/tmp.js'
import { makeBranchModel, makeClassifierModel, makeConstantModel } from '../../helpers/onnx-models.js'

const SEED = 20240611
const PARSE_CODES: readonly ModelErrorCode[] = ['MODEL_NOT_ONNX', 'MODEL_CORRUPT', 'MODEL_EXTERNAL_DATA']
const LOAD_CODES: readonly ModelErrorCode[] = [...PARSE_CODES, 'MODEL_SESSION_FAILED']
const THREADS = { intraOpNumThreads: 1, interOpNumThreads: 1 }

const VALID = [
  makeClassifierModel({ seed: 1 }),
  makeClassifierModel({ seed: 2, weightsIn: 'float_data' }),
  makeBranchModel(3),
  makeConstantModel('int64', [1n, -2n, 3n], 'typed')
]

/** Returns the error code, or 'ok'; fails the test on any exception that is not a ModelError. */
function classifyParse (bytes: Uint8Array): ModelErrorCode | 'ok' {
  try {
    buildModelManifest(bytes)
    return 'ok'
  } catch (e) {
    if (e instanceof ModelError) return e.code
    throw new Error(`not a ModelError: ${String(e)}`, { cause: e })
  }
}

t.test('behavior: random bytes never escape as anything but a ModelError', async (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
    const code = classifyParse(bytes)
    return code === 'ok' || PARSE_CODES.includes(code)
  }), { seed: SEED, numRuns: 400 })
  // Garbage that starts like a ModelProto header gets further into the parser.
  fc.assert(fc.property(fc.uint8Array({ maxLength: 512 }), (tail) => {
    const code = classifyParse(Buffer.concat([Buffer.from([0x08, 0x08, 0x3a]), tail]))
    return code === 'ok' || PARSE_CODES.includes(code)
  }), { seed: SEED, numRuns: 400 })
  t.pass('400 + 400 cases')
})

t.test('error: every truncation of the generated models is refused', async (t) => {
  for (const model of VALID) {
    const codes = new Set<string>()
    for (let cut = 0; cut < model.length; cut++) codes.add(classifyParse(model.subarray(0, cut)))
    t.notOk(codes.has('ok'), `no prefix of a ${model.length}-byte model parses`)
    t.ok([...codes].every((c) => c === 'MODEL_CORRUPT' || c === 'MODEL_NOT_ONNX'), [...codes].join(', '))
  }
})

t.test('behavior: mutated models load or fail with a ModelError, end to end', async (t) => {
  const dir = await makeTempDir(t, 'hostile-')
  const outcomes = new Map<string, number>()
  let n = 0
  const mutation = fc.record({
    model: fc.integer({ min: 0, max: VALID.length - 1 }),
    edits: fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 4 }),
    cut: fc.option(fc.nat(), { nil: undefined })
  })
  await fc.assert(fc.asyncProperty(mutation, async ({ model, edits, cut }) => {
    const bytes = Buffer.from(VALID[model] as Uint8Array)
    for (const { at, value } of edits) bytes[at % bytes.length] = value
    const path = join(dir, `m${n++}.onnx`)
    await writeFile(path, cut === undefined ? bytes : bytes.subarray(0, cut % bytes.length))
    try {
      const loaded = await loadModel(path, THREADS)
      await loaded.release()
      outcomes.set('ok', (outcomes.get('ok') ?? 0) + 1)
      return true
    } catch (e) {
      if (!(e instanceof ModelError)) throw new Error(`not a ModelError: ${String(e)}`, { cause: e })
      outcomes.set(e.code, (outcomes.get(e.code) ?? 0) + 1)
      return LOAD_CODES.includes(e.code)
    }
  }), { seed: SEED, numRuns: 250 })
  t.comment(JSON.stringify(Object.fromEntries(outcomes)))
  t.ok((outcomes.get('MODEL_CORRUPT') ?? 0) > 0, 'some mutations are caught by the parser')
})
