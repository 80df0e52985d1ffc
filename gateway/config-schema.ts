/**
 * What a gateway config file (and PROVENANCE_GATEWAY_* variables) may set, as one zod schema: each
 * field's kind, check, meaning and integer range. The file-config type, the CLI's checks of the file and the
 * environment, --help's option list and the table in docs/OPERATIONS.md all come from it.
 */
import { z } from 'zod'
import { LOG_LEVELS } from '../common/logger.js'
import { MAX_BATCH_BYTES } from '../protocol/index.js'
import type { GatewayOptions, HttpAuth } from './options.js'

const ENV_PREFIX = 'PROVENANCE_GATEWAY_'

/** How a field is read from the environment: a list is comma-separated there, a JSON array in the file. */
export type ConfigKind = 'string' | 'int' | 'bool' | 'list'
/** What a field's meta holds: its kind, its meaning (markdown; the default first) and, for an integer, its range. */
export interface GatewayConfigFieldMeta { kind: ConfigKind, doc: string, min?: number, max?: number }

const isInt = (v: unknown): boolean => Number.isSafeInteger(v)
// The schema checks the kinds; resolveGatewayOptions (which also guards options passed in code)
// checks the integer ranges kept here and the relations between fields, with its own messages.
function str<T extends string = string> (doc: string): z.ZodOptional<z.ZodType<T>> {
  return z.custom<T>(v => typeof v === 'string', { error: 'must be a string' }).optional().meta({ kind: 'string', doc })
}
/** An integer; `min..max`, when given, is the range resolveGatewayOptions enforces (and the docs table shows). */
function int<T extends number = number> (doc: string, min?: number, max = Number.MAX_SAFE_INTEGER): z.ZodOptional<z.ZodType<T>> {
  return z.custom<T>(isInt, { error: 'must be an integer' }).optional().meta({ kind: 'int', doc, ...(min === undefined ? {} : { min, max }) })
}
function bool (doc: string): z.ZodOptional<z.ZodType<boolean>> {
  return z.custom<boolean>(v => typeof v === 'boolean', { error: 'must be a boolean' }).optional().meta({ kind: 'bool', doc })
}
function list (doc: string): z.ZodOptional<z.ZodType<string[]>> {
  return z.custom<string[]>(v => Array.isArray(v) && v.every(x => typeof x === 'string'), { error: 'must be an array of strings' }).optional().meta({ kind: 'list', doc })
}

