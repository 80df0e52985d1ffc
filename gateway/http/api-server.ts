/**
 * The gateway's HTTP API (node:http, GET only): record and tip proofs, device status, batches, recent
 * quarantine, health and Prometheus metrics, behind a bearer token. Everything in a request comes
 * from whoever reaches the port: the target is parsed by hand (no parser that throws), every
 * listing is a bounded page with a cursor, and a malformed request gets a 4xx, never a 500.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { JSON_CONTENT_TYPE, replyUnreadable, sendBody as send, sendError, sendJson } from '../../common/http.js'
import { DEVICE_ID_PATTERN, LIMITS, formatVerifierKey, toHex } from '../../protocol/index.js'
import { formatBatchTipProof, formatRecordProof, recordProofJson, type ProofLookup, type RecordProof, type TipLookup } from '../batch/index.js'
import { GatewayError } from '../errors.js'
import type { DeviceStatus } from '../ingest/index.js'
import type { Logger } from '../../common/logger.js'
import type { QuarantineEntry, StoredBatch } from '../store/index.js'
import type { AnchorReceipt, AnchorState } from '../anchor/index.js'

/** A page of a listing: the items, and the cursor of the next page (null: this was the last). */
export interface Page<T> { items: T[], next: string | null }

/** What the API serves; the Gateway implements it. */
export interface ApiBackend {
  proof: (deviceId: string, seq: number) => Promise<ProofLookup>
  /** The COSE receipt (PROTOCOL.md §7.9) of a proof; undefined when the gateway issues none. */
  receipt?: (proof: RecordProof) => Uint8Array | undefined
  /** A device's tip (or absence) in the newest anchored batch, PROTOCOL.md §7.10; undefined: not served. */
  tip?: (deviceId: string) => Promise<TipLookup>
  /** The log key that signs checkpoints, acks and receipts; undefined before the gateway started. */
  logKey?: () => { gatewayId: string, keyName: string, publicKey: Uint8Array } | undefined
  deviceStatus: (deviceId: string) => DeviceStatus | undefined
  deviceIds: () => string[]
  /** Up to `limit` records with seq >= fromSeq, stopping once `maxBytes` of envelopes are read (at least one). */
  records: (deviceId: string, fromSeq: number, limit: number, maxBytes: number) => Promise<Array<{ seq: number, envelope: Uint8Array }>>
  /** A device's pruning statements (PROTOCOL.md §12.1) with the batch that commits each (0: the next seal). */
  prunings?: (deviceId: string) => Promise<Array<{ envelope: Uint8Array, committedInBatch: number }>>
  batch: (id: number) => Promise<{ batch: StoredBatch, state: AnchorState | undefined, receipt: AnchorReceipt | undefined } | undefined>
  /** Entries older than the cursor `before` (newest first), up to `limit` and `maxBytes` of raw input (at least one). */
  quarantine: (limit: number, maxBytes: number, before: string | undefined) => Promise<Page<QuarantineEntry>>
  health: () => { ok: boolean } & Record<string, unknown>
  metrics: () => Promise<{ contentType: string, body: string }>
}

export interface ApiServerOptions {
  host: string
  /** 0: the OS picks. */
  port: number
  logger: Logger
  /** The bearer token every non-public route needs; undefined: no authentication. Never logged. */
  token: string | undefined
  /** Routes that answer without a token. */
  publicRoutes: { health: boolean, proofs: boolean, metrics: boolean }
  /** Most payload bytes in one listing page (at least one item is always sent). */
  maxPageBytes: number
  /** Largest request head, bytes (431 beyond). */
  maxHeaderBytes: number
  /** A request must arrive whole within this, ms (408 beyond). */
  requestTimeoutMs: number
  /** Open connections at most. */
  maxConnections: number
  /** Listing pages built at once at most; the others queue. */
  maxConcurrentPages: number
}

export interface ApiServer {
  /** `http://host:port`. */
  url: string
  port: number
  close: () => Promise<void>
}

