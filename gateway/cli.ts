/**
 * `provenance-gateway start|prune|log-key` on the shared CLI scaffold (common/cli: --help on stdout,
 * --version, --json, exit codes 0/1/2/78): the config from a JSON file and PROVENANCE_GATEWAY_*
 * overrides, checked against one schema (gateway/config-schema.ts) the compiler matches to GatewayOptions.
 */
import { readFile } from 'node:fs/promises'
import { pino, type DestinationStream } from 'pino'
import { join } from 'node:path'
import { CommonError, ConfigError, UsageError, runProgram, type LogLevel, type CliOptionSpec, type CliProgram } from '../common/index.js'
import pkg from '../package.json' with { type: 'json' }
import { Gateway } from './gateway.js'
import { GatewayError } from './errors.js'
import { loadOrCreateLogKey } from './keys/index.js'
import { Pruner, type PruneResult } from './retention/index.js'
import { GatewayStore, PgAnchorStateStore, PostgresGatewayStore, type GatewayStore as Store } from './store/index.js'
import { resolveGatewayOptions, type GatewayOptions, type ResolvedGatewayOptions } from './options.js'
import { GATEWAY_CONFIG_FIELDS, GATEWAY_CONFIG_SCHEMA, envNameOf, gatewayConfigProblems } from './config-schema.js'
import { isEntryPoint } from '../common/entry-point.js'
import { createLogger } from '../common/log-factory.js'

export interface CliIo {
  /** Results, and `start`'s one announcement line (`"msg":"gateway started"` with its `http` and `broker` addresses). */
  stdout: DestinationStream
  /** The JSON log lines (common/logger.ts's format) and `CODE: message` error lines. */
  stderr: DestinationStream
  env: Record<string, string | undefined>
  /** Registers the graceful-stop handler (default: SIGTERM and SIGINT on process). */
  onStopSignal?: (handler: (signal: string) => void) => void
}

const ENV_PREFIX = 'PROVENANCE_GATEWAY_'
export { envNameOf }

function configError (message: string): ConfigError {
  return new ConfigError(message)
}

const CONFIG_OPTION: CliOptionSpec = {
  name: 'config',
  type: 'string',
  value: '<file>',
  env: `${ENV_PREFIX}CONFIG`,
  description: 'JSON file of gateway options (docs/GATEWAY.md §Configuration). Without it, the options come from the environment alone.'
}

const EPILOG = [
  `Every option can also come from the environment as ${ENV_PREFIX}<NAME>, the option name in UPPER_SNAKE_CASE (e.g. ${ENV_PREFIX}BROKER_URL, ${ENV_PREFIX}BATCH_MAX_RECORDS); the environment overrides the file. Secrets: anchorPrivateKeyFile / mqttPasswordFile / httpTokenFile name files to read them from. The HTTP API needs a bearer token (httpTokenFile; unset: <stateDir>/api-token, created on first start).`,
  `Options: ${Object.keys(GATEWAY_CONFIG_SCHEMA.shape).join(', ')}.`,
  'start logs JSON lines on stderr and prints one JSON line on stdout once up: {"msg":"gateway started","http":…,"broker":…}.'
]

