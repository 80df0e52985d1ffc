/**
 * Entry point of `provenance-fleet` (through bin.mjs, or `node --import tsx fleet/main.ts …`).
 */
import { runMain } from '../common/index.js'
import { FLEET_PROGRAM } from './program.js'

await runMain(FLEET_PROGRAM)
