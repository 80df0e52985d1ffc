/**
 * A local EVM chain for tests, the demo and the gateway's embedded default: starts the anvil
 * binary shipped by the npm package @foundry-rs/anvil on loopback, waits until JSON-RPC answers,
 * and stops it (SIGTERM, then SIGKILL). With `stateDir` the chain survives a stop and restart.
 */

import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { HDNodeWallet, Mnemonic } from 'ethers'
import { RegistryError } from './errors.js'

/** The well-known development mnemonic anvil derives its default accounts from. Test use only. */
export const ANVIL_MNEMONIC = 'test test test test test test test test test test test junk'
export const DEFAULT_ANVIL_CHAIN_ID = 31337
export const DEFAULT_ANVIL_ACCOUNT_COUNT = 10
export const DEFAULT_ANVIL_START_TIMEOUT_MS = 20_000
export const DEFAULT_ANVIL_STOP_TIMEOUT_MS = 5_000

export interface AnvilOptions {
  /** Seconds between blocks (interval mining). Default: automine, one block per transaction. */
  blockTimeSeconds?: number
  /** Chain id reported by eth_chainId. Default 31337. */
  chainId?: number
  /**
   * Folder for `--state`: loaded at start when it holds `state.json`, written on stop. Reuse the
   * same folder (and `port`) to restart the same chain. Created when missing.
   */
  stateDir?: string
  /** With `stateDir`: also dump the state every this many seconds (survives a SIGKILL). Default: only on stop. */
  stateIntervalSeconds?: number
  /** TCP port on 127.0.0.1. Default: one chosen by the OS. */
  port?: number
  /** Number of funded dev accounts. Default 10. */
  accountCount?: number
  /** Path of the anvil binary. Default: the one of the @foundry-rs/anvil package for this platform. */
  binaryPath?: string
  /** How long to wait for JSON-RPC to answer, retries on a busy port included. Default 20 000 ms. */
  startTimeoutMs?: number
  /** How long `stop()` waits after SIGTERM before SIGKILL. Default 5 000 ms. */
  stopTimeoutMs?: number
}

/** A funded dev account of the local chain. The key is public knowledge: never use it elsewhere. */
export interface AnvilAccount {
  address: string
  privateKey: string
}

export interface AnvilInstance {
  rpcUrl: string
  chainId: number
  port: number
  accounts: AnvilAccount[]
  /** Stops the node (state written when `stateDir` was given). Safe to call more than once. */
  stop: () => Promise<void>
}

const require = createRequire(import.meta.url)
const running = new Set<ChildProcess>()
let exitHookInstalled = false

/**
 * Locates the anvil binary of the platform package (e.g. @foundry-rs/anvil-linux-amd64).
 * @throws RegistryError ANVIL_NOT_FOUND when the platform is unsupported or the package is missing
 */
export function resolveAnvilBinary (): string {
  const arch = ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[process.arch]
  if (arch === undefined || !['linux', 'darwin', 'win32'].includes(process.platform)) {
    throw new RegistryError('ANVIL_NOT_FOUND', `no anvil package for ${process.platform}/${process.arch}`)
  }
  const pkg = `@foundry-rs/anvil-${process.platform}-${arch}`
  let packageDir: string
  try {
    packageDir = dirname(require.resolve(`${pkg}/package.json`))
  } catch (e) {
    throw new RegistryError('ANVIL_NOT_FOUND', `${pkg} is not installed (it comes with @foundry-rs/anvil; run npm install)`, { cause: e })
  }
  const binary = join(packageDir, 'bin', process.platform === 'win32' ? 'anvil.exe' : 'anvil')
  if (!existsSync(binary)) {
    throw new RegistryError('ANVIL_NOT_FOUND', `${binary} is missing (reinstall @foundry-rs/anvil)`)
  }
  return binary
}

let cachedAccounts: AnvilAccount[] = []

/** The first `count` accounts of ANVIL_MNEMONIC on m/44'/60'/0'/0/i, as anvil funds them. */
export function deriveAnvilAccounts (count: number = DEFAULT_ANVIL_ACCOUNT_COUNT): AnvilAccount[] {
  if (!Number.isSafeInteger(count) || count < 0) throw new RangeError('count must be a non-negative integer')
  if (cachedAccounts.length < count) {
    // One seed computation (PBKDF2) for all accounts instead of one per fromPhrase call.
    const parent = HDNodeWallet.fromSeed(Mnemonic.fromPhrase(ANVIL_MNEMONIC).computeSeed()).derivePath("m/44'/60'/0'/0")
    cachedAccounts = Array.from({ length: count }, (_, i) => {
      const w = parent.deriveChild(i)
      return { address: w.address, privateKey: w.privateKey }
    })
  }
  return cachedAccounts.slice(0, count).map((a) => ({ ...a }))
}

/**
 * Starts anvil on 127.0.0.1 and resolves once it answers eth_chainId.
 * @throws RegistryError ANVIL_NOT_FOUND (no binary), ANVIL_START_FAILED (exited, timed out)
 */
