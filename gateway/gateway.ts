/**
 * The fleet gateway: wires the store, the key directory, the ingest pipeline, Merkle batching,
 * the anchorer, MQTT and the HTTP API together, recovers from its state folder on start, and
 * stops gracefully (stop reading, process what was read, seal, flush, close).
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { RegistryClient, createRpcProvider } from '../contracts/index.js'
import { MerkleTree, equalBytes, fromHex, signAck, type Ack } from '../protocol/index.js'
import { Anchorer, type AnchorerOptions, type SealedBatch } from './anchor/index.js'
import { AnchoredTracker, Batcher, DeferredBatcher, ProofService, Sequencer, TierTips, TipTracker, lookupTip, type LeafSink, type ProofLookup } from './batch/index.js'
import { GatewayError } from './errors.js'
import { GatewayMetrics, loadOrCreateApiToken, startApiServer, type ApiBackend, type ApiServer } from './http/index.js'
import { IngestPipeline, MqttIngest, VerifyPool, createPeerAckReader, startEmbeddedBroker, type DeviceStatus, type EmbeddedBroker } from './ingest/index.js'
import { RegistryKeyDirectory, loadOrCreateLogKey, type GatewayLogKey, type KeyDirectory } from './keys/index.js'
import { HTTP_TOKEN_FILE, MIN_HTTP_TOKEN_CHARS, resolveGatewayOptions, type GatewayOptions, type ResolvedGatewayOptions } from './options.js'
import { Pruner, type PruneRequest, type PruneResult } from './retention/index.js'
import { LevelGatewayStore, PostgresGatewayStore, storeKeys, type GatewayStore, type StoredBatch } from './store/index.js'

/** What /healthz reports. */
export interface GatewayHealth {
  /** Broker connected and store open. */
  ok: boolean
  brokerConnected: boolean
  storeOpen: boolean
  anchoring: boolean
  /** Id of the newest sealed batch (0: none). */
  sealedThrough: number
  /** Every batch up to this id is confirmed on chain. */
  confirmedThrough: number
  /** Sealed batches not yet confirmed. */
  anchorLagBatches: number
  /** Records received and not yet processed. */
  backlogRecords: number
  openBatch: { id: number, size: number }
}

type State = 'new' | 'starting' | 'running' | 'stopping' | 'stopped'

export class Gateway {
  readonly options: ResolvedGatewayOptions
  readonly metrics: GatewayMetrics
  private state: State = 'new'
  private store: GatewayStore | undefined
  private provider: ReturnType<typeof createRpcProvider> | undefined
  private anchorer: Anchorer | undefined
  private batcher: LeafSink | undefined
  private pgStore: PostgresGatewayStore | undefined
  private sequencer: Sequencer | undefined
  private pipeline: IngestPipeline | undefined
  private verifyPoolInstance: VerifyPool | undefined
  private keys: KeyDirectory | undefined
  private proofs: ProofService | undefined
  private tips: TipTracker | undefined
  private tierTips: TierTips | undefined
  private anchoredTimer: NodeJS.Timeout | undefined
  private mqtt: MqttIngest | undefined
  private embedded: EmbeddedBroker | undefined
  private api: ApiServer | undefined
  private token: string | undefined
  private gapTimer: NodeJS.Timeout | undefined
  private pruneTimer: NodeJS.Timeout | undefined
  private pruner: Pruner | undefined
  private pruneChain: Promise<unknown> = Promise.resolve()
  private sealedThrough = 0
  private fatal: GatewayError | undefined
  private logKey: GatewayLogKey | undefined
  private lastAckIssuedMs = 0
  private readonly fatalListeners: Array<(e: GatewayError) => void> = []

  /** @throws TypeError / RangeError for bad options. */
  constructor (options: GatewayOptions) {
    this.options = resolveGatewayOptions(options)
    this.metrics = new GatewayMetrics({ processMetrics: this.options.processMetrics })
  }

  /** URL of the broker in use (the embedded one's when no brokerUrl was given); set once started. */
  get brokerUrl (): string | undefined {
    return this.options.brokerUrl ?? this.embedded?.url
  }

  /** Base URL of the HTTP API; set once started. */
  get httpUrl (): string | undefined {
    return this.api?.url
  }

  /** The checkpoint origin prefix, and the key name its checkpoints are signed under (PROTOCOL.md §7.8). */
  get checkpointKeyName (): string {
    return `edge-provenance/${this.options.name}`
  }

