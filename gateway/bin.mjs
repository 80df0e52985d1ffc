#!/usr/bin/env node
// `provenance-gateway` launcher: registers tsx (resolved next to this file) and runs the CLI.
import { register } from 'tsx/esm/api'

register()
const { main } = await import('./cli.ts')
await main(process.argv.slice(2))
