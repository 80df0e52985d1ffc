/**
 * Entry point of `provenance-gateway` (through bin.mjs, the compiled dist/gateway/main.js, or
 * `node --import tsx gateway/main.ts …`).
 */
import { main } from './cli.js'

await main(process.argv.slice(2))