  /** Public half of the gateway's log key, which signs its acks (register it on chain, give it to devices); set once started. */
  get logPublicKey (): Uint8Array | undefined {
    return this.logKey?.publicKey.slice()
  }

  /** The bearer token of the HTTP API (undefined with httpAuth `none`); set once started. Never log it. */
  get httpToken (): string | undefined {
    return this.token
  }

  /** Where the HTTP API token lives when none is configured: `<stateDir>/api-token`. */
  get httpTokenFile (): string {
    return join(this.options.stateDir, HTTP_TOKEN_FILE)
  }

  /** Called once if the gateway hits an error it cannot continue after (a failed store write). */
  onFatal (listener: (e: GatewayError) => void): void {
    this.fatalListeners.push(listener)
  }

  /**
   * Opens the state, recovers batches and anchoring, connects to the broker (without waiting for
   * it: ingest starts whenever it is reachable) and starts the HTTP API.
   * @throws GatewayError `STORE_LOCKED`, `STORE_OPEN_FAILED`, `STORE_CORRUPT`, `HTTP_LISTEN_FAILED`,
   *   `GATEWAY_STOPPED`; AnchorError from opening the anchorer's state.
   */
  async start (): Promise<void> {
    if (this.state !== 'new') throw new GatewayError('GATEWAY_STOPPED', `gateway is ${this.state}`)
    this.state = 'starting'
    try {
      await this.open()
      this.state = 'running'
    } catch (e) {
      await this.close()
      this.state = 'stopped'
      throw e
    }
  }

  private async open (): Promise<void> {
    const o = this.options
    const log = o.logger
    await mkdir(o.stateDir, { recursive: true })
    // The log key first: a gateway that cannot sign acks must not take records it cannot acknowledge.
    const logKey = this.logKey = await loadOrCreateLogKey(o.logKeyFile)
    log.info({ gatewayId: o.gatewayId, logKey: Buffer.from(logKey.publicKey).toString('hex') }, 'log key loaded (register it on chain under gatewayId)')
    const store = this.store = await this.openStore()
    this.provider = createRpcProvider(o.rpcUrl, o.chainId === undefined ? {} : { chainId: o.chainId })
    const keys: KeyDirectory = o.keyDirectory ?? new RegistryKeyDirectory({
      registry: new RegistryClient(o.registry, this.provider),
      ttlMs: o.keyCacheTtlMs,
      unknownTtlMs: o.unknownKeyCacheTtlMs,
      maxBytes: o.keyCacheMaxBytes,
      maxUnknownEntries: o.unknownKeyCacheMaxEntries,
      lookupsPerSecond: o.keyLookupsPerSecond,
      lookupBurst: o.keyLookupBurst,
      onLookupError: (code) => this.metrics.chainError(code)
    })
    this.keys = keys
    void this.checkLogKeyOnChain(keys, logKey)
    const anchorOptions = this.anchorOptions()
    if (this.pgStore !== undefined) {
      await this.openTier(this.pgStore, logKey, keys, anchorOptions)
      return
    }
    await this.openLocal(store, logKey, keys, anchorOptions)
  }

  /** The LevelDB store, or the PostgreSQL one (then also `pgStore`) when a database URL is set. */
  private async openStore (): Promise<GatewayStore> {
    const o = this.options
    const log = o.logger
    const writer = {
      onFatal: (e: GatewayError) => this.die(e),
      onCallbackError: (e: unknown) => log.error({ error: (e as Error).message, stack: (e as Error).stack }, 'bug: an after-write callback failed')
    }
    return o.postgresUrl === undefined
      ? await LevelGatewayStore.open({ dir: join(o.stateDir, 'store'), syncWrites: o.syncWrites, ...writer })
      : this.pgStore = await PostgresGatewayStore.open({
        url: o.postgresUrl,
        node: o.name,
        poolSize: o.postgresPoolSize,
        fence: () => this.sequencer?.lease.fence(),
        onOutage: (e) => {
          if (e === undefined) log.info({}, 'gateway database reachable again: writes resumed')
          else log.error({ code: e.code, error: e.message }, 'gateway database unreachable: writes wait (nothing is acknowledged meanwhile)')
        },
        ...writer
      })
  }

