/**
 * The device daemon: one ProvenanceAgent with its firmware profile, key ring, model policy, the
 * configured models, the MQTT uplink (when a broker is configured) and a loopback HTTP API for
 * the device's applications. Everything that can be checked is checked before the agent writes
 * its boot record, so a bad configuration leaves no trace in the chain and nothing listening.
 */
import { promises as fs } from 'node:fs'
import { isAbsolute, join, resolve } from 'node:path'
import type { Tensor } from 'onnxruntime-node'
import { DEVICE_ID_PATTERN, LIMITS, sha256, toHex, type ModelLoadBody, type OversightBody, type SessionBody, type SignedRecord } from '../../protocol/index.js'
import { KeyRing, SubjectKeyStore, tpmBootCertifier, writeFileAtomic } from '../keys/index.js'
import { RecordLog } from '../log/index.js'
import { ModelError } from '../model/index.js'
import { ModelGuard, ModelPolicyError, type ModelRegistryLookup } from '../policy/index.js'
import { profileThreadOptions, type ResolvedProfile } from '../profile/index.js'
import { AGENT_VERSION, ProvenanceAgent, type DataCaptureMeta, type DataCaptureReceipt, type ProvenanceModel } from '../session/index.js'
import { SILENT_LOGGER, type Logger } from '../../common/logger.js'
import { redactUrl } from '../../common/redact-url.js'
import { DaemonError } from './errors.js'
import type { DaemonApi, DaemonRunOptions, DaemonRunResult, DaemonStatus, ModelStatusEntry, ProviderWarning, RegistrationStatus } from './api.js'
import { API_SOCKET_FILE, API_TOKEN_FILE, createApiServer, loadOrCreateApiToken, type ApiServer } from './http-api.js'
import { Uplink, type UplinkOptions, type UplinkStatus } from '../uplink/index.js'
import { CaptureRing, listFrozenCaptures, readFrozenCapture, type FrozenCaptureInfo } from '../capture/index.js'

export interface DaemonModelConfig {
  /** Name in the API path and in model-load records: letters, digits, `.`, `_`, `-`. */
  name: string
  path: string
}

export interface DaemonOptions {
  deviceId: string
  /** Folder of the record log, key file (by default), accepted policy and runtime file. */
  stateDir: string
  /** The firmware profile, resolved and validated (agent/profile). */
  profile: ResolvedProfile
  /** TCTI of the TPM with keyStore `tpm`, instead of the profile's `keys.tpmTcti` (tests: a swtpm). */
  tpmTcti?: string
  models: DaemonModelConfig[]
  /** MQTT broker of the gateway, e.g. `mqtts://gw.example:8883`. Unset: no uplink. */
  brokerUrl?: string
  /** MQTT 5 (default) or 4 (3.1.1). */
  brokerMqttVersion?: 4 | 5
  /** Incident capture: runs kept in memory (raw inputs and outputs) until frozen. Default 16; 0 turns it off. */
  captureMaxEntries?: number
  /** Incident capture: bytes kept in memory at most. Default 32 MiB. */
  captureMaxBytes?: number
  brokerUsername?: string
  brokerPassword?: string
  /** Log keys (32 bytes each) of the gateways whose signed acks may delete records. Unset: acks delete nothing. */
  gatewayPublicKeys?: Uint8Array[]
  /** Fleet admin's Ed25519 public key (32 bytes) that signs model policies. */
  policyAdminPublicKey?: Uint8Array
  /**
   * Load no model before a verified policy is in force (stored by an earlier run, pinned with
   * `provenance-agent init --policy`, or received over MQTT): until then models wait in state
   * `awaiting-policy` and runs are refused, so no model-load record says `unchecked`.
   * Default: true when policyAdminPublicKey is set.
   */
  requirePolicy?: boolean
  /** The device's fleet; policies for other fleets are refused. */
  fleetId?: string
  /** On-chain model registry, asked while a policy is in force. */
  registry?: ModelRegistryLookup
  /** Longest wait for the registry before the allowlist alone decides. Default 2000 ms. */
  registryTimeoutMs?: number
  /**
   * Unix socket of the HTTP API. Default `<stateDir>/api.sock`. Its file mode is the API's
   * authentication: whoever can open it can run models and download captures.
   */
  apiSocket?: string
  /** Mode of the socket: 0o600 (the service user only, default) or 0o660 (and its group, e.g. the device's applications). */
  apiSocketMode?: number
  /**
   * Also serve the API on loopback TCP at this port (0 = chosen by the OS; logged and written to
   * `<stateDir>/daemon.json`), where every request needs the bearer token of `<stateDir>/api-token`
   * (created 0600). Absent (default): the unix socket only.
   */
  statusPort?: number
  /** Address of the TCP API. Default 127.0.0.1: the API must stay on the device. */
  statusHost?: string
  /** Largest run request body, in bytes. Default 16 MiB. */
  maxRequestBytes?: number
  /**
   * Bytes of API request bodies admitted at once (what concurrent requests may hold in memory);
   * requests beyond it wait unread. Default DEFAULT_MAX_INFLIGHT_REQUEST_BYTES (8 MiB).
   */
  maxInflightRequestBytes?: number
  /** Longest wait of an API request for admission, ms (0: none), then 503 `API_BUSY`. Default DEFAULT_ADMISSION_TIMEOUT_MS (30 s). */
  apiAdmissionTimeoutMs?: number
  /** Longest time an admitted API request body may take to arrive, and a run's answer to be read, ms. Default DEFAULT_BODY_TIMEOUT_MS (30 s). */
  apiBodyTimeoutMs?: number
  logger?: Logger
  /** Wall clock, Unix ms. Default Date.now. */
  wallClock?: () => number
  /** Uplink constructor; default: agent/uplink's Uplink. */
  uplinkFactory?: UplinkFactory
}

