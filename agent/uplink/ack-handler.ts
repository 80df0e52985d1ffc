/**
 * What the uplink does with each message on its ack topic: applies them one at a time, deletes
 * from the log only on what AckChecker accepts, keeps the counts the status shows, and tells the
 * uplink how far its send window may move. Without gateway keys (keep-all) it deletes nothing.
 */
import { decodeAckEnvelope, MAX_ACK_ENVELOPE_BYTES } from '../../protocol/index.js'
import type { RecordLog } from '../log/index.js'
import type { Logger } from '../../common/logger.js'
import { AckChecker, type AckDecision, type AckRejection } from './ack-check.js'

/** What the uplink did with acks. */
export interface UplinkAckStatus {
  /** `verified`: signed acks of configured gateways delete records; `keep-all`: no gateway key, nothing is deleted. */
  mode: 'verified' | 'keep-all'
  accepted: number
  /** Acks that changed nothing, by reason. */
  rejected: Partial<Record<AckRejection, number>>
  lastRejection?: { reason: AckRejection, detail: string }
}

export interface AckHandlerOptions {
  log: RecordLog
  deviceId: string
  gatewayPublicKeys: readonly Uint8Array[]
  keepUntil: 'stored' | 'anchored'
  logger: Logger
  /** Highest seq sent on this connection (keep-all acks never move the window past it). */
  sentSeq: () => number
  /** An ack covered the records up to `through`: the send window may move. */
  onProgress: (through: number) => void
  /** Applying an ack failed (the log's error). */
  onError: (e: Error) => void
}

export class AckHandler {
  private readonly o: AckHandlerOptions
  private readonly checker: AckChecker
  private readonly counts: UplinkAckStatus
  /** Acks are applied one at a time, in arrival order. */
  private chain: Promise<void> = Promise.resolve()
  /** keep-all: highest seq an (unverified) ack named on this connection; moves the send window only. */
  private flowAcked = -1
  private anchored = -1

  constructor (options: AckHandlerOptions) {
    this.o = options
    this.checker = new AckChecker({ deviceId: options.deviceId, gatewayPublicKeys: options.gatewayPublicKeys })
    this.counts = { mode: this.checker.enabled ? 'verified' : 'keep-all', accepted: 0, rejected: {} }
  }

  get mode (): UplinkAckStatus['mode'] { return this.counts.mode }
  /** Highest seq acknowledged as anchored by a trusted gateway (-1: none). */
  get anchoredSeq (): number { return this.anchored }

  status (): UplinkAckStatus {
    return { ...this.counts, rejected: { ...this.counts.rejected }, ...(this.counts.lastRejection !== undefined ? { lastRejection: { ...this.counts.lastRejection } } : {}) }
  }

  /** A new connection: what keep-all acks said on the last one no longer counts. */
  resetConnection (): void {
    this.flowAcked = this.o.log.acked
  }

  /** Queues one payload of the ack topic. */
  receive (payload: Uint8Array): void {
    // An empty retained payload clears the topic.
    if (payload.byteLength === 0) return
    // Refused before it is queued: a flood of large payloads must not pile up behind the log.
    if (payload.byteLength > MAX_ACK_ENVELOPE_BYTES) { this.reject({ kind: 'reject', reason: 'ACK_MALFORMED', detail: `ack of ${payload.byteLength} bytes` }); return }
    const bytes = payload.slice()
    this.chain = this.chain.then(async () => { await this.apply(bytes) }).catch((e: unknown) => { this.o.onError(e as Error) })
  }

  /** Resolves once every queued ack is applied. */
  async idle (): Promise<void> {
    await this.chain
  }

  private async apply (payload: Uint8Array): Promise<void> {
    const log = this.o.log
    if (!this.checker.enabled) {
      // keep-all: no key to check acks with. They only move this connection's send window (so
      // the uplink does not resend in a loop); nothing is deleted and log.acked stays.
      try {
        this.flowAcked = Math.max(this.flowAcked, Math.min(decodeAckEnvelope(payload).statement.storedSeq, this.o.sentSeq()))
      } catch { return }
      this.o.onProgress(this.flowAcked)
      return
    }
    const decision = await this.checker.decide(payload, log, this.anchored)
    if (decision.kind === 'same') { this.o.onProgress(log.acked); return }
    if (decision.kind === 'reject') { this.reject(decision); return }
    this.counts.accepted++
    const { statement, stored } = decision
    if (stored > log.acked) await log.acknowledge(stored, { deleteAcked: this.o.keepUntil === 'stored' })
    if (statement.anchoredSeq > this.anchored) {
      this.anchored = Math.max(this.anchored, Math.min(statement.anchoredSeq, log.acked))
      if (this.o.keepUntil === 'anchored') await log.deleteAcknowledged(this.anchored)
    }
    this.o.onProgress(log.acked)
  }

  private reject (decision: Extract<AckDecision, { kind: 'reject' }>): void {
    const n = this.counts.rejected[decision.reason] = (this.counts.rejected[decision.reason] ?? 0) + 1
    this.counts.lastRejection = { reason: decision.reason, detail: decision.detail }
    // Whoever floods the topic chooses the rate: log the 1st, 2nd, 4th, 8th… of each reason.
    if ((n & (n - 1)) === 0) this.o.logger.warn({ reason: decision.reason, count: n, detail: decision.detail }, 'ack refused: nothing deleted')
  }
}
