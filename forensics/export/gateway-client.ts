/**
 * The two gateway HTTP endpoints export reads: a device's records page by page, and one record's
 * C2SP tlog-proof, with the gateway's bearer token. Answers come from the network: sizes are bounded while reading, shapes checked
 * before use; nothing the gateway says is trusted (verify checks it all against the chain).
 */
import { DEVICE_ID_PATTERN, LIMITS, MAX_PROOF_BYTES, MAX_TIP_PROOF_BYTES, isValidKeyName, type BundleGateway, type BundlePruning } from '../../protocol/index.js'
import { ForensicsError } from '../errors.js'

export const DEFAULT_GATEWAY_TIMEOUT_MS = 30_000
export const DEFAULT_PAGE_LIMIT = 500
/** Longest base64 text of one envelope. */
const MAX_RECORD_BASE64 = 4 * Math.ceil(LIMITS.envelopeBytes / 3)

export interface GatewayClientOptions {
  /** Base URL, e.g. `http://127.0.0.1:8080`. */
  gatewayUrl: string
  /** Per request. Default 30 000 ms. */
  timeoutMs?: number
  /** Bearer token of the gateway's API (its `api-token` file). Absent: no Authorization header. Never logged. */
  token?: string
}

/** One page of `GET /v1/devices/<device>/records?fromSeq=&limit=`. */
export interface RecordPage {
  /** Envelopes, standard base64, ascending seq. */
  records: string[]
  /** fromSeq of the next page; null at the end. */
  next: number | null
}

export class GatewayClient {
  private readonly base: URL
  private readonly timeoutMs: number
  private readonly headers: Record<string, string>

  /** @throws TypeError for a URL that is not http(s). */
  constructor (options: GatewayClientOptions) {
    let base: URL
    try {
      base = new URL(options.gatewayUrl)
    } catch (e) {
      throw new TypeError(`gateway URL ${JSON.stringify(options.gatewayUrl)} is not a URL`, { cause: e })
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new TypeError('gateway URL must be http or https')
    if (!base.pathname.endsWith('/')) base.pathname += '/'
    this.base = base
    this.timeoutMs = options.timeoutMs ?? DEFAULT_GATEWAY_TIMEOUT_MS
    if (options.token !== undefined && (typeof options.token !== 'string' || !/^[\x21-\x7e]{1,4096}$/.test(options.token))) {
      // The message never shows the token.
      throw new TypeError('gateway token must be 1..4096 printable ASCII characters without spaces')
    }
    this.headers = options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }
  }

  /**
   * A page of the device's records from `fromSeq` on.
   * @throws ForensicsError `GATEWAY_FAILED` (transport, error status), `GATEWAY_BAD_RESPONSE`.
   */
  async listRecords (deviceId: string, fromSeq: number, limit: number = DEFAULT_PAGE_LIMIT): Promise<RecordPage> {
    checkDevice(deviceId)
    const url = this.url(`v1/devices/${encodeURIComponent(deviceId)}/records`)
    url.searchParams.set('fromSeq', String(fromSeq))
    url.searchParams.set('limit', String(limit))
    const res = await this.get(url)
    if (res.status !== 200) throw await statusError(res, url)
    const body = await readBody(res, limit * (MAX_RECORD_BASE64 + 8) + 4096, url)
    let value: unknown
    try {
      value = JSON.parse(body)
    } catch (cause) {
      throw new ForensicsError('GATEWAY_BAD_RESPONSE', `${url.pathname}: not JSON`, { cause })
    }
    const page = value as Partial<RecordPage> | null
    if (typeof page !== 'object' || page === null || !Array.isArray(page.records) || page.records.length > limit ||
        !page.records.every(r => typeof r === 'string' && r.length <= MAX_RECORD_BASE64) ||
        !(page.next === null || (Number.isSafeInteger(page.next) && (page.next as number) > fromSeq))) {
      throw new ForensicsError('GATEWAY_BAD_RESPONSE', `${url.pathname}: not { records: [base64, at most ${limit}], next: seq above ${fromSeq} | null }`)
    }
    return { records: page.records, next: page.next ?? null }
  }

