/**
 * The provenance-wrapped inference session: an agent owns the device key and the record log,
 * loads models (writing a model-load record first) and runs them, resolving each `run()` only
 * once its signed inference record is durable. Each model runs in its own worker thread: the
 * inputs are hashed on this thread while the model computes, the outputs in the worker.
 */
import { join } from 'node:path'
import type { InferenceSession, Tensor } from 'onnxruntime-node'
import {
  commitDigest, commitSample, createSigner, deriveSalt, deriveSubjectSalt, fromHex, generateSeed, sha256, LIMITS,
  type DataCaptureBody, type PolicyVerdict, type SignedRecord, type TensorDigest, type InferenceBody, type ModelLoadBody, type TensorLike
} from '../../protocol/index.js'
import { AgentError } from '../errors.js'
import { loadOrCreateDeviceKey, type DeviceKey, type SubjectKeyStore } from '../keys/index.js'
import { RecordLog, type RecordLogOptions } from '../log/index.js'
import type { LoadedModel, ModelInputInfo } from '../model/index.js'
import { loadModelInWorker, type WorkerLoadedModel, type WorkerRunResult } from './worker-session.js'
import { AGENT_VERSION } from './version.js'
import { SILENT_LOGGER, type Logger } from '../../common/logger.js'

export { AGENT_VERSION }

export interface AgentOptions {
  /** Folder for the record log and, by default, the key file. */
  stateDir: string
  /** Device id as registered in the fleet (see DEVICE_ID_PATTERN). */
  deviceId: string
  /** Key file; default `<stateDir>/device-key.json`, created on first start. */
  keyPath?: string
  /** A key already loaded (e.g. a KeyRing's, whose signer follows rotations); `keyPath` is then unused. */
  key?: DeviceKey
  /** Name of the firmware profile in force, recorded in the boot record. */
  profile?: string
  /** fsync each group-commit batch. Default true. */
  syncWrites?: boolean
  /** Device clock, Unix ms. Default Date.now. */
  clock?: () => number
  logger?: Logger
  /** Execution providers in order of preference, for every model. Default ['cpu']. */
  executionProviders?: string[]
  /**
   * onnxruntime threads inside one operator, in each model's worker. Default: onnxruntime's (one
   * per core, spinning between operators), which leaves no core for this thread's input hashing,
   * commits and I/O: on a small device set cores − 1 (the daemon's profiles do, `threads.intraOp`).
   */
  intraOpNumThreads?: number
  interOpNumThreads?: number
  /**
   * Nice value (0..19) of each model's worker thread and its onnxruntime threads (Linux): above 0
   * the event loop wins the CPU from inference on a machine with no core to spare, at the cost of
   * inference yielding to other processes too. Default 0. See loadModelInWorker.
   */
  inferenceNiceness?: number
  /** Further record-log options (group-commit batch, disk budget), passed through to RecordLog.open. */
  logOptions?: Omit<Partial<RecordLogOptions>, 'dir' | 'deviceId' | 'signer' | 'clock' | 'syncWrites'>
  /** Judges a model before it loads; default: every model is 'unchecked'. */
  judgeModel?: (model: LoadedModel) => PolicyVerdict
  /**
   * Watches each run (e.g. `(inputs, hold) => ring.watch(inputs, hold)`, the capture ring). Called
   * once the inputs are hashed, while the model may still compute, with the bytes the model got
   * and the record commits to (the run's snapshot: the caller's own buffers may have changed
   * since). They are valid during the call only, unless it calls `hold` (WorkerSession
   * StartRunOptions.onInputs): then until it calls the function `hold` returns. It may return a
   * function, told once how the run ended: with its durable record, salt and outputs before
   * `run()` resolves (lent outputs are read during that call only), or with `undefined` when
   * the run left no record. Both are synchronous; an exception is logged and never fails the run.
   */
  watchRun?: (inputs: Readonly<Record<string, TensorLike>>, hold: () => () => void) => ((run: ObservedRun | undefined) => void) | undefined
  /**
   * Subject keys (agent/keys/subject-keys.ts): runs with a `subject` are salted by that subject's
   * key, so that they can be crypto-shredded later (docs/PROTOCOL.md §12.3). Without it, a run
   * with a subject is refused.
   */
  subjectKeys?: SubjectKeyStore
  /**
   * A hardware identity (keyStore `tpm`, docs/IDENTITY.md): the agent signs this boot's records
   * with a fresh Ed25519 key made in memory now (the key file's seed signs nothing), and this
   * certifies it for the boot; the certification goes into the boot record.
   */
  certifyBootKey?: (request: BootKeyRequest) => Promise<{ bytes: Uint8Array, signature: Uint8Array }>
}

