/** True when the module at `moduleUrl` (its import.meta.url) is the script node was started with. */
import { realpathSync } from 'node:fs'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

export function isEntryPoint (moduleUrl: string): boolean {
  const entry = process.argv[1]
  if (entry === undefined) return false
  try {
    return pathToFileURL(realpathSync(resolve(entry))).href === moduleUrl
  } catch {
    return false
  }
}
