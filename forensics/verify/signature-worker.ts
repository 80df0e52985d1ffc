/**
 * The body of a signature worker: verifies a batch of Ed25519 signatures with the backend it is
 * told (node:crypto by default, noble on request) and answers one flag per signature. The key
 * checks and imports are done once per key and kept (protocol/ed25519.ts caches them).
 */
import { parentPort } from 'node:worker_threads'
import { verifySignature } from '../../protocol/index.js'
import type { SignatureBatch, SignatureBatchResult } from './signature-pool.js'

const port = parentPort
if (port === null) throw new Error('signature-worker.ts runs only as a worker thread')

port.on('message', (batch: SignatureBatch) => {
  const { count, keyIndex, keys, signatures, messages, offsets, backend } = batch
  const valid = new Uint8Array(count)
  for (let i = 0; i < count; i++) {
    const key = keys[keyIndex[i] as number] as Uint8Array
    const signature = signatures.subarray(i * 64, i * 64 + 64)
    const message = messages.subarray(offsets[i], offsets[i + 1])
    valid[i] = verifySignature(signature, message, key, backend) ? 1 : 0
  }
  const result: SignatureBatchResult = { id: batch.id, valid }
  port.postMessage(result, [valid.buffer])
})
