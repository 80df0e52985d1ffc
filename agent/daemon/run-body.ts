/**
 * Run request bodies decoded as they arrive (#11, daemon memory through the API): base64 tensor
 * data goes chunk by chunk straight into the tensor's final buffer, with no whole-body buffer, no
 * body string and no parsed JSON tree. A small strict parser for the one documented shape:
 *   JSON (application/json):     { "inputs": { "<name>": { "type", "dims", "data": "<base64>" | [strings] } }, "decision"?, "subject"? }
 *   binary (application/octet-stream): <uint32 BE n> <n bytes: that JSON without "data" for non-string
 *     tensors> <each non-string tensor's little-endian bytes, in header order, back to back>
 * Syntax errors stop at once; field problems are collected so that the answer names every bad field.
 */
import { StringDecoder } from 'node:string_decoder'
import { Tensor } from 'onnxruntime-node'
import { DaemonError } from './errors.js'
import { MAX_RANK, TENSOR_JSON_TYPES, TYPED, type TypedCtor } from './tensor-json.js'

/** What a run request asks for. */
export interface RunRequest { feeds: Record<string, Tensor>, decision?: string, subject?: string }

/** The content type of the binary run body (its framing is in the file header and docs/OPERATIONS.md). */
export const RUN_BINARY_CONTENT_TYPE = 'application/octet-stream'
/** Deepest nesting of a JSON value the parser skips (an unknown field's value) before refusing. */
export const MAX_RUN_JSON_DEPTH = 64
/** Field problems named in one answer; more are counted, not kept (a body of 100 000 unknown fields). */
const MAX_PROBLEMS = 20
/** Most inputs one run names (a model with more is not a model this API serves). */
export const MAX_RUN_INPUTS = 1024
/** Most fields of the top object or a tensor object, counting unknown ones. */
const MAX_FIELDS = 16
const MAX_NUMBER_CHARS = 64
/** Decoded bytes of a tensor whose data came before its type and dims are staged in pieces of this size. */
const STAGE_BYTES = 64 * 1024

/** Element types the API accepts (those of the JSON form). */
export const RUN_TENSOR_TYPES: readonly string[] = TENSOR_JSON_TYPES

/** base64 alphabet value of each byte; 64 = '=', 255 = not base64. */
const B64 = new Uint8Array(256).fill(255)
for (let i = 0; i < 64; i++) B64['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'.charCodeAt(i)] = i
B64[0x3d] = 64

const QUOTE = 0x22
const BACKSLASH = 0x5c

/**
 * Decodes up to `quads` whole base64 quads from `src` at `i` into `dst` at `at`, stopping before
 * the first quad with padding or a character outside the alphabet; returns the quads decoded.
 */
function decodeQuads (src: Uint8Array, i: number, quads: number, dst: Uint8Array, at: number): number {
  for (let q = 0; q < quads; q++) {
    const a = B64[src[i] as number] as number
    const b = B64[src[i + 1] as number] as number
    const c = B64[src[i + 2] as number] as number
    const d = B64[src[i + 3] as number] as number
    if ((a | b | c | d) > 63) return q
    const v = a << 18 | b << 12 | c << 6 | d
    dst[at] = v >>> 16
    dst[at + 1] = v >>> 8 & 0xff
    dst[at + 2] = v & 0xff
    i += 4
    at += 3
  }
  return quads
}

/** A tensor as its fields arrive, in any order. */
interface PendingTensor {
  path: string
  type?: string
  dims?: number[]
  /** The final buffer, once type and dims are known and the size is allowed. */
  buffer?: ArrayBuffer
  /** Decoded bytes received before the type and dims (staged, copied into `buffer` at the end). */
  staged?: Uint8Array[]
  /** Bytes decoded so far. */
  filled: number
  strings?: string[]
  /** Some field was bad: no tensor, the problems say why. */
  bad: boolean
  seen: Set<string>
}

const EMPTY = Buffer.alloc(0)

/** The end of the input reached inside the generator (the body ended early); caught in parse(). */
class NeedMore extends Error {}

/**
 * Decodes one run body pushed chunk by chunk: `write` each chunk as it arrives, then `end`.
 * Memory: the tensors' final buffers, plus (only for data sent before its type and dims) the
 * decoded bytes staged until then; never the body itself.
 */
