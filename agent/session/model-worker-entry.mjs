// Entry of a model worker when the agent runs from TypeScript sources (tsx, tap): a worker does
// not always inherit the parent's loader, so register tsx here, then load model-worker.ts.
// Compiled builds start model-worker.js directly and never load this file.
import { register } from 'tsx/esm/api'

register()
await import('./model-worker.ts')