/** What the daemon needs of an uplink (agent/uplink's Uplink). */
export interface UplinkLike {
  start: () => Promise<void>
  stop: () => Promise<void>
  status: () => UplinkStatus
}

export type UplinkFactory = (options: UplinkOptions) => UplinkLike

export const DEFAULT_CAPTURE_MAX_ENTRIES = 16
export const DEFAULT_CAPTURE_MAX_BYTES = 32 * 1024 * 1024
export const DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024
/** Mode of the API's unix socket unless apiSocketMode says otherwise: the service user only. */
export const DEFAULT_API_SOCKET_MODE = 0o600
import { MODEL_NAME_PATTERN } from './model-name.js'
export { MODEL_NAME_PATTERN }
/** Runtime file in the state dir while the daemon runs: `{ pid, socket, host?, port?, startedMs, deviceId }`. */
export const RUNTIME_FILE = 'daemon.json'
/** Subject keys of crypto-shredding, in the state folder (mode 0600). */
export const SUBJECT_KEYS_FILE = 'subject-keys.json'

export type { DaemonApi, DaemonRunOptions, DaemonRunResult, DaemonStatus, ModelStatusEntry, ProviderWarning, RegistrationStatus } from './api.js'

interface ModelSlot {
  config: DaemonModelConfig
  model: ProvenanceModel | undefined
  state: ModelStatusEntry['state']
  error: { code: string, message: string } | undefined
  providerWarnings: ProviderWarning[]
  inflight: Set<Promise<unknown>>
}

export class Daemon implements DaemonApi {
  readonly deviceId: string
  readonly stateDir: string
  readonly startedMs: number
  private readonly options: DaemonOptions
  private readonly logger: Logger
  private readonly agent: ProvenanceAgent
  private readonly ring: KeyRing
  private readonly guard: ModelGuard
  private readonly api: ApiServer
  private readonly slots = new Map<string, ModelSlot>()
  private readonly requests = new Set<Promise<unknown>>()
  private uplink: UplinkLike | undefined
  private uplinkStopped: Promise<void> | undefined
  private loadQueue: Promise<unknown> = Promise.resolve()
  private capture: ProviderWarning[] | undefined
  private stopping: Promise<void> | undefined

  /** The incident capture ring, when enabled. */
  readonly captureRing: CaptureRing | undefined
  private readonly subjectKeys: SubjectKeyStore

  private constructor (options: DaemonOptions, parts: { agent: ProvenanceAgent, ring: KeyRing, guard: ModelGuard, api: ApiServer, startedMs: number, captureRing: CaptureRing | undefined, subjectKeys: SubjectKeyStore }) {
    this.captureRing = parts.captureRing
    this.subjectKeys = parts.subjectKeys
    this.options = options
    this.deviceId = options.deviceId
    this.stateDir = options.stateDir
    this.logger = options.logger ?? SILENT_LOGGER
    this.agent = parts.agent
    this.ring = parts.ring
    this.guard = parts.guard
    this.api = parts.api
    this.startedMs = parts.startedMs
    for (const config of options.models) {
      this.slots.set(config.name, { config, model: undefined, state: 'loading', error: undefined, providerWarnings: [], inflight: new Set() })
    }
  }

