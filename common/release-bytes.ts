/**
 * Freeing a buffer's bytes now instead of at some later GC, for code that makes large buffers
 * nobody reads any more at a steady rate: the agent daemon's API (body chunks, decoded tensors)
 * and the model worker (onnxruntime's outputs once copied into a lent slot).
 */
import { MessageChannel } from 'node:worker_threads'

/**
 * A port whose other end is closed: a message posted there is serialized and dropped at once
 * (HTML structured clone: the transfer list is still detached), so transferring an ArrayBuffer
 * there frees its bytes now instead of at some later GC.
 */
const SINK = (() => {
  const { port1 } = new MessageChannel()
  port1.close()
  return port1
})()

/**
 * Frees the bytes of `view` at once when it is the only view of its whole ArrayBuffer (a chunk of
 * node's HTTP parser, a tensor buffer of a finished run): its buffer is detached, every view of
 * it reads as empty afterwards. Anything else (a slice of a pooled buffer, a SharedArrayBuffer, a
 * buffer node marks untransferable) is left to the GC. Only for bytes nothing reads any more,
 * and never for bytes a pending socket write still points at.
 *
 * Why: such buffers are garbage external to the V8 heap, which V8 collects only when its young
 * generation fills or tens of MiB of external memory pile up. Node's HTTP parser copies each
 * read of a body into a fresh Buffer (64 KiB), so a stream of API runs kept a few MiB of them
 * live at any time; a model worker allocates little else, so onnxruntime's outputs piled up
 * there, in a thread whose heap the main thread's figures do not show (issue 11: the API's peak
 * RSS).
 */
export function releaseBytes (view: ArrayBufferView | ArrayBuffer): void {
  const buffer = ArrayBuffer.isView(view) ? view.buffer : view
  if (!(buffer instanceof ArrayBuffer) || buffer.byteLength === 0) return
  if (ArrayBuffer.isView(view) && (view.byteOffset !== 0 || view.byteLength !== buffer.byteLength)) return
  try {
    SINK.postMessage(null, [buffer])
  } catch {
    // Not transferable after all: the GC frees it.
  }
}
