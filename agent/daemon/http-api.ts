/**
 * The daemon's loopback HTTP API for the device's own applications and the CLI:
 *   GET  /status                      identity, chain head, models, uplink, policy, budget
 *   POST /v1/models/<name>/run        { inputs: { <name>: { type, dims, data } }, decision? }
 *   POST /v1/models/<name>/reload     load the model's file again
 *   GET  /v1/records?from=&to=&limit= CBOR array of record envelopes (export while running)
 * It has no authentication, so it binds to loopback only, and refuses requests whose Host is not
 * the loopback address (DNS rebinding) or that come from a web page (Origin, non-JSON POST).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Tensor } from 'onnxruntime-node'
import { encodeCanonical, toHex } from '../../protocol/index.js'
import type { Logger } from '../session/index.js'
import type { Daemon } from './daemon.js'
import { DaemonError, HTTP_STATUS_BY_CODE } from './errors.js'
import { decodeTensorJson, encodeTensorJson } from './tensor-json.js'

export interface ApiServerOptions {
  maxRequestBytes: number
  logger: Logger
}

export interface ApiServer {
  server: Server
  /** Starts serving `daemon`; before this every request gets 503. */
  attach: (daemon: Daemon, port: number) => void
}

/** Most records one GET /v1/records answers with. */
export const MAX_RECORDS_PER_REQUEST = 1024

/** The HTTP server of the API (not yet listening). */
export function createApiServer (options: ApiServerOptions): ApiServer {
  let daemon: Daemon | undefined
  let allowedHosts = new Set<string>()
  const server = createServer((req, res) => {
    const target = daemon
    if (target === undefined) {
      sendError(res, new DaemonError('DAEMON_STOPPING', 'the daemon is starting'))
      return
    }
    const handling = handle(target, req, res, options, allowedHosts).catch((e: unknown) => {
      if (!res.headersSent) sendError(res, e)
      else res.destroy()
    })
    // 'close' comes once the response is sent or the connection is gone: stop() waits for it.
    target.track(Promise.all([handling, new Promise<void>(resolve => res.once('close', resolve))]))
  })
  server.requestTimeout = 120_000
  server.headersTimeout = 30_000
  return {
    server,
    attach (d, port) {
      daemon = d
      allowedHosts = new Set([`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`])
    }
  }
}

async function handle (daemon: Daemon, req: IncomingMessage, res: ServerResponse, options: ApiServerOptions, allowedHosts: Set<string>): Promise<void> {
  if (!allowedHosts.has(req.headers.host ?? '') || req.headers.origin !== undefined) {
    throw new DaemonError('REQUEST_INVALID', 'requests must come from the device itself (Host must be the loopback address, no Origin)')
  }
  const url = new URL(req.url ?? '/', 'http://localhost')
  const parts = url.pathname.split('/').filter(p => p !== '')
  if (req.method === 'GET' && url.pathname === '/status') {
    sendJson(res, 200, await daemon.status())
    return
  }
  if (req.method === 'GET' && url.pathname === '/v1/records') {
    const from = parseSeq(url.searchParams.get('from'), 0, 'from')
    const to = parseSeq(url.searchParams.get('to'), Number.MAX_SAFE_INTEGER, 'to')
    const limit = Math.min(parseSeq(url.searchParams.get('limit'), MAX_RECORDS_PER_REQUEST, 'limit'), MAX_RECORDS_PER_REQUEST)
    const records = await daemon.records(from, to, limit)
    const body = encodeCanonical(records.map(r => r.envelope))
    res.writeHead(200, {
      'content-type': 'application/cbor',
      'content-length': body.byteLength,
      'x-head-seq': String(daemon.log.head.seq),
      'x-acked-seq': String(daemon.log.acked)
    })
    res.end(body)
    return
  }
  if (parts.length === 4 && parts[0] === 'v1' && parts[1] === 'models' && req.method === 'POST' && (parts[3] === 'run' || parts[3] === 'reload')) {
    const name = decodeURIComponent(parts[2] as string)
    if (parts[3] === 'reload') {
      await drain(req, options.maxRequestBytes)
      sendJson(res, 200, await daemon.reload(name))
      return
    }
    const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase()
    if (type !== 'application/json') throw new DaemonError('REQUEST_INVALID', 'content-type must be application/json')
    const body = await readJson(req, options.maxRequestBytes)
    const { feeds, decision } = parseRunRequest(body)
    const result = await daemon.run(name, feeds, decision)
    const r = result.record
    sendJson(res, 200, {
      model: result.model,
      modelHash: result.modelHash,
      outputs: Object.fromEntries(Object.entries(result.outputs).map(([k, t]) => [k, encodeTensorJson(t)])),
      record: { seq: r.record.seq, boot: r.record.boot, timeMs: r.record.timeMs, hash: toHex(r.hash), latencyUs: r.record.body.kind === 'inference' ? r.record.body.latencyUs : undefined }
    })
    return
  }
  if (parts[0] === 'v1' && parts[1] === 'captures' && parts.length <= 3) {
    // Incident capture: freeze the ring, list frozen captures, fetch one (for the investigator).
    if (parts.length === 2 && req.method === 'POST') {
      await drain(req, options.maxRequestBytes)
      const reason = (url.searchParams.get('reason') ?? 'request').slice(0, 200)
      sendJson(res, 200, await daemon.freezeCapture(reason))
      return
    }
    if (parts.length === 2 && req.method === 'GET') {
      sendJson(res, 200, { captures: await daemon.listCaptures() })
      return
    }
    if (parts.length === 3 && req.method === 'GET') {
      const bytes = await daemon.readCapture(decodeURIComponent(parts[2] as string))
      res.writeHead(200, { 'content-type': 'application/cbor', 'content-length': bytes.byteLength })
      res.end(bytes)
      return
    }
  }
  throw new DaemonError('ROUTE_UNKNOWN', `no route ${req.method ?? ''} ${url.pathname}`)
}

