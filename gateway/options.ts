/**
 * GatewayOptions: every setting of the gateway with its unit in its name and its default as a
 * DEFAULT_* constant, resolved and checked once when a Gateway is constructed.
 */
import { join } from 'node:path'
import { DEVICE_ID_PATTERN, LIMITS, MAX_BATCH_BYTES } from '../protocol/index.js'
import { DEFAULT_BATCH_MAX_AGE_MS, DEFAULT_BATCH_MAX_RECORDS } from './batch/index.js'
import {
  DEFAULT_KEY_CACHE_MAX_BYTES, DEFAULT_KEY_CACHE_TTL_MS, DEFAULT_KEY_LOOKUP_BURST, DEFAULT_KEY_LOOKUPS_PER_SECOND,
  DEFAULT_UNKNOWN_KEY_CACHE_MAX_ENTRIES, DEFAULT_UNKNOWN_KEY_CACHE_TTL_MS, type KeyDirectory
} from './keys/index.js'
import { DEFAULT_RETENTION_DAYS, checkRetentionDays } from './retention/index.js'
import { SILENT_LOGGER, type Logger } from '../common/logger.js'
import { DEFAULT_LEASE_TTL_MS, DEFAULT_PG_POOL_SIZE } from './store/index.js'
import { DEFAULT_VERIFY_WORKERS } from './ingest/verify-pool.js'
import { GATEWAY_CONFIG_FIELDS, type GatewayConfigFieldMeta, type GatewayFileConfig } from './config-schema.js'

export const DEFAULT_MQTT_PROTOCOL_VERSION = 5
export const DEFAULT_SESSION_EXPIRY_SECONDS = 3600
export const DEFAULT_RECONNECT_PERIOD_MS = 1000
export const DEFAULT_MAX_PAYLOAD_BYTES = MAX_BATCH_BYTES
export const DEFAULT_QUARANTINE_MAX_RAW_BYTES = 16 * 1024
export const DEFAULT_QUARANTINE_MAX_ENTRIES = 100_000
export const DEFAULT_MAX_PENDING_PER_DEVICE = 10_000
export const DEFAULT_GAP_REPORT_AFTER_MS = 60_000
export const DEFAULT_MAX_BACKLOG_RECORDS = 8192
export const DEFAULT_HTTP_HOST = '127.0.0.1'
export const DEFAULT_HTTP_PORT = 0
export const DEFAULT_ANCHOR_CONFIRMATIONS = 1
export const DEFAULT_ANCHOR_POLL_INTERVAL_MS = 500

// --- HTTP API: authentication and bounds (issue 9, item 5) ---------------------------------
/** Auth of the HTTP API: `bearer` (a token, default) or `none` (only behind a proxy that authenticates). */
export type HttpAuth = 'bearer' | 'none'
export const DEFAULT_HTTP_AUTH: HttpAuth = 'bearer'
/** File in the state folder that holds the API token when none is configured (created 0600). */
export const HTTP_TOKEN_FILE = 'api-token'
/** Shortest token accepted: a guessable token is no authentication. */
export const MIN_HTTP_TOKEN_CHARS = 16
export const DEFAULT_HTTP_MAX_PAGE_BYTES = 4 * 1024 * 1024
export const DEFAULT_HTTP_MAX_HEADER_BYTES = 16 * 1024
export const DEFAULT_HTTP_REQUEST_TIMEOUT_MS = 30_000
export const DEFAULT_HTTP_MAX_CONNECTIONS = 128
export const DEFAULT_HTTP_MAX_CONCURRENT_PAGES = 4
// --- end HTTP API ---------------------------------------------------------------------------

export { DEFAULT_BATCH_MAX_AGE_MS, DEFAULT_BATCH_MAX_RECORDS, DEFAULT_KEY_CACHE_TTL_MS, DEFAULT_UNKNOWN_KEY_CACHE_TTL_MS }

