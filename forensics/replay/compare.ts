/**
 * Compares replayed outputs with the captured ones: bit for bit, or, for floating-point tensors,
 * element by element within a stated tolerance |replayed − captured| ≤ absolute + relative·|captured|
 * (numpy's isclose), because another CPU or GPU may round the last bits differently.
 */
import type { CapturedTensor } from '../../protocol/index.js'

/** Tolerance for floating-point outputs; both default to 0 (so only exact matches pass). */
export interface ReplayTolerance {
  /** Largest absolute difference accepted. */
  absolute?: number
  /** Largest difference accepted relative to the captured value's magnitude. */
  relative?: number
}

export interface TensorComparison {
  /** 'exact': same dtype, dims and bytes; 'within-tolerance': floats that differ within it; 'diverged'. */
  status: 'exact' | 'within-tolerance' | 'diverged'
  /** Largest |replayed − captured| over the elements (floats; 0 when exact). */
  maxAbsDiff: number
  /** Largest |replayed − captured| / |captured| over elements with a non-zero captured value. */
  maxRelDiff: number
  /** Why it diverged (dtype, dims, an element outside tolerance), for the report. */
  detail?: string
}

const FLOAT_TYPES = new Set(['float16', 'float32', 'float64'])

/**
 * Checks a tolerance given by the caller.
 * @throws RangeError unless both parts are finite and ≥ 0.
 */
export function checkTolerance (tolerance: ReplayTolerance | undefined): Required<ReplayTolerance> {
  const absolute = tolerance?.absolute ?? 0
  const relative = tolerance?.relative ?? 0
  for (const [k, v] of [['absolute', absolute], ['relative', relative]] as const) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new RangeError(`tolerance.${k} must be a finite number ≥ 0`)
  }
  return { absolute, relative }
}

/** Compares one replayed tensor (already in captured form) with the captured one. */
export function compareTensors (replayed: CapturedTensor, captured: CapturedTensor, tolerance: Required<ReplayTolerance>): TensorComparison {
  if (replayed.dtype !== captured.dtype) return diverged(`dtype ${replayed.dtype}, captured ${captured.dtype}`)
  if (replayed.dims.length !== captured.dims.length || replayed.dims.some((d, i) => d !== captured.dims[i])) {
    return diverged(`dims [${replayed.dims.join(',')}], captured [${captured.dims.join(',')}]`)
  }
  if (Buffer.from(replayed.data.buffer, replayed.data.byteOffset, replayed.data.byteLength)
    .equals(Buffer.from(captured.data.buffer, captured.data.byteOffset, captured.data.byteLength))) {
    return { status: 'exact', maxAbsDiff: 0, maxRelDiff: 0 }
  }
  if (!FLOAT_TYPES.has(captured.dtype) || replayed.data.byteLength !== captured.data.byteLength) {
    return diverged(`${captured.dtype} data differs`)
  }
  const a = floats(replayed)
  const b = floats(captured)
  const count = captured.data.byteLength / (captured.dtype === 'float64' ? 8 : captured.dtype === 'float16' ? 2 : 4)
  let maxAbsDiff = 0
  let maxRelDiff = 0
  let firstBad: string | undefined
  for (let i = 0; i < count; i++) {
    const x = a(i)
    const y = b(i)
    if (Number.isNaN(x) || Number.isNaN(y)) {
      if (Number.isNaN(x) && Number.isNaN(y)) continue
      firstBad ??= `element ${i}: ${x}, captured ${y}`
      continue
    }
    if (x === y) continue
    const diff = Math.abs(x - y)
    // Infinities of the same sign are caught by x === y; any other pair with one infinite is apart.
    if (!Number.isFinite(diff)) { firstBad ??= `element ${i}: ${x}, captured ${y}`; maxAbsDiff = Infinity; continue }
    maxAbsDiff = Math.max(maxAbsDiff, diff)
    if (y !== 0) maxRelDiff = Math.max(maxRelDiff, diff / Math.abs(y))
    if (diff > tolerance.absolute + tolerance.relative * Math.abs(y)) firstBad ??= `element ${i}: ${x}, captured ${y} (|diff| ${diff})`
  }
  if (firstBad !== undefined) return { status: 'diverged', maxAbsDiff, maxRelDiff, detail: firstBad }
  return { status: 'within-tolerance', maxAbsDiff, maxRelDiff }
}

function diverged (detail: string): TensorComparison {
  return { status: 'diverged', maxAbsDiff: NaN, maxRelDiff: NaN, detail }
}

/** Element reader of a float tensor's little-endian bytes. */
function floats (t: CapturedTensor): (i: number) => number {
  const view = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength)
  switch (t.dtype) {
    case 'float64': return i => view.getFloat64(i * 8, true)
    case 'float16': return i => halfToNumber(view.getUint16(i * 2, true))
    default: return i => view.getFloat32(i * 4, true)
  }
}

/** IEEE 754 binary16 bits to a number. */
function halfToNumber (h: number): number {
  const sign = (h & 0x8000) !== 0 ? -1 : 1
  const exp = (h >> 10) & 0x1f
  const frac = h & 0x3ff
  if (exp === 0) return sign * frac * 2 ** -24
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN
  return sign * (1 + frac / 1024) * 2 ** (exp - 15)
}