/** The program, bound to the streams and stop signal of one run. */
function gatewayProgram (io: CliIo, exit: { code: number }): CliProgram {
  return {
    name: 'provenance-gateway',
    version: pkg.version,
    summary: 'The fleet gateway: verifies device records from MQTT, batches them into Merkle trees, anchors the roots on chain, serves proofs.',
    commonOptions: [CONFIG_OPTION],
    configErrorCodes: ['CONFIG_INVALID'],
    epilog: EPILOG,
    commands: [
      {
        path: ['start'],
        summary: 'Run the gateway until SIGTERM or SIGINT.',
        description: ['Exits 0 once stopped cleanly, 1 when it fails to start or a fatal error stops it, 78 on a configuration error.'],
        run: async (ctx) => {
          const config = await loadConfig(ctx.string('config'), io.env)
          exit.code = await runGateway(config, io)
          return undefined
        }
      },
      {
        path: ['prune'],
        summary: 'Remove records that are anchored and past retention, with a signed pruning statement per device.',
        description: [
          'Run with the gateway stopped (it opens the state folder; STORE_LOCKED while a gateway has it): the gateway commits the statements in the next batch it seals after its start. A running gateway prunes by itself with pruneIntervalMs. With postgresUrl (the PostgreSQL tier) it works on the database while the tier runs, and the sequencer commits the statements at its next seal; do not run it alongside a scheduled pruneIntervalMs run of the tier. See docs/GATEWAY.md §Retention.',
          'Without --device: every device, each as far as allowed (nothing past that, no error). With --device and --through-seq: exactly that range from the oldest stored record, or a refusal: PRUNE_NOT_ANCHORED when a record up to it is not in a confirmed batch, PRUNE_BEFORE_RETENTION when one is in a batch sealed within retentionDays (default and minimum 183), PRUNE_NOTHING when nothing is stored there.',
          'Prints what was pruned (device, seq range, batches, statement hash).'
        ],
        mutating: true,
        options: [
          { name: 'device', type: 'string', value: '<id>', description: 'Prune only this device.' },
          { name: 'through-seq', type: 'string', value: '<n>', description: 'With --device: prune through this seq or refuse.' },
          { name: 'reason', type: 'string', value: '<text>', description: 'Reason recorded in the statement (default: retention).' }
        ],
        run: async (ctx) => {
          const config = await loadConfig(ctx.string('config'), io.env)
          const device = ctx.string('device')
          const through = ctx.string('through-seq')
          if (through !== undefined && (device === undefined || !/^(0|[1-9][0-9]{0,15})$/.test(through))) {
            throw new UsageError(device === undefined ? '--through-seq needs --device' : '--through-seq must be a decimal seq')
          }
          const reason = ctx.string('reason')
          const results = await pruneOffline(config, {
            ...(device === undefined ? {} : { deviceId: device }),
            ...(through === undefined ? {} : { throughSeq: Number(through) }),
            ...(reason === undefined ? {} : { reason }),
            dryRun: ctx.dryRun
          })
          const lines = results.length === 0
            ? ['nothing to prune: no record is both anchored and past retention']
            : results.map(r => `${ctx.dryRun ? 'would prune' : 'pruned'} ${r.deviceId} seq ${r.firstSeq}..${r.lastSeq} (${r.records} records, batches ${r.batches.join(',')}), statement ${r.statementHash}`)
          return { value: { pruned: results }, text: lines }
        }
      },
      {
        path: ['log-key'],
        summary: 'Create the log key if missing; print gatewayId and the public key as JSON.',
        description: ['Register the key on chain under gatewayId and give it to devices (docs/GATEWAY.md §Log key). The output is JSON with or without --json.'],
        run: async (ctx) => {
          const config = await loadConfig(ctx.string('config'), io.env)
          const out = await logKeyOf(config)
          return { value: out, text: JSON.stringify(out) }
        }
      }
    ]
  }
}

/**
 * Runs the CLI with `argv` (without node and script). Resolves with the exit code once the
 * gateway has stopped (or at once for --help, --version and errors).
 */
export async function runCli (argv: string[], io: CliIo): Promise<number> {
  const exit = { code: 0 }
  // The scaffold writes only text (help, results, error lines) to these streams.
  const text = (w: { write: (s: string) => unknown }) => ({ write: (s: string | Uint8Array) => w.write(typeof s === 'string' ? s : Buffer.from(s).toString('utf8')) })
  const code = await runProgram(gatewayProgram(io, exit), argv, { env: io.env, stdout: text(io.stdout), stderr: text(io.stderr) })
  return code !== 0 ? code : exit.code
}

async function runGateway (config: Record<string, unknown>, io: CliIo): Promise<number> {
  const level = (config.logLevel as LogLevel | undefined) ?? 'info'
  delete config.logLevel
  const base = { gateway: config.name }
  // Belt and braces: options never reach a log line, but if they ever do, no secret goes with them.
  const redact = ['anchorPrivateKey', 'mqttPassword', 'httpToken', 'postgresUrl', '*.anchorPrivateKey', '*.mqttPassword', '*.httpToken', '*.postgresUrl']
  const logger = createLogger({ service: 'provenance-gateway', level, base, redact, destination: io.stderr })

  let gateway: Gateway
  try {
    gateway = new Gateway({ ...(config as unknown as GatewayOptions), logger })
  } catch (e) {
    if (e instanceof TypeError || e instanceof RangeError) throw configError(e.message)
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
    // The log line first: the last line on stderr is the one `CODE: message` line of the convention.
    logger.error({ code, error: (e as Error).message }, 'gateway failed to start')
    io.stderr.write(`${code}: ${(e as Error).message}\n`)
    return 1
  }
  // Logs go to stderr; stdout gets this one line, in the log format, for whoever started the
  // gateway and needs its addresses (an OS-chosen HTTP port, the embedded broker's URL).
  createLogger({ service: 'provenance-gateway', level: 'info', base, destination: io.stdout })
    .info({ name: config.name, broker: gateway.brokerUrl ?? null, http: gateway.httpUrl ?? null }, 'gateway started')
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
      throw configError(`cannot read config file ${path}: ${(e as Error).message}`)
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch (e) {
      throw configError(`config file ${path} is not JSON: ${(e as Error).message}`)
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw configError(`config file ${path} must hold a JSON object`)
    const checked = GATEWAY_CONFIG_SCHEMA.safeParse(parsed)
    if (!checked.success) throw configError(`config file ${path}: ${gatewayConfigProblems(checked.error.issues).join('; ')}`)
    Object.assign(config, checked.data)
  }
  for (const [field, { kind, env: name }] of Object.entries(GATEWAY_CONFIG_FIELDS)) {
    const raw = env[name]
    if (raw === undefined || raw === '') continue
    let value: unknown
    if (kind === 'string') value = raw
    else if (kind === 'list') value = raw.split(',').map(x => x.trim()).filter(x => x !== '')
    else if (kind === 'int') {
      if (!/^-?[0-9]{1,16}$/.test(raw)) throw configError(`${name} must be an integer`)
      value = Number(raw)
    } else {
      if (raw !== 'true' && raw !== 'false') throw configError(`${name} must be true or false`)
      value = raw === 'true'
    }
    // The same field check as the file's (e.g. logLevel's names), worded for the variable.
    const checked = GATEWAY_CONFIG_SCHEMA.shape[field as keyof typeof GATEWAY_CONFIG_SCHEMA.shape].safeParse(value)
    if (!checked.success) throw configError(`${name} ${checked.error.issues[0]?.message ?? 'is invalid'}`)
    config[field] = value
  }
  for (const [fileField, field] of [['anchorPrivateKeyFile', 'anchorPrivateKey'], ['mqttPasswordFile', 'mqttPassword'], ['httpTokenFile', 'httpToken']] as const) {
    const file = config[fileField]
    delete config[fileField]
    if (file === undefined) continue
    if (typeof file !== 'string') throw configError(`${fileField} must be a path`)
    if (config[field] !== undefined) throw configError(`give ${field} or ${fileField}, not both`)
    try {
      config[field] = (await readFile(file, 'utf8')).trim()
    } catch (e) {
      // The path may be logged; the content never is.
      throw configError(`cannot read ${fileField} ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`)
    }
  }
  return config
}

