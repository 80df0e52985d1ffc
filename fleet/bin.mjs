#!/usr/bin/env node
// `provenance-fleet` launcher: runs the compiled CLI (dist/, `npm run build`) when it is there;
// in a source checkout without a build, or with PROVENANCE_FROM_SOURCE=1, the TypeScript through tsx.
import { existsSync } from 'node:fs'

const compiled = new URL('../dist/fleet/main.js', import.meta.url)
if (process.env.PROVENANCE_FROM_SOURCE !== '1' && existsSync(compiled)) {
  await import(compiled.href)
} else {
  // tsx is resolved next to this file, not in the working folder: the command works from anywhere.
  const { register } = await import('tsx/esm/api')
  register()
  await import('./main.ts')
}
