/**
 * `npm run bench`: every benchmark in one run, each a ratio against a baseline measured in the
 * same run (never against a number from elsewhere). `npm run bench -- agent gateway` runs some.
 */
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

const ALL = ['agent', 'contracts-gas', 'gateway', 'agent-service', 'forensics', 'lineage'] as const
const chosen = process.argv.slice(2).filter(a => !a.startsWith('-'))
const names = chosen.length > 0 ? chosen : [...ALL]
let failed = false
for (const name of names) {
  const file = fileURLToPath(new URL(`./${name}.ts`, import.meta.url))
  if (!existsSync(file)) {
    console.error(`bench ${name}: no such benchmark (have: ${ALL.join(', ')})`)
    failed = true
    continue
  }
  console.log(`\n== ${name} ==`)
  try {
    const mod = await import(`./${name}.js`) as { main: () => Promise<unknown> }
    await mod.main()
  } catch (e) {
    failed = true
    console.error(`bench ${name} failed: ${(e as Error).stack ?? String(e)}`)
  }
}
process.exitCode = failed ? 1 : 0
