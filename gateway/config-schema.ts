/**
 * What a gateway config file (and PROVENANCE_GATEWAY_* variables) may set, as one zod schema: each
 * field's kind, check and meaning. The file-config type, the CLI's checks of the file and the
 * environment, --help's option list and the table in docs/OPERATIONS.md all come from it.
 */
import { z } from 'zod'
import { LOG_LEVELS } from '../common/logger.js'
import type { GatewayOptions, HttpAuth } from './options.js'

const ENV_PREFIX = 'PROVENANCE_GATEWAY_'

/** How a field is read from the environment: a list is comma-separated there, a JSON array in the file. */
export type ConfigKind = 'string' | 'int' | 'bool' | 'list'
/** What a field's meta holds: its kind and its meaning (markdown; the default first). */
export interface GatewayConfigFieldMeta { kind: ConfigKind, doc: string }

const isInt = (v: unknown): boolean => Number.isSafeInteger(v)
// The kind checks only: ranges and relations between fields are resolveGatewayOptions' (it also
// guards options passed in code), so the messages of both paths stay the same.
function str<T extends string = string> (doc: string): z.ZodOptional<z.ZodType<T>> {
  return z.custom<T>(v => typeof v === 'string', { error: 'must be a string' }).optional().meta({ kind: 'string', doc })
}
function int<T extends number = number> (doc: string): z.ZodOptional<z.ZodType<T>> {
  return z.custom<T>(isInt, { error: 'must be an integer' }).optional().meta({ kind: 'int', doc })
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
  sequencerLeaseTtlMs: int('5000; PostgreSQL tier: sequencer lease lifetime; a dead holder is replaced within about this'),
  postgresPoolSize: int('4; PostgreSQL tier: connections per gateway process'),
  brokerUrl: str('`mqtt://…`/`mqtts://…`; unset: an embedded aedes broker on 127.0.0.1 (MQTT 3.1.1, demo only)'),
  mqttProtocolVersion: int<4 | 5>('5; 4 for MQTT 3.1.1 brokers'),
  mqttUsername: str('broker user name'),
  mqttPassword: str('broker password (prefer `mqttPasswordFile`); never logged'),
  mqttPasswordFile: str('file holding the broker password (0600)'),
  shareGroup: str('`$share/<group>/prov/v1/+/records`; also follow peers\' acks (several gateways, MQTT 5)'),
  sessionExpirySeconds: int('3600; how long the broker keeps the session and queues for the gateway while it is away'),
  reconnectPeriodMs: int('1000; pause between broker reconnection attempts'),
  rpcUrl: str('required; JSON-RPC URL of the chain that holds the registry'),
  registry: str('required; address of the ProvenanceRegistry contract'),
  chainId: int('detected; the chain id'),
  anchorPrivateKey: str('ANCHORER_ROLE key (prefer `anchorPrivateKeyFile`); unset: batches are sealed but not anchored; never logged'),
  anchorPrivateKeyFile: str('file holding the anchor key (0600)'),
  anchorConfirmations: int('1; confirmations before a batch counts as anchored (12+ on a public chain)'),
  anchorPollIntervalMs: int('500; anchorer poll pause when idle'),
  keyCacheTtlMs: int('60000; freshness of a device key answer (bounds how late a revocation is seen)'),
  unknownKeyCacheTtlMs: int('5000; freshness of "unknown device"'),
  maxPayloadBytes: int('4 MiB; larger records payloads are quarantined'),
  quarantineMaxRawBytes: int('16 KiB; offending bytes kept per quarantine entry'),
  quarantineMaxEntries: int('100000; quarantine entries kept, the oldest deleted beyond'),
  maxPendingPerDevice: int('10000; records waiting ahead of one device\'s tip'),
  gapReportAfterMs: int('60000; a gap open this long is reported'),
  batchMaxRecords: int('10000; seal the open batch at this many records'),
  batchMaxAgeMs: int('60000; seal when the first record of the open batch is this old'),
  maxBacklogRecords: int('50000; stop reading MQTT while this many received records wait'),
  retentionDays: int('183 (also the minimum); keep records, proofs and anchors this long after their batch was sealed'),
  pruneIntervalMs: int('0 (off); prune every device this often; 0: only `provenance-gateway prune` prunes'),
  httpHost: str('127.0.0.1; address of the HTTP API'),
  httpPort: int('0 (OS-chosen); port of the HTTP API'),
  httpAuth: str<HttpAuth>('`bearer` (default): routes not made public need `Authorization: Bearer <token>`; `none`: only behind a proxy that authenticates'),
  httpToken: str('the API token, 16..4096 printable characters (prefer `httpTokenFile`); never logged'),
  httpTokenFile: str('file holding the API token; unset: `<stateDir>/api-token`, created 0600 on first start'),
  httpPublicHealth: bool('true; `/healthz` answers without a token'),
  httpPublicProofs: bool('false; `/v1/proof/*` answers without a token'),
  httpPublicMetrics: bool('false; `/metrics` answers without a token'),
  httpMaxPageBytes: int('4 MiB; payload bytes in one listing page (at least one item is sent)'),
  httpMaxHeaderBytes: int('16 KiB; largest request head (431 beyond)'),
  httpRequestTimeoutMs: int('30000; a request must arrive whole within this (408 beyond)'),
  httpMaxConnections: int('128; open connections at most'),
  httpMaxConcurrentPages: int('4; listing pages built at once, the others wait their turn'),
  syncWrites: bool('true; fsync each write batch'),
  processMetrics: bool('true; process metrics (CPU, memory, event loop) in `/metrics`'),
  logLevel: z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(', ')}` }).optional().meta({ kind: 'string', doc: `${LOG_LEVELS.map(l => `\`${l}\``).join(', ')}; default \`info\`` }),
  logKeyFile: str('`<stateDir>/log-key.json`; the gateway\'s log key (Ed25519, signs every ack), created 0600 when missing'),
  gatewayId: str('`gateway.<name>`; id the log key is registered under on chain, named in every ack'),
  peerGatewayKeys: list('none; hex log keys of the other gateways of the share group (variable: comma-separated)'),
  maxPendingBytesPerDevice: int('16 MiB; bytes of records waiting ahead of one device\'s tip; beyond, dropped unacknowledged'),
  maxPendingBytesTotal: int('256 MiB; the same over all devices'),
  maxBacklogBytes: int('64 MiB; stop reading MQTT while received records of this many bytes wait'),
  drainChunkBytes: int('4 MiB; linking waiting records pauses for a store write once this many bytes are queued'),
  keyCacheMaxBytes: int('32 MiB; device key histories cached, least recently used go first'),
  unknownKeyCacheMaxEntries: int('20000; ids the registry does not know, remembered for `unknownKeyCacheTtlMs`'),
  keyLookupsPerSecond: int('50; registry look-ups started per second over all devices'),
  keyLookupBurst: int('200; registry look-ups that may start at once'),
  verifyWorkers: int('one per core; worker threads that verify record signatures, 0: the main thread')
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
  const rows = Object.entries(GATEWAY_CONFIG_FIELDS).map(([name, f]) => `| \`${name}\` | \`${f.env}\` | ${f.doc} |`)
  return ['| field | variable | default; meaning |', '|---|---|---|', ...rows].join('\n') + '\n'
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
