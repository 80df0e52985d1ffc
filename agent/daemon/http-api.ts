/**
 * The daemon's local HTTP API for the device's own applications and the CLI:
 *   GET  /status                      identity, chain head, models (with their inputs), uplink, policy, budget
 *   GET  /metrics                     Prometheus text (prom-client), as the gateway's
 *   POST /v1/models/<name>/run        { inputs: { <name>: { type, dims, data } }, decision? } (JSON, base64), or the
 *                                     binary body of run-body.ts; decoded as it arrives (no whole-body buffer);
 *                                     answered in JSON, or in the same binary form with Accept: application/octet-stream
 *   POST /v1/models/<name>/reload     load the model's file again
 *   GET  /v1/records?from=&to=&limit= CBOR array of record envelopes (export while running)
 *   POST /v1/records                  { kind: 'oversight' | 'session', ... }: a review or a use start/end (docs/COMPLIANCE.md)
 *   POST /v1/captures, GET /v1/captures[/<name>]  incident captures (raw inputs: investigators only)
 *   POST /v1/data-captures?dataset=&label=&capturedAtMs=  a sample kept for training (body: its bytes)
 * It serves a unix socket in the state folder (mode 0600 or 0660: the file permissions are the
 * authentication) and, only when a port is configured, loopback TCP, where every request needs
 * the bearer token of `<stateDir>/api-token` (0600) and a loopback Host (DNS rebinding). Requests
 * from a web page (Origin) are refused on both. Anything malformed gets a 4xx, never a 500.
 * Request bodies are admitted under a byte budget (BodyBudget: waiting ones are not read) and must
 * arrive within a timeout once admitted, so neither concurrency nor a stalled client holds memory;
 * a run's answer is written as fast as its client reads it, within the same timeout.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import { promises as fs } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import type { Tensor } from 'onnxruntime-node'
import { JSON_CONTENT_TYPE, closeIfUnread, readBody as readLimitedBody, readBodyChunks, replyUnreadable, sendError as sendErrorReply, sendJson as sendJsonReply } from '../../common/http.js'
import { OVERSIGHT_VERDICTS, SESSION_PHASES, ProtocolError, assertRecord, encodeCanonical, fromHex, toHex, type OversightBody, type SessionBody } from '../../protocol/index.js'
import type { Logger } from '../../common/logger.js'
import type { DaemonApi, DaemonRunResult } from './api.js'
import { DaemonError, HTTP_STATUS_BY_CODE } from './errors.js'
import type { Registry } from 'prom-client'
import { decodeTensorJson, encodeTensorJson } from './tensor-json.js'
import { ADMISSION_TIMEOUT_RANGE_MS, BODY_TIMEOUT_RANGE_MS, BodyBudget, type Admission } from './admission.js'
import { releaseBytes } from '../../common/release-bytes.js'
import { RUN_BINARY_CONTENT_TYPE, RunBodyDecoder, type RunRequest } from './run-body.js'

export interface ApiServerOptions {
  /** Largest request body, bytes (413 beyond). */
  maxRequestBytes: number
  /**
   * Bytes of request bodies admitted at once; a request beyond waits unread (TCP backpressure).
   * A body of unknown length (chunked) counts as `maxRequestBytes`. Default DEFAULT_MAX_INFLIGHT_REQUEST_BYTES.
   */
  maxInflightRequestBytes?: number
  /**
   * Longest wait for admission, ms (0: none, a request that does not fit at once is refused); then
   * 503 `API_BUSY` with Retry-After. In ADMISSION_TIMEOUT_RANGE_MS. Default DEFAULT_ADMISSION_TIMEOUT_MS.
   */
  admissionTimeoutMs?: number
  /**
   * Longest time from admission to a body's last byte, ms; then 408 `REQUEST_TIMEOUT` and the
   * connection closes. A run's answer must also be taken by its client within this time once its
   * writing starts, else the connection closes. In BODY_TIMEOUT_RANGE_MS. Default DEFAULT_BODY_TIMEOUT_MS.
   */
  bodyTimeoutMs?: number
  logger: Logger
}

/**
 * Bytes of request bodies admitted at once, by default. Each admitted body costs about twice its
 * size until its run is over (the decoded tensors, the run's snapshot while it queues for the
 * model; socket chunks are freed as they are decoded). With 16 clients posting PaddleOCR det at
 * once the peak was +17 MiB over the daemon's in-process peak with 8 MiB (5 JSON bodies of 1.6 MB
 * admitted; +35..45 while the chunks waited for a GC, +120 with 32 MiB then). Runs of one model go
 * one at a time anyway, so more in flight buys no throughput. One body larger than the budget is
 * admitted alone.
 */
export const DEFAULT_MAX_INFLIGHT_REQUEST_BYTES = 8 * 1024 * 1024
/** Longest wait for admission, by default (ms). */
export const DEFAULT_ADMISSION_TIMEOUT_MS = 30_000
/** Longest time from admission to a body's last byte, by default (ms): 16 MiB over loopback takes milliseconds. */
export const DEFAULT_BODY_TIMEOUT_MS = 30_000
/** Retry-After of a 503 `API_BUSY`, seconds. */
const BUSY_RETRY_AFTER_S = 1
/** Output tensor bytes encoded per write of a JSON run answer: 64 KiB of base64, young-generation strings. */
const ANSWER_SLICE_BYTES = 3 * 16 * 1024
/** The content type of a binary run answer: the framing of the binary run body (run-body.ts). */
export const RUN_BINARY_ANSWER_TYPE = RUN_BINARY_CONTENT_TYPE