/** Hard caps on items per page, whatever `limit` asks: a page's memory is bounded twice (items and bytes). */
export const MAX_PAGE_ITEMS = Object.freeze({ devices: 1000, records: 1000, quarantine: 100 })
const DEFAULT_PAGE_ITEMS = Object.freeze({ devices: 1000, records: 100, quarantine: 20 })
/** Longest request target; longer gets 414 before any parsing. */
export const MAX_TARGET_CHARS = 4096
const DECIMAL = /^(0|[1-9][0-9]{0,15})$/
/** Quarantine cursor: `<12 hex time>-<hex nonce and counter>`, the store key without its prefix. */
const QUARANTINE_CURSOR = /^[0-9a-f]{12}-[0-9a-f]{1,64}$/

type Route =
  | { kind: 'health' }
  | { kind: 'metrics' }
  | { kind: 'proof', device: string, seq: string }
  | { kind: 'log-key' }
  | { kind: 'tip', device: string }
  | { kind: 'devices' }
  | { kind: 'device', device: string }
  | { kind: 'records', device: string }
  | { kind: 'prunings', device: string }
  | { kind: 'batch', id: string }
  | { kind: 'quarantine' }
  | { kind: 'unknown' }

/** A 4xx answer decided while reading the request. */
class Refusal extends Error {
  constructor (readonly status: number, readonly code: string, message: string, readonly headers: Record<string, string> = {}) {
    super(message)
    this.name = 'Refusal'
  }
}

/**
 * Starts the API on `host:port`.
 * @throws GatewayError `HTTP_LISTEN_FAILED`.
 */
export async function startApiServer (backend: ApiBackend, options: ApiServerOptions): Promise<ApiServer> {
  const tokenDigest = options.token === undefined ? undefined : digest(options.token)
  const pages = new Semaphore(options.maxConcurrentPages)
  const server: Server = createServer({
    maxHeaderSize: options.maxHeaderBytes,
    requestTimeout: options.requestTimeoutMs,
    headersTimeout: Math.min(options.requestTimeoutMs, 10_000),
    // node checks both timeouts only this often (default 30 s), so a 1 s timeout cut slow clients
    // off after up to 31 s; a tenth of the timeout keeps the promise of the option.
    connectionsCheckingInterval: Math.min(1_000, Math.max(50, Math.floor(options.requestTimeoutMs / 10)))
  }, (req, res) => {
    handle(backend, req, res, options, tokenDigest, pages).catch((e: unknown) => {
      if (e instanceof Refusal) { sendError(res, e.status, e.code, e.message, e.headers); return }
      // Only the backend gets here (a store failure): input never makes a 500.
      options.logger.error({ path: (req.url ?? '').slice(0, 256), error: (e as Error).message }, 'http handler failed')
      if (!res.headersSent) sendError(res, 500, 'INTERNAL', 'internal error')
      else res.destroy()
    })
  })
  server.keepAliveTimeout = 5_000
  server.maxConnections = options.maxConnections
  // A malformed request line, an oversized head or a timeout: a JSON 4xx when the socket still
  // takes it, then close (node's default writes a bare status line).
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    replyUnreadable(err, socket, { headersTooLarge: 'HEADERS_TOO_LARGE', timeout: 'REQUEST_TIMEOUT', malformed: 'BAD_REQUEST' })
  })
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(options.port, options.host, () => { server.off('error', reject); resolve() })
    })
  } catch (e) {
    throw new GatewayError('HTTP_LISTEN_FAILED', `cannot listen on ${options.host}:${options.port}: ${(e as Error).message}`, { cause: e })
  }
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  const host = options.host.includes(':') ? `[${options.host}]` : options.host
  return {
    url: `http://${host}:${port}`,
    port,
    close: async () => {
      server.closeIdleConnections()
      await new Promise<void>(resolve => server.close(() => resolve()))
    }
  }
}

