/**
 * The device's check of an ack before the log deletes anything on it (decision 11,
 * docs/OPERATIONS.md §Signed acks): signed by a configured gateway key, for this device, not
 * stale, and naming the device's own record by hash. What fails changes nothing, counted by reason.
 */
import { AckError, equalBytes, toHex, verifyAck, type AckErrorCode, type AckStatement } from '../../protocol/index.js'
import type { RecordLog } from '../log/index.js'

/** Why an ack changed nothing: the protocol's verification codes, then the device's own checks. */
export type AckRejection = AckErrorCode
  /** Says less than the device already holds, or is older than an ack already taken from that gateway. */
  | 'ACK_STALE'
  /** Names a record at `storedSeq` whose hash is not the device's record there (or a seq it no longer holds). */
  | 'ACK_HASH_MISMATCH'
  /** Acknowledges a seq the device never wrote. */
  | 'ACK_BEYOND_HEAD'

/** What to do with a verified ack. */
export type AckDecision =
  | { kind: 'apply', statement: AckStatement, stored: number }
  | { kind: 'same' }
  | { kind: 'reject', reason: AckRejection, detail: string }

export interface AckCheckerOptions {
  deviceId: string
  /** Raw Ed25519 log keys of the gateways whose acks count. Empty: no ack counts. */
  gatewayPublicKeys: readonly Uint8Array[]
}

export class AckChecker {
  private readonly deviceId: string
  private readonly keys: Uint8Array[]
  /** Newest issuedAtMs taken from each gateway key (hex). */
  private readonly newest = new Map<string, number>()

  constructor (options: AckCheckerOptions) {
    this.deviceId = options.deviceId
    this.keys = options.gatewayPublicKeys.map(k => {
      if (!(k instanceof Uint8Array) || k.byteLength !== 32) throw new RangeError('gatewayPublicKeys must be 32-byte Ed25519 public keys')
      return k.slice()
    })
  }

  /** False when no gateway key is configured: then acks delete nothing. */
  get enabled (): boolean { return this.keys.length > 0 }

  /**
   * Decides on an ack payload against the log's state. `anchoredSeq` is what the device holds as
   * anchored. Never throws for bad input.
   */
  async decide (payload: Uint8Array, log: RecordLog, anchoredSeq: number): Promise<AckDecision> {
    let statement: AckStatement
    try {
      statement = verifyAck(payload, { deviceId: this.deviceId, trustedKeys: this.keys }).statement
    } catch (e) {
      return { kind: 'reject', reason: e instanceof AckError ? e.code : 'ACK_MALFORMED', detail: (e as Error).message }
    }
    const keyId = toHex(statement.gatewayKey)
    const newest = this.newest.get(keyId) ?? -1
    if (statement.storedSeq > log.head.seq) {
      return { kind: 'reject', reason: 'ACK_BEYOND_HEAD', detail: `gateway "${statement.gatewayId}" acknowledged seq ${statement.storedSeq}, the log ends at ${log.head.seq}` }
    }
    const advances = statement.storedSeq > log.acked || Math.min(statement.anchoredSeq, Math.max(log.acked, statement.storedSeq)) > anchoredSeq
    if (!advances) {
      // The retained ack delivered again on every (re)subscription is the normal case, not an attack.
      if (statement.storedSeq === log.acked && statement.issuedAtMs >= newest) return { kind: 'same' }
      return { kind: 'reject', reason: 'ACK_STALE', detail: `ack of gateway "${statement.gatewayId}" for seq ${statement.storedSeq} (issued ${statement.issuedAtMs}) says less than the device holds (acked ${log.acked})` }
    }
    let stored = log.acked
    if (statement.storedSeq > log.acked) {
      // An ack names our record by hash: the gateway must hold exactly what we wrote.
      const ours = await log.get(statement.storedSeq)
      if (ours === undefined || !equalBytes(ours.hash, statement.storedHash)) {
        return {
          kind: 'reject',
          reason: 'ACK_HASH_MISMATCH',
          detail: ours === undefined
            ? `gateway "${statement.gatewayId}" acknowledged seq ${statement.storedSeq}, which is not in the log`
            : `gateway "${statement.gatewayId}" acknowledged ${toHex(statement.storedHash)} at seq ${statement.storedSeq}, ours is ${toHex(ours.hash)}`
        }
      }
      stored = statement.storedSeq
    }
    this.newest.set(keyId, Math.max(newest, statement.issuedAtMs))
    return { kind: 'apply', statement, stored }
  }
}