  /**
   * The tlog-proof text of (device, seq); undefined when the gateway cannot prove it yet (404: not
   * stored there, 409: its batch is not sealed).
   * @throws ForensicsError `GATEWAY_FAILED`, `GATEWAY_BAD_RESPONSE`.
   */
  async getProof (deviceId: string, seq: number): Promise<string | undefined> {
    checkDevice(deviceId)
    const url = this.url(`v1/proof/${encodeURIComponent(deviceId)}/${seq}`)
    const res = await this.get(url)
    if (res.status === 404 || res.status === 409) {
      await res.body?.cancel()
      return undefined
    }
    if (res.status !== 200) throw await statusError(res, url)
    const text = await readBody(res, MAX_PROOF_BYTES, url)
    if (text.length === 0) throw new ForensicsError('GATEWAY_BAD_RESPONSE', `${url.pathname}: empty proof`)
    return text
  }

  /**
   * The tip proof file of a device in the gateway's newest anchored batch (GET /v1/tip/<device>,
   * PROTOCOL.md §7.10); undefined from a gateway without tip trees (404) or before one is
   * anchored (409). Unauthenticated here: verify checks it against the chain.
   * @throws ForensicsError `GATEWAY_FAILED`, `GATEWAY_BAD_RESPONSE`.
   */
  async getTip (deviceId: string): Promise<string | undefined> {
    checkDevice(deviceId)
    const url = this.url(`v1/tip/${encodeURIComponent(deviceId)}`)
    const res = await this.get(url)
    if (res.status === 404 || res.status === 409) {
      await res.body?.cancel()
      return undefined
    }
    if (res.status !== 200) throw await statusError(res, url)
    const text = await readBody(res, MAX_TIP_PROOF_BYTES, url)
    if (text.length === 0) throw new ForensicsError('GATEWAY_BAD_RESPONSE', `${url.pathname}: empty tip proof`)
    return text
  }

  /**
   * The gateway's log key (GET /v1/log-key, PROTOCOL.md §7.8); undefined from a gateway that has
   * none (404: one from before signed checkpoints). Unauthenticated here: verify compares it with
   * the key registered on chain under the gateway id.
   * @throws ForensicsError `GATEWAY_FAILED`, `GATEWAY_BAD_RESPONSE`.
   */
  async getLogKey (): Promise<BundleGateway | undefined> {
    const url = this.url('v1/log-key')
    const res = await this.get(url)
    if (res.status === 404) {
      await res.body?.cancel()
      return undefined
    }
    if (res.status !== 200) throw await statusError(res, url)
    let value: { gatewayId?: unknown, keyName?: unknown, publicKey?: unknown } | null
    try {
      value = JSON.parse(await readBody(res, 4096, url)) as typeof value
    } catch (cause) {
      if (cause instanceof ForensicsError) throw cause
      throw new ForensicsError('GATEWAY_BAD_RESPONSE', `${url.pathname}: not JSON`, { cause })
    }
    const id = value?.gatewayId
    const keyName = value?.keyName
    const publicKey = value?.publicKey
    if (typeof id !== 'string' || id.length > LIMITS.deviceIdChars || !DEVICE_ID_PATTERN.test(id) || !isValidKeyName(keyName) ||
        typeof publicKey !== 'string' || !/^[0-9a-f]{64}$/.test(publicKey)) {
      throw new ForensicsError('GATEWAY_BAD_RESPONSE', `${url.pathname}: not { gatewayId, keyName, publicKey: 64 hex digits }`)
    }
    return { id, keyName, publicKey }
  }

  /**
   * The device's pruning statements (GET /v1/devices/<id>/prunings, docs/GATEWAY.md §Retention),
   * each with the checkpoint of the batch that commits it (GET /v1/batches/<id>); none from a
   * gateway without retention (404). Unauthenticated here: verify judges every statement.
   * @throws ForensicsError `GATEWAY_FAILED`, `GATEWAY_BAD_RESPONSE`.
   */
  async getPrunings (deviceId: string): Promise<BundlePruning[]> {
    checkDevice(deviceId)
    const url = this.url(`v1/devices/${encodeURIComponent(deviceId)}/prunings`)
    const res = await this.get(url)
    if (res.status === 404) {
      await res.body?.cancel()
      return []
    }
    if (res.status !== 200) throw await statusError(res, url)
    let value: { prunings?: unknown } | null
    try {
      value = JSON.parse(await readBody(res, 16 * 1024 * 1024, url)) as typeof value
    } catch (cause) {
      if (cause instanceof ForensicsError) throw cause
      throw new ForensicsError('GATEWAY_BAD_RESPONSE', `${url.pathname}: not JSON`, { cause })
    }
    const list = value?.prunings
    if (!Array.isArray(list) || !list.every((p: { statement?: unknown, batchId?: unknown } | null) =>
      typeof p?.statement === 'string' && p.statement.length <= 128 * 1024 && (p.batchId === null || (Number.isSafeInteger(p.batchId) && (p.batchId as number) > 0)))) {
      throw new ForensicsError('GATEWAY_BAD_RESPONSE', `${url.pathname}: not { prunings: [{ statement: base64, batchId: id | null }] }`)
    }
    const out: BundlePruning[] = []
    for (const p of list as Array<{ statement: string, batchId: number | null }>) {
      const checkpoint = p.batchId === null ? undefined : await this.getBatchCheckpoint(p.batchId)
      out.push({ statement: p.statement, ...(checkpoint === undefined ? {} : { checkpoint }) })
    }
    return out
  }