export class RunBodyDecoder {
  private chunk: Buffer = EMPTY
  private pos = 0
  /** Body bytes before the current chunk (for error offsets). */
  private base = 0
  private ended = false
  private readonly problems: string[] = []
  private dropped = 0
  private readonly tensors: PendingTensor[] = []
  private decision: string | undefined
  private subject: string | undefined
  private readonly topSeen = new Set<string>()
  private readonly parser: Generator<void, void, void>
  private done = false
  /** Binary: header length, and where it ends in the body. */
  private headerEnd = -1

  /**
   * @param binary the binary framing instead of JSON.
   * @param maxBodyBytes the largest body the route takes: no tensor may claim more (checked before allocating).
   */
  constructor (private readonly binary: boolean, private readonly maxBodyBytes: number, private readonly allocate: (bytes: number) => ArrayBuffer = bytes => new ArrayBuffer(bytes)) {
    this.parser = this.parse()
  }

  /** The final buffers of the tensors made so far (to free once the run settled). */
  buffers (): ArrayBuffer[] {
    return this.tensors.flatMap(t => t.buffer === undefined ? [] : [t.buffer])
  }

  /**
   * Feeds the next body chunk.
   * @throws DaemonError `REQUEST_INVALID` at the first byte that cannot belong to a run body.
   */
  write (chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return
    if (this.done) this.fail('unexpected bytes after the end of the body')
    this.chunk = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    this.pos = 0
    this.step()
    // Every byte of it is consumed (the parser yields only at the end of a chunk, or has failed):
    // nothing here holds the chunk once write returns, so the caller may free it (releaseBytes).
    this.base += this.chunk.byteLength
    this.pos -= this.chunk.byteLength
    this.chunk = EMPTY
  }

  /**
   * The body is complete: the request, or every problem found.
   * @throws DaemonError `REQUEST_INVALID`.
   */
  end (): RunRequest {
    this.ended = true
    if (!this.done) this.step()
    if (!this.done) this.fail('the body ends early')
    if (!this.topSeen.has('inputs')) this.problems.unshift('inputs: must be an object of named tensors')
    if (this.dropped > 0) this.problems.push(`… and ${this.dropped} more`)
    if (this.problems.length > 0) throw new DaemonError('REQUEST_INVALID', `invalid run request: ${this.problems.join('; ')}`)
    const feeds: Record<string, Tensor> = {}
    for (const t of this.tensors) {
      const name = t.path.slice('inputs.'.length)
      if (t.type === 'string') feeds[name] = new Tensor('string', t.strings as string[], t.dims)
      else feeds[name] = new Tensor(t.type as 'float32', new (TYPED[t.type as string] as { ctor: TypedCtor }).ctor(t.buffer as ArrayBuffer) as Float32Array, t.dims)
    }
    return { feeds, ...(this.decision !== undefined ? { decision: this.decision } : {}), ...(this.subject !== undefined ? { subject: this.subject } : {}) }
  }

  private step (): void {
    try {
      const r = this.parser.next()
      if (r.done === true) this.done = true
    } catch (e) {
      this.done = true
      throw e
    }
  }

  private problem (p: string): void {
    if (this.problems.length < MAX_PROBLEMS) this.problems.push(p)
    else this.dropped++
  }

  /** @throws DaemonError `REQUEST_INVALID` naming the problems so far and this one. */
  private fail (what: string): never {
    this.done = true
    const all = [...this.problems, what]
    throw new DaemonError('REQUEST_INVALID', `invalid run request: ${all.join('; ')}`)
  }

  private where (): string { return `byte ${this.base + this.pos}` }

  /** Waits for a byte: true once one is there, false at the end of the body. */
  private * available (): Generator<void, boolean, void> {
    while (this.pos >= this.chunk.byteLength) {
      if (this.ended) return false
      yield
    }
    return true
  }

  /** Waits for input: yields until a chunk with unread bytes arrives; at the end of the body fails. */
  private * more (): Generator<void, void, void> {
    if (!(yield * this.available())) throw new NeedMore()
  }

