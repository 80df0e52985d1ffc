/**
 * Hashing of a run's input tensors on the agent's main thread, while the model computes in its
 * worker: in slices that yield to the event loop, so that no single hash call holds the loop
 * longer than a slice takes (issue 11: the loop never blocked > 5 ms during inference).
 */
import { createHash } from 'node:crypto'
import { setImmediate as yieldToLoop } from 'node:timers/promises'
import type { CanonicalTensor, TensorDigest } from '../../protocol/index.js'

/**
 * Bytes hashed between two yields to the event loop: ≈ 0.15 ms at 1.6 GB/s (SHA-NI), ≈ 1 ms
 * without; a yield costs a few µs, so small slices cost the run nothing while it computes.
 */
export const DEFAULT_HASH_SLICE_BYTES = 256 * 1024

/**
 * SHA-256 of a checked tensor's canonical bytes, yielding to the event loop every `sliceBytes`,
 * and before the first slice: the caller's synchronous part (the agent's `run()`: check, snapshot,
 * post) then ends without hashing anything, and is the only longer step of a run (issue 11).
 */
export async function hashCanonicalYielding (c: CanonicalTensor, sliceBytes = DEFAULT_HASH_SLICE_BYTES): Promise<TensorDigest> {
  const h = createHash('sha256')
  let sinceYield = sliceBytes
  for (const part of c.parts()) {
    for (let at = 0; at < part.byteLength; at += sliceBytes) {
      if (sinceYield >= sliceBytes) {
        await yieldToLoop()
        sinceYield = 0
      }
      const slice = part.subarray(at, Math.min(part.byteLength, at + sliceBytes))
      h.update(slice)
      sinceYield += slice.byteLength
    }
  }
  return { dtypeCode: c.dtypeCode, dims: c.dims, byteLength: c.byteLength, dataHash: new Uint8Array(h.digest()) }
}
