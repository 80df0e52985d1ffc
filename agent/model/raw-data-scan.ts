/**
 * Finds the raw_data of a model's tensors (initializers, Constant nodes' tensor attributes, in
 * subgraphs and functions too) while the file is still being read, so that their SHA-256 can run
 * on other threads during the read instead of in a second pass after it. Only an accelerator: a
 * hash found here is keyed by its exact byte range and used only when the decoded tensor's raw_data
 * is that very range, so a confused scan costs speed, never truth.
 */

/** A tag and a length take at most 5 + 10 bytes. */
const HEADER_MAX_BYTES = 15
/** Deeper nesting (subgraphs in subgraphs) is left to the decoder's own pass. */
const MAX_DEPTH = 64

// Which message the scan is inside.
const MODEL = 0
const GRAPH = 1
const NODE = 2
const ATTRIBUTE = 3
const TENSOR = 4
const FUNCTION = 5
const TRAINING = 6
type Level = typeof MODEL | typeof GRAPH | typeof NODE | typeof ATTRIBUTE | typeof TENSOR | typeof FUNCTION | typeof TRAINING

/**
 * The length-delimited fields the scan descends into, per message (ONNX 1.10 onnx.proto field
 * numbers): where tensors live. Exporters such as Paddle2ONNX keep every weight in a Constant
 * node's `value` attribute rather than in graph.initializer, so nodes and attributes matter as much.
 */
const CHILDREN: Readonly<Record<Level, Readonly<Record<number, Level>>>> = {
  // ModelProto: graph = 7, training_info = 20, functions = 25.
  [MODEL]: { 7: GRAPH, 20: TRAINING, 25: FUNCTION },
  // GraphProto: node = 1, initializer = 5.
  [GRAPH]: { 1: NODE, 5: TENSOR },
  // NodeProto: attribute = 5.
  [NODE]: { 5: ATTRIBUTE },
  // AttributeProto: t = 5, g = 6, tensors = 10, graphs = 11.
  [ATTRIBUTE]: { 5: TENSOR, 6: GRAPH, 10: TENSOR, 11: GRAPH },
  // TensorProto: none (raw_data = 9 is the range itself).
  [TENSOR]: {},
  // FunctionProto: node = 7.
  [FUNCTION]: { 7: NODE },
  // TrainingInfoProto: initialization = 1, algorithm = 2.
  [TRAINING]: { 1: GRAPH, 2: GRAPH }
}
const TENSOR_RAW_DATA = 9

/** A byte range [start, end) of the model buffer. */
export type ByteRange = readonly [start: number, end: number]

/**
 * Incremental scan over a buffer that fills from the front: call `advance(filled)` after each read;
 * it returns the raw_data ranges that lie wholly in the first `filled` bytes and were not returned
 * before. Stops for good (returning nothing more) at anything it does not expect.
 */
export class RawDataScanner {
  private readonly bytes: Uint8Array
  private pos = 0
  private readonly stack: Array<{ end: number, level: Level }>
  private readonly waiting: ByteRange[] = []
  /** Index of the first range of `waiting` not returned yet (ranges come in file order). */
  private returned = 0
  private stopped = false

  constructor (bytes: Uint8Array) {
    this.bytes = bytes
    this.stack = [{ end: bytes.length, level: MODEL }]
  }

  advance (filled: number): ByteRange[] {
    this.walk(filled)
    const from = this.returned
    while (this.returned < this.waiting.length && (this.waiting[this.returned] as ByteRange)[1] <= filled) this.returned++
    return this.waiting.slice(from, this.returned)
  }

  /**
   * Like advance, but returns each range as soon as its start and length are known, its bytes
   * possibly not all read yet (so that a large tensor can be hashed piece by piece as it arrives).
   * Use one of advance or discover on a scanner, not both.
   */
  discover (filled: number): ByteRange[] {
    this.walk(filled)
    const from = this.returned
    this.returned = this.waiting.length
    return this.waiting.slice(from)
  }

  private walk (filled: number): void {
    const size = this.bytes.length
    while (!this.stopped) {
      const top = this.stack[this.stack.length - 1]
      if (top === undefined) { this.stopped = true; break }
      if (this.pos === top.end) { this.stack.pop(); continue }
      if (this.pos > top.end) { this.stopped = true; break }
      if (filled < size && this.pos + HEADER_MAX_BYTES > filled) break
      const tag = this.varint(top.end)
      if (tag === undefined) { this.stopped = true; break }
      const field = Math.floor(tag / 8)
      const wireType = tag % 8
      if (wireType === 0) {
        if (this.varint(top.end) === undefined) this.stopped = true
      } else if (wireType === 1) {
        this.pos += 8
      } else if (wireType === 5) {
        this.pos += 4
      } else if (wireType === 2) {
        const length = this.varint(top.end)
        if (length === undefined || this.pos + length > top.end) { this.stopped = true; break }
        const start = this.pos
        const end = start + length
        const child = CHILDREN[top.level][field]
        if (child !== undefined) {
          if (this.stack.length > MAX_DEPTH) { this.stopped = true; break }
          this.stack.push({ end, level: child })
        } else {
          if (top.level === TENSOR && field === TENSOR_RAW_DATA) this.waiting.push([start, end])
          this.pos = end
        }
      } else {
        // Groups and invalid wire types: leave the rest to the decoder's own pass.
        this.stopped = true
      }
    }
  }

  /** A varint at `pos` not past `limit`, as a safe integer; undefined when malformed. */
  private varint (limit: number): number | undefined {
    let value = 0
    let scale = 1
    for (let i = 0; i < 10; i++) {
      if (this.pos >= limit) return undefined
      const b = this.bytes[this.pos++] as number
      value += (b & 0x7f) * scale
      if ((b & 0x80) === 0) return Number.isSafeInteger(value) ? value : undefined
      scale *= 128
    }
    return undefined
  }
}