/** What a boot key certification must bind (protocol/identity.ts KeyCertification). */
export interface BootKeyRequest {
  deviceId: string
  boot: number
  recordKey: Uint8Array
  /** Device time now: the key signs from here. */
  timeMs: number
}

/** How a run that `AgentOptions.watchRun` watched ended, when it left a durable record. */
export interface ObservedRun {
  record: SignedRecord
  /** The salt of the record's seq: it opens this record's commitments. Never log it. */
  salt: Uint8Array
  outputs: InferenceSession.OnnxValueMapType
}

/** What {@link ProvenanceAgent.watchInputs} gives a run: its watcher's end, made safe to call. */
type RunEnd = (run: ObservedRun | undefined) => void

export interface RunResult {
  outputs: InferenceSession.OnnxValueMapType
  record: SignedRecord
  /**
   * Ends the loan of the outputs of a run asked with `lendOutputs`: their buffers go back to the
   * model's worker, which may overwrite them with a later run's, so nothing may read `outputs`
   * after. Idempotent; a no-op for a run that was not lent.
   */
  release: () => void
}

export interface RunOptions {
  /** Makes the record's small decision summary from the outputs (at most 1 KiB). */
  decide?: (outputs: InferenceSession.OnnxValueMapType) => string | null
  /**
   * The data subject the input is about (e.g. a plate number): the record's commitments are
   * salted by that subject's own key, which `shred` can destroy on an erasure request.
   */
  subject?: string
  /**
   * Lend the outputs rather than give them (WorkerSession StartRunOptions): outputs of 64 KiB or
   * more come in buffers of the model worker's pool that stay the caller's until it calls the
   * result's `release()`, so the event loop's thread gets no fresh buffer per run (issue 11: each
   * run's output was new external memory, the main cause of its major GCs). `decide` and the
   * end of `watchRun` (e.g. the capture ring, which copies) see them before `run()` resolves. For
   * callers that are done with the outputs once answered, like the daemon's API; default false.
   */
  lendOutputs?: boolean
}

export class ProvenanceAgent {
  readonly deviceId: string
  readonly publicKey: Uint8Array
  readonly log: RecordLog
  private readonly key: DeviceKey
  private readonly options: AgentOptions
  private readonly logger: Logger
  private readonly models = new Set<ProvenanceModel>()
  private stopped = false

  private constructor (options: AgentOptions, key: DeviceKey, log: RecordLog) {
    this.options = options
    this.deviceId = options.deviceId
    this.key = key
    this.publicKey = key.publicKey
    this.log = log
    this.logger = options.logger ?? SILENT_LOGGER
  }

  /**
   * Opens key and log and writes the boot record, chained to the last record of the last run.
   * @throws AgentError `KEY_*`, `LOG_*`.
   */
  static async start (options: AgentOptions): Promise<ProvenanceAgent> {
    let key = options.key ?? await loadOrCreateDeviceKey(options.keyPath ?? join(options.stateDir, 'device-key.json'), { create: true })
    if (options.certifyBootKey !== undefined) {
      // The record key of this boot exists only in this process: a copied disk holds no key that signs.
      const signer = createSigner(generateSeed())
      key = { ...key, signer, publicKey: signer.publicKey }
    }
    const log = await RecordLog.open({
      ...options.logOptions,
      dir: join(options.stateDir, 'records'),
      deviceId: options.deviceId,
      signer: key.signer,
      ...(options.clock !== undefined ? { clock: options.clock } : {}),
      ...(options.syncWrites !== undefined ? { syncWrites: options.syncWrites } : {})
    })
    const agent = new ProvenanceAgent(options, key, log)
    try {
      const certification = options.certifyBootKey === undefined
        ? undefined
        : await options.certifyBootKey({ deviceId: options.deviceId, boot: log.nextBoot, recordKey: key.publicKey, timeMs: (options.clock ?? Date.now)() })
      const boot = await log.appendBoot({ agentVersion: AGENT_VERSION, profile: options.profile ?? 'default', ...(certification !== undefined ? { certification } : {}) })
      agent.logger.info({ deviceId: options.deviceId, boot: boot.record.boot, seq: boot.record.seq }, 'agent started')
    } catch (e) {
      await log.close()
      throw e
    }
    return agent
  }

