/**
 * Headless Chromium (Debian's `chromium`, installed by scripts/ensure-system-deps.sh) for the
 * report tests: dump a page's DOM or take a screenshot, with a fresh profile per run.
 * (No tests here: tap lists this file as skipped.)
 */
import { spawn, spawnSync } from 'node:child_process'
import { makeTempDir } from './tmp.js'

export const CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync']

/** True when `chromium` runs here. */
export const hasChromium: boolean = spawnSync('chromium', ['--version'], { stdio: 'ignore' }).status === 0

/** Runs chromium with a fresh profile (removed when `t` ends); resolves with its stdout. Killed after 60 s. */
export async function runChromium (t: { teardown: (fn: () => unknown) => void }, args: string[]): Promise<string> {
  const profile = await makeTempDir(t, 'chromium-profile-')
  const child = spawn('chromium', [...CHROMIUM_FLAGS, `--user-data-dir=${profile}`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
  const code = await new Promise<number | null>(resolve => child.on('close', resolve))
  clearTimeout(timer)
  if (code !== 0) throw new Error(`chromium exited ${String(code)}: ${stderr.slice(-2000)}`)
  return stdout
}
