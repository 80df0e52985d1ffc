/**
 * The body of a gateway verify worker (verify-pool.ts): Ed25519 signatures of a batch checked with
 * protocol's verifySignature (node:crypto after the strict key checks of PROTOCOL.md §4, each key
 * checked and imported once), one flag per signature. It never throws on input: a bad signature,
 * key or length is simply a 0.
 */
import { parentPort } from 'node:worker_threads'
// The one protocol module it needs, not the barrel: less to load when each worker starts.
import { verifySignature } from '../../protocol/ed25519.js'
import type { VerifyBatch, VerifyBatchResult } from './verify-pool.js'

const port = parentPort
if (port === null) throw new Error('verify-worker.ts runs only as a worker thread')

port.on('message', (batch: VerifyBatch) => {
  const { count, keys, keyIndex, signatures, signatureOffsets, messages, offsets } = batch
  const valid = new Uint8Array(count)
  for (let i = 0; i < count; i++) {
    const key = keys[keyIndex[i] as number] as Uint8Array
    const signature = signatures.subarray(signatureOffsets[i], signatureOffsets[i + 1])
    const message = messages.subarray(offsets[i], offsets[i + 1])
    valid[i] = verifySignature(signature, message, key) ? 1 : 0
  }
  const result: VerifyBatchResult = { id: batch.id, valid }
  port.postMessage(result, [valid.buffer])
})