  /** The anchorer's options without its state location; undefined when no anchoring key is set. */
  private anchorOptions (): Omit<AnchorerOptions, 'stateDir' | 'stateStore'> | undefined {
    const o = this.options
    return o.anchorPrivateKey === undefined
      ? undefined
      : {
          rpcUrl: o.rpcUrl,
          registry: o.registry,
          privateKey: o.anchorPrivateKey,
          confirmations: o.anchorConfirmations,
          pollIntervalMs: o.anchorPollIntervalMs,
          syncWrites: o.syncWrites,
          logger: o.logger,
          onChainError: (code: string) => this.metrics.chainError(code),
          onAnchored: (_r: unknown, latencyMs: number) => this.metrics.anchored(latencyMs)
        }
  }

  // A single gateway on its own store: it batches, seals and anchors by itself.
  private async openLocal (store: GatewayStore, logKey: GatewayLogKey, keys: KeyDirectory,
    anchorOptions: Omit<AnchorerOptions, 'stateDir' | 'stateStore'> | undefined): Promise<void> {
    const o = this.options
    if (anchorOptions !== undefined) {
      this.anchorer = await Anchorer.open({ stateDir: join(o.stateDir, 'anchor'), ...anchorOptions })
    } else {
      o.logger.warn({}, 'no anchorPrivateKey: batches are sealed but not anchored')
    }
    const anchorer = this.anchorer
    this.proofs = new ProofService({ store, receiptSigner: logKey.signer, ...(anchorer === undefined ? {} : { anchors: anchorer }) })

    const folded = (await store.getInt(storeKeys.foldedThrough)) ?? 0
    const tracker = new AnchoredTracker(folded, folded, anchorer !== undefined)
    const pruner = this.pruner = await Pruner.open({
      store,
      signer: logKey.signer,
      gatewayId: o.gatewayId,
      retentionDays: o.retentionDays,
      // The live view: the store's copy of device states is written behind it.
      anchoredSeqOf: async (d) => this.pipeline?.status(d)?.anchoredSeq ?? (await store.getDeviceState(d))?.anchoredSeq ?? -1
    })
    // The tip tree (PROTOCOL.md §7.10): the batcher moves tips with leaves and seals their root.
    const tips = this.tips = await TipTracker.open({ store, openBatchId: (await store.getInt(storeKeys.openBatch)) ?? 1 })
    const batcher = this.batcher = await Batcher.open({
      tips,
      store,
      origin: this.checkpointKeyName,
      maxRecords: o.batchMaxRecords,
      maxAgeMs: o.batchMaxAgeMs,
      signer: logKey.signer,
      commitments: (id) => pruner.takeCommitments(id),
      onSealed: (batch, tree) => this.onSealed(batch, tree)
    })
    const pipeline = this.pipeline = this.newPipeline(store, batcher, tracker, keys, logKey)
    await pipeline.load()

    this.sealedThrough = batcher.openBatchId - 1
    if (anchorer !== undefined) await this.resumeAnchoring(store, anchorer, batcher, tracker, pipeline, tips, folded)
    await this.startIo(store, pipeline, batcher)
  }

  // Batches sealed before a crash: back to the anchorer (idempotent), and their leaves into the
  // anchored-seq bookkeeping, before any new batch can be sealed.
  private async resumeAnchoring (store: GatewayStore, anchorer: Anchorer, batcher: Batcher, tracker: AnchoredTracker,
    pipeline: IngestPipeline, tips: TipTracker, folded: number): Promise<void> {
    for await (const batch of store.batches(folded + 1)) {
      for (const leaf of await store.leaves(batch.id)) tracker.noteLeaf(leaf.deviceId, leaf.afterSeq, leaf.seq, batch.id)
      if (batch.id > anchorer.confirmedThrough()) await anchorer.enqueue(toSealedBatch(batch))
    }
    for (const leaf of await store.leaves(batcher.openBatchId)) tracker.noteLeaf(leaf.deviceId, leaf.afterSeq, leaf.seq, batcher.openBatchId)
    pipeline.confirmThrough(anchorer.confirmedThrough())
    anchorer.onConfirmed((r) => { tips.anchored(r.batch) })
    anchorer.onConfirmed(() => {
      if (this.state === 'running' || this.state === 'starting' || this.state === 'stopping') pipeline.confirmThrough(anchorer.confirmedThrough())
    })
    anchorer.start()
  }

