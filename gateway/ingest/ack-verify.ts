/**
 * The gateway's side of signed acks: reading a peer gateway's retained ack (scale-out mode, where
 * the ack is the shared chain tip) only when a trusted gateway signed it for that device. An
 * unsigned or forged ack would let anyone on the broker move a device's tip.
 */
import { AckError, verifyAck, type Ack, type AckErrorCode } from '../../protocol/index.js'
import type { Logger } from '../../common/logger.js'

export interface PeerAckReaderOptions {
  /** Log keys of the gateways whose acks count: this gateway's own and its peers'. */
  trustedKeys: readonly Uint8Array[]
  logger: Logger
  /** Called for each refused ack, with the reason. */
  onRejected?: (code: AckErrorCode) => void
}

/** Reads the payload of `prov/v1/<deviceId>/ack`: the ack when a trusted gateway signed it, else undefined (logged). */
export type PeerAckReader = (deviceId: string, payload: Uint8Array) => Ack | undefined

/** A PeerAckReader over a fixed set of trusted keys. */
export function createPeerAckReader (options: PeerAckReaderOptions): PeerAckReader {
  const trustedKeys = options.trustedKeys.map(k => k.slice())
  const refused = new Map<AckErrorCode, number>()
  return (deviceId, payload) => {
    // An empty retained payload clears the topic: nothing to read.
    if (payload.byteLength === 0) return undefined
    try {
      const { statement } = verifyAck(payload, { deviceId, trustedKeys })
      return { storedSeq: statement.storedSeq, storedHash: statement.storedHash, anchoredSeq: statement.anchoredSeq }
    } catch (e) {
      const code: AckErrorCode = e instanceof AckError ? e.code : 'ACK_MALFORMED'
      options.onRejected?.(code)
      // Whoever publishes on ack topics chooses the rate: log the 1st, 2nd, 4th, 8th… per reason.
      const n = (refused.get(code) ?? 0) + 1
      refused.set(code, n)
      if ((n & (n - 1)) === 0) options.logger.warn({ device: deviceId, code, count: n, error: (e as Error).message }, 'ignoring an ack no trusted gateway signed')
      return undefined
    }
  }
}
