/**
 * A real tiny file system for disk-full tests: a tmpfs mounted by the test (as root) and always
 * unmounted in teardown, a filler file that takes all or part of its space, and a child process
 * that holds a record log on it (test/fixtures/record-log-child.ts).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

/** Mounts a tmpfs of `bytes`, or returns why it cannot (not root, no mount). */
export function mountTmpfs (bytes: number): { dir: string } | { skip: string } {
  if (process.getuid?.() !== 0) return { skip: 'not root: cannot mount a tmpfs' }
  const dir = mkdtempSync(join(tmpdir(), 'prov-disk-'))
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir], { stdio: 'ignore' })
    return { dir }
  } catch (e) {
    rmSync(dir, { recursive: true, force: true })
    return { skip: `mount not permitted here: ${(e as Error).message.split('\n')[0] ?? ''}` }
  }
}

export function unmount (dir: string): void {
  try { execFileSync('umount', ['-l', dir], { stdio: 'ignore' }) } finally { rmSync(dir, { recursive: true, force: true }) }
}

export function freeBytes (dir: string): number {
  const s = statfsSync(dir)
  return s.bavail * s.bsize
}

/**
 * Writes a filler file until the disk is full, or until only `leaveBytes` are free. Returns
 * 'full' when the disk refused a write (ENOSPC) or had not a byte left, 'left' when it stopped at
 * `leaveBytes`. A log on the same disk may free space right after (it gives up its reserve on a
 * full disk): what the disk said at the moment it was full is the witness, not a later statfs.
 */
export function fill (path: string, leaveBytes = 0): 'full' | 'left' {
  const fd = openSync(path, 'a')
  const chunk = Buffer.alloc(4096, 1)
  try {
    for (;;) {
      const free = freeBytes(join(path, '..'))
      if (free <= leaveBytes) return free === 0 ? 'full' : 'left'
      try {
        writeSync(fd, free < chunk.length ? chunk.subarray(0, free) : chunk)
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOSPC') return 'full'
        throw e
      }
    }
  } finally {
    closeSync(fd)
  }
}

export interface LogChild {
  proc: ChildProcess
  /** seq → hash hex of every append that resolved, in the order they resolved. */
  resolved: Map<number, string>
  errors: Map<string, number>
  states: string[]
  /** Resolves once `n` more appends have resolved (or the child exits). */
  waitResolved: (n: number) => Promise<void>
  /** Resolves once `n` more lines of any kind have come (or the child exits). */
  waitLines: (n: number) => Promise<void>
  kill: () => Promise<void>
}

const CHILD = fileURLToPath(new URL('../fixtures/record-log-child.ts', import.meta.url))

export function startLogChild (dir: string, mode: 'fail-open' | 'fail-closed', reserveBytes: number, writeBufferBytes: number): LogChild {
  const proc = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, mode, String(reserveBytes), String(writeBufferBytes)], { stdio: ['ignore', 'pipe', 'inherit'] })
  const resolved = new Map<number, string>()
  const errors = new Map<string, number>()
  const states: string[] = []
  let lines = 0
  let exited = false
  const waiters: Array<() => boolean> = []
  const check = (): void => { for (let i = waiters.length - 1; i >= 0; i--) if ((waiters[i] as () => boolean)()) waiters.splice(i, 1) }
  createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', line => {
    lines++
    const [kind, a, b] = line.split(' ')
    if (kind === 'ok') resolved.set(Number(a), b as string)
    else if (kind === 'err') errors.set(a as string, (errors.get(a as string) ?? 0) + 1)
    else if (kind === 'state') states.push(a as string)
    check()
  })
  const exitedP = new Promise<void>(resolve => proc.on('exit', () => { exited = true; resolve(); for (const w of waiters.splice(0)) w() }))
  const wait = async (count: () => number, n: number): Promise<void> => {
    const target = count() + n
    await new Promise<void>(resolve => { waiters.push(() => { if (exited || count() >= target) { resolve(); return true } return false }); check() })
  }
  return {
    proc,
    resolved,
    errors,
    states,
    waitResolved: async n => { await wait(() => resolved.size, n) },
    waitLines: async n => { await wait(() => lines, n) },
    kill: async () => { if (!exited) { proc.kill('SIGKILL'); await exitedP } }
  }
}
