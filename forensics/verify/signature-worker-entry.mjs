// Entry of a signature worker when forensics runs from TypeScript sources (tsx, tap): a worker
// does not inherit the parent's loader, so register tsx here, then load signature-worker.ts.
// Compiled builds start signature-worker.js directly and never load this file.
import { register } from 'tsx/esm/api'

register()
await import('./signature-worker.ts')
