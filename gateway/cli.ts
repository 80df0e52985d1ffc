/**
 * `provenance-gateway start`: runs the fleet gateway from a JSON config file and
 * PROVENANCE_GATEWAY_* environment overrides, logs JSON lines (pino) on stdout, and stops
 * gracefully on SIGTERM/SIGINT. Exit codes: 0 stopped cleanly, 1 failure, 2 usage error.
 */
import { readFile } from 'node:fs/promises'
import { resolve as resolvePath } from 'node:path'
import { fileURLToPath } from 'node:url'
import { pino, type DestinationStream } from 'pino'
import { Gateway } from './gateway.js'
import { GatewayError } from './errors.js'
import { loadOrCreateLogKey } from './keys/index.js'
import { resolveGatewayOptions, type GatewayOptions, type ResolvedGatewayOptions } from './options.js'

export interface CliIo {
  /** Where JSON log lines go (a pino destination). */
  stdout: DestinationStream
  stderr: { write: (s: string) => unknown }
  env: Record<string, string | undefined>
  /** Registers the graceful-stop handler (default: SIGTERM and SIGINT on process). */
  onStopSignal?: (handler: (signal: string) => void) => void
}

const ENV_PREFIX = 'PROVENANCE_GATEWAY_'

const HELP = `Usage: provenance-gateway <command> [options]

Commands:
  start            run the gateway until SIGTERM or SIGINT
  log-key          create the log key if missing; print gatewayId and the public key as JSON
                   (register it on chain under gatewayId; give it to devices: docs/GATEWAY.md §Log key)

Options of start and log-key:
  --config <file>  JSON file of gateway options (docs/GATEWAY.md §Configuration)
  --help           this text

Every option can also come from the environment as ${ENV_PREFIX}<NAME>, the option name in
UPPER_SNAKE_CASE (e.g. ${ENV_PREFIX}BROKER_URL, ${ENV_PREFIX}BATCH_MAX_RECORDS); the environment
overrides the file. Secrets: anchorPrivateKeyFile / mqttPasswordFile / httpTokenFile name files to
read them from. The HTTP API needs a bearer token (httpTokenFile; unset: <stateDir>/api-token,
created on first start).
Logs are JSON lines on stdout. Exit codes: 0 stopped cleanly, 1 failure, 2 usage error.
`

type Kind = 'string' | 'int' | 'bool' | 'list'
/** Options a config file or the environment may set, with their types. */
const FIELDS: Record<string, Kind> = {
  name: 'string',
  stateDir: 'string',
  brokerUrl: 'string',
  mqttProtocolVersion: 'int',
  mqttUsername: 'string',
  mqttPassword: 'string',
  mqttPasswordFile: 'string',
  shareGroup: 'string',
  sessionExpirySeconds: 'int',
  reconnectPeriodMs: 'int',
  rpcUrl: 'string',
  registry: 'string',
  chainId: 'int',
  anchorPrivateKey: 'string',
  anchorPrivateKeyFile: 'string',
  anchorConfirmations: 'int',
  anchorPollIntervalMs: 'int',
  keyCacheTtlMs: 'int',
  unknownKeyCacheTtlMs: 'int',
  maxPayloadBytes: 'int',
  quarantineMaxRawBytes: 'int',
  quarantineMaxEntries: 'int',
  maxPendingPerDevice: 'int',
  gapReportAfterMs: 'int',
  batchMaxRecords: 'int',
  batchMaxAgeMs: 'int',
  maxBacklogRecords: 'int',
  httpHost: 'string',
  httpPort: 'int',
  // --- HTTP API: authentication and bounds (issue 9, item 5)
  httpAuth: 'string',
  httpToken: 'string',
  httpTokenFile: 'string',
  httpPublicHealth: 'bool',
  httpPublicProofs: 'bool',
  httpPublicMetrics: 'bool',
  httpMaxPageBytes: 'int',
  httpMaxHeaderBytes: 'int',
  httpRequestTimeoutMs: 'int',
  httpMaxConnections: 'int',
  httpMaxConcurrentPages: 'int',
  // --- end HTTP API
  syncWrites: 'bool',
  processMetrics: 'bool',
  logLevel: 'string',
  // Signed acks (docs/GATEWAY.md §Log key); a list is a JSON array in the file, comma-separated in the environment.
  logKeyFile: 'string',
  gatewayId: 'string',
  peerGatewayKeys: 'list',
  // Memory budgets (docs/GATEWAY.md §Memory).
  maxPendingBytesPerDevice: 'int',
  maxPendingBytesTotal: 'int',
  maxBacklogBytes: 'int',
  drainChunkBytes: 'int',
  keyCacheMaxBytes: 'int',
  unknownKeyCacheMaxEntries: 'int',
  keyLookupsPerSecond: 'int',
  keyLookupBurst: 'int'
}
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']