  private * peek (): Generator<void, number, void> {
    for (;;) {
      if (this.pos >= this.chunk.byteLength) yield * this.more()
      const c = this.chunk[this.pos] as number
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) { this.pos++; continue }
      return c
    }
  }

  /** After a member of an object or array: true at its end (`close`, consumed), false after a comma. */
  private * separator (close: number): Generator<void, boolean, void> {
    const c = yield * this.peek()
    if (c !== close && c !== 0x2c) this.syntax(`',' or '${String.fromCharCode(close)}'`)
    this.pos++
    return c === close
  }

  private * expect (c: number, what: string): Generator<void, void, void> {
    const got = yield * this.peek()
    if (got !== c) this.syntax(what)
    this.pos++
  }

  private syntax (expected: string): never {
    const c = this.chunk[this.pos]
    const got = c === undefined ? 'the end' : c >= 0x20 && c < 0x7f ? `'${String.fromCharCode(c)}'` : `byte 0x${c.toString(16).padStart(2, '0')}`
    return this.fail(`not JSON of a run request: ${expected} expected at ${this.where()}, got ${got}`)
  }

  private * parse (): Generator<void, void, void> {
    try {
      if (this.binary) {
        const head = new Uint8Array(4)
        for (let i = 0; i < 4; i++) {
          yield * this.more()
          head[i] = this.chunk[this.pos++] as number
        }
        const n = new DataView(head.buffer).getUint32(0)
        if (n < 2 || n > this.maxBodyBytes) this.fail(`binary run body: a header of ${n} bytes (2..${this.maxBodyBytes})`)
        this.headerEnd = 4 + n
      }
      yield * this.object(key => this.topField(key))
      if (this.binary) {
        // Whitespace may pad the header to its declared length, nothing else.
        while (this.base + this.pos < this.headerEnd) {
          yield * this.more()
          const c = this.chunk[this.pos] as number
          if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) { this.pos++; continue }
          this.syntax(`only whitespace up to the end of the header (${this.headerEnd - 4} bytes, as its length says)`)
        }
        if (this.base + this.pos > this.headerEnd) this.fail(`binary run body: the header's JSON runs past its declared ${this.headerEnd - 4} bytes`)
        yield * this.rawTensors()
      } else {
        // Nothing but whitespace after the object.
        while (yield * this.available()) {
          const c = this.chunk[this.pos] as number
          if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) { this.pos++; continue }
          this.syntax('the end of the body')
        }
      }
    } catch (e) {
      if (e instanceof NeedMore) this.fail(`the body ends early, at ${this.where()}`)
      throw e
    }
  }

  /** `{ "key": value, ... }`, each value read by `field(key)`. */
  private * object (field: (key: string) => Generator<void, void, void>): Generator<void, void, void> {
    yield * this.expect(0x7b, '\'{\'')
    if ((yield * this.peek()) === 0x7d) { this.pos++; return }
    for (;;) {
      if ((yield * this.peek()) !== QUOTE) this.syntax('a field name in quotes')
      this.pos++
      const key = yield * this.string(4096, 'a field name')
      yield * this.expect(0x3a, '\':\'')
      yield * field(key)
      if (yield * this.separator(0x7d)) return
    }
  }

  private * topField (key: string): Generator<void, void, void> {
    if (this.topSeen.size >= MAX_FIELDS) this.fail(`more than ${MAX_FIELDS} fields in the request object`)
    if (this.topSeen.has(key)) { this.problem(`${key}: given twice`); yield * this.skip(0); return }
    this.topSeen.add(key)
    if (key === 'inputs') {
      if ((yield * this.peek()) !== 0x7b) { this.problem('inputs: must be an object of named tensors'); yield * this.skip(0); return }
      const names = new Set<string>()
      yield * this.object(name => this.tensor(name, names))
      return
    }
    if (key === 'decision' || key === 'subject') {
      if ((yield * this.peek()) !== QUOTE) {
        this.problem(key === 'decision' ? 'decision: must be a string' : 'subject: must be a non-empty string of at most 256 UTF-8 bytes')
        yield * this.skip(0)
        return
      }
      this.pos++
      const s = yield * this.string(this.maxBodyBytes, key)
      if (key === 'decision') this.decision = s
      else if (s.length === 0 || Buffer.byteLength(s, 'utf8') > 256) this.problem('subject: must be a non-empty string of at most 256 UTF-8 bytes')
      else this.subject = s
      return
    }
    this.problem(`${key.slice(0, 64)}: not a field of a run request`)
    yield * this.skip(0)
  }

  private * tensor (name: string, names: Set<string>): Generator<void, void, void> {
    const path = `inputs.${name}`
    if (names.size >= MAX_RUN_INPUTS) this.fail(`inputs: more than ${MAX_RUN_INPUTS} tensors`)
    if (names.has(name)) { this.problem(`${path}: given twice`); yield * this.skip(0); return }
    names.add(name)
    if ((yield * this.peek()) !== 0x7b) { this.problem(`${path}: must be an object { type, dims, data }`); yield * this.skip(0); return }
    const t: PendingTensor = { path, filled: 0, bad: false, seen: new Set() }
    yield * this.object(key => this.tensorField(t, key))
    if (t.bad) return
    if (t.type === undefined) { this.problem(`${path}.type: must be one of ${RUN_TENSOR_TYPES.join(', ')}`); return }
    if (t.dims === undefined) { this.problem(`${path}.dims: must be an array of at most ${MAX_RANK} dimensions`); return }
    const elements = t.dims.reduce((a, b) => a * b, 1)
    if (t.type === 'string') {
      if (t.strings === undefined) { this.problem(`${path}.data: must be an array of strings for a string tensor`); return }
      if (t.strings.length !== elements) { this.problem(`${path}.data: ${t.strings.length} strings for ${elements} elements`); return }
    } else if (!this.binary) {
      if (t.strings !== undefined || !t.seen.has('data')) {
        this.problem(`${path}.data: must be base64 of the little-endian element bytes`)
        return
      }
      if (t.staged !== undefined) {
        // The data came first: its size is checked now, and the staged pieces copied once.
        if (!this.sized(t)) return
        const into = new Uint8Array(t.buffer as ArrayBuffer)
        if (t.filled !== into.byteLength) { this.problem(`${path}.data: decodes to ${t.filled} bytes, ${into.byteLength} expected`); return }
        let at = 0
        for (const piece of t.staged) { into.set(piece, at); at += piece.byteLength }
        t.staged = undefined
      } else if (t.filled !== (t.buffer as ArrayBuffer).byteLength) {
        this.problem(`${path}.data: decodes to ${t.filled} bytes, ${(t.buffer as ArrayBuffer).byteLength} expected`)
        return
      }
    } else if (t.strings !== undefined) {
      this.problem(`${path}.data: not in a binary body's header (the bytes follow the header), except for string tensors`)
      return
    } else if (t.buffer === undefined && !this.sized(t)) {
      return
    }
    this.tensors.push(t)
  }

  /** Allocates the final buffer of a tensor with a known type and dims, unless its size is impossible. */
  private sized (t: PendingTensor): boolean {
    const typed = TYPED[t.type as string] as { bytes: number }
    const bytes = (t.dims as number[]).reduce((a, b) => a * b, 1) * typed.bytes
    // base64 of n bytes is 4·ceil(n/3) characters: never allocate what the body could not carry.
    const carried = this.binary ? bytes : Math.ceil(bytes / 3) * 4
    if (!Number.isSafeInteger(bytes) || carried > this.maxBodyBytes) {
      this.problem(`${t.path}.data: ${t.type} [${(t.dims as number[]).join(', ')}] needs ${bytes} bytes, more than a request of at most ${this.maxBodyBytes} bytes carries`)
      t.bad = true
      return false
    }
    t.buffer = this.allocate(bytes)
    return true
  }

  private * tensorField (t: PendingTensor, key: string): Generator<void, void, void> {
    const path = t.path
    if (t.seen.size >= MAX_FIELDS) this.fail(`${path}: more than ${MAX_FIELDS} fields`)
    if (t.seen.has(key)) { this.problem(`${path}.${key.slice(0, 64)}: given twice`); t.bad = true; yield * this.skip(0); return }
    t.seen.add(key)
    if (key === 'type') {
      let type: string | undefined
      if ((yield * this.peek()) === QUOTE) { this.pos++; type = yield * this.string(64, `${path}.type`) } else yield * this.skip(0)
      if (type === undefined || !RUN_TENSOR_TYPES.includes(type)) { this.problem(`${path}.type: must be one of ${RUN_TENSOR_TYPES.join(', ')}`); t.bad = true; return }
      t.type = type
    } else if (key === 'dims') {
      const dims = yield * this.dims(path)
      if (dims === undefined) { t.bad = true; return }
      t.dims = dims
    } else if (key === 'data') {
      // A tensor already refused: its data is only checked as JSON.
      if (t.bad) { yield * this.skip(0); return }
      const c = yield * this.peek()
      const notHere = `${path}.data: not in a binary body's header (the bytes follow the header), except for string tensors`
      if (c === 0x5b) {
        t.strings = yield * this.strings(path)
        if (t.strings === undefined) t.bad = true
        else if (t.type !== undefined && t.type !== 'string') { this.problem(this.binary ? notHere : `${path}.data: must be base64 of the little-endian element bytes`); t.bad = true }
        return
      }
      if (c !== QUOTE || this.binary || t.type === 'string') {
        this.problem(this.binary && t.type !== 'string'
          ? notHere
          : t.type === 'string' ? `${path}.data: must be an array of strings for a string tensor` : `${path}.data: must be base64 of the little-endian element bytes`)
        t.bad = true
        yield * this.skip(0)
        return
      }
      this.pos++
      yield * this.base64(t)
    } else {
      this.problem(`${path}.${key.slice(0, 64)}: not a field of a tensor (type, dims, data)`)
      t.bad = true
      yield * this.skip(0)
    }
    // Type and dims known before the data: the final buffer is made now and the data fills it.
    if (!t.bad && t.buffer === undefined && t.staged === undefined && t.type !== undefined && t.type !== 'string' && t.dims !== undefined && !t.seen.has('data')) this.sized(t)
  }

  /** `[d0, d1, ...]`, integers in 0..2^31-1, at most MAX_RANK; undefined after naming the problem. */
  private * dims (path: string): Generator<void, number[] | undefined, void> {
    if ((yield * this.peek()) !== 0x5b) { this.problem(`${path}.dims: must be an array of at most ${MAX_RANK} dimensions`); yield * this.skip(0); return undefined }
    this.pos++
    const dims: number[] = []
    let ok = true
    if ((yield * this.peek()) === 0x5d) { this.pos++; return dims }
    for (let i = 0; ; i++) {
      const c = yield * this.peek()
      if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
        const d = yield * this.number()
        if (!Number.isSafeInteger(d) || d < 0 || d > 0x7fff_ffff) { this.problem(`${path}.dims[${i}]: must be an integer in 0..2147483647`); ok = false }
        // Past the largest rank only counted: a body of a million dims must not become a million numbers.
        if (i <= MAX_RANK) dims.push(d)
      } else {
        this.problem(`${path}.dims[${i}]: must be an integer in 0..2147483647`)
        ok = false
        yield * this.skip(1)
      }
      if (yield * this.separator(0x5d)) break
    }
    if (dims.length > MAX_RANK) { this.problem(`${path}.dims: must be an array of at most ${MAX_RANK} dimensions`); ok = false }
    return ok ? dims : undefined
  }

  /** `["a", "b", ...]` of a string tensor. */
  private * strings (path: string): Generator<void, string[] | undefined, void> {
    this.pos++
    const out: string[] = []
    let ok = true
    if ((yield * this.peek()) === 0x5d) { this.pos++; return out }
    for (;;) {
      if ((yield * this.peek()) === QUOTE) {
        this.pos++
        out.push(yield * this.string(this.maxBodyBytes, `${path}.data`))
      } else {
        if (ok) this.problem(`${path}.data: must be an array of strings for a string tensor`)
        ok = false
        yield * this.skip(1)
      }
      if (yield * this.separator(0x5d)) break
    }
    return ok ? out : undefined
  }

  private * number (): Generator<void, number, void> {
    let text = ''
    while (yield * this.available()) {
      const c = this.chunk[this.pos] as number
      if (!((c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2b || c === 0x2e || c === 0x65 || c === 0x45)) break
      if (text.length >= MAX_NUMBER_CHARS) this.syntax('a shorter number')
      text += String.fromCharCode(c)
      this.pos++
    }
    if (!/^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/.test(text)) this.fail(`not JSON of a run request: bad number '${text}' before ${this.where()}`)
    return Number(text)
  }

  /** A string's characters after its opening quote, up to `maxBytes` UTF-8 bytes; the closing quote is consumed. */
  private * string (maxBytes: number, what: string): Generator<void, string, void> {
    const decoder = new StringDecoder('utf8')
    let out = ''
    let bytes = 0
    for (;;) {
      yield * this.more()
      const chunk = this.chunk
      const start = this.pos
      let i = start
      while (i < chunk.byteLength) {
        const c = chunk[i] as number
        if (c === QUOTE || c === BACKSLASH || c < 0x20) break
        i++
      }
      bytes += i - start
      if (bytes > maxBytes) this.fail(`${what}: longer than ${maxBytes} bytes`)
      if (i > start) out += decoder.write(chunk.subarray(start, i))
      this.pos = i
      if (i === chunk.byteLength) continue
      const c = chunk[i] as number
      if (c < 0x20) this.syntax('no control character in a string')
      this.pos++
      out += decoder.end()
      if (c === QUOTE) return out
      out += String.fromCharCode(yield * this.escape())
      bytes++
    }
  }

  /** The character code of an escape, after its backslash. */
  private * escape (): Generator<void, number, void> {
    yield * this.more()
    const e = this.chunk[this.pos++] as number
    switch (e) {
      case QUOTE: case BACKSLASH: case 0x2f: return e
      case 0x62: return 0x08
      case 0x66: return 0x0c
      case 0x6e: return 0x0a
      case 0x72: return 0x0d
      case 0x74: return 0x09
      case 0x75: {
        let code = 0
        for (let k = 0; k < 4; k++) {
          yield * this.more()
          const h = this.chunk[this.pos] as number
          const v = h >= 0x30 && h <= 0x39 ? h - 0x30 : (h | 0x20) >= 0x61 && (h | 0x20) <= 0x66 ? (h | 0x20) - 0x57 : -1
          if (v < 0) this.syntax('a hex digit of a \\u escape')
          code = code * 16 + v
          this.pos++
        }
        return code
      }
      default:
        this.pos--
        return this.syntax('an escape (\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)')
    }
  }

  /** A string skipped without keeping it. */
  private * skipString (): Generator<void, void, void> {
    for (;;) {
      yield * this.more()
      const c = this.chunk[this.pos] as number
      this.pos++
      if (c === QUOTE) return
      if (c === BACKSLASH) yield * this.escape()
      else if (c < 0x20) { this.pos--; this.syntax('no control character in a string') }
    }
  }

  /** Any JSON value, checked and dropped, nesting at most MAX_RUN_JSON_DEPTH deep. */
  private * skip (depth: number): Generator<void, void, void> {
    if (depth > MAX_RUN_JSON_DEPTH) this.fail(`not a run request: JSON nested deeper than ${MAX_RUN_JSON_DEPTH} at ${this.where()}`)
    const c = yield * this.peek()
    if (c === QUOTE) { this.pos++; yield * this.skipString(); return }
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) { yield * this.number(); return }
    if (c === 0x7b) {
      this.pos++
      if ((yield * this.peek()) === 0x7d) { this.pos++; return }
      for (;;) {
        yield * this.expect(QUOTE, 'a field name in quotes')
        yield * this.skipString()
        yield * this.expect(0x3a, '\':\'')
        yield * this.skip(depth + 1)
        if (yield * this.separator(0x7d)) return
      }
    }
    if (c === 0x5b) {
      this.pos++
      if ((yield * this.peek()) === 0x5d) { this.pos++; return }
      for (;;) {
        yield * this.skip(depth + 1)
        if (yield * this.separator(0x5d)) return
      }
    }
    for (const word of ['true', 'false', 'null']) {
      if (c !== word.charCodeAt(0)) continue
      for (let k = 0; k < word.length; k++) {
        yield * this.more()
        if (this.chunk[this.pos] !== word.charCodeAt(k)) this.syntax(`'${word}'`)
        this.pos++
      }
      return
    }
    this.syntax('a JSON value')
  }

  /**
   * A base64 string (after its opening quote) decoded into the tensor's buffer, or staged when its
   * type and dims are not known yet. Strict: the alphabet of RFC 4648 §4, padded to a multiple of
   * 4, nothing after the padding; stops at the first bad character or the first byte too many.
   */
  private * base64 (t: PendingTensor): Generator<void, void, void> {
    const path = `${t.path}.data`
    let into: Uint8Array
    let at = 0
    if (t.buffer !== undefined) {
      into = new Uint8Array(t.buffer)
    } else {
      t.staged = []
      into = new Uint8Array(STAGE_BYTES)
    }
    let quad = 0
    let n = 0
    let pad = 0
    let chars = 0
    const put = (byte: number): void => {
      if (at === into.byteLength) {
        if (t.staged === undefined) this.fail(`${path}: decodes to more than the ${into.byteLength} bytes ${t.type as string} [${(t.dims as number[]).join(', ')}] holds`)
        t.staged.push(into)
        t.filled += at
        into = new Uint8Array(STAGE_BYTES)
        at = 0
      }
      into[at++] = byte
    }
    const value = (c: number): void => {
      const v = c < 256 ? B64[c] as number : 255
      if (v === 255 || (pad > 0 && v !== 64)) this.fail(`${path}: not base64 (${c >= 0x21 && c < 0x7f ? `'${String.fromCharCode(c)}'` : `character ${c}`} at character ${chars} of the data)`)
      chars++
      if (v === 64) {
        // '=' only as the last one or two characters of a quad of at least two.
        if (n < 2) this.fail(`${path}: not base64 ('=' at character ${chars - 1} of the data)`)
        pad++
        n++
        if (n === 4) {
          if (pad === 2) put(quad >>> 4 & 0xff)
          else { put(quad >>> 10 & 0xff); put(quad >>> 2 & 0xff) }
          n = 0
        }
        return
      }
      quad = quad << 6 | v
      if (++n === 4) {
        put(quad >>> 16 & 0xff); put(quad >>> 8 & 0xff); put(quad & 0xff)
        quad = 0
        n = 0
      }
    }
    for (;;) {
      yield * this.more()
      const chunk = this.chunk
      let i = this.pos
      const len = chunk.byteLength
      // The hot path: whole quads straight from the chunk into the buffer, in a plain function
      // (TurboFan does not optimize a generator's loop as well): no string, no allocation, as
      // fast as node's native decoder with a validating round trip, which made 3 MB of strings
      // per 1.6 MB body that grew the young generation by ~16 MiB under load.
      if (n === 0 && pad === 0) {
        const quads = decodeQuads(chunk, i, Math.min((len - i) >> 2, Math.floor((into.byteLength - at) / 3)), into, at)
        i += quads * 4
        at += quads * 3
        chars += quads * 4
      }
      this.pos = i
      if (i === len) continue
      const c = chunk[i] as number
      this.pos++
      if (c === QUOTE) break
      value(c === BACKSLASH ? yield * this.escape() : c)
    }
    if (n !== 0) this.fail(`${path}: not base64 (${chars} characters, not a multiple of 4)`)
    t.filled += at
    if (t.staged !== undefined) t.staged.push(into.subarray(0, at))
  }

  /** Binary: each non-string tensor's bytes, in header order, copied as they arrive. */
  private * rawTensors (): Generator<void, void, void> {
    const raw = this.tensors.filter(t => t.type !== 'string')
    const total = raw.reduce((a, t) => a + (t.buffer as ArrayBuffer).byteLength, 0)
    if (this.problems.length > 0) {
      // The header is refused: its tensors' bytes are not read (the connection closes after the answer).
      this.done = true
      throw new DaemonError('REQUEST_INVALID', `invalid run request: ${this.problems.join('; ')}`)
    }
    for (const t of raw) {
      const into = new Uint8Array(t.buffer as ArrayBuffer)
      while (t.filled < into.byteLength) {
        if (!(yield * this.available())) this.fail(`binary run body: ${total - raw.reduce((a, r) => a + r.filled, 0)} bytes of tensor data missing (the header's tensors take ${total})`)
        const take = Math.min(into.byteLength - t.filled, this.chunk.byteLength - this.pos)
        into.set(this.chunk.subarray(this.pos, this.pos + take), t.filled)
        t.filled += take
        this.pos += take
      }
    }
    if (yield * this.available()) this.fail(`binary run body: bytes after the ${total} bytes of tensor data the header declares`)
  }
}

