/**
 * The gateway's HTTP API (node:http, GET only): record proofs, device status, batches, recent
 * quarantine, health and Prometheus metrics. Path parameters come from anyone who can reach the
 * port, so each is checked against its pattern before it reaches the store.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { DEVICE_ID_PATTERN, LIMITS, toHex } from '../../protocol/index.js'
import { formatRecordProof, recordProofJson, type ProofLookup } from '../batch/index.js'
import { GatewayError } from '../errors.js'
import type { DeviceStatus } from '../ingest/index.js'
import type { GatewayLogger } from '../logger.js'
import type { QuarantineEntry, StoredBatch } from '../store/index.js'
import type { AnchorReceipt, AnchorState } from '../anchor/index.js'

/** What the API serves; the Gateway implements it. */
export interface ApiBackend {
  proof: (deviceId: string, seq: number) => Promise<ProofLookup>
  deviceStatus: (deviceId: string) => DeviceStatus | undefined
  deviceIds: () => string[]
  records: (deviceId: string, fromSeq: number, limit: number) => Promise<Array<{ seq: number, envelope: Uint8Array }>>
  batch: (id: number) => Promise<{ batch: StoredBatch, state: AnchorState | undefined, receipt: AnchorReceipt | undefined } | undefined>
  quarantine: (limit: number) => Promise<QuarantineEntry[]>
  health: () => { ok: boolean } & Record<string, unknown>
  metrics: () => Promise<{ contentType: string, body: string }>
}

export interface ApiServer {
  /** `http://host:port`. */
  url: string
  port: number
  close: () => Promise<void>
}

const DECIMAL = /^(0|[1-9][0-9]{0,15})$/
const MAX_LIST = 10_000

/**
 * Starts the API on `host:port` (port 0: the OS picks).
 * @throws GatewayError `HTTP_LISTEN_FAILED`.
 */