  /** The signed checkpoint of sealed batch `id`; undefined when the gateway has none (404). */
  private async getBatchCheckpoint (id: number): Promise<string | undefined> {
    const url = this.url(`v1/batches/${id}`)
    const res = await this.get(url)
    if (res.status === 404) {
      await res.body?.cancel()
      return undefined
    }
    if (res.status !== 200) throw await statusError(res, url)
    let value: { checkpoint?: unknown } | null
    try {
      value = JSON.parse(await readBody(res, 1024 * 1024, url)) as typeof value
    } catch (cause) {
      if (cause instanceof ForensicsError) throw cause
      throw new ForensicsError('GATEWAY_BAD_RESPONSE', `${url.pathname}: not JSON`, { cause })
    }
    const checkpoint = value?.checkpoint
    if (typeof checkpoint !== 'string' || checkpoint.length === 0 || checkpoint.length > MAX_PROOF_BYTES) throw new ForensicsError('GATEWAY_BAD_RESPONSE', `${url.pathname}: no checkpoint text`)
    return checkpoint
  }

  private url (path: string): URL {
    return new URL(path, this.base)
  }

  private async get (url: URL): Promise<Response> {
    try {
      // redirect: 'error': the token goes to this gateway only, never to where it points.
      return await fetch(url, { headers: this.headers, signal: AbortSignal.timeout(this.timeoutMs), redirect: 'error' })
    } catch (e) {
      throw new ForensicsError('GATEWAY_FAILED', `GET ${url.pathname} failed: ${(e as Error).message}`, { cause: e })
    }
  }
}

function checkDevice (deviceId: string): void {
  if (typeof deviceId !== 'string' || deviceId.length > LIMITS.deviceIdChars || !DEVICE_ID_PATTERN.test(deviceId)) throw new TypeError('not a device id')
}

async function statusError (res: Response, url: URL): Promise<ForensicsError> {
  let detail = ''
  try {
    const body = JSON.parse(await readBody(res, 4096, url)) as { error?: { code?: unknown, message?: unknown } }
    if (typeof body.error?.code === 'string') detail = ` (${body.error.code.slice(0, 64)})`
    if (res.status === 401 || res.status === 403) detail += ': give the gateway\'s API token (--token-file)'
  } catch {
    // an error page that is not our JSON: the status says enough
  }
  return new ForensicsError('GATEWAY_FAILED', `GET ${url.pathname}: HTTP ${res.status}${detail}`)
}

/** The body as UTF-8 text, refusing (and cancelling) it past `maxBytes`. */
async function readBody (res: Response, maxBytes: number, url: URL): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? NaN)
  if (declared > maxBytes) {
    await res.body?.cancel()
    throw new ForensicsError('GATEWAY_BAD_RESPONSE', `${url.pathname}: ${declared} bytes, at most ${maxBytes}`)
  }
  if (res.body === null) return ''
  const chunks: Uint8Array[] = []
  let size = 0
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      size += value.byteLength
      if (size > maxBytes) {
        await reader.cancel()
        throw new ForensicsError('GATEWAY_BAD_RESPONSE', `${url.pathname}: more than ${maxBytes} bytes`)
      }
      chunks.push(value)
    }
  } catch (e) {
    if (e instanceof ForensicsError) throw e
    throw new ForensicsError('GATEWAY_FAILED', `${url.pathname}: reading the body failed: ${(e as Error).message}`, { cause: e })
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks))
  } catch (cause) {
    throw new ForensicsError('GATEWAY_BAD_RESPONSE', `${url.pathname}: not UTF-8`, { cause })
  }
}