/** The gateway's file configuration, field by field (the order of --help and of the docs table). */
export const GATEWAY_CONFIG_SCHEMA = z.strictObject({
  name: str('required; unique in the fleet and stable, `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`: MQTT client id `provenance-gateway-<name>`, checkpoint origin, marker on its acks'),
  stateDir: str('required; `store/` (records, batches, quarantine), `anchor/` (the anchorer\'s state), default log key and API token'),
  postgresUrl: str('`postgres://…`: keep all state in that PostgreSQL database instead (PostgreSQL tier); never logged'),
  sequencerLeaseTtlMs: int('5000; PostgreSQL tier: sequencer lease lifetime; a dead holder is replaced within about this', 500, 600_000),
  postgresPoolSize: int('4; PostgreSQL tier: connections per gateway process', 2, 100),
  brokerUrl: str('`mqtt://…`/`mqtts://…`; unset: an embedded aedes broker on 127.0.0.1 (MQTT 3.1.1, demo only)'),
  mqttProtocolVersion: int<4 | 5>('5; 4 for MQTT 3.1.1 brokers'),
  mqttUsername: str('broker user name'),
  mqttPassword: str('broker password (prefer `mqttPasswordFile`); never logged'),
  mqttPasswordFile: str('file holding the broker password (0600)'),
  shareGroup: str('`$share/<group>/prov/v1/+/records`; also follow peers\' acks (several gateways, MQTT 5)'),
  sessionExpirySeconds: int('3600; how long the broker keeps the session and queues for the gateway while it is away', 0, 0xffff_ffff),
  reconnectPeriodMs: int('1000; pause between broker reconnection attempts', 1),
  rpcUrl: str('required; JSON-RPC URL of the chain that holds the registry'),
  registry: str('required; address of the ProvenanceRegistry contract'),
  chainId: int('detected; the chain id', 1),
  anchorPrivateKey: str('ANCHORER_ROLE key (prefer `anchorPrivateKeyFile`); unset: batches are sealed but not anchored; never logged'),
  anchorPrivateKeyFile: str('file holding the anchor key (0600)'),
  anchorConfirmations: int('1; confirmations before a batch counts as anchored (12+ on a public chain)', 1, 1000),
  anchorPollIntervalMs: int('500; anchorer poll pause when idle', 1),
  keyCacheTtlMs: int('60000; freshness of a device key answer (bounds how late a revocation is seen)', 0),
  unknownKeyCacheTtlMs: int('5000; freshness of "unknown device"', 0),
  // The protocol caps a records message at MAX_BATCH_BYTES; MQTT's own limit is 256 MiB.
  maxPayloadBytes: int('4 MiB; larger records payloads are quarantined', 1, MAX_BATCH_BYTES),
  quarantineMaxRawBytes: int('16 KiB; offending bytes kept per quarantine entry', 0, 16 * 1024 * 1024),
  quarantineMaxEntries: int('100000; quarantine entries kept, the oldest deleted beyond', 1),
  maxPendingPerDevice: int('10000; records waiting ahead of one device\'s tip', 1),
  gapReportAfterMs: int('60000; a gap open this long is reported', 1),
  batchMaxRecords: int('10000; seal the open batch at this many records', 1, 16_777_216),
  batchMaxAgeMs: int('60000; seal when the first record of the open batch is this old', 1),
  maxBacklogRecords: int('8192; stop reading MQTT while this many received records wait', 2),
  retentionDays: int('183 (also the minimum); keep records, proofs and anchors this long after their batch was sealed'),
  pruneIntervalMs: int('0 (off); prune every device this often; 0: only `provenance-gateway prune` prunes', 0),
  httpHost: str('127.0.0.1; address of the HTTP API'),
  httpPort: int('0 (OS-chosen); port of the HTTP API', 0, 65535),
  httpAuth: str<HttpAuth>('`bearer` (default): routes not made public need `Authorization: Bearer <token>`; `none`: only behind a proxy that authenticates'),
  httpToken: str('the API token, 16..4096 printable characters (prefer `httpTokenFile`); never logged'),
  httpTokenFile: str('file holding the API token; unset: `<stateDir>/api-token`, created 0600 on first start'),
  httpPublicHealth: bool('true; `/healthz` answers without a token'),
  httpPublicProofs: bool('false; `/v1/proof/*` answers without a token'),
  httpPublicMetrics: bool('false; `/metrics` answers without a token'),
  httpMaxPageBytes: int('4 MiB; payload bytes in one listing page (at least one item is sent)', 1024, 256 * 1024 * 1024),
  httpMaxHeaderBytes: int('16 KiB; largest request head (431 beyond)', 1024, 1024 * 1024),
  httpRequestTimeoutMs: int('30000; a request must arrive whole within this (408 beyond)', 100),
  httpMaxConnections: int('128; open connections at most', 1, 65_536),
  httpMaxConcurrentPages: int('4; listing pages built at once, the others wait their turn', 1, 1024),
  syncWrites: bool('true; fsync each write batch'),
  processMetrics: bool('true; process metrics (CPU, memory, event loop) in `/metrics`'),
  logLevel: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).optional().meta({ kind: 'string', doc: `${LOG_LEVELS.map(l => `\`${l}\``).join(', ')}; default \`info\`` }),
  logKeyFile: str('`<stateDir>/log-key.json`; the gateway\'s log key (Ed25519, signs every ack), created 0600 when missing'),
  gatewayId: str('`gateway.<name>`; id the log key is registered under on chain, named in every ack'),
  peerGatewayKeys: list('none; hex log keys of the other gateways of the share group (variable: comma-separated)'),
  maxPendingBytesPerDevice: int('16 MiB; bytes of records waiting ahead of one device\'s tip; beyond, dropped unacknowledged', 1),
  maxPendingBytesTotal: int('256 MiB; the same over all devices', 1),
  maxBacklogBytes: int('64 MiB; stop reading MQTT while received records of this many bytes wait', 1),
  drainChunkBytes: int('4 MiB; linking waiting records pauses for a store write once this many bytes are queued', 1),
  keyCacheMaxBytes: int('32 MiB; device key histories cached, least recently used go first', 1),
  unknownKeyCacheMaxEntries: int('20000; ids the registry does not know, remembered for `unknownKeyCacheTtlMs`', 1),
  keyLookupsPerSecond: int('50; registry look-ups started per second over all devices', 1),
  keyLookupBurst: int('200; registry look-ups that may start at once', 1),
  verifyWorkers: int('one per core; worker threads that verify record signatures, 0: the main thread', 0, 256)
})

