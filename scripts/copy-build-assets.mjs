#!/usr/bin/env node
// Second half of `npm run build`: tsc emits only what is imported, so the files the compiled code
// reads beside itself at run time (firmware profiles, unit templates) are copied into the outDir.
// Usage: node scripts/copy-build-assets.mjs [outDir]   (default: dist)
import { cp, readdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const outDir = resolve(process.argv[2] ?? join(root, 'dist'))

/** Folders whose non-TypeScript files the compiled code reads relative to itself. */
const ASSET_DIRS = ['firmware-profiles', 'agent/systemd', 'gateway/systemd']

for (const dir of ASSET_DIRS) {
  for (const name of await readdir(join(root, dir))) {
    if (name.endsWith('.ts')) continue
    await cp(join(root, dir, name), join(outDir, dir, name), { recursive: true })
  }
}
