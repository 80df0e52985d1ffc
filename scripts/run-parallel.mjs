// Runs npm scripts at the same time and prints each one's output whole, in the order named; exits
// non-zero if any failed. `npm test` uses it for build, typecheck and lint: each is single-threaded,
// so on 2 cores the three take about as long as eslint alone instead of the sum (~45 s, not ~75 s).
import { spawn } from 'node:child_process'

const names = process.argv.slice(2)
if (names.length === 0) {
  process.stderr.write('usage: node scripts/run-parallel.mjs <npm script>...\n')
  process.exit(2)
}
const npm = process.env.npm_execpath
const runs = names.map(name => new Promise(resolve => {
  // Under npm, npm_execpath is npm's own CLI: run it with this node; otherwise npm on the PATH.
  const child = npm !== undefined && npm.endsWith('.js')
    ? spawn(process.execPath, [npm, 'run', '--silent', name], { stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn('npm', ['run', '--silent', name], { stdio: ['ignore', 'pipe', 'pipe'] })
  const out = []
  child.stdout.on('data', d => out.push(d))
  child.stderr.on('data', d => out.push(d))
  child.on('error', e => { out.push(Buffer.from(`${String(e)}\n`)); resolve({ name, code: 1, out }) })
  child.on('close', (code, signal) => resolve({ name, code: code ?? (signal === null ? 1 : 128), out }))
}))
let failed = 0
for (const run of runs) {
  const { name, code, out } = await run
  process.stdout.write(`> ${name}${code === 0 ? '' : ` failed (exit ${code})`}\n`)
  process.stdout.write(Buffer.concat(out))
  if (code !== 0 && failed === 0) failed = code
}
process.exit(failed)