/** Where the API listens. */
export interface ApiListenOptions {
  /** Unix socket path (at most 107 bytes). A stale socket file is replaced; one that answers is another daemon. */
  socketPath: string
  /** 0o600 (the service user only, default) or 0o660 (and its group). */
  socketMode: number
  /** Loopback TCP as well, with this bearer token. */
  tcp?: { host: string, port: number, token: string }
}

export interface ApiServer {
  /** Starts serving `daemon`; before this every request gets 503. */
  attach: (daemon: DaemonApi) => void
  /** @throws DaemonError `LISTEN_FAILED`. */
  listen: (options: ApiListenOptions) => Promise<void>
  /** The socket path, once listening. */
  readonly socketPath: string | undefined
  /** The TCP address, when TCP is on. */
  readonly tcpAddress: AddressInfo | undefined
  /** Request bodies now: bytes admitted and requests waiting for admission. */
  readonly bodies: { inFlightBytes: number, waiting: number }
  /** Stops accepting connections and closes the idle ones. */
  close: () => void
  /** Closes every connection, busy or not. */
  closeAll: () => void
  /** close() then closeAll(), once the servers have closed (and the socket file is gone). */
  shutdown: () => Promise<void>
}

/** Most records one GET /v1/records answers with. */
export const MAX_RECORDS_PER_REQUEST = 1024
/** Most envelope bytes in one GET /v1/records answer (at least one record is always sent). */
export const MAX_RECORDS_RESPONSE_BYTES = 8 * 1024 * 1024
/** Longest request target; longer gets 414 before any parsing. */
export const MAX_TARGET_CHARS = 4096
/** Largest request head, bytes (431 beyond). */
export const MAX_HEADER_BYTES = 16 * 1024
/** The token file of the TCP listener, in the state folder. */
export const API_TOKEN_FILE = 'api-token'
/** The default unix socket, in the state folder. */
export const API_SOCKET_FILE = 'api.sock'
/** sockaddr_un.sun_path holds 108 bytes with the terminating NUL (Linux). */
const MAX_SOCKET_PATH_BYTES = 107

type Transport = 'unix' | 'tcp'

/** The HTTP servers of the API (not yet listening). */
export function createApiServer (options: ApiServerOptions): ApiServer {
  checkTimeout(options.admissionTimeoutMs, ADMISSION_TIMEOUT_RANGE_MS, 'admissionTimeoutMs')
  checkTimeout(options.bodyTimeoutMs, BODY_TIMEOUT_RANGE_MS, 'bodyTimeoutMs')
  let daemon: DaemonApi | undefined
  let allowedHosts = new Set<string>()
  let tokenDigest: Buffer | undefined
  const servers: Server[] = []
  const budget = new BodyBudget(Math.max(options.maxInflightRequestBytes ?? DEFAULT_MAX_INFLIGHT_REQUEST_BYTES, 1))
  let socketPath: string | undefined
  let tcpAddress: AddressInfo | undefined

  const make = (transport: Transport): Server => {
    const server = createServer({ maxHeaderSize: MAX_HEADER_BYTES }, (req, res) => {
      const target = daemon
      if (target === undefined) {
        sendError(res, new DaemonError('DAEMON_STOPPING', 'the daemon is starting'))
        return
      }
      const handling = (async () => {
        if (transport === 'tcp') checkTcp(req, allowedHosts, tokenDigest)
        const admission = await admitBody(req, res, budget, options)
        try {
          await handle(target, req, res, options, () => admission?.release())
        } finally {
          admission?.release()
        }
      })().catch((e: unknown) => {
        if (!res.headersSent) sendError(res, e)
        else res.destroy()
      })
      // 'close' comes once the response is sent or the connection is gone: stop() waits for it.
      target.track(Promise.all([handling, new Promise<void>(resolve => res.once('close', resolve))]))
    })
    server.requestTimeout = 120_000
    server.headersTimeout = 30_000
    // A request node cannot parse (bad request line, head too large): a JSON 4xx, then close.
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      replyUnreadable(err, socket, { headersTooLarge: 'REQUEST_TOO_LARGE', timeout: 'REQUEST_INVALID', malformed: 'REQUEST_INVALID' })
    })
    servers.push(server)
    return server
  }

  const api: ApiServer = {
    attach (d) { daemon = d },
    async listen (o) {
      const unix = make('unix')
      await listenUnix(unix, o.socketPath, o.socketMode)
      socketPath = o.socketPath
      if (o.tcp !== undefined) {
        tokenDigest = digest(o.tcp.token)
        const tcp = make('tcp')
        try {
          await listenTcp(tcp, o.tcp.host, o.tcp.port)
        } catch (e) {
          await api.shutdown()
          throw e
        }
        tcpAddress = tcp.address() as AddressInfo
        const port = tcpAddress.port
        allowedHosts = new Set([`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`])
      }
    },
    get socketPath () { return socketPath },
    get tcpAddress () { return tcpAddress },
    get bodies () { return { inFlightBytes: budget.inFlightBytes, waiting: budget.waiting } },
    close () {
      for (const s of servers) { s.close(); s.closeIdleConnections() }
    },
    closeAll () {
      for (const s of servers) s.closeAllConnections()
    },
    async shutdown () {
      await Promise.all(servers.map(async s => await new Promise<void>(resolve => {
        if (!s.listening) { resolve(); return }
        s.close(() => resolve())
        s.closeAllConnections()
      })))
    }
  }
  return api
}

