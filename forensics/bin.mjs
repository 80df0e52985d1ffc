#!/usr/bin/env node
// `provenance` launcher: registers tsx (resolved next to this file) and runs the CLI.
import { register } from 'tsx/esm/api'

register()
const { runCli } = await import('./cli.ts')
process.exitCode = await runCli(process.argv.slice(2))