/**
 * Decodes a whole run body at once (tests, library callers).
 * @throws DaemonError `REQUEST_INVALID`.
 */
export function decodeRunBody (body: Uint8Array, binary = false, maxBodyBytes = body.byteLength): RunRequest {
  const d = new RunBodyDecoder(binary, Math.max(maxBodyBytes, 2))
  d.write(body)
  return d.end()
}

/**
 * A binary run body (the framing above) for `inputs`; string tensors travel in the header.
 */
export function encodeBinaryRunBody (inputs: Record<string, { type: string, dims: readonly number[], data: ArrayBufferView | readonly string[] }>, extra: { decision?: string, subject?: string } = {}): Buffer {
  const header: Record<string, unknown> = {}
  const parts: Uint8Array[] = []
  for (const [name, t] of Object.entries(inputs)) {
    if (t.type === 'string') header[name] = { type: t.type, dims: t.dims, data: t.data }
    else {
      header[name] = { type: t.type, dims: t.dims }
      const v = t.data as ArrayBufferView
      parts.push(new Uint8Array(v.buffer, v.byteOffset, v.byteLength))
    }
  }
  const json = Buffer.from(JSON.stringify({ inputs: header, ...extra }), 'utf8')
  const len = Buffer.alloc(4)
  len.writeUInt32BE(json.byteLength)
  return Buffer.concat([len, json, ...parts])
}