  /**
   * Checks everything it can (model files, stored policy, uplink module, key file, socket and port), then
   * starts the agent (boot record), loads the models and connects the uplink.
   * @throws ModelError `MODEL_*` (a model file missing or unusable); ModelPolicyError / PolicyError
   *   `POLICY_*` (the stored policy); AgentError `KEY_*`, `LOG_*`; KeyError `KEY_*`; DaemonError
   *   `LISTEN_FAILED` (socket or port in use, not a socket, path too long), `API_TOKEN_UNUSABLE`;
   *   TypeError/RangeError for bad options.
   */
  static async start (options: DaemonOptions): Promise<Daemon> {
    assertDaemonOptions(options)
    const logger = options.logger ?? SILENT_LOGGER
    const wallClock = options.wallClock ?? Date.now
    const profile = options.profile.profile
    const stateDir = resolve(options.stateDir)

    // --- Before the boot record: nothing below writes to the chain or listens.
    for (const m of options.models) await assertModelFile(m.path)
    const guard = await Daemon.openGuard(options, stateDir, logger)
    await fs.mkdir(stateDir, { recursive: true, mode: 0o700 })
    const ring = await Daemon.openKeyRing(options, stateDir, wallClock, logger)
    // Listening before the boot record: a socket or port in use fails the start without a trace in
    // the chain. Until the daemon exists the API answers 503.
    const { api, socketPath } = await Daemon.listenApi(options, stateDir, logger)
    const address = api.tcpAddress

    // --- The boot record.
    let agent: ProvenanceAgent
    const captureTarget: { daemon?: Daemon } = {}
    const captureEntries = options.captureMaxEntries ?? DEFAULT_CAPTURE_MAX_ENTRIES
    const captureRing = captureEntries === 0
      ? undefined
      : new CaptureRing({ stateDir, deviceId: options.deviceId, maxEntries: captureEntries, maxBytes: options.captureMaxBytes ?? DEFAULT_CAPTURE_MAX_BYTES, clock: ring.clock, logger })
    const subjectKeys = await SubjectKeyStore.open({ path: join(stateDir, SUBJECT_KEYS_FILE), secret: ring.toDeviceKey().saltSecret })
    try {
      const keys = profile.keys
      agent = await ProvenanceAgent.start({
        ...(keys.keyStore === 'tpm' ? { certifyBootKey: tpmBootCertifier({ stateDir, tcti: options.tpmTcti ?? keys.tpmTcti }) } : {}),
        ...(captureRing !== undefined ? { watchRun: (inputs, hold) => captureRing.watch(inputs, hold) } : {}),
        subjectKeys,
        stateDir,
        deviceId: options.deviceId,
        key: ring.toDeviceKey(),
        clock: ring.clock,
        profile: options.profile.id,
        syncWrites: profile.storage.syncWrites,
        executionProviders: profile.executionProviders,
        ...profileThreadOptions(profile.threads),
        // Budget options go to RecordLog as the profile states them (agent/log enforces them).
        logOptions: { maxBatchRecords: profile.storage.maxBatchRecords, budgetBytes: profile.storage.budgetBytes, budgetMode: profile.storage.budgetMode },
        logger: captureLogger(logger, () => captureTarget.daemon?.capture),
        judgeModel: (loaded) => guard.judge(loaded)
      })
    } catch (e) {
      await api.shutdown()
      throw e
    }
    const daemon = new Daemon({ ...options, stateDir }, { agent, ring, guard, api, startedMs: wallClock(), captureRing, subjectKeys })
    captureTarget.daemon = daemon
    try {
      api.attach(daemon)
      // The stored policy is in force from this boot on: say so in the chain before any model-load it judges.
      await daemon.recordPolicy()
      await daemon.loadModelsAtStart()
      if (options.brokerUrl !== undefined) await daemon.startUplink(options.brokerUrl)
      await writeFileAtomic(join(stateDir, RUNTIME_FILE), JSON.stringify({
        pid: process.pid, socket: socketPath, ...(address !== undefined ? { host: address.address, port: address.port } : {}), startedMs: daemon.startedMs, deviceId: options.deviceId
      }) + '\n', { mode: 0o644 })
    } catch (e) {
      // The chain shows why this boot ended: boot, then shutdown "start failed: <code>".
      await daemon.stop(`start failed: ${(e as { code?: string }).code ?? (e as Error).message}`.slice(0, 200)).catch(() => {})
      throw e
    }
    logger.info({ deviceId: options.deviceId, socket: socketPath, host: address?.address, port: address?.port, profile: options.profile.id, models: [...daemon.slots.keys()], uplink: daemon.uplink !== undefined }, 'daemon ready')
    return daemon
  }

  /** The model policy guard over the stored policy (start step; writes nothing to the chain). */
  private static async openGuard (options: DaemonOptions, stateDir: string, logger: Logger): Promise<ModelGuard> {
    return await ModelGuard.open({
      storePath: join(stateDir, 'policy.cbor'),
      logger,
      ...(options.policyAdminPublicKey !== undefined ? { adminPublicKey: options.policyAdminPublicKey } : {}),
      requirePolicy: options.requirePolicy ?? options.policyAdminPublicKey !== undefined,
      ...(options.fleetId !== undefined ? { fleetId: options.fleetId } : {}),
      ...(options.registry !== undefined ? { registry: options.registry } : {}),
      ...(options.registryTimeoutMs !== undefined ? { registryTimeoutMs: options.registryTimeoutMs } : {})
    })
  }

