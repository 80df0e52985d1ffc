/**
 * Entry point of `provenance-agent` (run as `node --import tsx agent/cli/main.ts …`, or through
 * bin.mjs). Exits with the code runCli resolves, once stdout has drained.
 */
import { runCli } from './run.js'

const code = await runCli(process.argv.slice(2), { env: process.env, stdout: process.stdout, stderr: process.stderr })
// Exit explicitly: onnxruntime's thread pools and sockets of a stopped daemon must not hold the
// process open; wait for stdout first so a piped result is complete.
process.stdout.write('', () => process.exit(code))
