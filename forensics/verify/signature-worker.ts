/**
 * The body of a signature worker: answers each batch it is sent (signature-answer.ts) and sends
 * the answer back by transfer.
 */
import { parentPort } from 'node:worker_threads'
import { answerBatch } from './signature-answer.js'
import type { SignatureBatch } from './signature-pool.js'

const port = parentPort
if (port === null) throw new Error('signature-worker.ts runs only as a worker thread')

port.on('message', (batch: SignatureBatch) => {
  const result = answerBatch(batch)
  const transfer = [result.valid.buffer as ArrayBuffer]
  if (result.proofs !== undefined) transfer.push(result.proofs.codes.buffer as ArrayBuffer, result.proofs.rootIndex.buffer as ArrayBuffer)
  port.postMessage(result, transfer)
})
