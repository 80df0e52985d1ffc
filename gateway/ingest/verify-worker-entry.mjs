// Entry of a verify worker when the gateway runs from TypeScript sources (tsx, tap): a worker
// does not inherit the parent's loader, so register tsx here, then load verify-worker.ts.
// Compiled builds start verify-worker.js directly and never load this file.
import { register } from 'tsx/esm/api'

register()
await import('./verify-worker.ts')