  /** The device key ring, an interrupted key rotation settled first (start step). */
  private static async openKeyRing (options: DaemonOptions, stateDir: string, wallClock: () => number, logger: Logger): Promise<KeyRing> {
    const keys = options.profile.profile.keys
    const keyPath = isAbsolute(keys.path) ? keys.path : join(stateDir, keys.path)
    const ring = await KeyRing.open(keyPath, { create: true, wallClock })
    if (ring.pendingRotation !== undefined) {
      const log = await RecordLog.open({ dir: join(stateDir, 'records'), deviceId: options.deviceId, signer: ring.signer })
      try {
        const outcome = await ring.recover(log)
        logger.warn({ outcome, keyPath }, 'settled an interrupted key rotation')
      } finally {
        await log.close()
      }
    }
    return ring
  }

  /** The local API listening on its socket (and TCP port if asked), answering 503 until attached (start step). */
  private static async listenApi (options: DaemonOptions, stateDir: string, logger: Logger): Promise<{ api: ApiServer, socketPath: string }> {
    const api = createApiServer({
      maxRequestBytes: options.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES,
      ...(options.maxInflightRequestBytes !== undefined ? { maxInflightRequestBytes: options.maxInflightRequestBytes } : {}),
      ...(options.apiAdmissionTimeoutMs !== undefined ? { admissionTimeoutMs: options.apiAdmissionTimeoutMs } : {}),
      ...(options.apiBodyTimeoutMs !== undefined ? { bodyTimeoutMs: options.apiBodyTimeoutMs } : {}),
      logger
    })
    const socketPath = resolve(stateDir, options.apiSocket ?? API_SOCKET_FILE)
    await api.listen({
      socketPath,
      socketMode: options.apiSocketMode ?? DEFAULT_API_SOCKET_MODE,
      ...(options.statusPort !== undefined
        ? { tcp: { host: options.statusHost ?? '127.0.0.1', port: options.statusPort, token: await loadOrCreateApiToken(join(stateDir, API_TOKEN_FILE)) } }
        : {})
    })
    return { api, socketPath }
  }

  /** Loads the configured models after the boot record (start step). */
  private async loadModelsAtStart (): Promise<void> {
    for (const slot of this.slots.values()) {
      // First boot of a managed device: the retained policy may arrive seconds after the start.
      // The models wait for it (acceptPolicy loads them) rather than load unchecked.
      if (this.guard.awaiting) {
        slot.state = 'awaiting-policy'
        continue
      }
      // A model the policy refuses stays unloaded and the daemon runs on: a newer policy from
      // the fleet may approve it, and it could not arrive if the daemon refused to start.
      await this.enqueueLoad(slot, true).catch((e: unknown) => { if (!isRefusal(e)) throw e })
    }
  }

  /**
   * Connects the uplink (start step). It gets the daemon's logger and the record log; a broker
   * that is down is retried in the background and never fails the start.
   */
  private async startUplink (brokerUrl: string): Promise<void> {
    const options = this.options
    const profile = options.profile.profile
    const uplinkFactory: UplinkFactory = options.uplinkFactory ?? ((o) => new Uplink(o))
    this.uplink = uplinkFactory({
      log: this.agent.log,
      deviceId: options.deviceId,
      brokerUrl,
      batchRecords: profile.uplink.batchRecords,
      maxInFlightBatches: profile.uplink.maxInFlightBatches,
      keepUntil: profile.uplink.keepUntil,
      reconnectMinMs: profile.uplink.reconnectMinMs,
      reconnectMaxMs: profile.uplink.reconnectMaxMs,
      logger: this.logger,
      onPolicy: (payload) => { void this.acceptPolicy(payload).catch(() => {}) },
      ...(options.brokerMqttVersion !== undefined ? { mqttProtocolVersion: options.brokerMqttVersion } : {}),
      ...(options.brokerUsername !== undefined ? { username: options.brokerUsername } : {}),
      ...(options.brokerPassword !== undefined ? { password: options.brokerPassword } : {}),
      ...(options.gatewayPublicKeys !== undefined ? { gatewayPublicKeys: options.gatewayPublicKeys } : {})
    })
    await this.uplink.start()
  }

  /** Port of the TCP API; 0 when only the unix socket serves. */
  get port (): number { return this.api.tcpAddress?.port ?? 0 }
  /** Path of the API's unix socket. */
  get socketPath (): string { return this.api.socketPath ?? '' }
  /** The agent's record log (for the uplink and tools). */
  get log (): RecordLog { return this.agent.log }
  get isStopping (): boolean { return this.stopping !== undefined }