/** What a route handler needs of one request. */
interface RouteContext {
  backend: ApiBackend
  res: ServerResponse
  query: URLSearchParams
  options: ApiServerOptions
  pages: Semaphore
}

async function handle (backend: ApiBackend, req: IncomingMessage, res: ServerResponse, options: ApiServerOptions, tokenDigest: Buffer | undefined, pages: Semaphore): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    throw new Refusal(405, 'METHOD_NOT_ALLOWED', 'only GET and HEAD', { allow: 'GET, HEAD', connection: 'close' })
  }
  // GET takes no body: refuse one rather than read (or wait for) it, and close the connection so
  // that an endless body ends with it.
  if (req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0')) {
    throw new Refusal(413, 'BODY_NOT_ALLOWED', 'GET and HEAD take no request body', { connection: 'close' })
  }
  const { path, query } = splitTarget(req.url ?? '')
  const route = parseRoute(path)
  const isPublic = (route.kind === 'health' && options.publicRoutes.health) ||
    (route.kind === 'metrics' && options.publicRoutes.metrics) ||
    ((route.kind === 'proof' || route.kind === 'log-key' || route.kind === 'tip') && options.publicRoutes.proofs)
  // Authentication before anything else, unknown routes included: an anonymous client learns
  // nothing of what exists.
  if (tokenDigest !== undefined && !isPublic) checkBearer(req.headers.authorization, tokenDigest)

  const ctx: RouteContext = { backend, res, query, options, pages }
  switch (route.kind) {
    case 'health': { const h = backend.health(); sendJson(res, h.ok ? 200 : 503, h); return }
    case 'metrics': { const m = await backend.metrics(); send(res, 200, m.contentType, m.body); return }
    case 'log-key': return serveLogKey(ctx)
    case 'proof': return await serveProof(ctx, route.device, route.seq)
    case 'tip': return await serveTip(ctx, route.device)
    case 'devices': return serveDevices(ctx)
    case 'device': return serveDevice(ctx, route.device)
    case 'records': return await serveRecords(ctx, route.device)
    case 'prunings': return await servePrunings(ctx, route.device)
    case 'batch': return await serveBatch(ctx, route.id)
    case 'quarantine': return await serveQuarantine(ctx)
    case 'unknown': throw new Refusal(404, 'NOT_FOUND', 'no such route')
  }
}

function serveLogKey ({ backend, res }: RouteContext): void {
  // What checks this gateway's signatures (PROTOCOL.md §7.8): a verifier still compares the key
  // with the one registered on chain under gatewayId, never trusts this answer alone.
  const k = backend.logKey?.()
  if (k === undefined) throw new Refusal(404, 'LOG_KEY_UNAVAILABLE', 'this gateway has no log key')
  sendJson(res, 200, { gatewayId: k.gatewayId, keyName: k.keyName, publicKey: toHex(k.publicKey), verifierKey: formatVerifierKey(k.keyName, k.publicKey) })
}

async function serveProof ({ backend, res, query }: RouteContext, device: string, seq: string): Promise<void> {
  if (!isDeviceId(device)) throw new Refusal(400, 'BAD_DEVICE', 'not a device id')
  if (!DECIMAL.test(seq) || !Number.isSafeInteger(Number(seq))) throw new Refusal(400, 'BAD_SEQ', 'seq must be a decimal integer')
  const format = query.get('format') ?? 'text'
  if (format !== 'text' && format !== 'json' && format !== 'cose') throw new Refusal(400, 'BAD_FORMAT', 'format is text, json or cose')
  const found = await backend.proof(device, Number(seq))
  if (found.status === 'not-found') throw new Refusal(404, 'RECORD_NOT_FOUND', `record ${device}/${seq} is not stored at this gateway`)
  if (found.status === 'batch-open') throw new Refusal(409, 'BATCH_OPEN', `record ${device}/${seq} is in batch ${found.batchId}, not sealed yet`)
  if (format === 'cose') {
    const receipt = backend.receipt?.(found.proof)
    if (receipt === undefined) throw new Refusal(404, 'RECEIPT_UNAVAILABLE', 'this gateway issues no COSE receipts')
    // RFC 9052 §2: COSE_Sign1 tagged, media type application/cose with its cose-type parameter.
    send(res, 200, 'application/cose; cose-type="cose-sign1"', receipt)
  } else if (format === 'json') sendJson(res, 200, recordProofJson(found.proof))
  else send(res, 200, 'text/plain; charset=utf-8', formatRecordProof(found.proof))
}