/** What a config file may set: GatewayOptions without the objects only code can pass, plus the secret files and the log level. */
export type GatewayFileConfig = z.output<typeof GATEWAY_CONFIG_SCHEMA>
type FileOnly = 'mqttPasswordFile' | 'anchorPrivateKeyFile' | 'httpTokenFile' | 'logLevel'
type Same<A, B> = [A] extends [B] ? [B] extends [A] ? true : false : false
/**
 * Not a second list that can drift: a field added to GatewayOptions (or a changed type) is a
 * compile error here until the schema has it.
 */
export type GatewayConfigMatchesOptions<T extends true = Same<Required<Omit<GatewayFileConfig, FileOnly>>, Required<Omit<GatewayOptions, 'logger' | 'keyDirectory'>>>> = T

/** `anchorPrivateKey` → `PROVENANCE_GATEWAY_ANCHOR_PRIVATE_KEY`. */
export function envNameOf (field: string): string {
  return ENV_PREFIX + field.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()
}

/** Every field: its kind, environment variable and meaning (from the schema's meta). */
export const GATEWAY_CONFIG_FIELDS: Readonly<Record<keyof GatewayFileConfig, GatewayConfigFieldMeta & { env: string }>> = Object.freeze(Object.fromEntries(
  Object.entries(GATEWAY_CONFIG_SCHEMA.shape).map(([name, schema]) => [name, { ...(schema.meta() as unknown as GatewayConfigFieldMeta), env: envNameOf(name) }])
) as Record<keyof GatewayFileConfig, GatewayConfigFieldMeta & { env: string }>)

/** The docs/OPERATIONS.md table of the fields (scripts/gen-config-doc.ts writes it; a test compares). */
export function gatewayConfigDocTable (): string {
  const range = (f: GatewayConfigFieldMeta): string => f.min === undefined ? '' : f.max === Number.MAX_SAFE_INTEGER ? `≥ ${f.min}` : `${f.min}..${f.max}`
  const rows = Object.entries(GATEWAY_CONFIG_FIELDS).map(([name, f]) => `| \`${name}\` | \`${f.env}\` | ${range(f)} | ${f.doc} |`)
  return ['| field | variable | range | default; meaning |', '|---|---|---|---|', ...rows].join('\n') + '\n'
}

/** The schema's issues as `field: message` problems; an unknown key is `key: unknown option` (the CLI's words before the schema). */
export function gatewayConfigProblems (issues: readonly z.core.$ZodIssue[]): string[] {
  const out: string[] = []
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') for (const k of issue.keys) out.push(`${k}: unknown option`)
    else out.push(`${issue.path.map(String).join('.')}: ${issue.message}`)
  }
  return out
}
