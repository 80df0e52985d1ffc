/**
 * HTTP reply helpers shared by the agent daemon's API and the gateway's API: one JSON reply shape
 * (`{ error: { code, message } }` for errors), one content type, bodies read under a byte limit.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

/** The content type of every JSON reply. */
export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8'

/**
 * Sends a whole reply: explicit length, `cache-control: no-store` (replies describe live state),
 * no body for a HEAD request. `headers` come last and may override.
 */
export function sendBody (res: ServerResponse, status: number, contentType: string, body: string | Uint8Array, headers: Record<string, string> = {}): void {
  res.statusCode = status
  res.setHeader('content-type', contentType)
  res.setHeader('cache-control', 'no-store')
  res.setHeader('content-length', Buffer.byteLength(body))
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v)
  if (!res.req.complete && String(res.getHeader('connection')).toLowerCase() === 'close') lingerOnClose(res.req.socket)
  res.end(res.req.method === 'HEAD' ? undefined : body)
}

/** How long, and for how many more bytes of the request, a connection closed with its body unread lingers (lingerOnClose). */
export const LINGER_MS = 2_000
export const LINGER_BYTES = 4 * 1024 * 1024
const LINGER_POLL_MS = 25
/** Sockets whose close lingers already. */
const lingering = new WeakSet<Socket>()

/**
 * The headers of an answer to a request whose body was not read (a GET with a body, an endless
 * one, a refusal before reading): `connection: close`, lingering so that the client reads the
 * answer (lingerOnClose); none when the body was read.
 */
export function closeIfUnread (req: IncomingMessage): Record<string, string> {
  if (req.complete) return {}
  lingerOnClose(req.socket)
  return { connection: 'close' }
}

/**
 * Closes `socket` gently once node's server closes it after an answer sent before the request's
 * body was read (a 413 on an endless body, a 401 on a run, a GET with a body): the answer goes out
 * with a FIN, and what the client still sends is read and dropped until it closes its side, for
 * at most LINGER_MS or LINGER_BYTES, then the socket is destroyed. Destroyed at once, as node's
 * `destroySoon` does, with the client's bytes unread, the kernel answers them with a reset, and a
 * reset makes the client's kernel drop the answer it has not read yet: the client saw a reset
 * instead of the 413 (2 of 3 runs of the API access test on a loaded machine). RFC 9112 §9.6.
 */
export function lingerOnClose (socket: Socket | null): void {
  if (socket === null || socket.destroyed || lingering.has(socket)) return
  lingering.add(socket)
  socket.destroySoon = function lingeringClose (this: Socket): void {
    // node's HTTP parser reads the socket itself (no 'data' events): bytesRead counts what came.
    const limit = socket.bytesRead + LINGER_BYTES
    const started = performance.now()
    const stop = (): void => { clearInterval(timer); socket.destroy() }
    const timer = setInterval(() => { if (socket.bytesRead > limit || performance.now() - started >= LINGER_MS) stop() }, LINGER_POLL_MS)
    timer.unref()
    socket.once('end', stop)
    socket.once('close', () => { clearInterval(timer) })
    socket.resume()
    socket.end()
  }
}

/** Sends `value` as JSON. */
export function sendJson (res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  sendBody(res, status, JSON_CONTENT_TYPE, JSON.stringify(value), headers)
}

/** Sends `{ error: { code, message } }`; when the head is already out, drops the connection instead. */
export function sendError (res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) { res.destroy(); return }
  sendJson(res, status, { error: { code, message } }, headers)
}

/** Codes a service answers a request node could not parse with (see replyUnreadable). */
export interface UnreadableRequestCodes {
  /** The request head is over the server's maxHeaderSize (431). */
  headersTooLarge: string
  /** The request took longer than requestTimeout / headersTimeout (408). */
  timeout: string
  /** Anything else node's parser refused (400). */
  malformed: string
}

/**
 * The server's 'clientError' answer: a JSON 4xx when the socket still takes it, then close (node's
 * default writes a bare status line).
 */
export function replyUnreadable (err: NodeJS.ErrnoException, socket: Socket, codes: UnreadableRequestCodes): void {
  if (!socket.writable || err.code === 'ECONNRESET') { socket.destroy(); return }
  const [status, code, reason] = err.code === 'HPE_HEADER_OVERFLOW'
    ? [431, codes.headersTooLarge, 'Request Header Fields Too Large']
    : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, codes.timeout, 'Request Timeout'] : [400, codes.malformed, 'Bad Request']
  const body = JSON.stringify({ error: { code, message: 'the request could not be read' } })
  socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: ${JSON_CONTENT_TYPE}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`)
}

/**
 * Hands each chunk of a request body of at most `maxBytes` to `onChunk` as it arrives, refusing
 * early on a larger content-length. Over the limit the rest is drained (not parsed) and
 * `tooLarge(message)` is thrown; so is whatever `onChunk` throws.
 */
export async function readBodyChunks (req: IncomingMessage, maxBytes: number, tooLarge: (message: string) => Error, onChunk: (chunk: Buffer) => void): Promise<void> {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > maxBytes) {
    req.resume()
    throw tooLarge(`request body of ${declared} bytes exceeds ${maxBytes}`)
  }
  let total = 0
  try {
    // Not `for await (… of req)`: leaving that loop by a throw destroys the request, and node then
    // destroys its socket, so the 413 below was never sent (the client saw a reset).
    for await (const chunk of req.iterator({ destroyOnReturn: false })) {
      total += (chunk as Buffer).byteLength
      if (total > maxBytes) throw tooLarge(`request body exceeds ${maxBytes} bytes`)
      onChunk(chunk as Buffer)
    }
  } catch (e) {
    // Read and drop the rest, after the loop's iterator let go of the request (it leaves it
    // paused, and a paused request stops node reading the socket).
    req.resume()
    throw e
  }
}

/**
 * Reads a request body of at most `maxBytes` (readBodyChunks) into one buffer.
 */
export async function readBody (req: IncomingMessage, maxBytes: number, tooLarge: (message: string) => Error): Promise<Buffer> {
  const chunks: Buffer[] = []
  await readBodyChunks(req, maxBytes, tooLarge, chunk => { chunks.push(chunk) })
  return Buffer.concat(chunks)
}