  // The PostgreSQL tier: this process ingests into the shared database (records unbatched); the
  // sequencer seals and anchors while this process holds the lease (batch/sequencer.ts).
  private async openTier (store: PostgresGatewayStore, logKey: GatewayLogKey, keys: KeyDirectory,
    anchorOptions: Omit<AnchorerOptions, 'stateDir' | 'stateStore'> | undefined): Promise<void> {
    const o = this.options
    const log = o.logger
    if (anchorOptions === undefined) log.warn({}, 'no anchorPrivateKey: batches are sealed but not anchored')
    const sequencer = this.sequencer = new Sequencer({
      store,
      node: o.name,
      origin: this.checkpointKeyName,
      signer: logKey.signer,
      maxRecords: o.batchMaxRecords,
      maxAgeMs: o.batchMaxAgeMs,
      leaseTtlMs: o.sequencerLeaseTtlMs,
      anchorer: anchorOptions,
      onSealed: (batch, leafHashes) => {
        this.sealedThrough = Math.max(this.sealedThrough, batch.id)
        this.metrics.batchSealed(batch.size)
        this.proofs?.remember(batch.id, new MerkleTree(leafHashes))
        log.info({ batch: batch.id, size: batch.size, root: Buffer.from(batch.root).toString('hex') }, 'batch sealed')
      },
      logger: log
    })
    this.proofs = new ProofService({ store, receiptSigner: logKey.signer, anchors: sequencer })
    const anchoring = anchorOptions !== undefined
    const tierTips = this.tierTips = new TierTips({ store, anchors: sequencer, anchoring })
    // Anchored seqs come from the database (the tip of each device in the newest confirmed batch),
    // not from runs of this process's own batches: the tracker only keeps what it is told.
    const tracker = new AnchoredTracker(0, 0, false)
    const batcher = this.batcher = new DeferredBatcher(store)
    const pipeline = this.pipeline = this.newPipeline(store, batcher, tracker, keys, logKey)
    // A record that lost (device, seq) to a different one is never acked: quarantined, and the
    // device follows the stored chain.
    store.onRecordConflict = (conflicts) => { pipeline.recordConflicts(conflicts) }
    await pipeline.load()
    this.pruner = await Pruner.open({
      store,
      signer: logKey.signer,
      gatewayId: o.gatewayId,
      retentionDays: o.retentionDays,
      // The sequencer commits the statements at its next seal, from the database.
      keepWaiting: false,
      anchoredSeqOf: async (d) => await tierAnchoredSeq(store, tierTips, d)
    })
    sequencer.start()
    if (anchoring) {
      let through = 0
      let busy = false
      const poll = (): void => {
        if (busy || this.state === 'stopped') return
        busy = true
        tierTips.targetBatch()
          .then(async (c) => {
            if (c <= through) return
            pipeline.noteAnchored(await store.tipChanges(through, c))
            through = c
          })
          .catch((e: unknown) => log.debug?.({ error: (e as Error).message }, 'anchored seqs not read (retried)'))
          .finally(() => { busy = false })
      }
      this.anchoredTimer = setInterval(poll, Math.max(100, Math.min(1000, o.anchorPollIntervalMs)))
      this.anchoredTimer.unref()
      poll()
    }
    await this.startIo(store, pipeline, batcher)
  }

  private newPipeline (store: GatewayStore, batcher: LeafSink, tracker: AnchoredTracker, keys: KeyDirectory, logKey: GatewayLogKey): IngestPipeline {
    const o = this.options
    const log = o.logger
    const verifyPool = this.verifyPoolInstance = new VerifyPool({
      workers: o.verifyWorkers,
      onWorkerLost: (e) => { log.warn({ error: e.error, restarts: e.restarts, inline: e.inline }, e.inline ? 'verify workers keep dying: verifying on the main thread' : 'verify worker lost and replaced; its signatures are verified again') }
    })
    return new IngestPipeline({
      store,
      batcher,
      tracker,
      keys,
      maxPayloadBytes: o.maxPayloadBytes,
      quarantineMaxRawBytes: o.quarantineMaxRawBytes,
      maxPendingPerDevice: o.maxPendingPerDevice,
      maxPendingBytesPerDevice: o.maxPendingBytesPerDevice,
      maxPendingBytesTotal: o.maxPendingBytesTotal,
      drainChunkBytes: o.drainChunkBytes,
      gapReportAfterMs: o.gapReportAfterMs,
      publishAck: (deviceId, ack) => this.publishAck(deviceId, ack),
      correctPeerAcks: o.shareGroup !== undefined,
      readPeerAck: createPeerAckReader({ trustedKeys: [logKey.publicKey, ...o.peerGatewayKeys.map(fromHex)], logger: o.logger }),
      counters: this.metrics,
      logger: o.logger,
      now: Date.now,
      verifier: verifyPool
    })
  }

