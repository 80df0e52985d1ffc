#!/usr/bin/env node
// `provenance-fleet` launcher: registers tsx (resolved next to this file, not in the working
// folder) and runs the TypeScript entry point, so the command works from any folder.
import { register } from 'tsx/esm/api'

register()
await import('./main.ts')