// Memory budgets (docs/GATEWAY.md §Memory): what the gateway holds is bounded in bytes, not only in records.
export const DEFAULT_MAX_PENDING_BYTES_PER_DEVICE = 16 * 1024 * 1024
export const DEFAULT_MAX_PENDING_BYTES_TOTAL = 256 * 1024 * 1024
export const DEFAULT_MAX_BACKLOG_BYTES = 64 * 1024 * 1024
export const DEFAULT_DRAIN_CHUNK_BYTES = 4 * 1024 * 1024
export { DEFAULT_VERIFY_WORKERS }
export { DEFAULT_KEY_CACHE_MAX_BYTES, DEFAULT_UNKNOWN_KEY_CACHE_MAX_ENTRIES, DEFAULT_KEY_LOOKUPS_PER_SECOND, DEFAULT_KEY_LOOKUP_BURST }

/** Gateway names are safe as MQTT client ids, checkpoint origins and file names. */
export const GATEWAY_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
const SHARE_GROUP_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

export interface GatewayOptions {
  /**
   * Name of this gateway, unique in the fleet: MQTT client id `provenance-gateway-<name>`, the
   * checkpoint origin `edge-provenance/<name>/batch/<n>`, the marker on its acks. 1..64 of [A-Za-z0-9._-].
   */
  name: string
  /** Folder of the gateway's state: `store/` (records, batches, quarantine) and `anchor/` (the anchorer). */
  stateDir: string
  /**
   * PostgreSQL URL (`postgres://user:pass@host:port/db`): keep records, batches, quarantine and
   * anchoring state in that database instead of LevelDB under stateDir (the scale-out tier,
   * docs/GATEWAY.md §PostgreSQL tier). Gateways sharing one database are ingest workers; the one
   * holding the sequencer lease batches and anchors. Absent: LevelDB (the single-node default). Never logged.
   */
  postgresUrl?: string
  /** PostgreSQL tier: sequencer lease time to live, ms; a dead holder is replaced within about this. Default 5000. */
  sequencerLeaseTtlMs?: number
  /** PostgreSQL tier: connections per gateway process. Default 4. */
  postgresPoolSize?: number
  /** Broker URL (`mqtt://host:port`, `mqtts://…`). Absent: an embedded aedes broker on 127.0.0.1, port from the OS. */
  brokerUrl?: string
  /** MQTT version towards `brokerUrl`: 5 (default) or 4 (3.1.1: no shared subscriptions). The embedded broker uses 4. */
  mqttProtocolVersion?: 4 | 5
  mqttUsername?: string
  /** Never logged. */
  mqttPassword?: string
  /**
   * Shared subscription group (`$share/<group>/prov/v1/+/records`) for several gateways on one
   * broker; also makes the gateway follow its peers' acks. Needs an MQTT 5 broker.
   */
  shareGroup?: string
  /** How long the broker keeps this gateway's session (and queues its messages) while it is away, in seconds. Default 3600. */
  sessionExpirySeconds?: number
  /** Pause between broker reconnection attempts, ms. Default 1000. */
  reconnectPeriodMs?: number
  /** JSON-RPC URL of the chain that holds the registry. */
  rpcUrl: string
  /** Address of the ProvenanceRegistry contract. */
  registry: string
  /** Chain id, when known (skips detection). */
  chainId?: number
  /** Hex private key of an account with ANCHORER_ROLE. Absent: batches are sealed but not anchored. Never logged. */
  anchorPrivateKey?: string
  /** Confirmations before a batch counts as anchored. Default 1 (use 12+ on a public chain). */
  anchorConfirmations?: number
  /** How often the anchorer polls the chain when idle, ms. Default 500. */
  anchorPollIntervalMs?: number
  /** Where device keys come from. Default: the registry at `registry`, cached. */
  keyDirectory?: KeyDirectory
  /** How long a device key answer stays fresh, ms. Default 60 000 (also bounds how late a revocation takes effect). */
  keyCacheTtlMs?: number
  /** How long "unknown device" stays fresh, ms. Default 5 000. */
  unknownKeyCacheTtlMs?: number
  /** Largest records payload accepted, bytes; larger ones are quarantined. Default 4 MiB (protocol MAX_BATCH_BYTES). */
  maxPayloadBytes?: number
  /** Bytes of the offending input kept per quarantine entry. Default 16 KiB. */
  quarantineMaxRawBytes?: number
  /** Quarantine entries kept; beyond, the oldest are deleted (bounds the disk a flood of bad input can take). Default 100 000. */
  quarantineMaxEntries?: number
  /** Most records waiting ahead of one device's tip. Default 10 000. */
  maxPendingPerDevice?: number
  /** A gap (missing records before waiting ones) open this long is reported (log, metric, status), ms. Default 60 000. */
  gapReportAfterMs?: number
  /** Seal the open batch at this many records. Default 10 000. */
  batchMaxRecords?: number
  /** Seal the open batch when its first record is this old, ms. Default 60 000. */
  batchMaxAgeMs?: number
  /**
   * Stop reading from the broker while this many received records wait to be processed. Default
   * 8192: enough to keep the verify pool fed (it holds 8192 signatures queued); a deeper backlog
   * only keeps more decoded records alive for the garbage collector to copy.
   */
  maxBacklogRecords?: number
  /**
   * Retention period, days: records, proofs and anchors are kept at least this long after their
   * batch was sealed (docs/GATEWAY.md §Retention). Default and minimum 183 (six months, EU AI Act
   * Art. 19(1), 26(6)); a shorter value is refused.
   */
  retentionDays?: number
  /** Run the pruning of every device this often, ms; 0 (default): only `provenance-gateway prune` prunes. */
  pruneIntervalMs?: number
  /** Address of the HTTP API. Default 127.0.0.1. */
  httpHost?: string
  /** Port of the HTTP API; 0 lets the OS pick. Default 0. */
  httpPort?: number
  // --- HTTP API: authentication and bounds (issue 9, item 5); docs/GATEWAY.md §HTTP API ---
  /** `bearer` (default): every route not made public below needs `Authorization: Bearer <token>`. `none`: no check. */
  httpAuth?: HttpAuth
  /**
   * The bearer token (at least 16 characters, no white space). Absent with `bearer`: the gateway
   * reads `<stateDir>/api-token`, creating it (random, mode 0600) the first time. Never logged.
   */
  httpToken?: string
  /** `/healthz` answers without a token. Default true (load balancers, systemd checks). */
  httpPublicHealth?: boolean
  /** `/v1/proof/...` answers without a token (proofs reveal one record's hash and its batch). Default false. */
  httpPublicProofs?: boolean
  /** `/metrics` answers without a token. Default false. */
  httpPublicMetrics?: boolean
  /** Most payload bytes (envelopes, quarantined raw input) in one listing page; at least one item is always sent. Default 4 MiB. */
  httpMaxPageBytes?: number
  /** Largest request head (request line and headers), bytes; larger ones get 431. Default 16 KiB. */
  httpMaxHeaderBytes?: number
  /** A request must be received whole within this, ms (slow clients get 408). Default 30 000. */
  httpRequestTimeoutMs?: number
  /** Open connections at most; beyond, new ones are closed at once. Default 128. */
  httpMaxConnections?: number
  /** Listing pages built at the same time at most (the others wait their turn): bounds the memory of big listings. Default 4. */
  httpMaxConcurrentPages?: number
  // --- end HTTP API ---
  /** fsync each write batch (group commit amortises it). Default true. */
  syncWrites?: boolean
  /** Also export process metrics (CPU, memory, event loop). Default true. */
  processMetrics?: boolean
  logger?: Logger

