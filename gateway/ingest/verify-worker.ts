/**
 * The body of a gateway verify worker (verify-pool.ts): Ed25519 signatures of a batch checked with
 * protocol's keyVerifier (verifySignature's node:crypto path after the strict key checks of
 * PROTOCOL.md §4, each key checked and imported once per batch), one flag per signature. It never
 * throws on input: a bad signature, key or length is simply a 0.
 */
import { parentPort } from 'node:worker_threads'
// The one protocol module it needs, not the barrel: less to load when each worker starts.
import { keyVerifier } from '../../protocol/ed25519.js'
import type { VerifyBatch, VerifyBatchResult } from './verify-pool.js'

const port = parentPort
if (port === null) throw new Error('verify-worker.ts runs only as a worker thread')

port.on('message', (batch: VerifyBatch) => {
  const { count, keys, keyIndex, signatures, signatureOffsets, messages, offsets } = batch
  const valid = new Uint8Array(count)
  // Each distinct key checked and imported once per batch, not once per signature.
  const verifiers = keys.map(keyVerifier)
  for (let i = 0; i < count; i++) {
    const verify = verifiers[keyIndex[i] as number] as (signature: Uint8Array, message: Uint8Array) => boolean
    const signature = signatures.subarray(signatureOffsets[i], signatureOffsets[i + 1])
    const message = messages.subarray(offsets[i], offsets[i + 1])
    valid[i] = verify(signature, message) ? 1 : 0
  }
  const result: VerifyBatchResult = { id: batch.id, valid }
  port.postMessage(result, [valid.buffer])
})