  /**
   * The salt of record `seq`, for an investigator who must check a commitment.
   * @throws KeyError `SUBJECT_SHREDDED` for a record of a shredded subject.
   */
  saltFor (seq: number): Uint8Array {
    return this.options.subjectKeys?.saltFor(seq) ?? deriveSalt(this.key.saltSecret, seq)
  }

  /**
   * Loads a model (hashing the very bytes the session is created from) and writes its
   * model-load record before any inference can use it.
   * @throws ModelError `MODEL_*`; AgentError `LOG_*`.
   */
  async loadModel (path: string, options: { name?: string } = {}): Promise<ProvenanceModel> {
    this.assertRunning()
    const loaded = await loadModelInWorker(path, {
      executionProviders: this.options.executionProviders ?? ['cpu'],
      ...(this.options.intraOpNumThreads !== undefined ? { intraOpNumThreads: this.options.intraOpNumThreads } : {}),
      ...(this.options.interOpNumThreads !== undefined ? { interOpNumThreads: this.options.interOpNumThreads } : {}),
      ...(this.options.inferenceNiceness !== undefined ? { niceness: this.options.inferenceNiceness } : {}),
      logger: this.logger
    })
    try {
      const policy = this.options.judgeModel?.(loaded) ?? 'unchecked'
      const body: ModelLoadBody = {
        kind: 'model-load',
        modelHash: loaded.fileHash,
        manifestHash: asBytes(loaded.manifest.manifestHash),
        graphHash: asBytes(loaded.manifest.graphHash),
        name: (options.name ?? path.split('/').pop() ?? 'model').slice(0, 200),
        sizeBytes: loaded.bytes.byteLength,
        policy,
        providers: [...loaded.executionProviders]
      }
      const record = await this.log.append(() => body)
      const model = new ProvenanceModel(this, loaded, record)
      this.models.add(model)
      this.logger.info({ model: body.name, modelHash: loaded.fileHashHex, seq: record.record.seq, providers: loaded.executionProviders }, 'model loaded')
      return model
    } catch (e) {
      await loaded.release()
      throw e
    }
  }

  /**
   * @internal Appends the inference record of a finished run. Without a subject (the usual case)
   * no async frame of its own: the record is alive until its write returns, and so is everything
   * its promise holds (see RecordLog.appendAt).
   */
  recordInference (modelHash: Uint8Array, inputs: Array<[string, TensorDigest]>, outputs: Array<[string, TensorDigest]>, latencyUs: number, decision: string | null, subject?: string): Promise<{ record: SignedRecord, salt: Uint8Array }> {
    if (subject !== undefined || this.stopped) return this.recordSubjectInference(modelHash, inputs, outputs, latencyUs, decision, subject)
    let salt: Uint8Array | undefined
    return this.log.append((seq): InferenceBody => {
      salt = deriveSalt(this.key.saltSecret, seq)
      return inferenceBody(salt, modelHash, inputs, outputs, latencyUs, decision)
    }).then(record => ({ record, salt: salt as Uint8Array }))
  }

  /** {@link recordInference} of a run with a subject, salted by the subject's key. */
  private async recordSubjectInference (modelHash: Uint8Array, inputs: Array<[string, TensorDigest]>, outputs: Array<[string, TensorDigest]>, latencyUs: number, decision: string | null, subject: string | undefined): Promise<{ record: SignedRecord, salt: Uint8Array }> {
    this.assertRunning()
    let subjectKey: { ref: string, key: Uint8Array } | undefined
    if (subject !== undefined) {
      const store = this.options.subjectKeys
      if (store === undefined) throw new AgentError('INPUT_INVALID', 'a run with a subject needs the agent\'s subject key store')
      // Written before the record: no record is salted by a key that was not kept.
      subjectKey = await store.keyFor(subject)
    }
    let salt: Uint8Array = new Uint8Array()
    const record = await this.log.append((seq): InferenceBody => {
      salt = subjectKey === undefined ? deriveSalt(this.key.saltSecret, seq) : deriveSubjectSalt(subjectKey.key, seq)
      return inferenceBody(salt, modelHash, inputs, outputs, latencyUs, decision)
    })
    // A crash between the record and this note leaves the record salted by a kept key but not
    // listed under its subject: a later shredding statement would not name it (docs/OPERATIONS.md).
    if (subjectKey !== undefined) await this.options.subjectKeys?.noteUse(subjectKey.ref, record.record.seq)
    return { record, salt }
  }