/** @throws RangeError unless `value` is undefined or an integer in `range`. */
function checkTimeout (value: number | undefined, range: { min: number, max: number }, name: string): void {
  if (value === undefined) return
  if (!Number.isSafeInteger(value) || value < range.min || value > range.max) throw new RangeError(`${name} must be an integer in ${range.min}..${range.max} (ms), got ${String(value)}`)
}

/**
 * Admits a request's body under the budget before anything reads it: its declared length, or
 * maxRequestBytes for a chunked one. While it waits nothing is read, so the client's writes stall
 * on TCP backpressure. Once admitted the body must be complete within bodyTimeoutMs: else 408 and
 * the connection is closed, which gives the bytes back. Undefined for a request without a body.
 * @throws DaemonError `REQUEST_TOO_LARGE` (declared over maxRequestBytes: refused unread),
 *   `API_BUSY` (no room within admissionTimeoutMs), `DAEMON_STOPPING` (the client left while waiting).
 */
async function admitBody (req: IncomingMessage, res: ServerResponse, budget: BodyBudget, options: ApiServerOptions): Promise<Admission | undefined> {
  const length = req.headers['content-length']
  const chunked = req.headers['transfer-encoding'] !== undefined
  if (!chunked && (length === undefined || Number(length) === 0)) return undefined
  const declared = chunked ? options.maxRequestBytes : Number(length)
  if (declared > options.maxRequestBytes) {
    req.resume()
    throw tooLarge(`request body of ${declared} bytes exceeds ${options.maxRequestBytes}`)
  }
  const waitMs = options.admissionTimeoutMs ?? DEFAULT_ADMISSION_TIMEOUT_MS
  const stop = new AbortController()
  const timer = setTimeout(() => stop.abort(), waitMs)
  const gone = (): void => stop.abort()
  res.once('close', gone)
  let admission: Admission | undefined
  try {
    admission = await budget.admit(declared, stop.signal)
  } finally {
    clearTimeout(timer)
    res.off('close', gone)
  }
  if (admission === undefined) {
    if (res.destroyed || req.destroyed) throw new DaemonError('DAEMON_STOPPING', 'the client left while its request waited for admission')
    throw new DaemonError('API_BUSY', `the daemon holds ${budget.maxBytes} bytes of request bodies (maxInflightRequestBytes) and ${budget.waiting} requests wait: retry later`)
  }
  if (!req.complete) {
    const bodyMs = options.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS
    const deadline = setTimeout(() => {
      if (req.complete) return
      options.logger.warn({ url: (req.url ?? '').slice(0, 256), bodyMs }, 'API request body incomplete at its deadline: closed')
      // The answer goes out first when it can; the connection closes either way (its body is unread).
      if (!res.headersSent) {
        sendError(res, new DaemonError('REQUEST_TIMEOUT', `the request body did not arrive within ${bodyMs} ms`))
        res.once('finish', () => req.socket.destroy())
      } else {
        req.socket.destroy()
      }
      admission?.release()
    }, bodyMs)
    const settled = (): void => clearTimeout(deadline)
    req.once('end', settled)
    res.once('close', settled)
  }
  return admission
}

/**
 * TCP only: a loopback Host (a page of another origin resolving to 127.0.0.1 sends its own name)
 * and the bearer token (RFC 6750 §2.1), compared as SHA-256 digests in constant time.
 * @throws DaemonError `REQUEST_INVALID`, `UNAUTHENTICATED`, `TOKEN_INVALID`.
 */
function checkTcp (req: IncomingMessage, allowedHosts: Set<string>, tokenDigest: Buffer | undefined): void {
  if (!allowedHosts.has(req.headers.host ?? '')) {
    throw new DaemonError('REQUEST_INVALID', 'requests must come from the device itself (Host must be the loopback address)')
  }
  const m = /^Bearer +([\x21-\x7e]{1,4096}) *$/i.exec(req.headers.authorization ?? '')
  if (m === null || tokenDigest === undefined) throw new DaemonError('UNAUTHENTICATED', 'the TCP API needs Authorization: Bearer <the token in <stateDir>/api-token>')
  if (!timingSafeEqual(digest(m[1] as string), tokenDigest)) throw new DaemonError('TOKEN_INVALID', 'the token is not this daemon\'s')
}

function digest (token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest()
}

/**
 * The token of the TCP listener in `path`, created (32 random bytes, base64url, mode 0600) when
 * absent, so that only the service user (and root) can read it.
 * @throws DaemonError `API_TOKEN_UNUSABLE`.
 */