  private async startIo (store: GatewayStore, pipeline: IngestPipeline, batcher: LeafSink): Promise<void> {
    const o = this.options
    const log = o.logger
    const anchorer = this.anchorer
    let url = o.brokerUrl
    let protocolVersion = o.mqttProtocolVersion
    if (url === undefined) {
      this.embedded = await startEmbeddedBroker()
      url = this.embedded.url
      protocolVersion = 4
      log.info({ broker: url }, 'embedded broker listening')
    }
    const backlogLimit = o.maxBacklogRecords
    this.mqtt = MqttIngest.start({
      url,
      clientId: `provenance-gateway-${o.name}`,
      protocolVersion,
      shareGroup: o.shareGroup,
      username: o.mqttUsername,
      password: o.mqttPassword,
      sessionExpirySeconds: o.sessionExpirySeconds,
      // Room for an over-limit payload to arrive and be quarantined rather than silently dropped.
      maxPacketBytes: Math.min(2 * o.maxPayloadBytes + 64 * 1024, 268_435_455),
      reconnectPeriodMs: o.reconnectPeriodMs,
      gatewayName: o.name,
      onRecords: (topic, payload) => pipeline.acceptRecords(topic, payload),
      onAck: (topic, payload) => pipeline.acceptPeerAck(topic, payload),
      flowControl: () => {
        if (pipeline.backlog >= backlogLimit || pipeline.backlogBytes >= o.maxBacklogBytes) {
          return pipeline.whenBacklogBelow(Math.floor(backlogLimit / 2), Math.floor(o.maxBacklogBytes / 2))
        }
        // A slow disk: let the writer catch up before reading more.
        if (store.queuedOps >= 4 * backlogLimit || store.queuedBytes >= o.maxBacklogBytes) return store.flush().catch(() => {})
        return undefined
      },
      onBrokerMaxPacket: (bytes) => this.noteBrokerMaxPacket(bytes),
      onConnect: (sessionPresent) => {
        this.metrics.brokerConnected.set(1)
        // Without its session the broker may have lost the retained acks too: put them back.
        if (sessionPresent) pipeline.flushAcks()
        else pipeline.republishAcks()
      },
      logger: log
    })
    batcher.start()
    this.token = o.httpAuth === 'none' ? undefined : o.httpToken ?? await loadOrCreateApiToken(this.httpTokenFile, MIN_HTTP_TOKEN_CHARS, log)
    this.api = await startApiServer(this.apiBackend(), {
      host: o.httpHost,
      port: o.httpPort,
      logger: log,
      token: this.token,
      publicRoutes: { health: o.httpPublicHealth, proofs: o.httpPublicProofs, metrics: o.httpPublicMetrics },
      maxPageBytes: o.httpMaxPageBytes,
      maxHeaderBytes: o.httpMaxHeaderBytes,
      requestTimeoutMs: o.httpRequestTimeoutMs,
      maxConnections: o.httpMaxConnections,
      maxConcurrentPages: o.httpMaxConcurrentPages
    })
    const gapCheckMs = Math.max(100, Math.min(5000, Math.floor(o.gapReportAfterMs / 2)))
    this.gapTimer = setInterval(() => this.refreshGauges(), gapCheckMs)
    this.gapTimer.unref()
    if (o.pruneIntervalMs > 0) {
      this.pruneTimer = setInterval(() => {
        this.pruneAll().catch((e: unknown) => log.error({ error: (e as Error).message }, 'scheduled pruning failed'))
      }, o.pruneIntervalMs)
      this.pruneTimer.unref()
    }
    log.info({ name: o.name, broker: this.brokerUrl, http: this.api.url, shareGroup: o.shareGroup ?? null, anchoring: anchorer !== undefined || (this.sequencer !== undefined && o.anchorPrivateKey !== undefined), postgres: this.sequencer !== undefined }, 'gateway started')
  }

  /** Resolves once connected to the broker. @throws GatewayError `BROKER_FAILED` after `timeoutMs`. */
  async waitForBroker (timeoutMs = 10_000): Promise<void> {
    if (this.mqtt === undefined) throw new GatewayError('GATEWAY_STOPPED', 'gateway is not started')
    await this.mqtt.waitConnected(timeoutMs)
  }