  // --- Signed acks and the log key (docs/GATEWAY.md §Log key) ---
  /** File of the gateway's log key (Ed25519; signs every ack); created with mode 0600 when missing. Default `<stateDir>/log-key.json`. */
  logKeyFile?: string
  /**
   * Id under which the log key is registered on chain (ProvenanceRegistry.registerDevice), named
   * in every ack. Same alphabet as device ids. Default `gateway.<name>`.
   */
  gatewayId?: string
  /** Hex log keys (64 hex digits each) of the other gateways of the share group: their retained acks count as the shared tip. Own key always counts. Default none. */
  peerGatewayKeys?: string[]
  // ---- Memory budgets (docs/GATEWAY.md §Memory) ----
  /** Bytes of records waiting ahead of one device's tip (envelope + 512 each); beyond, dropped unacknowledged. Default 16 MiB. */
  maxPendingBytesPerDevice?: number
  /** Bytes of records waiting ahead of their tips over all devices; beyond, dropped unacknowledged. Default 256 MiB. */
  maxPendingBytesTotal?: number
  /** Stop reading from the broker while received records of this many bytes (as counted) wait to be processed. Default 64 MiB. */
  maxBacklogBytes?: number
  /** Linking waiting records pauses for a store write once this many bytes are queued for it. Default 4 MiB. */
  drainChunkBytes?: number
  /** Bytes of device key histories cached (as counted); the least recently used go first. Default 32 MiB. */
  keyCacheMaxBytes?: number
  /** Ids the registry does not know, remembered for unknownKeyCacheTtlMs (negative cache). Default 20 000. */
  unknownKeyCacheMaxEntries?: number
  /** Registry look-ups per second over all devices; records beyond wait for the device to resend. Default 50. */
  keyLookupsPerSecond?: number
  /** Registry look-ups that may start at once. Default 200. */
  keyLookupBurst?: number
  /** Worker threads that verify record signatures (gateway/ingest/verify-pool.ts); 0 verifies on the main thread. Default: one per core. */
  verifyWorkers?: number
}

