/**
 * Incident captures: the raw inputs and outputs of a device's recent inferences, with the salt of
 * each record, frozen into one canonical CBOR file that an investigator replays against the signed
 * records (docs/FORENSICS-replay.md §Capture file). The agent writes them; forensics reads them as
 * hostile input: every length is checked before anything is allocated.
 */
import { decodeCanonical, encodeCanonical, type CborValue } from './cbor.js'
import { ProtocolError, ProvenanceError } from './errors.js'
import { HASH_BYTES, sha256 } from './hash.js'
import { DEVICE_ID_PATTERN, LIMITS } from './record.js'
import { MAX_TENSOR_RANK, SALT_BYTES, TENSOR_DTYPES, commitDigest, type TensorDtype, type TensorLike } from './tensor.js'
import { isArray } from './guards.js'

/** Codes of capture encoding and decoding. */
export type CaptureErrorCode =
  /** Not a capture file: bad CBOR, wrong shape, a bad field, data that does not fit its dims. */
  | 'CAPTURE_MALFORMED'
  /** Larger than the `maxBytes` the reader accepts (checked before decoding). */
  | 'CAPTURE_TOO_LARGE'

export class CaptureError extends ProvenanceError<CaptureErrorCode> {}

export const CAPTURE_FORMAT = 1

export const CAPTURE_LIMITS = {
  /** Most entries (runs) in one capture. */
  entries: 65_536,
  /** Most tensors on each side (inputs, outputs) of an entry: the record's own limit. */
  tensors: LIMITS.tensors,
  /** Reason and tensor names: text of at most this many UTF-8 bytes. */
  textBytes: LIMITS.textBytes,
  /** Deepest array nesting: capture → entries → entry → tensors → tensor → dims. */
  depth: 6
} as const

/** Largest capture file `decodeCapture` reads unless told otherwise: 256 MiB. */
export const DEFAULT_CAPTURE_MAX_BYTES = 256 * 1024 * 1024

/**
 * One tensor as captured: `data` is its canonical data bytes, exactly what the commitment hashes
 * (docs/PROTOCOL.md §5): the elements little-endian for numeric types, u32be(len) ‖ UTF-8 per
 * element for strings.
 */
export interface CapturedTensor {
  name: string
  dtype: TensorDtype
  dims: number[]
  data: Uint8Array
}

/** One inference run: its record's seq and salt, the model it claims, raw inputs and outputs. */
export interface CaptureEntry {
  seq: number
  /** The salt of `seq` (32 bytes): it opens this record's commitments and no other. */
  salt: Uint8Array
  /** SHA-256 of the model file, as the device's record names it. */
  modelHash: Uint8Array
  inputs: CapturedTensor[]
  outputs: CapturedTensor[]
}

export interface Capture {
  deviceId: string
  /** Why it was frozen: an investigator's request, or the name of a trigger. */
  reason: string
  /** Device time of the freeze, Unix ms. */
  frozenAtMs: number
  /** Ascending, unique seqs. */
  entries: CaptureEntry[]
}

export interface DecodeCaptureOptions {
  /** Largest input accepted, in bytes. Default {@link DEFAULT_CAPTURE_MAX_BYTES}. */
  maxBytes?: number
}

const DTYPE_BY_CODE = new Map<number, TensorDtype>(Object.entries(TENSOR_DTYPES).map(([k, v]) => [v, k as TensorDtype]))
const textEncoder = new TextEncoder()
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })
const LONE_SURROGATE = /[\uD800-\uDFFF]/u

/**
 * Copies a tensor into its captured form (canonical data bytes), so the caller may reuse its buffers.
 * `into`, when it has exactly the tensor's byte length, receives the bytes instead of a new
 * buffer (a capture ring reuses the buffers of the runs it evicts).
 * @throws ProtocolError `TENSOR_INVALID` for an unknown dtype, bad dims, or data that does not fit.
 */
