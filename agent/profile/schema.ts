/**
 * The firmware profile: what one class of device needs to run the agent well (execution
 * providers, threads, disk budget, sync policy, uplink batching, retention, key location).
 * The schema is data (PROFILE_SCHEMA): the validator walks it, and docs and tests read it.
 */
import { availableParallelism } from 'node:os'
import { ProfileError } from './errors.js'

export const PROFILE_SCHEMA_VERSION = 1

/** `threads.intraOp` value for every core but one (at least 1). */
export const INTRA_OP_ALL_BUT_ONE = -1

/** onnxruntime execution provider names a profile may list (a build may lack some: they are skipped with a warning). */
export const KNOWN_EXECUTION_PROVIDERS: readonly string[] = Object.freeze([
  'tensorrt', 'cuda', 'rocm', 'migraphx', 'openvino', 'dml', 'coreml', 'qnn', 'nnapi', 'acl', 'armnn', 'xnnpack', 'webgpu', 'webnn', 'cpu'
])

export type BudgetMode = 'fail-closed' | 'fail-open'
export type KeepUntil = 'stored' | 'anchored'

export interface FirmwareProfile {
  schemaVersion: 1
  /** File name without `.json`; recorded in every boot record. */
  name: string
  description: string
  /** onnxruntime execution providers, most preferred first; unavailable ones fall back with a warning. */
  executionProviders: string[]
  threads: {
    /**
     * Threads inside one operator; 0 = onnxruntime's default (one per core); -1
     * (INTRA_OP_ALL_BUT_ONE) = every core but one, at least 1: a core left to the agent's main
     * thread (input hashing, commits, uplink, API). See profileThreadOptions.
     */
    intraOp: number
    /** Threads across independent operators; 0 = onnxruntime's default. */
    interOp: number
    /** Linux nice value of each model worker and its onnxruntime threads (0..19; 0 = the agent's own). */
    niceness: number
  }
  storage: {
    /** Most bytes the record log may take on disk. */
    budgetBytes: number
    /** When the budget is full: refuse new records (`fail-closed`) or drop the oldest unsent ones behind a signed gap record (`fail-open`). */
    budgetMode: BudgetMode
    /** fsync every group-commit batch (power-loss safe). */
    syncWrites: boolean
    /** Most records in one group-commit write (one fsync). */
    maxBatchRecords: number
  }
  uplink: {
    /** Records per MQTT message. */
    batchRecords: number
    /** Messages sent but not yet acknowledged. */
    maxInFlightBatches: number
    /** Keep records on the device until the gateway has `stored` them, or until they are `anchored` on chain. */
    keepUntil: KeepUntil
    reconnectMinMs: number
    reconnectMaxMs: number
  }
  keys: {
    /** Key file, relative to the state dir (or absolute, e.g. a read-only factory-provisioned key). */
    path: string
    /**
     * Where the device identity lives (docs/IDENTITY.md): `file` (the Ed25519 key file signs every
     * record: development, devices without a TPM) or `tpm` (a P-256 identity key in the TPM
     * certifies a fresh in-memory Ed25519 record key at each boot).
     */
    keyStore: KeyStore
    /** tpm2-tools TCTI of the TPM with keyStore `tpm`: `device:/dev/tpmrm0` (the kernel's resource manager). */
    tpmTcti: string
  }
}

export type KeyStore = 'file' | 'tpm'

/** A field of the schema: its type, bounds and one line of documentation. */
export type FieldSpec =
  | { kind: 'integer', min: number, max: number, doc: string }
  | { kind: 'boolean', doc: string }
  | { kind: 'string', pattern?: RegExp, maxLength: number, doc: string }
  | { kind: 'enum', values: readonly string[], doc: string }
  | { kind: 'providers', doc: string }
  | { kind: 'object', fields: Record<string, FieldSpec>, doc: string }

const MIB = 1024 * 1024