class UsageError extends Error {}

/** `anchorPrivateKey` → `ANCHOR_PRIVATE_KEY`. */
export function envNameOf (field: string): string {
  return ENV_PREFIX + field.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()
}

/**
 * Runs the CLI with `argv` (without node and script). Resolves with the exit code once the
 * gateway has stopped (or at once for --help and usage errors).
 */
export async function runCli (argv: string[], io: CliIo): Promise<number> {
  let config: Record<string, unknown>
  try {
    const [command, ...rest] = argv
    if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
      io.stderr.write(HELP)
      return command === undefined ? 2 : 0
    }
    if (command !== 'start' && command !== 'log-key') throw new UsageError(`unknown command "${command}"`)
    let configPath: string | undefined
    for (let i = 0; i < rest.length; i++) {
      const a = rest[i] as string
      if (a === '--help' || a === '-h') { io.stderr.write(HELP); return 0 }
      if (a === '--config') {
        configPath = rest[++i]
        if (configPath === undefined) throw new UsageError('--config needs a file')
        continue
      }
      if (a.startsWith('--config=')) { configPath = a.slice('--config='.length); continue }
      throw new UsageError(`unknown option "${a}"`)
    }
    config = await loadConfig(configPath, io.env)
    if (command === 'log-key') return await printLogKey(config, io)
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr.write(`CONFIG_INVALID: ${e.message}\n\n${HELP}`)
      return 2
    }
    throw e
  }

  const level = (config.logLevel as string | undefined) ?? 'info'
  delete config.logLevel
  const logger = pino({
    level,
    base: { service: 'provenance-gateway', gateway: config.name },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Belt and braces: options never reach a log line, but if they ever do, no secret goes with them.
    redact: ['anchorPrivateKey', 'mqttPassword', 'httpToken', '*.anchorPrivateKey', '*.mqttPassword', '*.httpToken']
  }, io.stdout)

  let gateway: Gateway
  try {
    gateway = new Gateway({ ...(config as unknown as GatewayOptions), logger })
  } catch (e) {
    if (e instanceof TypeError || e instanceof RangeError) {
      io.stderr.write(`CONFIG_INVALID: ${e.message}\n`)
      return 2
    }
    throw e
  }

  let exitCode = 0
  let stopping: Promise<void> | undefined
  let stopRequested = false
  let signalled: ((signal: string) => void) | undefined
  const stopped = new Promise<void>(resolve => {
    signalled = (signal: string) => {
      if (stopRequested) return
      stopRequested = true
      logger.info({ signal }, 'stopping')
      stopping = gateway.stop().then(resolve, resolve)
    }
  })
  gateway.onFatal((e) => {
    exitCode = 1
    io.stderr.write(`${e.code}: ${e.message}\n`)
    signalled?.('fatal')
  })
  const onStop = io.onStopSignal ?? ((handler) => {
    process.once('SIGTERM', () => handler('SIGTERM'))
    process.once('SIGINT', () => handler('SIGINT'))
  })
  onStop((signal) => signalled?.(signal))

  try {
    await gateway.start()
  } catch (e) {
    const code = (e as { code?: string }).code ?? 'START_FAILED'
    io.stderr.write(`${code}: ${(e as Error).message}\n`)
    logger.error({ code, error: (e as Error).message }, 'gateway failed to start')
    return 1
  }
  await stopped
  await stopping
  return exitCode
}