export function captureTensor (name: string, tensor: TensorLike, into?: Uint8Array): CapturedTensor {
  if (typeof tensor.type !== 'string' || !Object.hasOwn(TENSOR_DTYPES, tensor.type)) {
    throw new ProtocolError('TENSOR_INVALID', `tensor "${name}": unsupported dtype ${String(tensor.type)}`)
  }
  const dtype = tensor.type as TensorDtype
  const dims = isArray(tensor.dims) ? [...tensor.dims] : []
  const elements = Array.isArray(tensor.dims) && dims.length <= MAX_TENSOR_RANK ? countElements(dims) : undefined
  if (elements === undefined) throw new ProtocolError('TENSOR_INVALID', `tensor "${name}": bad dims`)
  if (dtype === 'string') {
    const values = tensor.data
    if (!Array.isArray(values) || values.length !== elements || !values.every(v => typeof v === 'string')) {
      throw new ProtocolError('TENSOR_INVALID', `tensor "${name}": string tensor needs ${elements} strings`)
    }
    return { name, dtype, dims, data: encodeStrings(values) }
  }
  const data = tensor.data
  if (!ArrayBuffer.isView(data) || data.byteLength !== elements * elementBytes(dtype)) {
    throw new ProtocolError('TENSOR_INVALID', `tensor "${name}": data does not fit ${elements} elements of ${dtype}`)
  }
  const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  if (into?.byteLength === view.byteLength) {
    into.set(view)
    return { name, dtype, dims, data: into }
  }
  return { name, dtype, dims, data: view.slice() }
}

/**
 * A captured tensor as typed data again (for an inference session): numeric data in a typed array
 * of the dtype (float16 as its Uint16 bits, bool as Uint8, 64-bit integers as BigInt arrays),
 * strings as `string[]`. Shares `data`'s memory when its alignment allows.
 */
export function tensorOfCaptured (t: CapturedTensor): TensorLike & { type: TensorDtype } {
  if (t.dtype === 'string') return { type: t.dtype, dims: [...t.dims], data: decodeStrings(t.data, countElements(t.dims) ?? 0) ?? [] }
  const width = elementBytes(t.dtype)
  // A copy (not `.slice()`, which is a view on a Buffer) when the alignment of the view forbids one.
  const bytes = t.data.byteOffset % width === 0 ? t.data : new Uint8Array(t.data)
  const { buffer, byteOffset } = bytes
  const n = bytes.byteLength / width
  const data = ((): ArrayBufferView => {
    switch (t.dtype) {
      case 'float32': return new Float32Array(buffer, byteOffset, n)
      case 'float64': return new Float64Array(buffer, byteOffset, n)
      case 'int8': return new Int8Array(buffer, byteOffset, n)
      case 'uint16': case 'float16': return new Uint16Array(buffer, byteOffset, n)
      case 'int16': return new Int16Array(buffer, byteOffset, n)
      case 'int32': return new Int32Array(buffer, byteOffset, n)
      case 'uint32': return new Uint32Array(buffer, byteOffset, n)
      case 'int64': return new BigInt64Array(buffer, byteOffset, n)
      case 'uint64': return new BigUint64Array(buffer, byteOffset, n)
      default: return new Uint8Array(buffer, byteOffset, n)
    }
  })()
  return { type: t.dtype, dims: [...t.dims], data }
}

/**
 * The commitment of a captured tensor under `salt`: the same value as `commitTensor` on the
 * tensor it was captured from, computed from the canonical data bytes directly.
 */
export function commitCapturedTensor (salt: Uint8Array, t: CapturedTensor): Uint8Array {
  return commitDigest(salt, t.name, { dtypeCode: TENSOR_DTYPES[t.dtype], dims: t.dims, byteLength: t.data.byteLength, dataHash: sha256(t.data) })
}

/**
 * An upper bound, in bytes, of an entry's share of the encoded capture; the ring's byte budget
 * counts this, so a ring of `maxBytes` freezes to at most `maxBytes + CAPTURE_HEADER_BYTES`.
 */