  /**
   * Runs a configured model and resolves once its inference record is durable.
   * @throws DaemonError `DAEMON_STOPPING`, `MODEL_UNKNOWN`, `MODEL_UNAVAILABLE`, `REQUEST_INVALID`;
   *   ModelPolicyError `MODEL_NOT_APPROVED`, `MODEL_REVOKED`; AgentError `INPUT_INVALID`,
   *   `INFERENCE_FAILED`, `LOG_*`; ProtocolError `TENSOR_INVALID`.
   */
  async run (name: string, feeds: Record<string, Tensor>, decision?: string, subject?: string, options: DaemonRunOptions = {}): Promise<DaemonRunResult> {
    if (this.stopping !== undefined) throw new DaemonError('DAEMON_STOPPING', 'the daemon is shutting down')
    const slot = this.slots.get(name)
    if (slot === undefined) throw new DaemonError('MODEL_UNKNOWN', `no model "${name}" is configured (configured: ${[...this.slots.keys()].join(', ')})`)
    const model = slot.model
    if (model === undefined) {
      if (slot.state === 'awaiting-policy') throw new DaemonError('MODEL_UNAVAILABLE', `model "${name}" is not loaded: it waits for a signed model policy (none is in force yet; pin one with provenance-agent init --policy, or publish one with provenance-fleet policy publish)`)
      if (slot.state === 'refused' && slot.error !== undefined) throw new DaemonError('MODEL_UNAVAILABLE', `model "${name}" was refused: ${slot.error.code}: ${slot.error.message}`)
      throw new DaemonError('MODEL_UNAVAILABLE', `model "${name}" is not loaded (${slot.state}${slot.error !== undefined ? `: ${slot.error.code}` : ''})`)
    }
    if (!this.guard.allows(model.loaded.fileHashHex)) {
      throw new ModelPolicyError('MODEL_NOT_APPROVED', `model "${name}" (sha256 ${model.loaded.fileHashHex}) is not on the allowlist of the policy in force (enforce)`)
    }
    if (decision !== undefined && Buffer.byteLength(decision, 'utf8') > LIMITS.decisionBytes) {
      throw new DaemonError('REQUEST_INVALID', `decision: at most ${LIMITS.decisionBytes} bytes`)
    }
    const pending = model.run(feeds, { decide: () => decision ?? null, ...(subject === undefined ? {} : { subject }), ...(options.lendOutputs === true ? { lendOutputs: true } : {}) })
    slot.inflight.add(pending)
    try {
      const { outputs, record, release } = await pending
      return { model: name, modelHash: model.loaded.fileHashHex, outputs, record, release }
    } finally {
      slot.inflight.delete(pending)
    }
  }

  /**
   * Writes a data-capture record for a sample an application keeps to feed training; resolves once
   * it is durable, with the salt and content hash that open its commitment (docs/LINEAGE.md §5).
   * @throws DaemonError `DAEMON_STOPPING`; AgentError `INPUT_INVALID`, `LOG_*`.
   */
  async recordDataCapture (sample: Uint8Array, meta: DataCaptureMeta): Promise<DataCaptureReceipt> {
    if (this.stopping !== undefined) throw new DaemonError('DAEMON_STOPPING', 'the daemon is shutting down')
    return await this.agent.recordDataCapture(sample, meta)
  }

  /**
   * Loads the model's file again (e.g. after an update on disk). A file that changed since it
   * was loaded is logged; under enforce it must still be on the allowlist, and when it is refused
   * the model loaded before stays in service.
   * @throws DaemonError `MODEL_UNKNOWN`, `DAEMON_STOPPING`; ModelError `MODEL_*`; ModelPolicyError
   *   `MODEL_NOT_APPROVED`, `MODEL_REVOKED` (the model loaded before, if any, stays in service).
   */
  async reload (name: string): Promise<ModelStatusEntry> {
    if (this.stopping !== undefined) throw new DaemonError('DAEMON_STOPPING', 'the daemon is shutting down')
    const slot = this.slots.get(name)
    if (slot === undefined) throw new DaemonError('MODEL_UNKNOWN', `no model "${name}" is configured`)
    await this.enqueueLoad(slot, true)
    return this.modelStatus(slot)
  }

  /** Reloads every configured model, logging failures (SIGHUP). */
  async reloadAll (): Promise<void> {
    for (const slot of this.slots.values()) {
      if (this.stopping !== undefined) return
      await this.enqueueLoad(slot, true).catch((e: unknown) => {
        this.logger.error({ model: slot.config.name, code: (e as { code?: string }).code, error: (e as Error).message }, 'model reload failed; the loaded version stays in service')
      })
    }
  }

  /**
   * Verifies and, when newer, puts in force a policy (the uplink's `onPolicy`); then loads the
   * models the previous policy refused.
   * @throws as ModelGuard.accept (also logged).
   */
  async acceptPolicy (payload: Uint8Array): Promise<'accepted' | 'unchanged'> {
    let outcome: 'accepted' | 'unchanged'
    try {
      outcome = await this.guard.accept(payload)
    } catch (e) {
      this.logger.warn({ code: (e as { code?: string }).code, error: (e as Error).message }, 'model policy refused')
      throw e
    }
    if (outcome === 'accepted') {
      await this.recordPolicy()
      for (const slot of this.slots.values()) {
        if (slot.model === undefined && (slot.state === 'refused' || slot.state === 'awaiting-policy') && this.stopping === undefined) await this.enqueueLoad(slot, false).catch(() => {})
      }
    }
    return outcome
  }

