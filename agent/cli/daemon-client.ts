/**
 * Talks to a running daemon over its local HTTP API: the unix socket by default (its file mode is
 * the access control), or loopback TCP with the bearer token of `<stateDir>/api-token` when a
 * port is given. Turns "nothing listening" into DAEMON_NOT_RUNNING and "not allowed" into
 * DAEMON_ACCESS_DENIED.
 */
import { promises as fs } from 'node:fs'
import { request } from 'node:http'
import type { AgentSetup } from './context.js'
import { CliError } from './errors.js'

export const DEFAULT_DAEMON_TIMEOUT_MS = 10_000
/** Largest answer read from the daemon (a capture, a page of records): bounded, like every input. */
export const MAX_DAEMON_RESPONSE_BYTES = 256 * 1024 * 1024

/** How to reach the daemon: its unix socket, or TCP on 127.0.0.1 with a token. */
export type DaemonEndpoint =
  | { socketPath: string }
  | { port: number, token: string | undefined }

/**
 * The endpoint of the daemon's API: TCP at `overridePort` (with the token file's token when it
 * is readable), else the unix socket of the configuration.
 * @throws CliError `DAEMON_NOT_RUNNING` when no socket exists.
 */
export async function findDaemon (setup: AgentSetup, overridePort?: number): Promise<DaemonEndpoint> {
  if (overridePort !== undefined) {
    // Unreadable (another user's daemon): go on without it, the daemon's 401 says the rest.
    const token = await fs.readFile(setup.apiTokenFile, 'utf8').then(t => t.trim(), () => undefined)
    return { port: overridePort, token }
  }
  const socket = setup.apiSocket
  const st = await fs.lstat(socket).catch(() => undefined)
  if (st === undefined || !st.isSocket()) {
    throw new CliError('DAEMON_NOT_RUNNING', `no daemon is running for ${setup.config.stateDir} (no socket at ${socket})`)
  }
  return { socketPath: socket }
}

function describe (to: DaemonEndpoint): string {
  return 'socketPath' in to ? to.socketPath : `127.0.0.1:${to.port}`
}

export interface DaemonResponse { status: number, headers: Record<string, string | string[] | undefined>, body: Buffer }

/** A request body sent as is (a sample's bytes), instead of JSON. */
export interface RawBody { bytes: Uint8Array, contentType: string }

/**
 * One request to the daemon: `json` is sent as a JSON body, a {@link RawBody} as its bytes.
 * @throws CliError `DAEMON_NOT_RUNNING` (nothing listening, timeout), `DAEMON_ACCESS_DENIED`
 *   (the socket's mode keeps this user out; no or a wrong token on TCP).
 */
export async function requestDaemon (to: DaemonEndpoint, method: string, path: string, timeoutMs = DEFAULT_DAEMON_TIMEOUT_MS, json?: unknown, raw?: RawBody): Promise<DaemonResponse> {
  const where = describe(to)
  const payload = raw !== undefined ? raw.bytes : json === undefined ? undefined : Buffer.from(JSON.stringify(json), 'utf8')
  const bodyHeaders: Record<string, string> = payload === undefined ? {} : { 'content-type': raw?.contentType ?? 'application/json', 'content-length': String(payload.byteLength) }
  const res = await new Promise<DaemonResponse>((resolve, reject) => {
    const target = 'socketPath' in to
      ? { socketPath: to.socketPath, headers: { host: 'localhost', ...bodyHeaders } }
      : { host: '127.0.0.1', port: to.port, headers: { ...(to.token === undefined ? {} : { authorization: `Bearer ${to.token}` }), ...bodyHeaders } }
    const req = request({ ...target, method, path, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = []
      let size = 0
      res.on('data', (c: Buffer) => {
        size += c.byteLength
        if (size > MAX_DAEMON_RESPONSE_BYTES) { res.destroy(new Error(`answer larger than ${MAX_DAEMON_RESPONSE_BYTES} bytes`)); return }
        chunks.push(c)
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', (e) => reject(new CliError('DAEMON_NOT_RUNNING', `the daemon on ${where} broke off: ${e.message}`, { cause: e })))
    })
    req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)))
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EACCES' || e.code === 'EPERM') {
        reject(new CliError('DAEMON_ACCESS_DENIED', `${where}: permission denied (run as the service user, or a member of its group when apiSocketMode is 0660)`, { cause: e }))
        return
      }
      reject(new CliError('DAEMON_NOT_RUNNING', `no daemon answers on ${where}: ${e.message}`, { cause: e }))
    })
    req.end(payload)
  })
  if (res.status === 401 || res.status === 403) {
    throw new CliError('DAEMON_ACCESS_DENIED', `the daemon on ${where} refused the request (HTTP ${res.status}): the TCP API needs the token of <stateDir>/api-token, readable by the service user`)
  }
  return res
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