export async function startAnvil (options: AnvilOptions = {}): Promise<AnvilInstance> {
  const chainId = options.chainId ?? DEFAULT_ANVIL_CHAIN_ID
  const accountCount = options.accountCount ?? DEFAULT_ANVIL_ACCOUNT_COUNT
  const startTimeoutMs = options.startTimeoutMs ?? DEFAULT_ANVIL_START_TIMEOUT_MS
  const stopTimeoutMs = options.stopTimeoutMs ?? DEFAULT_ANVIL_STOP_TIMEOUT_MS
  if (!Number.isSafeInteger(chainId) || chainId <= 0) throw new RangeError('chainId must be a positive integer')
  if (options.port !== undefined && (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535)) {
    throw new RangeError('port must be an integer in 0..65535')
  }
  if (options.blockTimeSeconds !== undefined && !(options.blockTimeSeconds > 0)) {
    throw new RangeError('blockTimeSeconds must be > 0')
  }
  const binary = options.binaryPath ?? resolveAnvilBinary()
  if (!existsSync(binary)) throw new RegistryError('ANVIL_NOT_FOUND', `${binary} does not exist`)

  const args = [
    '--host', '127.0.0.1',
    '--port', String(options.port ?? 0),
    '--chain-id', String(chainId),
    '--accounts', String(accountCount),
    '--mnemonic', ANVIL_MNEMONIC
  ]
  if (options.blockTimeSeconds !== undefined) args.push('--block-time', String(options.blockTimeSeconds))
  if (options.stateDir !== undefined) {
    mkdirSync(options.stateDir, { recursive: true })
    args.push('--state', options.stateDir)
    if (options.stateIntervalSeconds !== undefined) args.push('--state-interval', String(options.stateIntervalSeconds))
  }

  const deadline = Date.now() + startTimeoutMs
  for (;;) {
    const attempt = await launch(binary, args, deadline)
    if (attempt.ok) {
      const { child, port } = attempt
      const rpcUrl = `http://127.0.0.1:${port}`
      try {
        await waitForRpc(rpcUrl, child, deadline)
      } catch (e) {
        await stopChild(child, stopTimeoutMs)
        throw e
      }
      return {
        rpcUrl,
        chainId,
        port,
        accounts: deriveAnvilAccounts(accountCount),
        stop: async () => { await stopChild(child, stopTimeoutMs) }
      }
    }
    // A fixed port may still be held by the previous instance for a moment after a restart.
    if (attempt.addressInUse && options.port !== undefined && Date.now() + 200 < deadline) {
      await sleep(200)
      continue
    }
    throw new RegistryError('ANVIL_START_FAILED', attempt.message)
  }
}

type LaunchResult =
  | { ok: true, child: ChildProcess, port: number }
  | { ok: false, addressInUse: boolean, message: string }

/** Spawns anvil and waits for its "Listening on host:port" line (the only way to learn port 0's pick). */
async function launch (binary: string, args: string[], deadline: number): Promise<LaunchResult> {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  track(child)
  let output = ''
  return await new Promise<LaunchResult>((resolve) => {
    let settled = false
    const finish = (result: LaunchResult): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      // From now on only drain the pipes (anvil logs every call; a full pipe would block it),
      // and let them not keep this process alive: a forgotten stop() ends in the exit hook.
      for (const stream of [child.stdout, child.stderr]) {
        stream?.off('data', onData)
        stream?.on('data', () => {})
        ;(stream as { unref?: () => void } | null)?.unref?.()
      }
      child.unref()
      resolve(result)
    }
    const onData = (chunk: Buffer): void => {
      // Keep only a bounded tail: anvil logs every RPC call for as long as it runs.
      output = (output + chunk.toString('utf8')).slice(-8192)
      const m = /Listening on 127\.0\.0\.1:(\d+)/.exec(output)
      if (m !== null) finish({ ok: true, child, port: Number(m[1]) })
    }
    child.stdout?.on('data', onData)
    child.stderr?.on('data', onData)
    child.once('error', (e) => {
      finish({ ok: false, addressInUse: false, message: `cannot run ${binary}: ${e.message}` })
    })
    child.once('exit', (code, signal) => {
      finish({
        ok: false,
        addressInUse: /address already in use|os error 98/i.test(output),
        message: `anvil exited (${signal ?? `code ${String(code)}`}) before listening: ${output.trim().slice(-500)}`
      })
    })
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      finish({ ok: false, addressInUse: false, message: 'anvil did not start listening in time' })
    }, Math.max(0, deadline - Date.now()))
  })
}

async function waitForRpc (rpcUrl: string, child: ChildProcess, deadline: number): Promise<void> {
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new RegistryError('ANVIL_START_FAILED', 'anvil exited while starting')
    }
    try {
      const res = await fetch(rpcUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
        signal: AbortSignal.timeout(1000)
      })
      if (res.ok) {
        const body = await res.json() as { result?: unknown }
        if (typeof body.result === 'string') return
      }
    } catch {
      // Not accepting connections yet.
    }
    if (Date.now() > deadline) throw new RegistryError('ANVIL_START_FAILED', 'anvil JSON-RPC did not answer in time')
    await sleep(50)
  }
}

function track (child: ChildProcess): void {
  running.add(child)
  child.once('exit', () => running.delete(child))
  if (!exitHookInstalled) {
    exitHookInstalled = true
    // A crashed test or bench must not leave a node behind holding a port.
    process.once('exit', () => {
      for (const c of running) c.kill('SIGKILL')
    })
  }
}

async function stopChild (child: ChildProcess, stopTimeoutMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), stopTimeoutMs)
  await exited
  clearTimeout(timer)
}

async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}
