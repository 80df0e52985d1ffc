/**
 * `provenance-agent start`: runs the daemon until SIGTERM or SIGINT (then a clean stop with a
 * shutdown record, exit 0); SIGHUP reloads the model files.
 */
import { fromHex } from '../../protocol/index.js'
import { Daemon } from '../daemon/index.js'
import type { ModelRegistryLookup } from '../policy/index.js'
import type { OptionValues } from './options.js'
import type { AgentConfig } from './config.js'
import { prepare, type CliIo } from './context.js'
import { createLogger } from './logger.js'

export async function runStart (values: OptionValues, io: CliIo): Promise<number> {
  const json = values.json === true
  // Handlers first: a SIGTERM during a slow start (models loading) must still end in a clean stop.
  const signals = io.signals ?? process
  let received: string | undefined
  let wake: ((signal: string) => void) | undefined
  const onStop = (signal: string): void => { received ??= signal; wake?.(signal) }
  const onTerm = (): void => onStop('SIGTERM')
  const onInt = (): void => onStop('SIGINT')
  let daemon: Daemon | undefined
  const onHup = (): void => { void daemon?.reloadAll() }
  signals.on('SIGTERM', onTerm)
  signals.on('SIGINT', onInt)
  signals.on('SIGHUP', onHup)
  let registry: { lookup: ModelRegistryLookup, close: () => void } | undefined
  try {
    const setup = await prepare(values, io)
    const { config } = setup
    const logger = createLogger(config.logLevel)
    // onnxruntime logs natively to stderr in its own format; keep stderr JSON lines only (provider
    // failures reach our log as warnings with onnxruntime's message).
    const ort = await import('onnxruntime-node')
    ort.env.logLevel = config.logLevel === 'trace' ? 'verbose' : config.logLevel === 'debug' ? 'warning' : 'fatal'
    registry = config.registry !== undefined ? await connectRegistry(config.registry) : undefined
    try {
      daemon = await Daemon.start({
        deviceId: config.deviceId,
        stateDir: config.stateDir,
        profile: setup.profile,
        models: config.models,
        ...(config.statusPort !== undefined ? { statusPort: config.statusPort } : {}),
        apiSocket: setup.apiSocket,
        ...(config.apiSocketMode !== undefined ? { apiSocketMode: config.apiSocketMode === '0660' ? 0o660 : 0o600 } : {}),
        maxRequestBytes: config.maxRequestBytes,
        ...(config.maxInflightRequestBytes !== undefined ? { maxInflightRequestBytes: config.maxInflightRequestBytes } : {}),
        ...(config.apiAdmissionTimeoutMs !== undefined ? { apiAdmissionTimeoutMs: config.apiAdmissionTimeoutMs } : {}),
        ...(config.apiBodyTimeoutMs !== undefined ? { apiBodyTimeoutMs: config.apiBodyTimeoutMs } : {}),
        logger,
        ...(config.brokerUrl !== undefined ? { brokerUrl: config.brokerUrl } : {}),
        ...(config.brokerMqttVersion !== undefined ? { brokerMqttVersion: config.brokerMqttVersion } : {}),
        ...(config.brokerUsername !== undefined ? { brokerUsername: config.brokerUsername } : {}),
        ...(config.brokerPassword !== undefined ? { brokerPassword: config.brokerPassword } : {}),
        ...(config.gatewayPublicKeys !== undefined ? { gatewayPublicKeys: config.gatewayPublicKeys.map(fromHex) } : {}),
        ...(config.policyAdminPublicKey !== undefined ? { policyAdminPublicKey: fromHex(config.policyAdminPublicKey) } : {}),
        ...(config.fleetId !== undefined ? { fleetId: config.fleetId } : {}),
        ...(registry !== undefined ? { registry: registry.lookup } : {}),
        ...(config.registry?.timeoutMs !== undefined ? { registryTimeoutMs: config.registry.timeoutMs } : {})
      })
    } catch (e) {
      logger.error({ code: (e as { code?: string }).code, error: (e as Error).message }, 'daemon failed to start')
      throw e
    }
    const status = await daemon.status()
    if (json) io.stdout.write(JSON.stringify({ event: 'ready', pid: process.pid, socket: daemon.socketPath, port: daemon.port, deviceId: config.deviceId, boot: status.boot, seq: status.seq }) + '\n')
    const signal = received ?? await new Promise<string>(resolve => { wake = resolve })
    await daemon.stop(`signal ${signal}`)
    if (json) io.stdout.write(JSON.stringify({ event: 'stopped', signal, seq: daemon.log.head.seq }) + '\n')
    return 0
  } finally {
    registry?.close()
    signals.off('SIGTERM', onTerm)
    signals.off('SIGINT', onInt)
    signals.off('SIGHUP', onHup)
  }
}

/** A read-only client of the on-chain model registry (loaded only when configured). */
async function connectRegistry (r: NonNullable<AgentConfig['registry']>): Promise<{ lookup: ModelRegistryLookup, close: () => void }> {
  const { RegistryClient, createRpcProvider } = await import('../../contracts/index.js')
  const provider = createRpcProvider(r.rpcUrl)
  const client = new RegistryClient(r.address, provider)
  return { lookup: { modelStatus: async (hash) => await client.modelStatus(hash) }, close: () => provider.destroy() }
}