  /** Everything an operator asks about: identity, chain head, models, uplink, policy, budget. */
  async status (): Promise<DaemonStatus> {
    const stats = this.agent.log.stats()
    const head = stats.head
    const profile = this.options.profile
    const address = this.api.tcpAddress
    const uplink = this.uplink
    return {
      deviceId: this.deviceId,
      agentVersion: AGENT_VERSION,
      pid: process.pid,
      startedMs: this.startedMs,
      state: this.stopping !== undefined ? 'stopping' : 'running',
      boot: head.boot,
      seq: head.seq,
      headHash: toHex(head.hash),
      publicKey: toHex(this.ring.publicKey),
      keyCount: this.ring.history.length,
      profile: {
        id: profile.id,
        name: profile.profile.name,
        source: profile.source,
        ...(profile.overrideSource !== undefined ? { overrideSource: profile.overrideSource } : {}),
        executionProviders: [...profile.profile.executionProviders]
      },
      http: { socket: this.socketPath, host: address?.address ?? '', port: address?.port ?? 0 },
      models: [...this.slots.values()].map(s => this.modelStatus(s)),
      uplink: uplink !== undefined ? { configured: true, brokerUrl: redactUrl(this.options.brokerUrl ?? ''), ...uplink.status() } : { configured: false },
      policy: this.guard.status(),
      registration: await this.registrationStatus(),
      budget: {
        budgetBytes: profile.profile.storage.budgetBytes,
        budgetMode: profile.profile.storage.budgetMode,
        usedBytes: stats.bytes,
        diskBytes: await directoryBytes(join(this.stateDir, 'records')),
        droppedRecords: stats.droppedRecords
      }
    }
  }

  /**
   * Stops taking runs, lets the runs in flight finish, writes the shutdown record, stops the
   * uplink and closes the log and the HTTP API. Safe to call more than once.
   */
  async stop (reason = 'shutdown'): Promise<void> {
    if (this.stopping !== undefined) return await this.stopping
    this.stopping = (async () => {
      this.logger.info({ reason }, 'daemon stopping')
      this.api.close()
      await Promise.allSettled([...this.requests])
      for (const slot of this.slots.values()) await Promise.allSettled([...slot.inflight])
      await this.loadQueue.catch(() => {})
      try {
        await this.agent.stop(reason, { beforeClose: async () => await this.stopUplink() })
      } finally {
        await this.stopUplink().catch(() => {})
        this.api.closeAll()
        await fs.rm(join(this.stateDir, RUNTIME_FILE), { force: true })
        this.logger.info({ reason, seq: this.agent.log.head.seq }, 'daemon stopped')
      }
    })()
    return await this.stopping
  }

  /**
   * Freezes the incident capture ring into `<stateDir>/captures/` (raw inputs and outputs of the
   * recent runs with their salts: incident material, for investigators only).
   * @throws DaemonError `CAPTURE_DISABLED`; CaptureStoreError `CAPTURE_WRITE_FAILED`.
   */
  async freezeCapture (reason: string): Promise<FrozenCaptureInfo & { entries: number }> {
    if (this.captureRing === undefined) throw new DaemonError('CAPTURE_DISABLED', 'incident capture is turned off (captureMaxEntries 0)')
    const frozen = await this.captureRing.freeze(reason)
    this.logger.warn({ capture: frozen.name, reason, entries: frozen.seqs.length }, 'incident capture frozen')
    return { name: frozen.name, path: frozen.path, sizeBytes: frozen.bytes.byteLength, frozenAtMs: frozen.frozenAtMs, entries: frozen.seqs.length }
  }

  /**
   * Crypto-shredding (docs/OPERATIONS.md §Erasure): destroys the subject's key, drops its runs from
   * the capture ring, and writes the signed shredding statement to `<stateDir>/shreddings/`.
   * Frozen captures already handed out are the investigator's to delete.
   * @throws KeyError `SUBJECT_UNKNOWN`, `SUBJECT_SHREDDED`, `SUBJECT_KEYS_INVALID`.
   */
  async shred (subject: string, reason: string): Promise<{ statement: string, hash: string, ranges: Array<{ firstSeq: number, lastSeq: number }>, path: string, capturesDropped: number }> {
    const store = this.subjectKeys
    const signed = await store.shred(subject, { deviceId: this.agent.deviceId, signer: this.ring.signer, nowMs: this.ring.clock(), reason })
    const ranges = signed.statement.ranges
    const capturesDropped = this.captureRing?.forget(seq => ranges.some(r => r.firstSeq <= seq && seq <= r.lastSeq)) ?? 0
    const hash = Buffer.from(signed.hash).toString('hex')
    const path = join(this.stateDir, 'shreddings', `${hash}.shredding`)
    await writeFileAtomic(path, signed.envelope, { mode: 0o600 })
    this.logger.warn({ statement: hash, ranges, capturesDropped }, 'subject key destroyed (crypto-shredding)')
    return { statement: Buffer.from(signed.envelope).toString('base64'), hash, ranges, path, capturesDropped }
  }

