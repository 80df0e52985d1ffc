/**
 * The daemon as its HTTP API and metrics see it: the calls they make and the shapes they answer
 * with. daemon.ts implements it and starts the API; http-api.ts only knows this interface (no circle).
 */
import type { Tensor } from 'onnxruntime-node'
import type { OversightBody, PolicyVerdict, SessionBody, SignedRecord } from '../../protocol/index.js'
import type { FrozenCaptureInfo } from '../capture/index.js'
import type { ModelInputInfo } from '../model/index.js'
import type { PolicyStatus } from '../policy/index.js'
import type { DataCaptureMeta, DataCaptureReceipt } from '../session/index.js'
import type { UplinkStatus } from '../uplink/index.js'

/** What the API serves: each method is one route (docs/OPERATIONS.md, local API). */
export interface DaemonApi {
  /** Head and acknowledged seq of the record log (response headers of GET /v1/records). */
  readonly log: { readonly head: { readonly seq: number }, readonly acked: number }
  status: () => Promise<DaemonStatus>
  records: (fromSeq: number, toSeq: number, limit: number, maxBytes?: number) => Promise<SignedRecord[]>
  reload: (name: string) => Promise<ModelStatusEntry>
  /** Once the promise settles nothing reads `feeds` any more: the API reuses their buffers for later requests. */
  run: (name: string, feeds: Record<string, Tensor>, decision?: string, subject?: string, options?: DaemonRunOptions) => Promise<DaemonRunResult>
  /** Appends a signed oversight or use-session statement to the log. */
  appendStatement: (body: OversightBody | SessionBody) => Promise<SignedRecord>
  /** Records a data capture (a training sample) and answers with its receipt. */
  recordDataCapture: (sample: Uint8Array, meta: DataCaptureMeta) => Promise<DataCaptureReceipt>
  /** Crypto-shredding of a data subject (docs/OPERATIONS.md §Erasure). */
  shred: (subject: string, reason: string) => Promise<{ statement: string, hash: string, ranges: Array<{ firstSeq: number, lastSeq: number }>, path: string, capturesDropped: number }>
  freezeCapture: (reason: string) => Promise<FrozenCaptureInfo & { entries: number }>
  listCaptures: () => Promise<FrozenCaptureInfo[]>
  readCapture: (name: string) => Promise<Uint8Array>
  /** Hands over a request in flight, so that stopping waits for it. */
  track: (request: Promise<unknown>) => void
}

export interface ProviderWarning { provider?: string, fallback?: string, message: string, error?: string }

export interface ModelStatusEntry {
  name: string
  path: string
  /** `awaiting-policy`: nothing is loaded until a verified policy is in force (requirePolicy). */
  state: 'loading' | 'loaded' | 'refused' | 'failed' | 'awaiting-policy'
  /** Runs are accepted (loaded, and allowed by the policy in force). */
  runnable: boolean
  modelHash?: string
  sizeBytes?: number
  policy?: PolicyVerdict
  loadSeq?: number
  requestedProviders: string[]
  /** The model's inputs (name, element type, dims), once loaded: what a run request must send. */
  inputs?: ModelInputInfo[]
  /** Providers the session uses, in order. */
  providers?: string[]
  /** The most preferred provider was not available: the model runs on a fallback. */
  fallback?: boolean
  providerWarnings: ProviderWarning[]
  error?: { code: string, message: string }
}

export interface DaemonStatus {
  deviceId: string
  agentVersion: string
  pid: number
  startedMs: number
  state: 'running' | 'stopping'
  boot: number
  seq: number
  headHash: string
  publicKey: string
  keyCount: number
  profile: { id: string, name: string, source: string, overrideSource?: string, executionProviders: string[] }
  /** The API's unix socket, and its TCP address (empty host and port 0 when TCP is off). */
  http: { socket: string, host: string, port: number }
  models: ModelStatusEntry[]
  uplink: ({ configured: true, brokerUrl: string } & UplinkStatus) | { configured: false }
  policy: PolicyStatus
  /**
   * Whether a gateway has acknowledged this device's records. The gateway quarantines the
   * records of a device whose key the registry does not know (`unknown-device`) and acks none
   * of them: the device keeps them all and says `unacknowledged` here, with the device time of
   * the oldest record no ack covers. It cannot tell an unregistered key from a gateway that is
   * down; the hint says what to check.
   */
  registration: RegistrationStatus
  budget: {
    budgetBytes: number
    budgetMode: string
    /** Bytes of the stored records, as the budget counts them. */
    usedBytes: number
    /** Bytes of the log's folder on disk (LevelDB files). */
    diskBytes: number
    droppedRecords: number
  }
}

export interface RegistrationStatus {
  /** `acknowledged`: a gateway acknowledged records of this device; `unacknowledged`: none yet; `no-uplink`: no broker configured. */
  state: 'acknowledged' | 'unacknowledged' | 'no-uplink'
  /** Device time (Unix ms) of the oldest record no ack covers; absent when every record is acknowledged. */
  unacknowledgedSinceMs?: number
  /** Seq of that record. */
  unacknowledgedSinceSeq?: number
  hint?: string
}

export interface DaemonRunResult {
  model: string
  modelHash: string
  outputs: Record<string, Tensor>
  record: SignedRecord
  /** Ends the loan of a lent run's outputs (DaemonRunOptions.lendOutputs); absent or a no-op otherwise. */
  release?: () => void
}

export interface DaemonRunOptions {
  /**
   * Lend the outputs (the agent's RunOptions.lendOutputs): they stay valid until the result's
   * `release()`, then the model's worker reuses their buffers. The API answers so, releasing once
   * the answer is out. Default false.
   */
  lendOutputs?: boolean
}