export function sizeCaptureEntry (entry: CaptureEntry): number {
  let total = ENTRY_OVERHEAD_BYTES
  for (const t of [...entry.inputs, ...entry.outputs]) {
    total += TENSOR_OVERHEAD_BYTES + textEncoder.encode(t.name).byteLength + 9 * t.dims.length + t.data.byteLength
  }
  return total
}

// Heads are at most 9 bytes: entry array 1 + seq 9 + salt 34 + model hash 34 + two array heads 18
// = 96; per tensor, array 1 + name head 9 + dtype 2 + dims head 9 + data head 9 = 30, dims 9 each.
const ENTRY_OVERHEAD_BYTES = 128
const TENSOR_OVERHEAD_BYTES = 64
/** Upper bound of the capture's own fields: version, device id (≤ 128), reason (≤ 256), time, heads. */
export const CAPTURE_HEADER_BYTES = 512

/**
 * Canonical CBOR bytes of a capture: [1, deviceId, reason, frozenAtMs, [entry...]], entry =
 * [seq, salt, modelHash, [[name, dtypeCode, dims, data]...], [...outputs]].
 * @throws CaptureError `CAPTURE_MALFORMED` naming every bad field.
 */
export function encodeCapture (capture: Capture): Uint8Array {
  assertCapture(capture)
  const tensor = (t: CapturedTensor): CborValue => [t.name, TENSOR_DTYPES[t.dtype], t.dims, t.data]
  return encodeCanonical([
    CAPTURE_FORMAT, capture.deviceId, capture.reason, capture.frozenAtMs,
    capture.entries.map(e => [e.seq, e.salt, e.modelHash, e.inputs.map(tensor), e.outputs.map(tensor)])
  ])
}

/**
 * Parses capture bytes from disk or network.
 * @throws CaptureError `CAPTURE_TOO_LARGE` (before decoding), `CAPTURE_MALFORMED`.
 */
export function decodeCapture (bytes: Uint8Array, options: DecodeCaptureOptions = {}): Capture {
  if (!(bytes instanceof Uint8Array)) throw new CaptureError('CAPTURE_MALFORMED', 'a capture must be bytes')
  const maxBytes = options.maxBytes ?? DEFAULT_CAPTURE_MAX_BYTES
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new RangeError('maxBytes must be a non-negative integer')
  if (bytes.byteLength > maxBytes) throw new CaptureError('CAPTURE_TOO_LARGE', `capture of ${bytes.byteLength} bytes exceeds ${maxBytes}`)
  let value: CborValue
  try {
    // A plain view: decodeCanonical copies byte strings with `.slice()`, which on a Buffer (what
    // fs hands out) would give views into the input, at any alignment.
    const plain = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    value = decodeCanonical(plain, { maxBytes, maxDepth: CAPTURE_LIMITS.depth })
  } catch (cause) {
    throw new CaptureError('CAPTURE_MALFORMED', `capture is not canonical CBOR: ${(cause as Error).message}`, { cause })
  }
  if (!Array.isArray(value) || value.length !== 5) throw new CaptureError('CAPTURE_MALFORMED', 'capture must be an array of 5 fields')
  const [format, deviceId, reason, frozenAtMs, rawEntries] = value as CborValue[]
  if (format !== CAPTURE_FORMAT) throw new CaptureError('CAPTURE_MALFORMED', `unsupported capture format ${String(format)}`)
  if (!Array.isArray(rawEntries)) throw new CaptureError('CAPTURE_MALFORMED', 'entries: not an array')
  const problems: string[] = []
  const entries = (rawEntries as CborValue[]).map((raw, i) => entryOf(raw, `entries[${i}]`, problems))
  if (problems.length > 0) throw new CaptureError('CAPTURE_MALFORMED', `invalid capture: ${problems.slice(0, 20).join('; ')}`)
  const capture = { deviceId, reason, frozenAtMs, entries }
  assertCapture(capture)
  return capture
}