/** The id a gateway's log key is registered under by default. */
export function defaultGatewayId (name: string): string {
  return `gateway.${name}`
}

export type ResolvedGatewayOptions = Required<Omit<GatewayOptions,
  'brokerUrl' | 'mqttUsername' | 'mqttPassword' | 'shareGroup' | 'chainId' | 'anchorPrivateKey' | 'keyDirectory' | 'httpToken' | 'postgresUrl'>> &
  Pick<GatewayOptions, 'brokerUrl' | 'mqttUsername' | 'mqttPassword' | 'shareGroup' | 'chainId' | 'anchorPrivateKey' | 'keyDirectory' | 'httpToken' | 'postgresUrl'>

/**
 * Applies defaults and checks every field.
 * @throws TypeError / RangeError naming the bad field.
 */
export function resolveGatewayOptions (options: GatewayOptions): ResolvedGatewayOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object')
  const o = { ...gatewayDefaults(), ...stripUndefined(options) } as ResolvedGatewayOptions
  o.logKeyFile ??= typeof o.stateDir === 'string' ? join(o.stateDir, 'log-key.json') : o.logKeyFile
  o.gatewayId ??= defaultGatewayId(o.name)
  checkGatewayOptions(o)
  return o
}

/** The defaults of every optional field (a fresh object: it holds an array). */
function gatewayDefaults (): Partial<ResolvedGatewayOptions> {
  return {
    mqttProtocolVersion: DEFAULT_MQTT_PROTOCOL_VERSION,
    sessionExpirySeconds: DEFAULT_SESSION_EXPIRY_SECONDS,
    reconnectPeriodMs: DEFAULT_RECONNECT_PERIOD_MS,
    anchorConfirmations: DEFAULT_ANCHOR_CONFIRMATIONS,
    anchorPollIntervalMs: DEFAULT_ANCHOR_POLL_INTERVAL_MS,
    keyCacheTtlMs: DEFAULT_KEY_CACHE_TTL_MS,
    unknownKeyCacheTtlMs: DEFAULT_UNKNOWN_KEY_CACHE_TTL_MS,
    maxPayloadBytes: DEFAULT_MAX_PAYLOAD_BYTES,
    quarantineMaxRawBytes: DEFAULT_QUARANTINE_MAX_RAW_BYTES,
    quarantineMaxEntries: DEFAULT_QUARANTINE_MAX_ENTRIES,
    maxPendingPerDevice: DEFAULT_MAX_PENDING_PER_DEVICE,
    gapReportAfterMs: DEFAULT_GAP_REPORT_AFTER_MS,
    batchMaxRecords: DEFAULT_BATCH_MAX_RECORDS,
    batchMaxAgeMs: DEFAULT_BATCH_MAX_AGE_MS,
    maxBacklogRecords: DEFAULT_MAX_BACKLOG_RECORDS,
    retentionDays: DEFAULT_RETENTION_DAYS,
    pruneIntervalMs: 0,
    httpHost: DEFAULT_HTTP_HOST,
    httpPort: DEFAULT_HTTP_PORT,
    // HTTP API (issue 9, item 5)
    httpAuth: DEFAULT_HTTP_AUTH,
    httpPublicHealth: true,
    httpPublicProofs: false,
    httpPublicMetrics: false,
    httpMaxPageBytes: DEFAULT_HTTP_MAX_PAGE_BYTES,
    httpMaxHeaderBytes: DEFAULT_HTTP_MAX_HEADER_BYTES,
    httpRequestTimeoutMs: DEFAULT_HTTP_REQUEST_TIMEOUT_MS,
    httpMaxConnections: DEFAULT_HTTP_MAX_CONNECTIONS,
    httpMaxConcurrentPages: DEFAULT_HTTP_MAX_CONCURRENT_PAGES,
    syncWrites: true,
    sequencerLeaseTtlMs: DEFAULT_LEASE_TTL_MS,
    postgresPoolSize: DEFAULT_PG_POOL_SIZE,
    processMetrics: true,
    logger: SILENT_LOGGER,
    peerGatewayKeys: [],
    maxPendingBytesPerDevice: DEFAULT_MAX_PENDING_BYTES_PER_DEVICE,
    maxPendingBytesTotal: DEFAULT_MAX_PENDING_BYTES_TOTAL,
    maxBacklogBytes: DEFAULT_MAX_BACKLOG_BYTES,
    drainChunkBytes: DEFAULT_DRAIN_CHUNK_BYTES,
    keyCacheMaxBytes: DEFAULT_KEY_CACHE_MAX_BYTES,
    unknownKeyCacheMaxEntries: DEFAULT_UNKNOWN_KEY_CACHE_MAX_ENTRIES,
    keyLookupsPerSecond: DEFAULT_KEY_LOOKUPS_PER_SECOND,
    keyLookupBurst: DEFAULT_KEY_LOOKUP_BURST,
    verifyWorkers: DEFAULT_VERIFY_WORKERS,
  }
}

