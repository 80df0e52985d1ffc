/**
 * A fresh process for the identity bench's cold row, run compiled (bench/agent.ts transpiles it
 * beside dist/, as the memory child): the first identifyModel of this process, the hash worker not
 * started and nothing compiled yet, as the service's first load after a start. Prints one JSON line
 * with its wall and CPU ms.
 * Usage: node dist/bench/identity-cold-child.js <model file>
 */
import { performance } from 'node:perf_hooks'
import { identifyModel } from '../agent/model/index.js'

const file = process.argv[2]
if (file === undefined) throw new Error('usage: identity-cold-child.js <model file>')
const c0 = process.cpuUsage()
const t0 = performance.now()
await identifyModel(file)
const wallMs = performance.now() - t0
const c = process.cpuUsage(c0)
console.log(JSON.stringify({ wallMs, cpuMs: (c.user + c.system) / 1000 }))
