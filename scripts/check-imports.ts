/**
 * Layering rule (docs/LAYOUT.md): protocol/ imports no other part and does no I/O; common/ (shared
 * infrastructure, does I/O) imports only protocol/; contracts/ imports protocol/ and common/;
 * agent/, gateway/, forensics/ and fleet/ import those three but never each other.
 * Inside a part, static imports form no circle (findCycles).
 * Prints each violation; exits 1 when there is any.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative, resolve, dirname, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { isEntryPoint } from '../common/entry-point.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const PARTS = ['protocol', 'common', 'contracts', 'agent', 'gateway', 'forensics', 'fleet']
const ALLOWED: Record<string, string[]> = {
  protocol: [],
  common: ['protocol'],
  contracts: ['protocol', 'common'],
  // agent/cli may ask the on-chain model registry (an optional policy check): agent → contracts.
  agent: ['protocol', 'common', 'contracts'],
  gateway: ['protocol', 'common', 'contracts'],
  forensics: ['protocol', 'common', 'contracts'],
  fleet: ['protocol', 'common', 'contracts']
}
const IO_MODULES = /^(node:)?(fs|fs\/promises|net|http|https|child_process|dgram|tls)$/

function * sources (dir: string): Generator<string> {
  let entries: string[]
  try { entries = readdirSync(dir) } catch { return }
  for (const e of entries) {
    const p = join(dir, e)
    if (statSync(p).isDirectory()) { if (e !== 'build' && e !== 'node_modules') yield * sources(p) } else if (p.endsWith('.ts')) yield p
  }
}

/** Every layering violation in the tree, as `file: message`. */
export function findViolations (): string[] {
  const out: string[] = []
  for (const part of PARTS) {
    for (const file of sources(join(root, part))) {
      const text = readFileSync(file, 'utf8')
      for (const m of text.matchAll(/(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g)) {
        const spec = m[1] ?? m[2] ?? ''
        const rel = relative(root, file)
        if (spec.startsWith('.')) {
          const target = relative(root, resolve(dirname(file), spec)).split(sep)[0] ?? ''
          if (target !== part && PARTS.includes(target) && !(ALLOWED[part] ?? []).includes(target)) {
            out.push(`${rel}: ${part}/ must not import ${target}/ (${spec})`)
          }
        } else if (part === 'protocol' && IO_MODULES.test(spec)) {
          out.push(`${rel}: protocol/ does no I/O, but imports ${spec}`)
        }
      }
    }
  }
  return out
}

/**
 * Circles of static imports inside the parts (issue #17: the daemon and its API were one), each as
 * the files of one strongly connected group. A dynamic `import()` may point back: that is lazy
 * loading (a module registering itself with the one that loads it), not a circle at start-up; an
 * `import type` is erased and not counted either (gateway/anchor's types.ts ↔ state-store.ts).
 */
export function findCycles (): string[][] {
  const graph = new Map<string, string[]>()
  for (const part of PARTS) {
    for (const file of sources(join(root, part))) {
      const deps: string[] = []
      for (const m of readFileSync(file, 'utf8').matchAll(/(?:^|\n)\s*(?:import|export)(?!\s+type\s)[^'"]*?from\s+['"](\.[^'"]+)['"]/g)) {
        const target = resolve(dirname(file), (m[1] ?? '').replace(/\.js$/, '.ts'))
        if (target !== file) deps.push(target)
      }
      graph.set(file, deps)
    }
  }
  // Tarjan's strongly connected components; a group of two or more files is a circle.
  let next = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const groups: string[][] = []
  const visit = (v: string): void => {
    index.set(v, next); low.set(v, next); next++
    stack.push(v); onStack.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue
      if (!index.has(w)) { visit(w); low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0)) } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) ?? 0, index.get(w) ?? 0))
    }
    if (low.get(v) !== index.get(v)) return
    const group: string[] = []
    for (let w = stack.pop(); w !== undefined; w = stack.pop()) { onStack.delete(w); group.push(relative(root, w)); if (w === v) break }
    if (group.length > 1) groups.push(group.sort())
  }
  for (const v of graph.keys()) if (!index.has(v)) visit(v)
  return groups
}

if (isEntryPoint(import.meta.url)) {
  const v = [...findViolations(), ...findCycles().map(g => `import circle: ${g.join(' → ')}`)]
  for (const line of v) console.error(line)
  if (v.length > 0) process.exit(1)
  console.log('imports: ok')
}