/**
 * Asserts that `value` is a well-formed capture, collecting the path of every bad field
 * (`deviceId`, `reason`, `frozenAtMs`, `entries`, `entries[i].seq`, `.salt`, `.modelHash`,
 * `.inputs`, `.inputs[j].name`, `.dtype`, `.dims`, `.data`, the same for `.outputs`).
 * @throws CaptureError `CAPTURE_MALFORMED`.
 */
export function assertCapture (value: unknown): asserts value is Capture {
  const c = value as Partial<Capture> | null
  if (typeof c !== 'object' || c === null) throw new CaptureError('CAPTURE_MALFORMED', 'capture must be an object')
  const problems: string[] = []
  if (typeof c.deviceId !== 'string' || c.deviceId.length > LIMITS.deviceIdChars || !DEVICE_ID_PATTERN.test(c.deviceId)) {
    problems.push('deviceId: not a device id')
  }
  if (!isText(c.reason)) problems.push(`reason: not text of at most ${CAPTURE_LIMITS.textBytes} bytes`)
  if (!isUint(c.frozenAtMs)) problems.push('frozenAtMs: not a safe integer ≥ 0')
  if (!Array.isArray(c.entries) || c.entries.length > CAPTURE_LIMITS.entries) {
    problems.push(`entries: not an array of at most ${CAPTURE_LIMITS.entries}`)
  } else {
    let lastSeq = -1
    c.entries.forEach((e: unknown, i) => {
      const path = `entries[${i}]`
      const entry = e as Partial<CaptureEntry> | null
      if (typeof entry !== 'object' || entry === null) { problems.push(`${path}: not an object`); return }
      if (!isUint(entry.seq)) problems.push(`${path}.seq: not a safe integer ≥ 0`)
      else if (entry.seq <= lastSeq) problems.push(`${path}.seq: not above the previous entry's (seqs ascend, no duplicates)`)
      else lastSeq = entry.seq
      if (!(entry.salt instanceof Uint8Array) || entry.salt.byteLength !== SALT_BYTES) problems.push(`${path}.salt: not ${SALT_BYTES} bytes`)
      if (!(entry.modelHash instanceof Uint8Array) || entry.modelHash.byteLength !== HASH_BYTES) problems.push(`${path}.modelHash: not ${HASH_BYTES} bytes`)
      checkTensors(entry.inputs, `${path}.inputs`, problems)
      checkTensors(entry.outputs, `${path}.outputs`, problems)
    })
  }
  if (problems.length > 0) throw new CaptureError('CAPTURE_MALFORMED', `invalid capture: ${problems.slice(0, 20).join('; ')}`)
}

function checkTensors (value: unknown, path: string, problems: string[]): void {
  if (!Array.isArray(value) || value.length > CAPTURE_LIMITS.tensors) {
    problems.push(`${path}: not an array of at most ${CAPTURE_LIMITS.tensors}`)
    return
  }
  const names = new Set<string>()
  value.forEach((v: unknown, j) => {
    const p = `${path}[${j}]`
    const t = v as Partial<CapturedTensor> | null
    if (typeof t !== 'object' || t === null) { problems.push(`${p}: not an object`); return }
    if (!isText(t.name)) problems.push(`${p}.name: not text of at most ${CAPTURE_LIMITS.textBytes} bytes`)
    else if (names.has(t.name)) problems.push(`${p}.name: duplicate "${t.name}"`)
    else names.add(t.name)
    const dtypeOk = typeof t.dtype === 'string' && Object.hasOwn(TENSOR_DTYPES, t.dtype)
    if (!dtypeOk) problems.push(`${p}.dtype: unknown`)
    const elements = Array.isArray(t.dims) && t.dims.length <= MAX_TENSOR_RANK ? countElements(t.dims) : undefined
    if (elements === undefined) problems.push(`${p}.dims: not at most ${MAX_TENSOR_RANK} safe integers ≥ 0 with a safe product`)
    if (!(t.data instanceof Uint8Array)) { problems.push(`${p}.data: not bytes`); return }
    if (!dtypeOk || elements === undefined) return
    const dtype = t.dtype as TensorDtype
    if (dtype === 'string') {
      if (decodeStrings(t.data, elements) === undefined) problems.push(`${p}.data: not ${elements} length-prefixed UTF-8 strings`)
    } else if (t.data.byteLength !== elements * elementBytes(dtype)) {
      problems.push(`${p}.data: ${t.data.byteLength} bytes for ${elements} elements of ${dtype}`)
    }
  })
}