  /** Health as /healthz reports it. */
  health (): GatewayHealth {
    const brokerConnected = this.mqtt?.connected ?? false
    const storeOpen = this.store?.isOpen ?? false
    const confirmedThrough = this.anchorer?.confirmedThrough() ?? 0
    return {
      ok: brokerConnected && storeOpen && this.fatal === undefined,
      brokerConnected,
      storeOpen,
      anchoring: this.anchorer !== undefined,
      sealedThrough: this.sealedThrough,
      confirmedThrough,
      anchorLagBatches: this.anchorer === undefined ? 0 : Math.max(0, this.sealedThrough - confirmedThrough),
      backlogRecords: this.pipeline?.backlog ?? 0,
      openBatch: { id: this.batcher?.openBatchId ?? 0, size: this.batcher?.openSize ?? 0 }
    }
  }

  /**
   * Prunes one device's oldest records that are anchored and past retention, signing a pruning
   * statement that the next sealed batch commits to (docs/GATEWAY.md §Retention).
   * @throws GatewayError `PRUNE_NOT_ANCHORED`, `PRUNE_BEFORE_RETENTION`, `PRUNE_NOTHING`, `GATEWAY_STOPPED`.
   */
  async prune (request: PruneRequest): Promise<PruneResult | undefined> {
    const pruner = this.pruner
    if (pruner === undefined || this.state !== 'running') throw new GatewayError('GATEWAY_STOPPED', 'gateway is not running')
    // One pruning at a time: two would read the same oldest records.
    const run = this.pruneChain.then(async () => await pruner.prune(request))
    this.pruneChain = run.catch(() => {})
    const result = await run
    if (result !== undefined) this.options.logger.info({ ...result }, 'pruned by retention policy')
    return result
  }

  /** Prunes every device as far as retention allows (what the scheduled run does). */
  async pruneAll (): Promise<PruneResult[]> {
    const out: PruneResult[] = []
    // The tier: the devices of the whole database, pruned by the sequencer holder only (one
    // statement per range, not one per process).
    const ids = this.pgStore === undefined ? this.pipeline?.deviceIds() ?? [] : this.sequencer?.isHolder === true ? await this.pgStore.deviceIdsWithRecords() : []
    for (const deviceId of ids) {
      const r = await this.prune({ deviceId })
      if (r !== undefined) out.push(r)
    }
    return out
  }

  /** Status of a device, or undefined when it was never seen. */
  deviceStatus (deviceId: string): DeviceStatus | undefined {
    return this.pipeline?.status(deviceId)
  }

  /** The proof of record (device, seq), as the API serves it. */
  async proof (deviceId: string, seq: number): Promise<ProofLookup> {
    if (this.proofs === undefined) throw new GatewayError('GATEWAY_STOPPED', 'gateway is not started')
    return await this.proofs.prove(deviceId, seq)
  }

  /**
   * Seals the open batch now (if it has records) and waits until the seal is durable.
   * @throws GatewayError `GATEWAY_STOPPED`, `STORE_WRITE_FAILED`.
   */
  async sealNow (): Promise<StoredBatch | undefined> {
    if (this.batcher === undefined || this.store === undefined || this.pipeline === undefined) throw new GatewayError('GATEWAY_STOPPED', 'gateway is not started')
    await this.pipeline.idle()
    if (this.sequencer !== undefined) {
      await this.store.flush()
      return await this.sequencer.step(true)
    }
    const batch = this.batcher.seal()
    await this.store.flush()
    return batch
  }

  /**
   * Graceful stop: stop taking messages (what the broker has not delivered stays in the session),
   * process what was taken, seal the open batch, flush, publish the last acks, close everything.
   * Safe to call twice.
   */
  /** The pool that verifies record signatures (its stats; tests kill its workers); undefined before start. */
  get verifyPool (): VerifyPool | undefined {
    return this.verifyPoolInstance
  }

