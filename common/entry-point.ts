/**
 * The one "am I the script node was started with?" check, for modules that are both a library and
 * a runnable script (bins, generators, benches). Compares real paths: a symlinked or relative argv[1] still matches.
 */
import { realpathSync } from 'node:fs'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'

/** True when the module at `moduleUrl` (its import.meta.url) is the script node was started with. */
export function isEntryPoint (moduleUrl: string): boolean {
  const entry = process.argv[1]
  if (entry === undefined) return false
  try {
    return pathToFileURL(realpathSync(resolve(entry))).href === moduleUrl
  } catch {
    return false
  }
}
