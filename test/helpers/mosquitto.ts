/**
 * A real Mosquitto broker (Debian's package) for tests and benchmarks: its own config on a free
 * loopback port (Mosquitto reads `listener 0` as a unix socket, so the port is picked first),
 * started and stopped by the caller, restartable on the same port.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export interface Mosquitto {
  url: string
  port: number
  /** Stops the broker (SIGTERM, then SIGKILL after 5 s). */
  stop: () => Promise<void>
  /** Starts it again on the same port, after stop(). */
  restart: () => Promise<void>
  /** Stops it for good and removes its folder. */
  close: () => Promise<void>
}

const BINARY = process.env.MOSQUITTO_BIN ?? '/usr/sbin/mosquitto'

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

async function waitForPort (port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const ok = await new Promise<boolean>(resolve => {
      const s = connect(port, '127.0.0.1')
      s.once('connect', () => { s.destroy(); resolve(true) })
      s.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port} within ${timeoutMs} ms`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

/** Starts a broker; `options.config` adds lines to its config file. */
export async function startMosquitto (options: { config?: string[] } = {}): Promise<Mosquitto> {
  const dir = await mkdtemp(join(tmpdir(), 'prov-mosquitto-'))
  const port = await freePort()
  const conf = join(dir, 'mosquitto.conf')
  await writeFile(conf, [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    'persistence false',
    'max_inflight_messages 100',
    'max_queued_messages 100000',
    'log_dest stderr',
    'log_type error',
    ...(options.config ?? [])
  ].join('\n') + '\n')
  let proc: ChildProcess | undefined
  let output = ''
  const start = async (): Promise<void> => {
    proc = spawn(BINARY, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] })
    proc.stderr?.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-4000) })
    const exited = new Promise<never>((_resolve, reject) => proc?.once('exit', code => reject(new Error(`mosquitto exited (${code}): ${output}`))))
    await Promise.race([waitForPort(port, 10_000), exited])
  }
  const stop = async (): Promise<void> => {
    const p = proc
    proc = undefined
    if (p === undefined || p.exitCode !== null || p.signalCode !== null) return
    await new Promise<void>(resolve => {
      const timer = setTimeout(() => p.kill('SIGKILL'), 5000)
      p.once('exit', () => { clearTimeout(timer); resolve() })
      p.kill('SIGTERM')
    })
  }
  // Never leave a broker behind when a test process exits without closing it.
  const onExit = (): void => { proc?.kill('SIGKILL') }
  process.once('exit', onExit)
  await start()
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    stop,
    restart: start,
    close: async () => { await stop(); process.removeListener('exit', onExit); await rm(dir, { recursive: true, force: true }) }
  }
}
