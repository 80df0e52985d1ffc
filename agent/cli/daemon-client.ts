/**
 * Talks to a running daemon over its loopback HTTP API: finds its port, sends a request, and
 * turns "nothing listening" into DAEMON_NOT_RUNNING.
 */
import { promises as fs } from 'node:fs'
import { request } from 'node:http'
import type { AgentSetup } from './context.js'
import { CliError } from './errors.js'

export const DEFAULT_DAEMON_TIMEOUT_MS = 10_000

/**
 * The port of the daemon's API: `override`, else statusPort when not 0, else the runtime file.
 * @throws CliError `DAEMON_NOT_RUNNING` when none is known.
 */
export async function findDaemonPort (setup: AgentSetup, override?: number): Promise<number> {
  if (override !== undefined) return override
  if (setup.config.statusPort !== 0) return setup.config.statusPort
  let text: string
  try {
    text = await fs.readFile(setup.runtimeFile, 'utf8')
  } catch {
    throw new CliError('DAEMON_NOT_RUNNING', `no daemon is running for ${setup.config.stateDir} (statusPort is 0 and ${setup.runtimeFile} does not exist)`)
  }
  const port = (JSON.parse(text) as { port?: unknown }).port
  if (typeof port !== 'number' || !Number.isSafeInteger(port) || port <= 0 || port > 65535) {
    throw new CliError('DAEMON_NOT_RUNNING', `${setup.runtimeFile} names no port`)
  }
  return port
}

export interface DaemonResponse { status: number, headers: Record<string, string | string[] | undefined>, body: Buffer }

/**
 * One request to the daemon at 127.0.0.1:`port`.
 * @throws CliError `DAEMON_NOT_RUNNING` (connection refused, timeout).
 */
export async function requestDaemon (port: number, method: string, path: string, timeoutMs = DEFAULT_DAEMON_TIMEOUT_MS): Promise<DaemonResponse> {
  return await new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', (e) => reject(new CliError('DAEMON_NOT_RUNNING', `the daemon on port ${port} broke off: ${e.message}`, { cause: e })))
    })
    req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)))
    req.on('error', (e) => reject(new CliError('DAEMON_NOT_RUNNING', `no daemon answers on 127.0.0.1:${port}: ${e.message}`, { cause: e })))
    req.end()
  })
}

/**
 * The JSON body of a successful answer.
 * @throws CliError `DAEMON_REQUEST_FAILED` for an error answer.
 */
export function parseDaemonJson (res: DaemonResponse): unknown {
  let body: unknown
  try {
    body = JSON.parse(res.body.toString('utf8'))
  } catch {
    throw new CliError('DAEMON_REQUEST_FAILED', `the daemon answered ${res.status} with a body that is not JSON`)
  }
  if (res.status !== 200) {
    const error = (body as { error?: { code?: string, message?: string } }).error
    throw new CliError('DAEMON_REQUEST_FAILED', `the daemon answered ${res.status}: ${error?.code ?? '?'}: ${error?.message ?? ''}`)
  }
  return body
}