/** The schema of a firmware profile, field by field. */
export const PROFILE_SCHEMA: Extract<FieldSpec, { kind: 'object' }> = {
  kind: 'object',
  doc: 'a firmware profile',
  fields: {
    schemaVersion: { kind: 'integer', min: PROFILE_SCHEMA_VERSION, max: PROFILE_SCHEMA_VERSION, doc: `always ${PROFILE_SCHEMA_VERSION}` },
    name: { kind: 'string', pattern: /^[a-z0-9][a-z0-9._-]*$/, maxLength: 64, doc: 'profile name (lower-case letters, digits, . _ -)' },
    description: { kind: 'string', maxLength: 500, doc: 'what device class this is for' },
    executionProviders: { kind: 'providers', doc: `onnxruntime execution providers in order of preference, from ${KNOWN_EXECUTION_PROVIDERS.join(', ')}` },
    threads: {
      kind: 'object',
      doc: 'onnxruntime thread pools',
      fields: {
        intraOp: { kind: 'integer', min: INTRA_OP_ALL_BUT_ONE, max: 1024, doc: 'threads inside one operator; 0 = onnxruntime default (one per core); -1 = every core but one (at least 1)' },
        interOp: { kind: 'integer', min: 0, max: 1024, doc: 'threads across operators; 0 = onnxruntime default' },
        niceness: { kind: 'integer', min: 0, max: 19, doc: 'Linux nice value of the model workers and their onnxruntime threads; 0 = the agent\'s own' }
      }
    },
    storage: {
      kind: 'object',
      doc: 'the record log on disk',
      fields: {
        budgetBytes: { kind: 'integer', min: 16 * MIB, max: Number.MAX_SAFE_INTEGER, doc: 'most bytes the record log may take (at least 16 MiB)' },
        budgetMode: { kind: 'enum', values: ['fail-closed', 'fail-open'], doc: 'fail-closed refuses new records when full; fail-open drops the oldest unsent ones behind a signed gap record' },
        syncWrites: { kind: 'boolean', doc: 'fsync each group-commit batch (keep true: a returned run survives power loss)' },
        maxBatchRecords: { kind: 'integer', min: 1, max: 65536, doc: 'most records per group-commit write' }
      }
    },
    uplink: {
      kind: 'object',
      doc: 'the MQTT uplink to the gateway',
      fields: {
        batchRecords: { kind: 'integer', min: 1, max: 1024, doc: 'records per MQTT message (protocol maximum 1024)' },
        maxInFlightBatches: { kind: 'integer', min: 1, max: 64, doc: 'messages awaiting acknowledgement' },
        keepUntil: { kind: 'enum', values: ['stored', 'anchored'], doc: 'keep records until the gateway stored them, or until anchored on chain' },
        reconnectMinMs: { kind: 'integer', min: 100, max: 3_600_000, doc: 'first reconnect delay' },
        reconnectMaxMs: { kind: 'integer', min: 100, max: 3_600_000, doc: 'longest reconnect delay (at least reconnectMinMs)' }
      }
    },
    keys: {
      kind: 'object',
      doc: 'the device key',
      fields: {
        path: { kind: 'string', pattern: /^[^\0]+$/, maxLength: 4096, doc: 'key file, relative to the state dir or absolute; no ".." segments' },
        keyStore: { kind: 'enum', values: ['file', 'tpm'], doc: 'file: the key file signs records (development); tpm: a TPM identity key certifies a fresh record key each boot' },
        tpmTcti: { kind: 'string', pattern: /^(?:device|swtpm|mssim|tabrmd):[^\0]*$/, maxLength: 512, doc: 'tpm2-tools TCTI of the TPM for keyStore "tpm", e.g. device:/dev/tpmrm0' }
      }
    }
  }
}

/**
 * Asserts that `value` is a complete, valid firmware profile, collecting every bad field.
 * @throws ProfileError `PROFILE_INVALID` with `fields` naming each bad field's path.
 */
export function assertProfile (value: unknown, source = 'profile'): asserts value is FirmwareProfile {
  const problems: Array<[string, string]> = []
  checkField(PROFILE_SCHEMA, value, '', problems)
  const p = value as Partial<FirmwareProfile> | null
  const uplink = p?.uplink
  if (typeof uplink?.reconnectMinMs === 'number' && typeof uplink.reconnectMaxMs === 'number' && uplink.reconnectMinMs > uplink.reconnectMaxMs) {
    problems.push(['uplink.reconnectMaxMs', 'must be at least uplink.reconnectMinMs'])
  }
  const keyPath = p?.keys?.path
  if (typeof keyPath === 'string' && keyPath.split('/').includes('..')) problems.push(['keys.path', 'must not contain ".." segments'])
  if (problems.length > 0) {
    throw new ProfileError('PROFILE_INVALID', `${source}: ${problems.map(([path, why]) => `${path}: ${why}`).join('; ')}`, { fields: problems.map(([path]) => path) })
  }
}