/** Checks every field of resolved options, in a fixed order (the first bad one is named). */
function checkGatewayOptions (o: ResolvedGatewayOptions): void {
  const str = (k: keyof GatewayOptions, required: boolean): void => {
    const v = o[k]
    if (v === undefined && !required) return
    if (typeof v !== 'string' || v.length === 0) throw new TypeError(`${k} must be a non-empty string`)
  }
  str('name', true)
  if (!GATEWAY_NAME_PATTERN.test(o.name)) throw new RangeError(`name must match ${GATEWAY_NAME_PATTERN.source}`)
  str('stateDir', true)
  str('rpcUrl', true)
  str('registry', true)
  str('brokerUrl', false)
  str('mqttUsername', false)
  str('mqttPassword', false)
  str('anchorPrivateKey', false)
  str('shareGroup', false)
  str('postgresUrl', false)
  if (o.postgresUrl !== undefined && !/^postgres(ql)?:\/\//.test(o.postgresUrl)) throw new RangeError('postgresUrl must be a postgres:// URL')
  if (o.shareGroup !== undefined) {
    if (!SHARE_GROUP_PATTERN.test(o.shareGroup)) throw new RangeError(`shareGroup must match ${SHARE_GROUP_PATTERN.source}`)
    if (o.brokerUrl === undefined) throw new RangeError('shareGroup needs brokerUrl: the embedded broker has no shared subscriptions')
    if (o.mqttProtocolVersion !== 5) throw new RangeError('shareGroup needs mqttProtocolVersion 5')
  }
  if (o.mqttProtocolVersion !== 4 && o.mqttProtocolVersion !== 5) throw new RangeError('mqttProtocolVersion must be 4 or 5')
  const int = (k: keyof GatewayOptions, min: number, max = Number.MAX_SAFE_INTEGER): void => {
    const v = o[k]
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) throw new RangeError(`${k} must be an integer in ${min}..${max}`)
  }
  // The integer ranges are the config schema's (gateway/config-schema.ts), so the docs table shows what is enforced.
  for (const [k, f] of Object.entries(GATEWAY_CONFIG_FIELDS) as Array<[keyof GatewayFileConfig, GatewayConfigFieldMeta]>) {
    if (f.min === undefined || (k === 'chainId' && o.chainId === undefined)) continue
    int(k as keyof GatewayOptions, f.min, f.max)
  }
  checkRetentionDays(o.retentionDays)
  str('httpHost', true)
  // --- HTTP API (issue 9, item 5)
  if (o.httpAuth !== 'bearer' && o.httpAuth !== 'none') throw new RangeError('httpAuth must be bearer or none')
  if (o.httpToken !== undefined && (typeof o.httpToken !== 'string' || o.httpToken.length < MIN_HTTP_TOKEN_CHARS || o.httpToken.length > 4096 || !/^[\x21-\x7e]+$/.test(o.httpToken))) {
    // The message never shows the token.
    throw new RangeError(`httpToken must be ${MIN_HTTP_TOKEN_CHARS}..4096 printable ASCII characters without spaces`)
  }
  for (const k of ['httpPublicHealth', 'httpPublicProofs', 'httpPublicMetrics'] as const) {
    if (typeof o[k] !== 'boolean') throw new TypeError(`${k} must be a boolean`)
  }
  // --- end HTTP API
  if (typeof o.syncWrites !== 'boolean') throw new TypeError('syncWrites must be a boolean')
  if (typeof o.processMetrics !== 'boolean') throw new TypeError('processMetrics must be a boolean')
  const l = o.logger as Partial<Logger>
  if (typeof l !== 'object' || l === null || !(['info', 'warn', 'error'] as const).every(m => typeof l[m] === 'function')) {
    throw new TypeError('logger must have info, warn and error methods')
  }
  if (o.keyDirectory !== undefined && typeof o.keyDirectory.keyAt !== 'function') throw new TypeError('keyDirectory must have keyAt')
  // Signed acks
  str('logKeyFile', true)
  if (!DEVICE_ID_PATTERN.test(o.gatewayId) || o.gatewayId.length > LIMITS.deviceIdChars) throw new RangeError(`gatewayId must match ${DEVICE_ID_PATTERN.source} (at most ${LIMITS.deviceIdChars} characters)`)
  if (!Array.isArray(o.peerGatewayKeys) || !o.peerGatewayKeys.every(k => typeof k === 'string' && /^[0-9a-fA-F]{64}$/.test(k))) {
    throw new TypeError('peerGatewayKeys must be an array of 64-hex-digit Ed25519 public keys')
  }
}

function stripUndefined<T extends object> (o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>
}
