/**
 * Deploy command: puts a new ProvenanceRegistry on the chain behind --rpc-url and prints its
 * address. Run: `node --import tsx contracts/deploy.ts --rpc-url URL [--key-file F] [--json]`.
 * The deployer key comes from --key-file or env PROVENANCE_DEPLOYER_KEY and is never printed.
 */

import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { Wallet, getAddress, isAddress } from 'ethers'
import { RegistryError } from './errors.js'
import { createRpcProvider } from './provider.js'
import { deployRegistry } from './registry.js'
import { isEntryPoint } from '../common/entry-point.js'

export const DEPLOYER_KEY_ENV = 'PROVENANCE_DEPLOYER_KEY'
export const DEFAULT_DEPLOY_TIMEOUT_MS = 120_000

const USAGE = `Usage: node --import tsx contracts/deploy.ts --rpc-url URL [options]

Deploys a ProvenanceRegistry and prints its address on stdout.

Options:
  --rpc-url URL       JSON-RPC endpoint of the chain (required)
  --key-file FILE     file holding the deployer's private key (0x-hex); default: env ${DEPLOYER_KEY_ENV}
  --admin ADDRESS     account that receives DEFAULT_ADMIN_ROLE (default: the deployer)
  --timeout-ms N      give up after N ms (default ${DEFAULT_DEPLOY_TIMEOUT_MS})
  --json              print {address, txHash, blockNumber, chainId, deployer, admin, gasUsed} as JSON
  -h, --help          show this help

Exit codes: 0 deployed, 1 failure (CODE: message on stderr), 2 usage error.
`

/** Where the command writes; the real process streams by default, tests may capture. */
export interface DeployCliIo {
  stdout: (text: string) => void
  stderr: (text: string) => void
  env: NodeJS.ProcessEnv
}

class UsageError extends Error {}

/** Runs the deploy command with `argv` (without node and script) and resolves to its exit code. */
export async function runDeployCli (argv: string[], io: DeployCliIo = defaultIo()): Promise<number> {
  let values: { 'rpc-url'?: string, 'key-file'?: string, admin?: string, 'timeout-ms'?: string, json?: boolean, help?: boolean }
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        'rpc-url': { type: 'string' },
        'key-file': { type: 'string' },
        admin: { type: 'string' },
        'timeout-ms': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' }
      }
    }).values
    if (values.help === true) {
      io.stdout(USAGE)
      return 0
    }
    if (values['rpc-url'] === undefined) throw new UsageError('--rpc-url is required')
    if (!/^https?:\/\//.test(values['rpc-url'])) throw new UsageError('--rpc-url must be an http(s) URL')
    if (values.admin !== undefined && !isAddress(values.admin)) throw new UsageError('--admin must be an address')
    if (values['timeout-ms'] !== undefined && !/^[1-9]\d*$/.test(values['timeout-ms'])) {
      throw new UsageError('--timeout-ms must be a positive integer')
    }
  } catch (e) {
    io.stderr(`USAGE: ${(e as Error).message}\n\n${USAGE}`)
    return 2
  }

  const timeoutMs = values['timeout-ms'] === undefined ? DEFAULT_DEPLOY_TIMEOUT_MS : Number(values['timeout-ms'])
  let timer: NodeJS.Timeout | undefined
  try {
    const key = readDeployerKey(values['key-file'], io.env)
    const work = deployToRpc(values['rpc-url'], key, values.admin)
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new RegistryError('DEPLOY_FAILED', `no deployment receipt within ${timeoutMs} ms`)), timeoutMs)
    })
    const result = await Promise.race([work, timeout])
    io.stdout(values.json === true
      ? JSON.stringify({ ...result, gasUsed: result.gasUsed.toString() }) + '\n'
      : result.address + '\n')
    return 0
  } catch (e) {
    const code = e instanceof RegistryError ? e.code : 'DEPLOY_FAILED'
    io.stderr(`${code}: ${(e as Error).message}\n`)
    return 1
  } finally {
    clearTimeout(timer)
  }
}

/** What a deployment did (printed by `--json`). */
export interface DeployOutcome {
  address: string
  txHash: string
  blockNumber: number
  chainId: number
  deployer: string
  admin: string
  gasUsed: bigint
}

/**
 * Deploys a registry through `rpcUrl` with `privateKey` (0x-hex); `admin` defaults to the deployer.
 * Shared by this command and `provenance-fleet deploy`.
 * @throws RegistryError `REGISTRY_RPC_FAILED`, `DEPLOY_FAILED`.
 */
export async function deployToRpc (rpcUrl: string, privateKey: string, admin: string | undefined): Promise<DeployOutcome> {
  const chainId = await fetchChainId(rpcUrl)
  const provider = createRpcProvider(rpcUrl, { chainId })
  try {
    const wallet = new Wallet(privateKey, provider)
    const adminAddress = getAddress(admin ?? wallet.address)
    const d = await deployRegistry(wallet, adminAddress)
    return {
      address: d.address,
      txHash: d.txHash,
      blockNumber: d.blockNumber,
      chainId,
      deployer: wallet.address,
      admin: adminAddress,
      gasUsed: d.gasUsed
    }
  } finally {
    provider.destroy()
  }
}

/** Asks the endpoint once, so a dead URL fails fast instead of ethers retrying for ever. */
export async function fetchChainId (rpcUrl: string): Promise<number> {
  try {
    const res = await fetch(rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
      signal: AbortSignal.timeout(10_000)
    })
    const body = await res.json() as { result?: unknown }
    if (typeof body.result !== 'string' || !/^0x[0-9a-f]+$/i.test(body.result)) {
      throw new Error(`unexpected eth_chainId answer (HTTP ${res.status})`)
    }
    return Number(BigInt(body.result))
  } catch (e) {
    throw new RegistryError('REGISTRY_RPC_FAILED', `cannot reach ${rpcUrl}: ${(e as Error).message}`, { cause: e })
  }
}

function readDeployerKey (keyFile: string | undefined, env: NodeJS.ProcessEnv): string {
  let raw: string | undefined
  if (keyFile !== undefined) {
    try {
      raw = readFileSync(keyFile, 'utf8')
    } catch (e) {
      throw new RegistryError('DEPLOY_KEY_MISSING', `cannot read key file ${keyFile}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`, { cause: e })
    }
  } else {
    raw = env[DEPLOYER_KEY_ENV]
    if (raw === undefined || raw.trim() === '') {
      throw new RegistryError('DEPLOY_KEY_MISSING', `no deployer key: pass --key-file or set ${DEPLOYER_KEY_ENV}`)
    }
  }
  const key = raw.trim().replace(/^0x/i, '')
  // Never echo the value: it is a secret even when malformed.
  if (!/^[0-9a-fA-F]{64}$/.test(key)) throw new RegistryError('DEPLOY_KEY_INVALID', 'deployer key must be 32 bytes of hex')
  return '0x' + key
}

function defaultIo (): DeployCliIo {
  return {
    stdout: (text) => { process.stdout.write(text) },
    stderr: (text) => { process.stderr.write(text) },
    env: process.env
  }
}

if (isEntryPoint(import.meta.url)) {
  process.exitCode = await runDeployCli(process.argv.slice(2))
}