  /**
   * Writes a data-capture record (kind 10) for a sample kept to feed training, and resolves once it
   * is durable. The record holds a salted commitment, not the content hash; the receipt returned
   * carries the salt and content hash that open it, to keep with the sample (docs/LINEAGE.md §5).
   * @throws AgentError `INPUT_INVALID` (dataset or label too long), `AGENT_STOPPED`, `LOG_*`.
   */
  async recordDataCapture (sample: Uint8Array | { contentHash: Uint8Array, sizeBytes: number }, meta: DataCaptureMeta): Promise<DataCaptureReceipt> {
    this.assertRunning()
    const contentHash = sample instanceof Uint8Array ? sha256(sample) : sample.contentHash
    const sizeBytes = sample instanceof Uint8Array ? sample.byteLength : sample.sizeBytes
    const label = meta.label ?? null
    for (const [what, v] of [['dataset', meta.dataset], ['label', label]] as const) {
      if (v !== null && (typeof v !== 'string' || Buffer.byteLength(v, 'utf8') > LIMITS.textBytes || v.length === 0)) {
        throw new AgentError('INPUT_INVALID', `data capture ${what}: 1 to ${LIMITS.textBytes} bytes of text`)
      }
    }
    if (contentHash.byteLength !== 32 || !Number.isSafeInteger(sizeBytes) || sizeBytes < 0) throw new AgentError('INPUT_INVALID', 'data capture: content hash of 32 bytes and a size in bytes')
    const capturedAtMs = meta.capturedAtMs ?? (this.options.clock ?? Date.now)()
    if (!Number.isSafeInteger(capturedAtMs) || capturedAtMs < 0) throw new AgentError('INPUT_INVALID', 'data capture: capturedAtMs must be a non-negative integer')
    let salt: Uint8Array = new Uint8Array()
    const record = await this.log.append((seq): DataCaptureBody => {
      salt = this.saltFor(seq)
      return { kind: 'data-capture', commitment: commitSample(salt, contentHash), sizeBytes, dataset: meta.dataset, label, capturedAtMs }
    })
    return { record, salt, contentHash }
  }

  /**
   * @internal Shows a run's inputs to `options.watchRun`; returns its end (which never throws),
   * or undefined when nothing watches this run.
   */
  watchInputs (inputs: Readonly<Record<string, TensorLike>>, hold: () => () => void): RunEnd | undefined {
    let end: ((run: ObservedRun | undefined) => void) | undefined
    let release: (() => void) | undefined
    try {
      end = this.options.watchRun?.(inputs, () => (release = hold()))
    } catch (e) {
      release?.()
      this.logger.error({ err: (e as Error)?.message }, 'watchRun hook failed')
      return undefined
    }
    // A watcher with no end cannot let its hold go later.
    if (typeof end !== 'function') {
      release?.()
      return undefined
    }
    const watcher = end
    return (run) => {
      try {
        watcher(run)
      } catch (e) {
        this.logger.error({ seq: run?.record.record.seq, err: (e as Error)?.message }, 'watchRun hook failed')
      }
    }
  }

  /** @internal Whether runs are watched (AgentOptions.watchRun). */
  get watched (): boolean { return this.options.watchRun !== undefined }

  /** @internal */
  forget (model: ProvenanceModel): void { this.models.delete(model) }

  private assertRunning (): void {
    if (this.stopped) throw new AgentError('AGENT_STOPPED', 'the agent is stopped')
  }

  /**
   * Writes a shutdown record, waits for it to be durable, releases the models and closes the log.
   * `beforeClose` runs once the shutdown record is durable and before the log closes (e.g. to stop
   * an uplink that reads the log).
   */
  async stop (reason = 'shutdown', options: { beforeClose?: () => Promise<void> } = {}): Promise<void> {
    if (this.stopped) return
    this.stopped = true
    try {
      await this.log.flush()
      await this.log.append(() => ({ kind: 'shutdown', reason }))
      await options.beforeClose?.()
    } finally {
      for (const m of this.models) await m.release()
      await this.log.close()
      this.logger.info({ deviceId: this.deviceId, reason }, 'agent stopped')
    }
  }
}

/** What a data-capture record says about its sample besides the commitment. */
export interface DataCaptureMeta {
  /** The dataset (id or name) the sample is kept for. */
  dataset: string
  /** Its label or purpose. */
  label?: string | null
  /** When it was captured (device time, Unix ms); default: the record's time. */
  capturedAtMs?: number
}