async function loadConfig (path: string | undefined, env: Record<string, string | undefined>): Promise<Record<string, unknown>> {
  const config: Record<string, unknown> = {}
  if (path !== undefined) {
    let text: string
    try {
      text = await readFile(path, 'utf8')
    } catch (e) {
      throw new UsageError(`cannot read config file ${path}: ${(e as Error).message}`)
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch (e) {
      throw new UsageError(`config file ${path} is not JSON: ${(e as Error).message}`)
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new UsageError(`config file ${path} must hold a JSON object`)
    const problems: string[] = []
    for (const [k, v] of Object.entries(parsed)) {
      const kind = FIELDS[k]
      if (kind === undefined) { problems.push(`${k}: unknown option`); continue }
      const ok = kind === 'string' ? typeof v === 'string' : kind === 'int' ? Number.isSafeInteger(v) : kind === 'list' ? Array.isArray(v) && v.every(x => typeof x === 'string') : typeof v === 'boolean'
      if (!ok) { problems.push(`${k}: must be ${kind === 'int' ? 'an integer' : kind === 'list' ? 'an array of strings' : `a ${kind === 'bool' ? 'boolean' : 'string'}`}`); continue }
      config[k] = v
    }
    if (problems.length > 0) throw new UsageError(`config file ${path}: ${problems.join('; ')}`)
  }
  for (const [field, kind] of Object.entries(FIELDS)) {
    const raw = env[envNameOf(field)]
    if (raw === undefined || raw === '') continue
    if (kind === 'string') config[field] = raw
    else if (kind === 'list') config[field] = raw.split(',').map(x => x.trim()).filter(x => x !== '')
    else if (kind === 'int') {
      if (!/^-?[0-9]{1,16}$/.test(raw)) throw new UsageError(`${envNameOf(field)} must be an integer`)
      config[field] = Number(raw)
    } else {
      if (raw !== 'true' && raw !== 'false') throw new UsageError(`${envNameOf(field)} must be true or false`)
      config[field] = raw === 'true'
    }
  }
  if (config.logLevel !== undefined && !LOG_LEVELS.includes(config.logLevel as string)) throw new UsageError(`logLevel must be one of ${LOG_LEVELS.join(', ')}`)
  for (const [fileField, field] of [['anchorPrivateKeyFile', 'anchorPrivateKey'], ['mqttPasswordFile', 'mqttPassword'], ['httpTokenFile', 'httpToken']] as const) {
    const file = config[fileField]
    delete config[fileField]
    if (file === undefined) continue
    if (config[field] !== undefined) throw new UsageError(`give ${field} or ${fileField}, not both`)
    try {
      config[field] = (await readFile(file as string, 'utf8')).trim()
    } catch (e) {
      // The path may be logged; the content never is.
      throw new UsageError(`cannot read ${fileField} ${String(file)}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`)
    }
  }
  return config
}

// `log-key`: what an operator registers on chain and configures on devices, before the first start.
async function printLogKey (config: Record<string, unknown>, io: CliIo): Promise<number> {
  let o: ResolvedGatewayOptions
  try {
    o = resolveGatewayOptions(config as unknown as GatewayOptions)
  } catch (e) {
    io.stderr.write(`CONFIG_INVALID: ${(e as Error).message}\n`)
    return 2
  }
  const key = await loadOrCreateLogKey(o.logKeyFile)
  const out = { gatewayId: o.gatewayId, publicKey: Buffer.from(key.publicKey).toString('hex'), logKeyFile: o.logKeyFile, createdMs: key.createdMs }
  io.stdout.write(JSON.stringify(out) + '\n')
  return 0
}

/** Entry point: `node --import tsx gateway/cli.ts start --config gateway.json`. */
export async function main (argv: string[] = process.argv.slice(2)): Promise<never> {
  let code: number
  try {
    code = await runCli(argv, { stdout: pino.destination({ dest: 1, sync: true }), stderr: process.stderr, env: process.env })
  } catch (e) {
    const c = e instanceof GatewayError ? e.code : 'INTERNAL'
    process.stderr.write(`${c}: ${(e as Error).message}\n`)
    code = 1
  }
  process.exit(code)
}

if (process.argv[1] !== undefined && resolvePath(process.argv[1]) === fileURLToPath(import.meta.url)) {
  void main()
}