/**
 * The feeds and decision of a run request, every bad field named.
 * @throws DaemonError `REQUEST_INVALID`.
 */
export function parseRunRequest (body: unknown): { feeds: Record<string, Tensor>, decision?: string } {
  const b = body as { inputs?: unknown, decision?: unknown } | null
  const problems: string[] = []
  if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new DaemonError('REQUEST_INVALID', 'body must be a JSON object { inputs, decision? }')
  for (const key of Object.keys(b)) if (key !== 'inputs' && key !== 'decision') problems.push(`${key}: not a field of a run request`)
  const feeds: Record<string, Tensor> = {}
  if (typeof b.inputs !== 'object' || b.inputs === null || Array.isArray(b.inputs)) {
    problems.push('inputs: must be an object of named tensors')
  } else {
    for (const [name, value] of Object.entries(b.inputs)) {
      const tensor = decodeTensorJson(value, `inputs.${name}`, problems)
      if (tensor !== undefined) feeds[name] = tensor
    }
  }
  if (b.decision !== undefined && typeof b.decision !== 'string') problems.push('decision: must be a string')
  if (problems.length > 0) throw new DaemonError('REQUEST_INVALID', `invalid run request: ${problems.join('; ')}`)
  return { feeds, ...(typeof b.decision === 'string' ? { decision: b.decision } : {}) }
}

function parseSeq (value: string | null, fallback: number, name: string): number {
  if (value === null) return fallback
  if (!/^\d{1,16}$/.test(value) || Number(value) > Number.MAX_SAFE_INTEGER) throw new DaemonError('REQUEST_INVALID', `${name}: must be a non-negative integer`)
  return Number(value)
}

async function readBody (req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > maxBytes) {
    req.resume()
    throw new DaemonError('REQUEST_TOO_LARGE', `request body of ${declared} bytes exceeds ${maxBytes}`)
  }
  const chunks: Buffer[] = []
  let total = 0
  for await (const chunk of req) {
    total += (chunk as Buffer).byteLength
    if (total > maxBytes) {
      req.resume()
      throw new DaemonError('REQUEST_TOO_LARGE', `request body exceeds ${maxBytes} bytes`)
    }
    chunks.push(chunk as Buffer)
  }
  return Buffer.concat(chunks)
}

async function drain (req: IncomingMessage, maxBytes: number): Promise<void> {
  await readBody(req, maxBytes)
}

async function readJson (req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const body = await readBody(req, maxBytes)
  try {
    return JSON.parse(body.toString('utf8'))
  } catch {
    throw new DaemonError('REQUEST_INVALID', 'body is not JSON')
  }
}

function sendJson (res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

function sendError (res: ServerResponse, e: unknown): void {
  const code = (e as { code?: unknown }).code
  const known = typeof code === 'string' && /^[A-Z][A-Z0-9_]+$/.test(code)
  const status = known ? HTTP_STATUS_BY_CODE[code] ?? (code.includes('BUDGET') ? 507 : 500) : 500
  sendJson(res, status, { error: { code: known ? code : 'INTERNAL', message: (e as Error)?.message ?? String(e) } })
}