  async stop (): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping') return
    this.state = 'stopping'
    const log = this.options.logger
    try {
      this.mqtt?.pause()
      await this.pipeline?.stop()
      this.batcher?.stop()
      if (this.fatal === undefined && this.store !== undefined) {
        this.batcher?.seal()
        await this.store.flush()
        // The seal's enqueue runs in the write's callback; the anchorer serialises it, close() waits for it.
      }
    } catch (e) {
      log.error({ error: (e as Error).message }, 'error while stopping')
    } finally {
      await this.close()
      this.state = 'stopped'
      log.info({ name: this.options.name }, 'gateway stopped')
    }
  }

  private async close (): Promise<void> {
    if (this.gapTimer !== undefined) clearInterval(this.gapTimer)
    if (this.pruneTimer !== undefined) clearInterval(this.pruneTimer)
    if (this.anchoredTimer !== undefined) clearInterval(this.anchoredTimer)
    await this.pruneChain
    this.batcher?.stop()
    const steps: Array<[string, (() => Promise<void>) | undefined]> = [
      ['http', this.api?.close],
      ['mqtt', this.mqtt === undefined ? undefined : async () => await this.mqtt?.close()],
      ['broker', this.embedded?.close],
      ['anchorer', this.anchorer === undefined ? undefined : async () => await this.anchorer?.close()],
      ['sequencer', this.sequencer === undefined ? undefined : async () => await this.sequencer?.stop()],
      ['store', this.store === undefined ? undefined : async () => await this.store?.close()],
      ['verify pool', this.verifyPoolInstance === undefined ? undefined : async () => await this.verifyPoolInstance?.close()]
    ]
    for (const [what, step] of steps) {
      if (step === undefined) continue
      try {
        await step()
      } catch (e) {
        this.options.logger.error({ step: what, error: (e as Error).message }, 'error while closing')
      }
    }
    this.provider?.destroy()
    this.metrics.brokerConnected.set(0)
  }

  // The log key is registered on chain like a device's (docs/GATEWAY.md §Log key). Devices do not
  // read the chain for it, so a missing or different registration does not stop the gateway: it
  // is said once at start, where an operator looks.
  private async checkLogKeyOnChain (keys: KeyDirectory, logKey: GatewayLogKey): Promise<void> {
    const o = this.options
    const fields = { gatewayId: o.gatewayId, logKey: Buffer.from(logKey.publicKey).toString('hex') }
    try {
      const answer = await keys.keyAt(o.gatewayId, Date.now())
      if (answer.publicKey === undefined) o.logger.warn(fields, 'log key not registered on chain: register it with provenance-fleet gateway register --id <gatewayId> --public-key <key> (registerDevice under gatewayId)')
      else if (!equalBytes(answer.publicKey, logKey.publicKey)) o.logger.error({ ...fields, registered: Buffer.from(answer.publicKey).toString('hex') }, 'the key registered on chain under gatewayId is not this gateway\'s log key')
      else if (answer.revoked) o.logger.error(fields, 'log key is revoked on chain')
      else o.logger.info(fields, 'log key registered on chain')
    } catch (e) {
      o.logger.warn({ ...fields, error: (e as Error).message }, 'could not check the log key on chain')
    }
  }

  // Every ack is signed (docs/PROTOCOL.md §9): devices delete records on it. The time only
  // orders this gateway's acks, so it is kept strictly increasing even if the clock steps back.
  private publishAck (deviceId: string, ack: Ack): boolean {
    if (this.mqtt === undefined || this.logKey === undefined) return false
    const issuedAtMs = this.lastAckIssuedMs = Math.max(Date.now(), this.lastAckIssuedMs + 1)
    const signed = signAck({ deviceId, gatewayId: this.options.gatewayId, issuedAtMs, ...ack }, this.logKey.signer)
    const ok = this.mqtt.publishAck(deviceId, signed.envelope)
    if (ok) this.metrics.ackPublished()
    return ok
  }

  private onSealed (batch: StoredBatch, tree: MerkleTree): void {
    this.sealedThrough = Math.max(this.sealedThrough, batch.id)
    this.metrics.batchSealed(batch.size)
    this.proofs?.remember(batch.id, tree)
    this.options.logger.info({ batch: batch.id, size: batch.size, root: Buffer.from(batch.root).toString('hex') }, 'batch sealed')
    this.anchorer?.enqueue(toSealedBatch(batch)).catch((e: unknown) => {
      this.metrics.chainError((e as { code?: string }).code ?? 'ANCHOR_ENQUEUE_FAILED')
      this.options.logger.error({ batch: batch.id, error: (e as Error).message }, 'could not hand the batch to the anchorer')
    })
  }

  // Point 7 of issue 9: a payload above the broker's limit is dropped by the broker and never
  // reaches the gateway; what the gateway can do is say where that limit is.
  private noteBrokerMaxPacket (bytes: number | undefined): void {
    this.metrics.brokerMaxPacketBytes.set(bytes ?? 0)
    const limit = this.options.maxPayloadBytes
    if (bytes !== undefined && bytes < limit) {
      this.options.logger.warn({ brokerMaxPacketBytes: bytes, maxPayloadBytes: limit },
        'the broker drops packets above its maximum packet size, below maxPayloadBytes: larger records payloads vanish at the broker (devices must size to it)')
    }
  }

  private refreshGauges (): void {
    this.pruneQuarantine()
    if (this.pipeline !== undefined) {
      this.metrics.setMemory({ ...this.pipeline.memory(), storeQueueBytes: this.store?.queuedBytes ?? 0 }, this.keys?.stats?.())
    }
    const gaps = this.pipeline?.checkGaps() ?? { open: 0, overdue: 0 }
    this.metrics.openGaps.set(gaps.open)
    this.metrics.overdueGaps.set(gaps.overdue)
    const h = this.health()
    this.metrics.brokerConnected.set(h.brokerConnected ? 1 : 0)
    this.metrics.anchorLag.set(h.anchorLagBatches)
    this.metrics.backlog.set(h.backlogRecords)
  }

  private pruning = false

  // Keeps the quarantine within quarantineMaxEntries: the oldest entries go first.
  private pruneQuarantine (): void {
    const p = this.pipeline
    const store = this.store
    const excess = (p?.quarantineCount ?? 0) - this.options.quarantineMaxEntries
    if (p === undefined || store === undefined || excess <= 0 || this.pruning || this.state !== 'running') return
    this.pruning = true
    store.pruneQuarantined(excess)
      .then((n) => { p.quarantineCount -= n })
      .catch((e: unknown) => { this.options.logger.warn({ error: (e as Error).message }, 'quarantine pruning failed') })
      .finally(() => { this.pruning = false })
  }

  private die (e: GatewayError): void {
    if (this.fatal !== undefined) return
    this.fatal = e
    this.options.logger.error({ code: e.code, error: e.message }, 'fatal: the gateway cannot continue')
    this.mqtt?.pause()
    for (const l of this.fatalListeners) l(e)
  }

  private apiBackend (): ApiBackend {
    return {
      proof: async (d, s) => await this.proof(d, s),
      receipt: (p) => this.proofs?.receipt(p),
      tip: async (d) => {
        if (this.tierTips !== undefined) return await this.tierTips.lookup(d)
        if (this.tips === undefined || this.store === undefined) throw new GatewayError('GATEWAY_STOPPED', 'gateway is not started')
        return await lookupTip(this.tips, this.store, this.anchorer, d)
      },
      logKey: () => this.logKey === undefined ? undefined : { gatewayId: this.options.gatewayId, keyName: this.checkpointKeyName, publicKey: this.logKey.publicKey.slice() },
      deviceStatus: (d) => this.deviceStatus(d),
      deviceIds: () => this.pipeline?.deviceIds() ?? [],
      records: async (d, from, limit, maxBytes) => await (this.store?.recordsFrom(d, from, limit, maxBytes) ?? Promise.resolve([])),
      prunings: async (d) => await (this.store?.prunings(d) ?? Promise.resolve([])),
      batch: async (id) => {
        const batch = await this.store?.getBatch(id)
        if (batch === undefined) return undefined
        const a = this.anchorer
        return { batch, state: await a?.state(id), receipt: await a?.receipt(id) }
      },
      quarantine: async (limit, maxBytes, before) => await (this.store?.quarantinePage(limit, maxBytes, before) ?? Promise.resolve({ items: [], next: null })),
      health: () => { const h = this.health(); return { ...h } },
      metrics: async () => {
        this.refreshGauges()
        return await this.metrics.render()
      }
    }
  }
}

// The tier's anchored seq of a device: its tip in the tree of the newest confirmed batch.
async function tierAnchoredSeq (store: PostgresGatewayStore, tips: TierTips, deviceId: string): Promise<number> {
  const c = await tips.targetBatch()
  return c === 0 ? -1 : await store.tipSeqAt(deviceId, c)
}

function toSealedBatch (b: StoredBatch): SealedBatch {
  return {
    id: b.id,
    root: b.root,
    size: b.size,
    firstRecordTimeMs: b.firstRecordTimeMs,
    lastRecordTimeMs: b.lastRecordTimeMs,
    metadataHash: b.metadataHash,
    sealedAtMs: b.sealedAtMs
  }
}