export async function startApiServer (backend: ApiBackend, options: { host: string, port: number, logger: GatewayLogger }): Promise<ApiServer> {
  const server: Server = createServer((req, res) => {
    route(backend, req, res).catch((e: unknown) => {
      options.logger.error({ path: (req.url ?? '').slice(0, 256), error: (e as Error).message }, 'http handler failed')
      if (!res.headersSent) sendError(res, 500, 'INTERNAL', 'internal error')
      else res.destroy()
    })
  })
  server.keepAliveTimeout = 5_000
  server.headersTimeout = 10_000
  server.requestTimeout = 30_000
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

async function route (backend: ApiBackend, req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD')
    sendError(res, 405, 'METHOD_NOT_ALLOWED', 'only GET and HEAD')
    return
  }
  const url = new URL(req.url ?? '/', 'http://gateway.invalid')
  const parts = url.pathname.split('/').slice(1).map(safeDecode)
  if (parts.some(p => p === undefined)) { sendError(res, 400, 'BAD_PATH', 'bad percent-encoding'); return }
  const [a, b, c, d, e] = parts as string[]

  if (a === 'healthz' && b === undefined) {
    const h = backend.health()
    sendJson(res, h.ok ? 200 : 503, h)
    return
  }
  if (a === 'metrics' && b === undefined) {
    const m = await backend.metrics()
    send(res, 200, m.contentType, m.body)
    return
  }
  if (a !== 'v1') { sendError(res, 404, 'NOT_FOUND', 'no such route'); return }

  if (b === 'proof' && c !== undefined && d !== undefined && e === undefined) {
    if (!isDeviceId(c)) { sendError(res, 400, 'BAD_DEVICE', 'not a device id'); return }
    if (!DECIMAL.test(d) || !Number.isSafeInteger(Number(d))) { sendError(res, 400, 'BAD_SEQ', 'seq must be a decimal integer'); return }
    const format = url.searchParams.get('format') ?? 'text'
    if (format !== 'text' && format !== 'json') { sendError(res, 400, 'BAD_FORMAT', 'format is text or json'); return }
    const found = await backend.proof(c, Number(d))
    if (found.status === 'not-found') { sendError(res, 404, 'RECORD_NOT_FOUND', `record ${c}/${d} is not stored at this gateway`); return }
    if (found.status === 'batch-open') { sendError(res, 409, 'BATCH_OPEN', `record ${c}/${d} is in batch ${found.batchId}, not sealed yet`); return }
    if (format === 'json') sendJson(res, 200, recordProofJson(found.proof))
    else send(res, 200, 'text/plain; charset=utf-8', formatRecordProof(found.proof))
    return
  }
  if (b === 'devices' && c === undefined) {
    const limit = parseLimit(url.searchParams.get('limit'), 1000)
    if (limit === undefined) { sendError(res, 400, 'BAD_LIMIT', `limit must be 1..${MAX_LIST}`); return }
    const ids = backend.deviceIds()
    sendJson(res, 200, { devices: ids.slice(0, limit), total: ids.length })
    return
  }
  if (b === 'devices' && c !== undefined && d === undefined) {
    if (!isDeviceId(c)) { sendError(res, 400, 'BAD_DEVICE', 'not a device id'); return }
    const s = backend.deviceStatus(c)
    if (s === undefined) { sendError(res, 404, 'DEVICE_NOT_FOUND', `no records of ${c} seen`); return }
    sendJson(res, 200, s)
    return
  }
  if (b === 'devices' && c !== undefined && d === 'records' && e === undefined) {
    // The stored records of a device, for forensic export: pages of envelopes in seq order.
    if (!isDeviceId(c)) { sendError(res, 400, 'BAD_DEVICE', 'not a device id'); return }
    const from = url.searchParams.get('fromSeq') ?? '0'
    if (!DECIMAL.test(from) || !Number.isSafeInteger(Number(from))) { sendError(res, 400, 'BAD_SEQ', 'fromSeq must be a decimal integer'); return }
    const limit = parseLimit(url.searchParams.get('limit'), 1000)
    if (limit === undefined) { sendError(res, 400, 'BAD_LIMIT', `limit must be 1..${MAX_LIST}`); return }
    const page = await backend.records(c, Number(from), limit)
    const last = page.at(-1)
    sendJson(res, 200, {
      records: page.map(r => Buffer.from(r.envelope).toString('base64')),
      next: page.length === limit && last !== undefined ? last.seq + 1 : null
    })
    return
  }
  if (b === 'batches' && c !== undefined && d === undefined) {
    if (!DECIMAL.test(c) || c === '0') { sendError(res, 400, 'BAD_BATCH', 'batch id must be a positive decimal integer'); return }
    const found = await backend.batch(Number(c))
    if (found === undefined) { sendError(res, 404, 'BATCH_NOT_FOUND', `no sealed batch ${c}`); return }
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
    return
  }
  if (b === 'quarantine' && c === undefined) {
    const limit = parseLimit(url.searchParams.get('limit'), 100)
    if (limit === undefined) { sendError(res, 400, 'BAD_LIMIT', `limit must be 1..${MAX_LIST}`); return }
    const entries = await backend.quarantine(limit)
    sendJson(res, 200, {
      entries: entries.map(q => ({
        timeMs: q.timeMs,
        reason: q.reason,
        topic: q.topic,
        device: q.deviceId ?? null,
        seq: q.seq ?? null,
        detail: q.detail,
        rawBytes: q.rawBytes,
        raw: Buffer.from(q.raw).toString('base64')
      }))
    })
    return
  }
  sendError(res, 404, 'NOT_FOUND', 'no such route')
}

function isDeviceId (s: string): boolean {
  return s.length <= LIMITS.deviceIdChars && DEVICE_ID_PATTERN.test(s)
}

function parseLimit (v: string | null, fallback: number): number | undefined {
  if (v === null) return fallback
  if (!DECIMAL.test(v)) return undefined
  const n = Number(v)
  return n >= 1 && n <= MAX_LIST ? n : undefined
}

function safeDecode (s: string): string | undefined {
  try {
    return decodeURIComponent(s)
  } catch {
    return undefined
  }
}

function send (res: ServerResponse, status: number, contentType: string, body: string): void {
  res.statusCode = status
  res.setHeader('content-type', contentType)
  res.setHeader('cache-control', 'no-store')
  res.setHeader('content-length', Buffer.byteLength(body))
  res.end(res.req.method === 'HEAD' ? undefined : body)
}

function sendJson (res: ServerResponse, status: number, value: unknown): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(value))
}

function sendError (res: ServerResponse, status: number, code: string, message: string): void {
  sendJson(res, status, { error: { code, message } })
}