async function serveTip ({ backend, res, query }: RouteContext, device: string): Promise<void> {
  // What proves a bundle complete (PROTOCOL.md §7.10): public with the record proofs, since it
  // says no more than they do (a seq and a record hash) and absence of an unknown device.
  if (!isDeviceId(device)) throw new Refusal(400, 'BAD_DEVICE', 'not a device id')
  const format = query.get('format') ?? 'text'
  if (format !== 'text' && format !== 'json') throw new Refusal(400, 'BAD_FORMAT', 'format is text or json')
  if (backend.tip === undefined) throw new Refusal(404, 'TIP_UNAVAILABLE', 'this gateway keeps no tip tree')
  const found = await backend.tip(device)
  if (found.status === 'not-anchored') throw new Refusal(409, 'TIP_NOT_ANCHORED', 'no batch with a tip tree is anchored yet')
  const text = formatBatchTipProof(found.proof, found.batch)
  if (format === 'text') { send(res, 200, 'text/plain; charset=utf-8', text); return }
  const t = found.proof.terminal
  const r = found.receipt
  sendJson(res, 200, {
    device,
    tip: t.kind === 'present' ? { seq: t.tip.seq, hash: toHex(t.tip.hash) } : null,
    batch: { id: found.batch.id, size: found.batch.size, root: toHex(found.batch.root), metadataHash: toHex(found.batch.metadataHash) },
    proof: text,
    anchor: { state: found.anchorState ?? null, ...(r === undefined ? {} : { chainId: r.chainId, contract: r.contract, onChainBatchId: r.onChainBatchId, txHash: r.txHash, blockNumber: r.blockNumber, blockHash: r.blockHash }) }
  })
}

function serveDevices ({ backend, res, query }: RouteContext): void {
  const limit = parseLimit(query.get('limit'), DEFAULT_PAGE_ITEMS.devices, MAX_PAGE_ITEMS.devices)
  const after = query.get('after')
  if (after !== null && !isDeviceId(after)) throw new Refusal(400, 'BAD_CURSOR', 'after must be a device id')
  // Sorted so that `after` is a stable cursor however the set grows between pages.
  const ids = backend.deviceIds().sort()
  let start = 0
  if (after !== null) { while (start < ids.length && (ids[start] as string) <= after) start++ }
  const devices = ids.slice(start, start + limit)
  const more = start + limit < ids.length
  sendJson(res, 200, { devices, total: ids.length, next: more ? devices.at(-1) ?? null : null })
}

function serveDevice ({ backend, res }: RouteContext, device: string): void {
  if (!isDeviceId(device)) throw new Refusal(400, 'BAD_DEVICE', 'not a device id')
  const s = backend.deviceStatus(device)
  if (s === undefined) throw new Refusal(404, 'DEVICE_NOT_FOUND', `no records of ${device} seen`)
  sendJson(res, 200, s)
}

