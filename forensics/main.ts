/**
 * Entry point of `provenance` (through bin.mjs, the compiled dist/forensics/main.js, or
 * `node --import tsx forensics/main.ts …`). Kept apart from cli.ts so the command set there can
 * change without touching how the bin starts.
 */
import { runCli } from './cli.js'

process.exitCode = await runCli(process.argv.slice(2))