  /** Frozen captures waiting in `<stateDir>/captures/`. */
  async listCaptures (): Promise<FrozenCaptureInfo[]> {
    return await listFrozenCaptures(this.stateDir)
  }

  /** The bytes of one frozen capture. @throws CaptureStoreError `CAPTURE_NAME_INVALID`, `CAPTURE_NOT_FOUND`. */
  async readCapture (name: string): Promise<Uint8Array> {
    return await readFrozenCapture(this.stateDir, name)
  }

  /** @internal Tracks an API request so stop() can wait for it. */
  track (request: Promise<unknown>): void {
    this.requests.add(request)
    void request.finally(() => this.requests.delete(request)).catch(() => {})
  }

  /** @internal Records of a seq range, for the API's export route: at most `limit`, and no more once `maxBytes` of envelopes are read (at least one). */
  async records (fromSeq: number, toSeq: number, limit: number, maxBytes = Number.POSITIVE_INFINITY): Promise<SignedRecord[]> {
    const out: SignedRecord[] = []
    let bytes = 0
    if (limit <= 0) return out
    for await (const r of this.agent.log.iterate(fromSeq, toSeq)) {
      out.push(r)
      bytes += r.envelope.byteLength
      if (out.length >= limit || bytes >= maxBytes) break
    }
    return out
  }

  private async stopUplink (): Promise<void> {
    if (this.uplink === undefined) return
    this.uplinkStopped ??= this.uplink.stop()
    await this.uplinkStopped
  }

  /** Loads are serialized: the policy guard pairs each pre-check with the load that follows. */
  private async enqueueLoad (slot: ModelSlot, throwOnError: boolean): Promise<void> {
    const next = this.loadQueue.catch(() => {}).then(async () => await this.load(slot))
    this.loadQueue = next
    if (throwOnError) await next
    else await next.catch(() => {})
  }

  private async load (slot: ModelSlot): Promise<void> {
    const { name, path } = slot.config
    const previous = slot.model
    this.capture = []
    try {
      await this.guard.check(path, name)
      const model = await this.agent.loadModel(path, { name })
      slot.model = model
      slot.state = 'loaded'
      slot.error = undefined
      slot.providerWarnings = this.capture
      const requested = this.options.profile.profile.executionProviders
      const used = model.loaded.executionProviders
      if (used[0] !== requested[0]) {
        this.logger.warn({ model: name, requested, used, warnings: slot.providerWarnings }, `model runs on a fallback execution provider (${used[0] ?? 'none'} instead of ${requested[0] ?? 'none'})`)
      }
      if (previous !== undefined) {
        // Runs already on the old session finish on it; new ones go to the new session.
        await Promise.allSettled([...slot.inflight])
        await previous.release()
      }
    } catch (e) {
      const code = (e as { code?: string }).code ?? 'ERROR'
      const refused = isRefusal(e)
      slot.error = { code, message: (e as Error).message }
      if (previous === undefined) slot.state = code === 'POLICY_AWAITED' ? 'awaiting-policy' : refused ? 'refused' : 'failed'
      if (refused) this.logger.warn({ model: name, path, code, error: (e as Error).message, kept: previous !== undefined }, 'model refused by policy; nothing was loaded')
      throw e
    } finally {
      this.capture = undefined
    }
  }

  /**
   * Appends what a person or the application states at this device: an oversight record (this
   * agent runs a reviewing station) or the start or end of a use. Signed by the device key and
   * sent through the uplink like every record; durable when it resolves.
   * @throws DaemonError `DAEMON_STOPPING`; ProtocolError `RECORD_INVALID`; LogError `LOG_*`.
   */
  async appendStatement (body: OversightBody | SessionBody): Promise<SignedRecord> {
    if (this.stopping !== undefined) throw new DaemonError('DAEMON_STOPPING', 'the daemon is shutting down')
    const signed = await this.agent.log.append(() => body)
    this.logger.info({ kind: body.kind, seq: signed.record.seq, ...(body.kind === 'oversight' ? { verdict: body.verdict } : { phase: body.phase }) }, `${body.kind} record written`)
    return signed
  }

  /** A policy record for the policy in force, so an investigator sees which allowlist judged the loads that follow. */
  private async recordPolicy (): Promise<void> {
    const signed = this.guard.policy
    if (signed === undefined || this.stopping !== undefined) return
    const p = signed.policy
    await this.agent.log.append(() => ({ kind: 'policy', version: p.version, mode: p.mode, fleetId: p.fleetId, policyHash: sha256(signed.policyBytes) }))
  }