// `prune` with the gateway stopped: the store, the log key and the retention of the config.
async function pruneOffline (config: Record<string, unknown>, request: { deviceId?: string, throughSeq?: number, reason?: string, dryRun: boolean }): Promise<PruneResult[]> {
  let o: ResolvedGatewayOptions
  try {
    o = resolveGatewayOptions(config as unknown as GatewayOptions)
  } catch (e) {
    throw configError((e as Error).message)
  }
  const key = await loadOrCreateLogKey(o.logKeyFile)
  let store: Store
  let anchoredSeqOf: ((deviceId: string) => Promise<number>) | undefined
  if (o.postgresUrl === undefined) {
    store = await GatewayStore.open({ dir: join(o.stateDir, 'store'), syncWrites: o.syncWrites })
  } else {
    // The tier: anchored means in the tip tree of the newest confirmed batch (docs/GATEWAY.md §PostgreSQL tier).
    const pgStore = await PostgresGatewayStore.open({ url: o.postgresUrl, node: `${o.name}/prune` })
    const anchors = new PgAnchorStateStore(pgStore.pool, () => undefined)
    anchoredSeqOf = async (d) => { const c = await anchors.confirmedThrough(); return c === 0 ? -1 : await pgStore.tipSeqAt(d, c) }
    store = pgStore
  }
  try {
    const pruner = await Pruner.open({
      store, signer: key.signer, gatewayId: o.gatewayId, retentionDays: o.retentionDays,
      ...(anchoredSeqOf === undefined ? {} : { anchoredSeqOf, keepWaiting: false })
    })
    if (request.deviceId === undefined && store instanceof PostgresGatewayStore) {
      const out: PruneResult[] = []
      for (const deviceId of await store.deviceIdsWithRecords()) {
        const r = await pruner.prune({ deviceId, ...(request.reason === undefined ? {} : { reason: request.reason }), dryRun: request.dryRun })
        if (r !== undefined) out.push(r)
      }
      return out
    }
    const { deviceId, ...rest } = request
    if (deviceId === undefined) return await pruner.pruneAll(rest)
    const r = await pruner.prune({ deviceId, ...rest })
    return r === undefined ? [] : [r]
  } finally {
    await store.close()
  }
}

// `log-key`: what an operator registers on chain and configures on devices, before the first start.
async function logKeyOf (config: Record<string, unknown>): Promise<{ gatewayId: string, publicKey: string, logKeyFile: string, createdMs: number }> {
  let o: ResolvedGatewayOptions
  try {
    o = resolveGatewayOptions(config as unknown as GatewayOptions)
  } catch (e) {
    throw configError((e as Error).message)
  }
  const key = await loadOrCreateLogKey(o.logKeyFile)
  return { gatewayId: o.gatewayId, publicKey: Buffer.from(key.publicKey).toString('hex'), logKeyFile: o.logKeyFile, createdMs: key.createdMs }
}

/** Entry point (gateway/main.ts): `provenance-gateway start --config gateway.json`. */
export async function main (argv: string[] = process.argv.slice(2)): Promise<never> {
  let code: number
  try {
    code = await runCli(argv, { stdout: pino.destination({ dest: 1, sync: true }), stderr: pino.destination({ dest: 2, sync: true }), env: process.env })
  } catch (e) {
    const c = e instanceof GatewayError || e instanceof CommonError ? e.code : 'INTERNAL'
    process.stderr.write(`${c}: ${(e as Error).message}\n`)
    code = 1
  }
  process.exit(code)
}

if (isEntryPoint(import.meta.url)) {
  void main()
}