export async function loadOrCreateApiToken (path: string): Promise<string> {
  try {
    const handle = await fs.open(path, 'wx', 0o600)
    try {
      const token = randomBytes(32).toString('base64url')
      await handle.writeFile(token + '\n')
      await handle.sync()
      return token
    } finally {
      await handle.close()
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new DaemonError('API_TOKEN_UNUSABLE', `cannot create ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`, { cause: e })
  }
  let token: string
  try {
    token = (await fs.readFile(path, 'utf8')).trim()
  } catch (e) {
    throw new DaemonError('API_TOKEN_UNUSABLE', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`, { cause: e })
  }
  // The message names the file, never its content.
  if (!/^[\x21-\x7e]{16,4096}$/.test(token)) throw new DaemonError('API_TOKEN_UNUSABLE', `${path} does not hold a token of 16..4096 printable characters`)
  return token
}

async function listenUnix (server: Server, path: string, mode: number): Promise<void> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new DaemonError('LISTEN_FAILED', `socket path ${path} is longer than ${MAX_SOCKET_PATH_BYTES} bytes: set apiSocket to a shorter one`)
  }
  const existing = await fs.lstat(path).catch(() => undefined)
  if (existing !== undefined) {
    // Never unlink what is not a socket (a misconfigured path must not delete a file), nor a
    // socket some process still answers on (another daemon on the same state folder).
    if (!existing.isSocket()) throw new DaemonError('LISTEN_FAILED', `${path} exists and is not a socket`)
    if (await answers(path)) throw new DaemonError('LISTEN_FAILED', `another process listens on ${path}`)
    await fs.unlink(path).catch(() => {})
  }
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error): void => { reject(new DaemonError('LISTEN_FAILED', `cannot listen on ${path}: ${e.message}`, { cause: e })) }
    server.once('error', onError)
    server.listen(path, () => { server.off('error', onError); resolve() })
  })
  // The socket is created with the umask's mode and then narrowed; the state folder (0700) keeps
  // everyone else out of that moment.
  try {
    await fs.chmod(path, mode)
  } catch (e) {
    await new Promise<void>(resolve => server.close(() => resolve()))
    throw new DaemonError('LISTEN_FAILED', `cannot set the mode of ${path}: ${(e as Error).message}`, { cause: e })
  }
}

async function answers (path: string): Promise<boolean> {
  return await new Promise<boolean>(resolve => {
    const probe = connect(path)
    probe.once('connect', () => { probe.destroy(); resolve(true) })
    probe.once('error', () => resolve(false))
  })
}

async function listenTcp (server: Server, host: string, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error): void => { reject(new DaemonError('LISTEN_FAILED', `cannot listen on ${host}:${port}: ${e.message}`, { cause: e })) }
    server.once('error', onError)
    server.listen(port, host, () => { server.off('error', onError); resolve() })
  })
}

/**
 * The path segments and query of a request target, parsed by hand: `new URL` throws on targets
 * such as `//` or `/\`, and a bad %-escape must be a 400, not an exception.
 * @throws DaemonError `REQUEST_INVALID`, `TARGET_TOO_LONG`.
 */
function parseTarget (target: string): { path: string, parts: string[], query: URLSearchParams } {
  if (target.length > MAX_TARGET_CHARS) throw new DaemonError('TARGET_TOO_LONG', `request target longer than ${MAX_TARGET_CHARS} characters`)
  if (!target.startsWith('/')) throw new DaemonError('REQUEST_INVALID', 'the request target must be an absolute path')
  const q = target.indexOf('?')
  const path = q === -1 ? target : target.slice(0, q)
  const parts = path.split('/').filter(p => p !== '').map(p => {
    try {
      return decodeURIComponent(p)
    } catch {
      throw new DaemonError('REQUEST_INVALID', 'bad percent-encoding in the path')
    }
  })
  return { path, parts, query: new URLSearchParams(q === -1 ? '' : target.slice(q + 1)) }
}

const METRICS = new WeakMap<DaemonApi, Promise<Registry>>()
/**
 * The daemon's metrics registry, made at its first scrape. prom-client is loaded then, not with
 * the daemon: ~1.8 MiB of live heap that every major GC of a daemon never scraped would mark.
 */
async function metricsOf (daemon: DaemonApi): Promise<Registry> {
  let registry = METRICS.get(daemon)
  if (registry === undefined) {
    registry = import('./metrics.js').then(m => m.createAgentMetrics(async () => await daemon.status()))
    // A failed load is not kept: the next scrape tries again.
    registry.catch(() => { METRICS.delete(daemon) })
    METRICS.set(daemon, registry)
  }
  return await registry
}

/** What a route handler needs of one request. */
interface RouteContext {
  /** Gives the request's admitted bytes back (a run does once its inputs are free, before its answer). */
  release: () => void
  daemon: DaemonApi
  req: IncomingMessage
  res: ServerResponse
  options: ApiServerOptions
  query: URLSearchParams
}

async function handle (daemon: DaemonApi, req: IncomingMessage, res: ServerResponse, options: ApiServerOptions, release: () => void): Promise<void> {
  if (req.headers.origin !== undefined) {
    throw new DaemonError('REQUEST_INVALID', 'requests must come from the device itself (no Origin: not from a web page)')
  }
  const { path, parts, query } = parseTarget(req.url ?? '')
  const ctx: RouteContext = { release, daemon, req, res, options, query }
  const method = req.method
  if (method === 'GET' && path === '/status') { sendJson(res, 200, await daemon.status()); return }
  if (method === 'GET' && path === '/metrics') return await serveMetrics(ctx)
  if (method === 'GET' && path === '/v1/records') return await serveRecords(ctx)
  if (method === 'POST' && path === '/v1/records') return await appendStatement(ctx)
  if (parts.length === 4 && parts[0] === 'v1' && parts[1] === 'models' && method === 'POST' && (parts[3] === 'run' || parts[3] === 'reload')) {
    const name = parts[2] as string
    if (parts[3] === 'reload') {
      await drain(req, options.maxRequestBytes)
      sendJson(res, 200, await daemon.reload(name))
      return
    }
    return await runModel(ctx, name)
  }
  if (parts.length === 2 && parts[0] === 'v1' && parts[1] === 'data-captures' && method === 'POST') return await recordDataCapture(ctx)
  if (parts.length === 3 && parts[0] === 'v1' && parts[1] === 'subjects' && parts[2] === 'shred' && method === 'POST') return await shredSubject(ctx)
  if (parts[0] === 'v1' && parts[1] === 'captures' && parts.length <= 3) {
    // Incident capture: freeze the ring, list frozen captures, fetch one (for the investigator).
    if (parts.length === 2 && method === 'POST') {
      await drain(req, options.maxRequestBytes)
      const reason = (query.get('reason') ?? 'request').slice(0, 200)
      sendJson(res, 200, await daemon.freezeCapture(reason))
      return
    }
    if (parts.length === 2 && method === 'GET') { sendJson(res, 200, { captures: await daemon.listCaptures() }); return }
    if (parts.length === 3 && method === 'GET') {
      const bytes = await daemon.readCapture(parts[2] as string)
      res.writeHead(200, { 'content-type': 'application/cbor', 'content-length': bytes.byteLength, ...closeIfUnread(req) })
      res.end(bytes)
      return
    }
  }
  throw new DaemonError('ROUTE_UNKNOWN', `no route ${(method ?? '').slice(0, 16)} ${path.slice(0, 256)}`)
}

async function serveMetrics ({ daemon, req, res }: RouteContext): Promise<void> {
  const registry = await metricsOf(daemon)
  const body = await registry.metrics()
  res.writeHead(200, { 'content-type': registry.contentType, 'content-length': Buffer.byteLength(body), ...closeIfUnread(req) })
  res.end(body)
}

async function serveRecords ({ daemon, req, res, query }: RouteContext): Promise<void> {
  const from = parseSeq(query.get('from'), 0, 'from')
  const to = parseSeq(query.get('to'), Number.MAX_SAFE_INTEGER, 'to')
  const limit = Math.min(parseSeq(query.get('limit'), MAX_RECORDS_PER_REQUEST, 'limit'), MAX_RECORDS_PER_REQUEST)
  const records = await daemon.records(from, to, limit, MAX_RECORDS_RESPONSE_BYTES)
  const body = encodeCanonical(records.map(r => r.envelope))
  res.writeHead(200, {
    'content-type': 'application/cbor',
    'content-length': body.byteLength,
    'x-head-seq': String(daemon.log.head.seq),
    'x-acked-seq': String(daemon.log.acked),
    ...closeIfUnread(req)
  })
  res.end(body)
}

/** @throws DaemonError `REQUEST_INVALID` unless the body is JSON. */
function requireJson (req: IncomingMessage): void {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase()
  if (type !== 'application/json') throw new DaemonError('REQUEST_INVALID', 'content-type must be application/json')
}

async function appendStatement ({ daemon, req, res, options }: RouteContext): Promise<void> {
  requireJson(req)
  const body = parseStatementRequest(await readJson(req, options.maxRequestBytes))
  const r = await daemon.appendStatement(body)
  sendJson(res, 200, { record: { kind: body.kind, seq: r.record.seq, boot: r.record.boot, timeMs: r.record.timeMs, hash: toHex(r.hash) } })
}

async function runModel ({ release, daemon, req, res, options }: RouteContext, name: string): Promise<void> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase()
  if (type !== 'application/json' && type !== RUN_BINARY_CONTENT_TYPE) {
    throw new DaemonError('REQUEST_INVALID', `content-type must be application/json (base64 tensors) or ${RUN_BINARY_CONTENT_TYPE} (the binary run body)`)
  }
  // Before the body is read: a request whose answer nobody would take costs no run.
  const form = chooseAnswerForm(req.headers.accept)
  const decoder = new RunBodyDecoder(type === RUN_BINARY_CONTENT_TYPE, options.maxRequestBytes)
  let result: DaemonRunResult
  try {
    const { feeds, decision, subject } = await readRunBody(req, options.maxRequestBytes, decoder)
    // Lent: the outputs stay in the model worker's buffers until the answer is out (sendRunResult
    // releases them), so this thread gets no fresh buffer per run for its GC to collect.
    result = await daemon.run(name, feeds, decision, subject, { lendOutputs: true })
  } finally {
    // The run has settled: its inputs were copied (worker snapshot, capture ring), nothing reads
    // them; freed now rather than at a later GC (a pool of spares held up to 8 MiB between runs).
    for (const b of decoder.buffers()) releaseBytes(b)
  }
  // The body's bytes are free: a client slow to read its answer holds no place in the budget.
  release()
  try {
    await sendRunResult(res, result, form, options.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS, options.logger)
  } catch (e) {
    result.release?.()
    throw e
  }
}

/**
 * A run body decoded chunk by chunk as it arrives (run-body.ts): no whole-body buffer or string.
 * Each chunk is freed as soon as it is decoded (releaseBytes): node's HTTP parser copies every
 * socket read into a fresh buffer, garbage that would otherwise wait for a GC.
 * @throws DaemonError `REQUEST_TOO_LARGE`, `REQUEST_INVALID` (the rest of the body is drained unread).
 */
async function readRunBody (req: IncomingMessage, maxBytes: number, decoder: RunBodyDecoder): Promise<RunRequest> {
  // Each socket chunk is freed as soon as it is decoded (releaseBytes); over the limit the rest is
  // drained, not parsed, so that the client reads the answer rather than a reset.
  await readBodyChunks(req, maxBytes, tooLarge, chunk => {
    decoder.write(chunk)
    releaseBytes(chunk)
  })
  return decoder.end()
}

/** Most media ranges of an Accept header the run route reads. */
const MAX_ACCEPT_RANGES = 64
const MEDIA_RANGE = /^([a-z0-9!#$%&'*+.^_`|~-]+)\/([a-z0-9!#$%&'*+.^_`|~-]+)$/i
const QVALUE = /^(0(\.[0-9]{0,3})?|1(\.0{0,3})?)$/

/**
 * The form of a run's answer that an Accept header asks for (RFC 9110 §12.5.1): JSON unless the
 * header gives application/octet-stream a higher weight than application/json (each weighed by
 * its most specific range: the type itself, then `application/*`, then `*\/*`). No header, or
 * an empty one: JSON. Parameters other than q are ignored.
 * @throws DaemonError `REQUEST_INVALID` (a header that is not a list of media ranges),
 *   `NOT_ACCEPTABLE` (it accepts neither form).
 */
export function chooseAnswerForm (accept: string | undefined): 'json' | 'binary' {
  if (accept === undefined || accept.trim() === '') return 'json'
  const ranges = accept.split(',').map(r => r.trim()).filter(r => r !== '')
  if (ranges.length > MAX_ACCEPT_RANGES) throw new DaemonError('REQUEST_INVALID', `Accept: more than ${MAX_ACCEPT_RANGES} media ranges`)
  // Weight and specificity (3 exact, 2 type/*, 1 */*) of the best match of each form so far.
  const best = { json: { q: 0, rank: 0 }, binary: { q: 0, rank: 0 } }
  for (const range of ranges) {
    const [media = '', ...params] = range.split(';').map(p => p.trim())
    const m = MEDIA_RANGE.exec(media)
    if (m === null || (m[1] === '*' && m[2] !== '*')) throw new DaemonError('REQUEST_INVALID', `Accept: '${media.slice(0, 64)}' is not a media range`)
    let q = 1
    for (const p of params) {
      const [key = '', value = ''] = p.split('=').map(x => x.trim())
      if (key.toLowerCase() !== 'q') continue
      if (!QVALUE.test(value)) throw new DaemonError('REQUEST_INVALID', `Accept: q=${value.slice(0, 16)} is not a weight (0 to 1, at most 3 decimals)`)
      q = Number(value)
    }
    const type = (m[1] as string).toLowerCase()
    const sub = (m[2] as string).toLowerCase()
    for (const [form, full] of [['json', 'json'], ['binary', 'octet-stream']] as const) {
      const rank = type === '*' ? 1 : type !== 'application' ? 0 : sub === '*' ? 2 : sub === full ? 3 : 0
      if (rank === 0 || rank < best[form].rank) continue
      best[form] = { q: rank > best[form].rank ? q : Math.max(q, best[form].q), rank }
    }
  }
  if (best.binary.q > best.json.q) return 'binary'
  if (best.json.q > 0) return 'json'
  throw new DaemonError('NOT_ACCEPTABLE', `Accept: the run route answers application/json or ${RUN_BINARY_ANSWER_TYPE}, and the request accepts neither`)
}

/**
 * The answer of a run, written as fast as its client reads it: each piece waits for the socket
 * to drain before the next is made, so a slow reader costs at most one piece beyond the outputs
 * the run already holds. JSON: output tensors are encoded to base64 in 64 KiB slices as they
 * are written, with the length computed beforehand (no answer-sized string or object tree).
 * Binary (RUN_BINARY_ANSWER_TYPE, the framing of the binary run body): `<uint32 BE n>` `<n bytes
 * of JSON: the JSON answer without the data of non-string outputs>` then each non-string output's
 * little-endian bytes in header order, written from the output buffers themselves. Once the answer
 * is out, the output buffers are freed (releaseBytes); if the client does not take it within
 * `timeoutMs`, the connection is closed.
 */
async function sendRunResult (res: ServerResponse, result: DaemonRunResult, form: 'json' | 'binary', timeoutMs: number, logger: Logger): Promise<void> {
  const r = result.record
  const record = { seq: r.record.seq, boot: r.record.boot, timeMs: r.record.timeMs, hash: toHex(r.hash), latencyUs: r.record.body.kind === 'inference' ? r.record.body.latencyUs : undefined }
  const head = `{"model":${JSON.stringify(result.model)},"modelHash":${JSON.stringify(result.modelHash)},"outputs":{`
  const tail = `},"record":${JSON.stringify(record)}}`
  /** Text (UTF-8), or tensor bytes: base64 in the JSON form, raw in the binary one. */
  const pieces: Array<string | Buffer> = []
  const owned: Array<ArrayBufferView> = []
  let header = head
  let first = true
  for (const [name, tensor] of Object.entries(result.outputs)) {
    const prefix = `${first ? '' : ','}${JSON.stringify(name)}:`
    first = false
    const data = tensor.data as unknown
    if (Array.isArray(data) || !ArrayBuffer.isView(data)) {
      const text = prefix + JSON.stringify(encodeTensorJson(tensor))
      if (form === 'binary') header += text
      else pieces.push(text)
      continue
    }
    owned.push(data)
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength)
    const meta = `${prefix}{"type":${JSON.stringify(tensor.type)},"dims":${JSON.stringify([...tensor.dims])}`
    if (form === 'binary') { header += meta + '}'; pieces.push(bytes); continue }
    pieces.push(meta + ',"data":"', bytes, '"}')
  }
  let length: number
  if (form === 'binary') {
    const json = Buffer.from(header + tail, 'utf8')
    const prefix = Buffer.alloc(4)
    prefix.writeUInt32BE(json.byteLength)
    pieces.unshift(prefix, json)
    length = pieces.reduce((n, p) => n + (p as Buffer).byteLength, 0)
  } else {
    pieces.unshift(head)
    pieces.push(tail)
    length = pieces.reduce((n, p) => n + (typeof p === 'string' ? Buffer.byteLength(p) : Math.ceil(p.byteLength / 3) * 4), 0)
  }
  res.writeHead(200, {
    'content-type': form === 'binary' ? RUN_BINARY_ANSWER_TYPE : JSON_CONTENT_TYPE,
    'cache-control': 'no-store',
    'content-length': length,
    ...closeIfUnread(res.req)
  })
  // The output buffers go once every byte has left (a binary answer's writes point into them).
  res.once('finish', () => { for (const v of owned) releaseBytes(v) })
  // Lent outputs go back to the worker once every byte has left, or once nothing more will be
  // written (a connection closed early).
  if (res.destroyed) result.release?.()
  else res.once('close', () => { result.release?.() })
  const deadline = setTimeout(() => {
    logger.warn({ timeoutMs }, 'API run answer not taken by its client within the body timeout: connection closed')
    res.destroy()
  }, timeoutMs)
  try {
    for (const p of pieces) {
      if (typeof p === 'string') { if (!res.write(p)) await drained(res); continue }
      if (form === 'binary') { if (!res.write(p)) await drained(res); continue }
      for (let at = 0; at < p.byteLength && !res.destroyed; at += ANSWER_SLICE_BYTES) {
        // latin1: base64 is ASCII, and node's copy of a string for the socket is then its length, not thrice.
        if (!res.write(p.toString('base64', at, Math.min(p.byteLength, at + ANSWER_SLICE_BYTES)), 'latin1')) await drained(res)
      }
      if (res.destroyed) return
    }
    if (!res.destroyed) res.end()
  } finally {
    clearTimeout(deadline)
  }
}

/** Resolves once `res` can take more (its socket drained) or is gone. */
async function drained (res: ServerResponse): Promise<void> {
  if (res.destroyed) return
  await new Promise<void>(resolve => {
    const done = (): void => { res.off('drain', done); res.off('close', done); resolve() }
    res.on('drain', done)
    res.on('close', done)
  })
}

/** A sample kept for training: the raw bytes in the body, what it is for in the query. */
async function recordDataCapture ({ daemon, req, res, options, query }: RouteContext): Promise<void> {
  const dataset = query.get('dataset')
  if (dataset === null) throw new DaemonError('REQUEST_INVALID', 'query: dataset is required')
  const at = query.get('capturedAtMs')
  if (at !== null && !/^[0-9]{1,16}$/.test(at)) throw new DaemonError('REQUEST_INVALID', 'query: capturedAtMs must be Unix milliseconds')
  const sample = await readBody(req, options.maxRequestBytes)
  const receipt = await daemon.recordDataCapture(new Uint8Array(sample), { dataset, label: query.get('label'), ...(at !== null ? { capturedAtMs: Number(at) } : {}) })
  const r = receipt.record
  sendJson(res, 200, {
    record: { deviceId: r.record.deviceId, seq: r.record.seq, boot: r.record.boot, timeMs: r.record.timeMs, hash: toHex(r.hash), envelope: toHex(r.envelope) },
    salt: toHex(receipt.salt),
    contentHash: toHex(receipt.contentHash)
  })
}

/** Crypto-shredding (docs/OPERATIONS.md §Erasure): the subject travels in the body, never in a URL or a log line. */
async function shredSubject ({ daemon, req, res, options }: RouteContext): Promise<void> {
  const body = await readJson(req, options.maxRequestBytes) as { subject?: unknown, reason?: unknown } | null
  if (typeof body !== 'object' || body === null || !isSubject(body.subject) || (body.reason !== undefined && typeof body.reason !== 'string')) {
    throw new DaemonError('REQUEST_INVALID', 'body must be { subject: non-empty string of at most 256 bytes, reason?: string }')
  }
  sendJson(res, 200, await daemon.shred(body.subject, typeof body.reason === 'string' ? body.reason.slice(0, 200) : 'erasure request'))
}

/**
 * The feeds and decision of a run request already parsed as JSON, every bad field named. The
 * server decodes bodies as they arrive instead (run-body.ts); this stays for library callers and
 * as the reference the streaming decoder is tested against.
 * @throws DaemonError `REQUEST_INVALID`.
 */
export function parseRunRequest (body: unknown): { feeds: Record<string, Tensor>, decision?: string, subject?: string } {
  const b = body as { inputs?: unknown, decision?: unknown, subject?: unknown } | null
  const problems: string[] = []
  if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new DaemonError('REQUEST_INVALID', 'body must be a JSON object { inputs, decision? }')
  for (const key of Object.keys(b)) if (key !== 'inputs' && key !== 'decision' && key !== 'subject') problems.push(`${key}: not a field of a run request`)
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
  if (b.subject !== undefined && !isSubject(b.subject)) problems.push('subject: must be a non-empty string of at most 256 UTF-8 bytes')
  if (problems.length > 0) throw new DaemonError('REQUEST_INVALID', `invalid run request: ${problems.join('; ')}`)
  return { feeds, ...(typeof b.decision === 'string' ? { decision: b.decision } : {}), ...(typeof b.subject === 'string' ? { subject: b.subject } : {}) }
}

/** A data subject's identifier as a run or a shredding names it. */
function isSubject (v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && Buffer.byteLength(v, 'utf8') <= 256
}

/** Fields each statement kind takes on the API (hashes as 64 hex digits). */
const STATEMENT_FIELDS: Readonly<Record<'oversight' | 'session', readonly string[]>> = {
  oversight: ['kind', 'reviewer', 'decisionDeviceId', 'decisionSeq', 'decisionHash', 'verdict', 'reason'],
  session: ['kind', 'phase', 'sessionId', 'referenceName', 'referenceHash']
}

/**
 * The body of an oversight or session record from a POST /v1/records request, every bad field
 * named; checked as a record before it reaches the log.
 * @throws DaemonError `REQUEST_INVALID`.
 */
export function parseStatementRequest (body: unknown): OversightBody | SessionBody {
  const b = body as Record<string, unknown> | null
  if (typeof b !== 'object' || b === null || Array.isArray(b)) throw new DaemonError('REQUEST_INVALID', 'body must be a JSON object { kind: "oversight" | "session", ... }')
  if (b.kind !== 'oversight' && b.kind !== 'session') throw new DaemonError('REQUEST_INVALID', 'kind: must be "oversight" or "session"')
  const problems: string[] = []
  for (const key of Object.keys(b)) if (!STATEMENT_FIELDS[b.kind].includes(key)) problems.push(`${key}: not a field of a ${b.kind} record`)
  const hash = (v: unknown, name: string): Uint8Array => {
    if (typeof v === 'string' && /^[0-9a-f]{64}$/i.test(v)) return fromHex(v.toLowerCase())
    problems.push(`${name}: must be 64 hex digits`)
    return new Uint8Array(32)
  }
  let parsed: OversightBody | SessionBody
  if (b.kind === 'oversight') {
    if (!(typeof b.verdict === 'string' && b.verdict in OVERSIGHT_VERDICTS)) problems.push(`verdict: must be one of ${Object.keys(OVERSIGHT_VERDICTS).join(', ')}`)
    parsed = {
      kind: 'oversight', reviewer: b.reviewer as string, decisionDeviceId: b.decisionDeviceId as string, decisionSeq: b.decisionSeq as number,
      decisionHash: hash(b.decisionHash, 'decisionHash'), verdict: b.verdict as OversightBody['verdict'], reason: (b.reason ?? '') as string
    }
  } else {
    if (!(typeof b.phase === 'string' && b.phase in SESSION_PHASES)) problems.push(`phase: must be one of ${Object.keys(SESSION_PHASES).join(', ')}`)
    parsed = {
      kind: 'session', phase: b.phase as SessionBody['phase'], sessionId: b.sessionId as string, referenceName: (b.referenceName ?? '') as string,
      referenceHash: b.referenceHash === undefined || b.referenceHash === null ? null : hash(b.referenceHash, 'referenceHash')
    }
  }
  if (problems.length === 0) {
    // The record rules (text sizes, ids, seq) are protocol/record.ts's: a header stands in for the log's.
    try {
      assertRecord({ deviceId: 'x', boot: 0, seq: 0, timeMs: 0, prev: new Uint8Array(32), body: parsed })
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e
      problems.push(e.message.replace(/^invalid record: /, '').replace(/body\./g, ''))
    }
  }
  if (problems.length > 0) throw new DaemonError('REQUEST_INVALID', `invalid ${b.kind} request: ${problems.join('; ')}`)
  return parsed
}

function parseSeq (value: string | null, fallback: number, name: string): number {
  if (value === null) return fallback
  if (!/^\d{1,16}$/.test(value) || Number(value) > Number.MAX_SAFE_INTEGER) throw new DaemonError('REQUEST_INVALID', `${name}: must be a non-negative integer`)
  return Number(value)
}

async function readBody (req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return await readLimitedBody(req, maxBytes, tooLarge)
}

function tooLarge (message: string): DaemonError {
  return new DaemonError('REQUEST_TOO_LARGE', message)
}

/** Reads and drops a body the route does not use (counted against maxBytes, never kept). */
async function drain (req: IncomingMessage, maxBytes: number): Promise<void> {
  await readBodyChunks(req, maxBytes, tooLarge, () => {})
}

async function readJson (req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const body = await readBody(req, maxBytes)
  try {
    return JSON.parse(body.toString('utf8'))
  } catch {
    throw new DaemonError('REQUEST_INVALID', 'body is not JSON')
  }
}

function sendJson (res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  sendJsonReply(res, status, value, { ...closeIfUnread(res.req), ...headers })
}

function sendError (res: ServerResponse, e: unknown): void {
  const code = (e as { code?: unknown }).code
  const known = typeof code === 'string' && /^[A-Z][A-Z0-9_]+$/.test(code)
  const status = known ? HTTP_STATUS_BY_CODE[code] ?? (code.includes('BUDGET') ? 507 : 500) : 500
  const challenge: Record<string, string> = status === 401 || status === 403 ? { 'www-authenticate': `Bearer realm="provenance-agent"${status === 403 ? ', error="invalid_token"' : ''}` } : {}
  if (code === 'API_BUSY') challenge['retry-after'] = String(BUSY_RETRY_AFTER_S)
  sendErrorReply(res, status, known ? code : 'INTERNAL', (e as Error)?.message ?? String(e), { ...closeIfUnread(res.req), ...challenge })
}
