/** Synthetic PaddleOCR-ready images: they live in the agent (the demo uses them); re-exported for tests. */
export * from '../../agent/input/synthetic-images.js'