function checkField (spec: FieldSpec, value: unknown, path: string, problems: Array<[string, string]>): void {
  const at = path === '' ? '(root)' : path
  switch (spec.kind) {
    case 'integer':
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < spec.min || value > spec.max) {
        problems.push([at, `must be an integer in ${spec.min}..${spec.max}`])
      }
      return
    case 'boolean':
      if (typeof value !== 'boolean') problems.push([at, 'must be true or false'])
      return
    case 'string':
      if (typeof value !== 'string' || value.length === 0 || value.length > spec.maxLength || (spec.pattern !== undefined && !spec.pattern.test(value))) {
        problems.push([at, `must be a non-empty string of at most ${spec.maxLength} characters${spec.pattern !== undefined ? ` matching ${spec.pattern.source}` : ''}`])
      }
      return
    case 'enum':
      if (typeof value !== 'string' || !spec.values.includes(value)) problems.push([at, `must be one of ${spec.values.map(v => `"${v}"`).join(', ')}`])
      return
    case 'providers': {
      if (!Array.isArray(value) || value.length === 0 || value.length > 16) {
        problems.push([at, 'must be a non-empty array of at most 16 provider names'])
        return
      }
      const seen = new Set<unknown>()
      value.forEach((v: unknown, i) => {
        if (typeof v !== 'string' || !KNOWN_EXECUTION_PROVIDERS.includes(v)) problems.push([`${path}[${i}]`, `unknown execution provider ${JSON.stringify(v)}`])
        else if (seen.has(v)) problems.push([`${path}[${i}]`, `"${v}" is listed twice`])
        seen.add(v)
      })
      return
    }
    case 'object': {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        problems.push([at, 'must be an object'])
        return
      }
      const record = value as Record<string, unknown>
      for (const [name, child] of Object.entries(spec.fields)) {
        const childPath = path === '' ? name : `${path}.${name}`
        if (!Object.hasOwn(record, name)) problems.push([childPath, 'is missing'])
        else checkField(child, record[name], childPath, problems)
      }
      // A typo in a field name must not silently fall back to a default.
      for (const name of Object.keys(record)) {
        if (!Object.hasOwn(spec.fields, name)) problems.push([path === '' ? name : `${path}.${name}`, 'is not a profile field'])
      }
    }
  }
}

/** Paths of every leaf field of the schema, e.g. `storage.budgetBytes`. */
export function listProfileFields (spec: FieldSpec = PROFILE_SCHEMA, prefix = ''): Array<{ path: string, spec: FieldSpec }> {
  if (spec.kind !== 'object') return [{ path: prefix, spec }]
  return Object.entries(spec.fields).flatMap(([name, child]) => listProfileFields(child, prefix === '' ? name : `${prefix}.${name}`))
}

/** The agent options a profile's `threads` section stands for (AgentOptions: 0 and unset fields are left out). */
export interface ProfileThreadOptions {
  intraOpNumThreads?: number
  interOpNumThreads?: number
  inferenceNiceness?: number
}

/**
 * The agent options of a profile's `threads`: 0 leaves onnxruntime's default, INTRA_OP_ALL_BUT_ONE
 * becomes `cores` − 1 (at least 1). onnxruntime's default intra-op pool takes every core and its
 * threads spin between operators, so on a small device the model and the agent's main thread
 * (input hashing, signing, fsync completions, uplink, API) fight for the same cores.
 */
export function profileThreadOptions (threads: FirmwareProfile['threads'], cores = availableParallelism()): ProfileThreadOptions {
  const intraOp = threads.intraOp === INTRA_OP_ALL_BUT_ONE ? Math.max(1, cores - 1) : threads.intraOp
  return {
    ...(intraOp > 0 ? { intraOpNumThreads: intraOp } : {}),
    ...(threads.interOp > 0 ? { interOpNumThreads: threads.interOp } : {}),
    ...(threads.niceness > 0 ? { inferenceNiceness: threads.niceness } : {})
  }
}
