/**
 * Lists the files of a dataset or model folder for hashing: POSIX relative names, sorted by their
 * UTF-8 bytes, ignore patterns applied, and the symlink rule of docs/LINEAGE.md §1.3 enforced.
 * Only names and sizes are kept in memory, so 100k files cost a few MB. The walk uses synchronous
 * calls: a promise round trip per lstat cost 10x the call itself (27 µs vs 3 µs per file).
 */
import { lstatSync, readdirSync, realpathSync, statSync, type Stats } from 'node:fs'
import { lstat, stat } from 'node:fs/promises'
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path'
import { ForensicsError } from '../errors.js'

/** One file to hash: its name in the manifest and where to read it. */
export interface TreeFile {
  /** POSIX relative path from the root, e.g. `images/0001.png`. */
  name: string
  /** Absolute path read (for a followed symlink: the link's path; the OS resolves it). */
  path: string
  /** Size in bytes at listing time. */
  sizeBytes: number
}

export interface ListTreeOptions {
  /** Glob patterns of names to leave out (docs/LINEAGE.md §1.2). Default none. */
  ignore?: readonly string[]
  /** Follow symbolic links (files and folders, cycles refused). Default false: a link is an error. */
  followSymlinks?: boolean
}

/**
 * Orders names as docs/LINEAGE.md §1.1 says: by the bytes of their UTF-8 encoding. (JavaScript's
 * default sort compares UTF-16 code units, which puts U+E000..U+FFFF after astral characters.)
 */
export function compareNames (a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))
}

/**
 * A predicate for ignore patterns: `*` any run within one name part, `?` one character, `**` any run
 * of parts. A pattern without `/` matches any part of a path (`*.tmp`, `.git`); one with `/` matches
 * from the root. A match on a folder leaves out everything under it.
 */
export function compileIgnore (patterns: readonly string[]): (name: string) => boolean {
  const res = patterns.map(p => {
    if (p === '' || p.includes('\0')) throw new TypeError(`bad ignore pattern ${JSON.stringify(p)}`)
    const anchored = p.includes('/')
    const glob = p.replace(/^\/+|\/+$/g, '')
    let body = ''
    for (let i = 0; i < glob.length; i++) {
      const c = glob[i] as string
      if (glob.startsWith('**/', i)) { body += '(?:[^/]+/)*'; i += 2 } else if (glob.startsWith('**', i)) { body += '.*'; i += 1 } else if (c === '*') body += '[^/]*'
      else if (c === '?') body += '[^/]'
      else body += c.replace(/[.+^${}()|[\]\\]/g, '\\$&')
    }
    return new RegExp(anchored ? `^${body}(?:/.*)?$` : `(?:^|/)${body}(?:/.*)?$`, 's')
  })
  return name => res.some(re => re.test(name))
}

function unreadable (path: string, e: unknown): ForensicsError {
  return new ForensicsError('LINEAGE_UNREADABLE', `cannot read ${path}: ${(e as Error).message}`, { cause: e })
}

/**
 * Lists every regular file under `root`, sorted by name.
 * @throws ForensicsError LINEAGE_SYMLINK, LINEAGE_UNREADABLE, LINEAGE_NOT_REGULAR_FILE
 */
export async function listTree (root: string, options: ListTreeOptions = {}): Promise<TreeFile[]> {
  const ignored = compileIgnore(options.ignore ?? [])
  const follow = options.followSymlinks === true
  const base = resolve(root)
  const out: TreeFile[] = []
  // Real paths of the folders on the current descent: a followed link back into one is a cycle.
  const onPath = new Set<string>()
  const walk = (dir: string, prefix: string): void => {
    let real: string
    try { real = realpathSync(dir) } catch (e) { throw unreadable(dir, e) }
    if (onPath.has(real)) throw new ForensicsError('LINEAGE_SYMLINK', `symbolic link cycle at ${dir}`)
    onPath.add(real)
    let entries: string[]
    try { entries = readdirSync(dir) } catch (e) { throw unreadable(dir, e) }
    for (const entry of entries) {
      const name = prefix === '' ? entry : `${prefix}/${entry}`
      if (ignored(name)) continue
      const path = join(dir, entry)
      let s: Stats
      try { s = lstatSync(path) } catch (e) { throw unreadable(path, e) }
      if (s.isSymbolicLink()) {
        if (!follow) throw new ForensicsError('LINEAGE_SYMLINK', `${name} is a symbolic link; give --follow-symlinks to hash its target`)
        try { s = statSync(path) } catch (e) { throw unreadable(path, e) }
      }
      if (s.isDirectory()) walk(path, name)
      else if (s.isFile()) out.push({ name, path, sizeBytes: s.size })
      else throw new ForensicsError('LINEAGE_NOT_REGULAR_FILE', `${name} is not a regular file or folder`)
    }
    onPath.delete(real)
  }
  let top: Stats
  try { top = await stat(base) } catch (e) { throw unreadable(base, e) }
  if (!top.isDirectory()) throw new ForensicsError('LINEAGE_NOT_REGULAR_FILE', `${root} is not a folder`)
  walk(base, '')
  return out.sort((a, b) => compareNames(a.name, b.name))
}

/**
 * Lists the given files (paths resolved from the working directory, as a shell user expects),
 * named by their path relative to `root` (the `hash --root DIR files…` form).
 * @throws ForensicsError LINEAGE_PATH_OUTSIDE_ROOT, LINEAGE_SYMLINK, LINEAGE_UNREADABLE, LINEAGE_NOT_REGULAR_FILE
 */
export async function listFiles (paths: readonly string[], root: string, options: ListTreeOptions = {}): Promise<TreeFile[]> {
  const ignored = compileIgnore(options.ignore ?? [])
  const base = resolve(root)
  let realBase: string
  try { realBase = realpathSync(base) } catch (e) { throw unreadable(root, e) }
  const seen = new Set<string>()
  const out: TreeFile[] = []
  for (const p of paths) {
    const path = resolve(p)
    const rel = relative(base, path)
    if (rel === '' || rel === '..' || rel.startsWith('..' + sep) || isAbsolute(rel)) throw new ForensicsError('LINEAGE_PATH_OUTSIDE_ROOT', `${p} is not inside ${root}`)
    const name = rel.split(sep).join('/')
    if (ignored(name) || seen.has(name)) continue
    seen.add(name)
    let s: Stats
    try { s = await lstat(path) } catch (e) { throw unreadable(p, e) }
    if (s.isSymbolicLink()) {
      if (options.followSymlinks !== true) throw new ForensicsError('LINEAGE_SYMLINK', `${name} is a symbolic link; give --follow-symlinks to hash its target`)
      try { s = await stat(path) } catch (e) { throw unreadable(p, e) }
    }
    // A linked folder on the way (root/link/file) is a symlink too, though the file itself is not.
    if (options.followSymlinks !== true) {
      let realParent: string
      try { realParent = realpathSync(dirname(path)) } catch (e) { throw unreadable(p, e) }
      if (realParent !== realBase && !realParent.startsWith(realBase + sep)) throw new ForensicsError('LINEAGE_SYMLINK', `${name} lies under a symbolic link; give --follow-symlinks to hash its target`)
    }
    if (!s.isFile()) throw new ForensicsError('LINEAGE_NOT_REGULAR_FILE', `${name} is not a regular file`)
    out.push({ name, path, sizeBytes: s.size })
  }
  return out.sort((a, b) => compareNames(a.name, b.name))
}