/**
 * A binary run answer (`Accept: application/octet-stream`): its JSON header, with each
 * non-string output's `data` filled in as a typed array (a copy of its bytes in `answer`).
 * @throws DaemonError `REQUEST_INVALID` when the bytes are not such an answer.
 */
export function decodeBinaryRunAnswer (answer: Uint8Array): { model: string, modelHash: string, outputs: Record<string, { type: string, dims: number[], data: ArrayBufferView | string[] }>, record: Record<string, unknown> } {
  const bad = (why: string): never => { throw new DaemonError('REQUEST_INVALID', `not a binary run answer: ${why}`) }
  if (answer.byteLength < 4) bad('shorter than its length prefix')
  const n = new DataView(answer.buffer, answer.byteOffset, answer.byteLength).getUint32(0)
  if (4 + n > answer.byteLength) bad(`a header of ${n} bytes in ${answer.byteLength}`)
  let header: { model: string, modelHash: string, outputs: Record<string, { type: string, dims: number[], data?: string[] }>, record: Record<string, unknown> }
  try {
    header = JSON.parse(Buffer.from(answer.buffer, answer.byteOffset + 4, n).toString('utf8')) as typeof header
  } catch {
    return bad('its header is not JSON')
  }
  if (typeof header !== 'object' || header === null || typeof header.outputs !== 'object' || header.outputs === null) bad('no outputs in its header')
  let at = 4 + n
  const outputs: Record<string, { type: string, dims: number[], data: ArrayBufferView | string[] }> = {}
  for (const [name, o] of Object.entries(header.outputs)) {
    if (o.type === 'string') { outputs[name] = { type: o.type, dims: o.dims, data: o.data ?? [] }; continue }
    const typed = TYPED[o.type]
    if (typed === undefined || !Array.isArray(o.dims)) return bad(`output ${name}: type ${String(o.type)}`)
    const bytes = o.dims.reduce((a, b) => a * b, 1) * typed.bytes
    if (!Number.isSafeInteger(bytes) || at + bytes > answer.byteLength) bad(`output ${name}: ${bytes} bytes past the end`)
    const copy = new Uint8Array(answer.subarray(at, at + bytes))
    outputs[name] = { type: o.type, dims: o.dims, data: new typed.ctor(copy.buffer) }
    at += bytes
  }
  if (at !== answer.byteLength) bad(`${answer.byteLength - at} bytes after the outputs`)
  return { ...header, outputs }
}