  private async registrationStatus (): Promise<RegistrationStatus> {
    const uplink = this.uplink?.status()
    if (uplink === undefined) return { state: 'no-uplink' }
    const log = this.agent.log
    let oldest: SignedRecord | undefined
    for await (const r of log.iterate(log.acked + 1, log.head.seq)) { oldest = r; break }
    const since = oldest !== undefined ? { unacknowledgedSinceMs: oldest.record.timeMs, unacknowledgedSinceSeq: oldest.record.seq } : {}
    if (uplink.ackedSeq >= 0 || log.acked >= 0) return { state: 'acknowledged', ...since }
    return {
      state: 'unacknowledged',
      ...since,
      hint: 'no gateway has acknowledged a record of this device; every record is kept. Check that the device key is registered (provenance-fleet device show --id <deviceId>; else provenance-fleet device register --enrollment) — the gateway quarantines records of unknown devices — and that the uplink is connected and a gateway runs'
    }
  }

  private modelStatus (slot: ModelSlot): ModelStatusEntry {
    const model = slot.model
    const requested = [...this.options.profile.profile.executionProviders]
    const entry: ModelStatusEntry = {
      name: slot.config.name,
      path: slot.config.path,
      state: slot.state,
      runnable: model !== undefined && this.stopping === undefined && this.guard.allows(model.loaded.fileHashHex),
      requestedProviders: requested,
      providerWarnings: slot.providerWarnings,
      ...(slot.error !== undefined ? { error: slot.error } : {})
    }
    if (model !== undefined) {
      const body = model.loadRecord.record.body as ModelLoadBody
      entry.modelHash = model.loaded.fileHashHex
      entry.sizeBytes = body.sizeBytes
      entry.policy = body.policy
      entry.loadSeq = model.loadRecord.record.seq
      entry.inputs = model.inputs.map(i => ({ ...i, dims: [...i.dims] }))
      entry.providers = [...model.loaded.executionProviders]
      entry.fallback = entry.providers[0] !== requested[0]
    }
    return entry
  }
}

function isRefusal (e: unknown): boolean {
  const code = (e as { code?: unknown }).code
  return code === 'MODEL_NOT_APPROVED' || code === 'MODEL_REVOKED' || code === 'POLICY_AWAITED'
}

function assertDaemonOptions (o: DaemonOptions): void {
  if (typeof o.deviceId !== 'string' || !DEVICE_ID_PATTERN.test(o.deviceId) || o.deviceId.length > LIMITS.deviceIdChars) throw new TypeError(`deviceId must match ${DEVICE_ID_PATTERN.source}`)
  if (typeof o.stateDir !== 'string' || o.stateDir === '') throw new TypeError('stateDir must be a non-empty string')
  if (o.statusPort !== undefined && (!Number.isSafeInteger(o.statusPort) || o.statusPort < 0 || o.statusPort > 65535)) throw new RangeError('statusPort must be an integer in 0..65535')
  if (o.apiSocketMode !== undefined && o.apiSocketMode !== 0o600 && o.apiSocketMode !== 0o660) throw new RangeError('apiSocketMode must be 0o600 or 0o660')
  if (o.apiSocket !== undefined && (typeof o.apiSocket !== 'string' || o.apiSocket === '')) throw new TypeError('apiSocket must be a non-empty path')
  const names = new Set<string>()
  for (const m of o.models) {
    if (!MODEL_NAME_PATTERN.test(m.name)) throw new TypeError(`model name "${m.name}" must match ${MODEL_NAME_PATTERN.source}`)
    if (names.has(m.name)) throw new TypeError(`model name "${m.name}" appears twice`)
    names.add(m.name)
  }
}

async function assertModelFile (path: string): Promise<void> {
  try {
    const handle = await fs.open(path, 'r')
    try {
      if (!(await handle.stat()).isFile()) throw new ModelError('MODEL_UNREADABLE', `model ${path} is not a regular file`)
    } finally {
      await handle.close()
    }
  } catch (e) {
    if (e instanceof ModelError) throw e
    throw new ModelError('MODEL_UNREADABLE', `cannot open model ${path}: ${(e as Error).message}`, { cause: e })
  }
}

function captureLogger (logger: Logger, sink: () => ProviderWarning[] | undefined): Logger {
  return {
    info: (o, m) => logger.info(o, m),
    error: (o, m) => logger.error(o, m),
    warn: (o, m) => {
      const target = sink()
      const fields = o as { provider?: unknown, fallback?: unknown, error?: unknown }
      if (target !== undefined && typeof fields.provider === 'string') {
        target.push({
          provider: fields.provider,
          ...(typeof fields.fallback === 'string' ? { fallback: fields.fallback } : {}),
          message: m ?? '',
          ...(typeof fields.error === 'string' ? { error: fields.error } : {})
        })
      }
      logger.warn(o, m)
    }
  }
}

async function directoryBytes (dir: string): Promise<number> {
  let total = 0
  const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => [])
  for (const e of entries) {
    const p = join(dir, e.name)
    if (e.isDirectory()) total += await directoryBytes(p)
    else total += await fs.stat(p).then(s => s.size, () => 0)
  }
  return total
}