/** The stored records of a device, for forensic export: pages of envelopes in seq order. */
async function serveRecords ({ backend, res, query, options, pages }: RouteContext, device: string): Promise<void> {
  if (!isDeviceId(device)) throw new Refusal(400, 'BAD_DEVICE', 'not a device id')
  const from = query.get('fromSeq') ?? '0'
  if (!DECIMAL.test(from) || !Number.isSafeInteger(Number(from))) throw new Refusal(400, 'BAD_SEQ', 'fromSeq must be a decimal integer')
  const limit = parseLimit(query.get('limit'), DEFAULT_PAGE_ITEMS.records, MAX_PAGE_ITEMS.records)
  const body = await pages.run(async () => {
    const page = await backend.records(device, Number(from), limit, options.maxPageBytes)
    const bytes = page.reduce((n, r) => n + r.envelope.byteLength, 0)
    const last = page.at(-1)
    // Full by count or by bytes: there may be more.
    const full = page.length >= limit || (bytes >= options.maxPageBytes && page.length > 0)
    return JSON.stringify({
      records: page.map(r => Buffer.from(r.envelope).toString('base64')),
      next: full && last !== undefined ? last.seq + 1 : null
    })
  })
  send(res, 200, JSON_CONTENT_TYPE, body)
}

/**
 * Signed statements of what retention removed (docs/GATEWAY.md §Retention): an exporter puts
 * them in the bundle with the checkpoint of the batch that commits each (GET /v1/batches/<id>).
 */
async function servePrunings ({ backend, res }: RouteContext, device: string): Promise<void> {
  if (!isDeviceId(device)) throw new Refusal(400, 'BAD_DEVICE', 'not a device id')
  const list = await backend.prunings?.(device) ?? []
  sendJson(res, 200, { prunings: list.map(p => ({ statement: Buffer.from(p.envelope).toString('base64'), batchId: p.committedInBatch === 0 ? null : p.committedInBatch })) })
}

async function serveBatch ({ backend, res }: RouteContext, id: string): Promise<void> {
  if (!DECIMAL.test(id) || id === '0') throw new Refusal(400, 'BAD_BATCH', 'batch id must be a positive decimal integer')
  const found = await backend.batch(Number(id))
  if (found === undefined) throw new Refusal(404, 'BATCH_NOT_FOUND', `no sealed batch ${id}`)
  const { batch, state, receipt } = found
  sendJson(res, 200, {
    id: batch.id,
    size: batch.size,
    root: toHex(batch.root),
    firstRecordTimeMs: batch.firstRecordTimeMs,
    lastRecordTimeMs: batch.lastRecordTimeMs,
    metadataHash: toHex(batch.metadataHash),
    checkpoint: batch.checkpoint,
    sealedAtMs: batch.sealedAtMs,
    anchor: { state: state ?? null, receipt: receipt ?? null }
  })
}

async function serveQuarantine ({ backend, res, query, options, pages }: RouteContext): Promise<void> {
  const limit = parseLimit(query.get('limit'), DEFAULT_PAGE_ITEMS.quarantine, MAX_PAGE_ITEMS.quarantine)
  const before = query.get('before')
  if (before !== null && !QUARANTINE_CURSOR.test(before)) throw new Refusal(400, 'BAD_CURSOR', 'before must be a cursor from a previous page')
  const body = await pages.run(async () => {
    const page = await backend.quarantine(limit, options.maxPageBytes, before ?? undefined)
    return JSON.stringify({
      entries: page.items.map(q => ({
        timeMs: q.timeMs,
        reason: q.reason,
        topic: q.topic,
        device: q.deviceId ?? null,
        seq: q.seq ?? null,
        detail: q.detail,
        rawBytes: q.rawBytes,
        raw: Buffer.from(q.raw).toString('base64')
      })),
      next: page.next
    })
  })
  send(res, 200, JSON_CONTENT_TYPE, body)
}

/**
 * The path and query of a request target. Only origin-form (`/path?query`) is served; the
 * parsing is by hand because `new URL` throws on targets such as `//` or `/\`.
 * @throws Refusal 400 / 414.
 */
function splitTarget (target: string): { path: string, query: URLSearchParams } {
  if (target.length > MAX_TARGET_CHARS) throw new Refusal(414, 'URI_TOO_LONG', `request target longer than ${MAX_TARGET_CHARS} characters`)
  if (!target.startsWith('/')) throw new Refusal(400, 'BAD_PATH', 'the request target must be an absolute path')
  const q = target.indexOf('?')
  const path = q === -1 ? target : target.slice(0, q)
  // URLSearchParams never throws: a bad %-escape stays as typed, and then fails its own check.
  return { path, query: new URLSearchParams(q === -1 ? '' : target.slice(q + 1)) }
}

