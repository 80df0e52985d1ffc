/**
 * The embedded default broker: aedes on 127.0.0.1 with a port from the OS, for one gateway and
 * its devices on one machine. aedes speaks MQTT 3.1.1 only, so no shared subscriptions there;
 * anything beyond one gateway uses a real broker (docs/GATEWAY.md §Scale-out).
 */
import { createServer, type Server } from 'node:net'
import { Aedes } from 'aedes'

export interface EmbeddedBroker {
  /** `mqtt://127.0.0.1:<port>`. */
  url: string
  port: number
  /** Stops listening, drops clients, closes aedes. */
  close: () => Promise<void>
}

/** Starts aedes on `host` (default 127.0.0.1) and `port` (default 0: the OS picks). */
export async function startEmbeddedBroker (options: { host?: string, port?: number } = {}): Promise<EmbeddedBroker> {
  const host = options.host ?? '127.0.0.1'
  const broker = await Aedes.createBroker({ drainTimeout: 30_000 })
  const server: Server = createServer(broker.handle)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, host, () => { server.off('error', reject); resolve() })
  })
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : 0
  let closing: Promise<void> | undefined
  return {
    url: `mqtt://${host}:${port}`,
    port,
    close: async () => {
      closing ??= (async () => {
        const closed = new Promise<void>(resolve => server.close(() => resolve()))
        await new Promise<void>(resolve => broker.close(() => resolve()))
        await closed
      })()
      await closing
    }
  }
}
