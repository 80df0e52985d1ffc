// An answer sent before the request's body was read (a 413 on an endless body) reaches a client
// that keeps writing: the server half-closes and drops what still comes (common/http.ts
// lingerOnClose) instead of destroying the socket with the client's bytes unread, which makes the
// kernel reset the connection and the client's kernel drop the answer. And the lingering is
// bounded: a client that writes forever, or never closes, is cut off.
import t from 'tap'
import { createServer, type Server } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { LINGER_BYTES, LINGER_MS, readBodyChunks, sendError } from '../../common/http.js'

const LIMIT = 1024

async function server (): Promise<{ server: Server, port: number, closed: () => number }> {
  let closed = 0
  const s = createServer((req, res) => {
    req.socket.once('close', () => { closed++ })
    readBodyChunks(req, LIMIT, m => Object.assign(new Error(m), { code: 'TOO_LARGE' }), () => {})
      .then(() => { sendError(res, 200, 'OK', 'read') })
      .catch((e: Error) => { sendError(res, 413, 'TOO_LARGE', e.message, { connection: 'close' }) })
  })
  await new Promise<void>(resolve => s.listen(0, '127.0.0.1', resolve))
  return { server: s, port: (s.address() as AddressInfo).port, closed: () => closed }
}

/**
 * Sends a chunked POST and then, unlike rawRequest, writes body as fast as the socket takes it and
 * never stops on its own (`stopAfterAnswer` ends its side once the answer's head came); resolves
 * with what it read and how the connection ended.
 */
async function flood (port: number, options: { stopAfterAnswer?: boolean } = {}): Promise<{ status: number, ended: 'close' | 'reset', ms: number }> {
  // Half-open allowed: the server's FIN does not end this side, so it writes on until told to stop.
  const socket: Socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true })
  const chunk = Buffer.from('4000\r\n' + 'x'.repeat(0x4000) + '\r\n')
  let text = ''
  const started = performance.now()
  return await new Promise((resolve, reject) => {
    const timeout = setTimeout(() => { socket.destroy(); reject(new Error('no end within 20 s')) }, 20_000)
    let status = 0
    const done = (ended: 'close' | 'reset'): void => {
      clearTimeout(timeout)
      resolve({ status, ended, ms: performance.now() - started })
    }
    const pump = (): void => {
      while (socket.writable && socket.write(chunk)) { /* until the buffer is full */ }
    }
    socket.on('drain', pump)
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1')
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text)
      if (m !== null && status === 0) {
        status = Number(m[1])
        if (options.stopAfterAnswer === true) socket.end()
      }
    })
    socket.on('error', (e: NodeJS.ErrnoException) => { if (e.code === 'ECONNRESET' || e.code === 'EPIPE') done('reset'); else { clearTimeout(timeout); reject(e) } })
    socket.on('close', () => { done('close') })
    socket.on('connect', () => {
      socket.write('POST / HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\n\r\n')
      pump()
    })
  })
}

t.test('a client flooding an endless body reads the 413 every time', async t => {
  const { server: s, port } = await server()
  t.teardown(() => { s.closeAllConnections(); s.close() })
  const statuses: number[] = []
  for (let i = 0; i < 20; i++) statuses.push((await flood(port)).status)
  t.same(statuses, Array(20).fill(413), 'twenty floods, twenty 413s')
})

t.test('lingering is bounded: a client that never stops writing is cut off after LINGER_BYTES or LINGER_MS', async t => {
  const { server: s, port, closed } = await server()
  t.teardown(() => { s.closeAllConnections(); s.close() })
  const r = await flood(port)
  t.equal(r.status, 413)
  t.equal(r.ended, 'reset', `cut off (after ${r.ms.toFixed(0)} ms)`)
  const deadline = performance.now() + 4 * LINGER_MS
  while (closed() < 1 && performance.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
  t.equal(closed(), 1, 'the server closed its socket')
  t.ok(LINGER_BYTES >= 1024 * 1024 && LINGER_MS >= 1000, 'bounds leave a client room to read its answer')
})

t.test('a client that answers the FIN with its own closes the connection at once; one that stays silent is cut off', async t => {
  const { server: s, port, closed } = await server()
  t.teardown(() => { s.closeAllConnections(); s.close() })
  const polite = await flood(port, { stopAfterAnswer: true })
  t.equal(polite.status, 413)
  t.equal(polite.ended, 'close', 'closed cleanly, no reset')
  t.ok(polite.ms < LINGER_MS, `before the linger timer (${polite.ms.toFixed(0)} ms)`)
  // Over the limit in the first chunk, then silent, its side left open: the server's timer ends it.
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true })
  t.teardown(() => socket.destroy())
  const answered = await new Promise<{ status: number, at: number }>((resolve, reject) => {
    let text = ''
    socket.on('data', d => {
      text += d.toString('latin1')
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text)
      if (m !== null) resolve({ status: Number(m[1]), at: performance.now() })
    })
    socket.on('error', reject)
    socket.on('connect', () => { socket.write('POST / HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\n\r\n800\r\n' + 'y'.repeat(0x800) + '\r\n') })
  })
  t.equal(answered.status, 413)
  const deadline = performance.now() + 4 * LINGER_MS
  while (closed() < 2 && performance.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
  const held = performance.now() - answered.at
  t.equal(closed(), 2, `the server closed the silent client's socket too (${held.toFixed(0)} ms after the answer)`)
  t.ok(held >= LINGER_MS * 0.9, 'not before the linger timer')
})