/** @throws Refusal 400 for a bad %-escape. */
function parseRoute (path: string): Route {
  const parts = path.split('/').slice(1).map(p => {
    try {
      return decodeURIComponent(p)
    } catch {
      throw new Refusal(400, 'BAD_PATH', 'bad percent-encoding in the path')
    }
  })
  const [a, b, c, d] = parts
  const n = parts.length
  if (a === 'healthz' && n === 1) return { kind: 'health' }
  if (a === 'metrics' && n === 1) return { kind: 'metrics' }
  if (a !== 'v1') return { kind: 'unknown' }
  if (b === 'log-key' && n === 2) return { kind: 'log-key' }
  if (b === 'proof' && c !== undefined && d !== undefined && n === 4) return { kind: 'proof', device: c, seq: d }
  if (b === 'tip' && c !== undefined && n === 3) return { kind: 'tip', device: c }
  if (b === 'devices' && n === 2) return { kind: 'devices' }
  if (b === 'devices' && c !== undefined && n === 3) return { kind: 'device', device: c }
  if (b === 'devices' && c !== undefined && d === 'records' && n === 4) return { kind: 'records', device: c }
  if (b === 'devices' && c !== undefined && d === 'prunings' && n === 4) return { kind: 'prunings', device: c }
  if (b === 'batches' && c !== undefined && n === 3) return { kind: 'batch', id: c }
  if (b === 'quarantine' && n === 2) return { kind: 'quarantine' }
  return { kind: 'unknown' }
}

/**
 * Checks `Authorization: Bearer <token>` (RFC 6750 §2.1) against the token's digest; comparing
 * digests keeps the comparison constant-time whatever length is sent.
 * @throws Refusal 401 (none, RFC 6750 §3) or 403 (a token, but not this one).
 */
function checkBearer (header: string | undefined, tokenDigest: Buffer): void {
  const challenge = { 'www-authenticate': 'Bearer realm="provenance-gateway"' }
  const m = header === undefined ? null : /^Bearer +([\x21-\x7e]{1,4096}) *$/i.exec(header)
  if (m === null) throw new Refusal(401, 'UNAUTHENTICATED', 'this route needs Authorization: Bearer <token>', challenge)
  if (!timingSafeEqual(digest(m[1] as string), tokenDigest)) {
    throw new Refusal(403, 'FORBIDDEN', 'the token is not valid for this gateway', { 'www-authenticate': 'Bearer realm="provenance-gateway", error="invalid_token"' })
  }
}

function digest (token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest()
}

function isDeviceId (s: string): boolean {
  return s.length <= LIMITS.deviceIdChars && DEVICE_ID_PATTERN.test(s)
}

/** `limit` as asked, lowered to `max` (an old client asking for more gets a shorter page and a cursor). */
function parseLimit (v: string | null, fallback: number, max: number): number {
  if (v === null) return fallback
  if (!DECIMAL.test(v) || v === '0') throw new Refusal(400, 'BAD_LIMIT', 'limit must be a positive decimal integer')
  return Math.min(Number(v), max)
}

/** At most `slots` tasks at once; the others wait in order. */
class Semaphore {
  private active = 0
  private readonly waiting: Array<() => void> = []
  constructor (private readonly slots: number) {}

  async run<T> (task: () => Promise<T>): Promise<T> {
    if (this.active >= this.slots) await new Promise<void>(resolve => this.waiting.push(resolve))
    else this.active++
    try {
      return await task()
    } finally {
      const next = this.waiting.shift()
      // The slot passes straight to the next waiter.
      if (next !== undefined) next()
      else this.active--
    }
  }
}