function entryOf (raw: CborValue, path: string, problems: string[]): CaptureEntry {
  if (!Array.isArray(raw) || raw.length !== 5) {
    problems.push(`${path}: not an array of 5 fields`)
    return { seq: -1, salt: new Uint8Array(0), modelHash: new Uint8Array(0), inputs: [], outputs: [] }
  }
  const [seq, salt, modelHash, inputs, outputs] = raw as CborValue[]
  return {
    seq: seq as number,
    salt: salt as Uint8Array,
    modelHash: modelHash as Uint8Array,
    inputs: tensorsOf(inputs, `${path}.inputs`, problems),
    outputs: tensorsOf(outputs, `${path}.outputs`, problems)
  }
}

// Wrong CBOR types are handed on as they are: assertCapture then names the bad field.
function tensorsOf (raw: CborValue | undefined, path: string, problems: string[]): CapturedTensor[] {
  if (!Array.isArray(raw)) return raw as unknown as CapturedTensor[]
  return (raw as CborValue[]).map((t, j) => {
    if (!Array.isArray(t) || t.length !== 4) {
      problems.push(`${path}[${j}]: not an array of 4 fields`)
      return { name: '', dtype: 'uint8', dims: [0], data: new Uint8Array(0) }
    }
    const [name, code, dims, data] = t as CborValue[]
    const dtype = typeof code === 'number' ? DTYPE_BY_CODE.get(code) : undefined
    return { name: name as string, dtype: (dtype ?? `code ${String(code)}`) as TensorDtype, dims: dims as number[], data: data as Uint8Array }
  })
}

function isUint (v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
}

function isText (v: unknown): v is string {
  return typeof v === 'string' && !LONE_SURROGATE.test(v) && textEncoder.encode(v).byteLength <= CAPTURE_LIMITS.textBytes
}

/** Product of dims, or undefined when a dim is bad or the product is not a safe integer. */
function countElements (dims: readonly unknown[]): number | undefined {
  let n = 1
  for (const d of dims) {
    if (!isUint(d)) return undefined
    n *= d
    if (!Number.isSafeInteger(n)) return undefined
  }
  return n
}

function encodeStrings (values: readonly string[]): Uint8Array {
  const parts = values.map(s => textEncoder.encode(s))
  const out = new Uint8Array(parts.reduce((a, p) => a + 4 + p.byteLength, 0))
  const view = new DataView(out.buffer)
  let o = 0
  for (const p of parts) {
    view.setUint32(o, p.byteLength)
    out.set(p, o + 4)
    o += 4 + p.byteLength
  }
  return out
}

/** Exactly `count` strings of u32be(len) ‖ UTF-8 filling all of `data`, or undefined. */
function decodeStrings (data: Uint8Array, count: number): string[] | undefined {
  // Each string takes at least its 4-byte length: a larger count cannot be honest.
  if (count > data.byteLength / 4) return undefined
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  const out: string[] = []
  let o = 0
  for (let i = 0; i < count; i++) {
    if (data.byteLength - o < 4) return undefined
    const len = view.getUint32(o)
    o += 4
    if (data.byteLength - o < len) return undefined
    try {
      out.push(utf8.decode(data.subarray(o, o + len)))
    } catch {
      return undefined
    }
    o += len
  }
  return o === data.byteLength ? out : undefined
}

function elementBytes (type: TensorDtype): number {
  switch (type) {
    case 'uint8': case 'int8': case 'bool': return 1
    case 'uint16': case 'int16': case 'float16': return 2
    case 'float32': case 'int32': case 'uint32': return 4
    default: return 8
  }
}