/** A durable data-capture record with what opens its commitment (keep it with the sample). */
export interface DataCaptureReceipt {
  record: SignedRecord
  salt: Uint8Array
  contentHash: Uint8Array
}

export class ProvenanceModel {
  readonly name: string
  readonly fileHash: Uint8Array
  readonly loadRecord: SignedRecord
  /** The model as loaded; its session runs in a worker thread (see WorkerSession). */
  readonly loaded: WorkerLoadedModel
  private readonly agent: ProvenanceAgent

  constructor (agent: ProvenanceAgent, loaded: WorkerLoadedModel, loadRecord: SignedRecord) {
    this.agent = agent
    this.loaded = loaded
    this.loadRecord = loadRecord
    this.fileHash = loaded.fileHash
    this.name = (loadRecord.record.body as ModelLoadBody).name
  }

  get inputNames (): readonly string[] { return this.loaded.session.inputNames }
  get outputNames (): readonly string[] { return this.loaded.session.outputNames }
  /** Each input's name, type and dims (names only with a session that does not describe them). */
  get inputs (): readonly ModelInputInfo[] {
    return this.loaded.session.inputs ?? this.inputNames.map(name => ({ name, type: 'unknown', dims: [] }))
  }

  /**
   * Runs the model and resolves once its inference record is durable.
   * @throws AgentError `INPUT_INVALID` (feeds do not match the model's inputs), `INFERENCE_FAILED`
   *   (onnxruntime refused the run), `LOG_*`; ProtocolError `TENSOR_INVALID`.
   */
  async run (feeds: Record<string, Tensor>, options: RunOptions = {}): Promise<RunResult> {
    const session = this.loaded.session
    const names = Object.keys(feeds).sort()
    const expected = [...session.inputNames].sort()
    if (names.length !== expected.length || names.some((n, i) => n !== expected[i])) {
      throw new AgentError('INPUT_INVALID', `model ${this.name} takes inputs [${expected.join(', ')}], got [${names.join(', ')}]`)
    }
    // Posting the run hands the worker its copy of the feeds; the inputs are hashed here (from
    // the very bytes the worker got) while the model computes there, the outputs in the worker.
    // A watcher (the capture ring) sees those bytes next, still during the run.
    let end: RunEnd | undefined
    const { inputs: hashing, result: pending } = session.startRun(feeds, {
      ...(options.lendOutputs === true ? { lendOutputs: true } : {}),
      ...(this.agent.watched ? { onInputs: (snapshot: Readonly<Record<string, TensorLike>>, hold: () => () => void) => { end = this.agent.watchInputs(snapshot, hold) } } : {})
    })
    let inputs: Array<[string, TensorDigest]>
    let result: WorkerRunResult
    try {
      [inputs, result] = await Promise.all([
        hashing,
        pending.catch((cause: unknown) => {
          throw new AgentError('INFERENCE_FAILED', `model ${this.name} failed to run: ${(cause as Error).message}`, { cause })
        })
      ])
    } catch (e) {
      // Neither promise may be left to reject unhandled.
      await Promise.allSettled([hashing, pending])
      end?.(undefined)
      throw e
    }
    const { outputs, digests: outputDigests, runUs: latencyUs, release } = result
    let record: SignedRecord
    try {
      const decision = options.decide?.(outputs) ?? null
      let salt: Uint8Array
      ({ record, salt } = await this.agent.recordInference(this.fileHash, inputs, outputDigests, latencyUs, decision, options.subject))
      end?.({ record, salt, outputs })
    } catch (e) {
      // Nobody will see these outputs: a lent run's buffers go back at once.
      release()
      end?.(undefined)
      throw e
    }
    return { outputs, record, release }
  }

  /** Releases the onnxruntime session. */
  async release (): Promise<void> {
    this.agent.forget(this)
    await this.loaded.release()
  }
}

function asBytes (v: Uint8Array | string): Uint8Array {
  return typeof v === 'string' ? fromHex(v) : v
}

/** The body of an inference record: each tensor's digest committed under the record's salt. */
function inferenceBody (salt: Uint8Array, modelHash: Uint8Array, inputs: Array<[string, TensorDigest]>, outputs: Array<[string, TensorDigest]>, latencyUs: number, decision: string | null): InferenceBody {
  return {
    kind: 'inference',
    modelHash,
    inputs: inputs.map(([name, d]) => ({ name, hash: commitDigest(salt, name, d) })),
    outputs: outputs.map(([name, d]) => ({ name, hash: commitDigest(salt, name, d) })),
    latencyUs,
    decision
  }
}
