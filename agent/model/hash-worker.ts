/**
 * A worker thread that hashes tensor bytes for the model loader on the second core, from shared
 * memory. onnxruntime refuses a model in shared memory, so the model keeps its own buffer and the
 * loading thread copies each tensor, piece by piece, into a small ring of SharedArrayBuffer slots:
 * the slots are reused, so that copy runs at memcpy speed without page faults (about a seventh of
 * a SHA-256 pass here), where webcrypto's digest copies into fresh memory every time.
 */
import { Worker } from 'node:worker_threads'

/** Bytes of one ring slot: the largest piece of a tensor handed over at once. */
export const SLOT_BYTES = 2 * 1024 ** 2
/** Slots in the ring: 16 MiB of shared memory while the worker lives. */
const SLOTS = 8
/**
 * Distance between slots: a piece lands at the same offset mod 8 as in the model, since V8 copies
 * into shared memory word by word only when source and target are equally aligned, else byte by
 * byte (4x slower here: raw_data starts at any offset).
 */
const SLOT_STRIDE = SLOT_BYTES + 8
/**
 * An idle worker is ended after this long. Its start costs 40-60 ms of CPU on the bench VM, so it
 * is kept for the next load (a model reloaded, the next model of a fleet update) but not forever.
 */
const IDLE_MS = 10_000

// CommonJS source run with `eval`: no module resolution, no loader, the smallest start.
// Messages in: [id, slot, at, length, last] hashes ring[at, at + length) (slot -1: forget id).
// Out: [slot, id, hex|null], the hex with a tensor's last piece.
const SOURCE = `'use strict'
const { parentPort, workerData } = require('node:worker_threads')
const { createHash } = require('node:crypto')
const ring = new Uint8Array(workerData.ring)
const open = new Map()
parentPort.on('message', ([id, slot, at, length, last]) => {
  if (slot < 0) { open.delete(id); return }
  let hash = open.get(id)
  if (hash === undefined) hash = createHash('sha256')
  hash.update(ring.subarray(at, at + length))
  if (last) {
    open.delete(id)
    parentPort.postMessage([slot, id, hash.digest('hex')])
  } else {
    open.set(id, hash)
    parentPort.postMessage([slot, id, null])
  }
})
`

/** A caller of the worker: told when slots free up, so that it can hand over its next pieces. */
export interface HashWorkerClient {
  /** A slot is free again (after a piece was hashed, or the worker died). */
  onSlotFree: () => void
}

/**
 * One worker and its ring, shared by the loads of this thread. Pieces of a tensor go in order;
 * the hash of the whole tensor comes back with its last piece.
 */
export class HashWorker {
  private static current: HashWorker | undefined

  /** This thread's worker, started on first use; undefined when a worker cannot start here. */
  static forThisThread (): HashWorker | undefined {
    if (HashWorker.current === undefined || HashWorker.current.dead) {
      try {
        HashWorker.current = new HashWorker()
      } catch {
        return undefined
      }
    }
    return HashWorker.current
  }

  /** Ends this thread's worker now (tests and benches that measure a cold start). */
  static async endForThisThread (): Promise<void> {
    const worker = HashWorker.current
    HashWorker.current = undefined
    await worker?.end()
  }

  private readonly worker: Worker
  /** A Buffer view, so that copies in take Buffer#copy's memmove (TypedArray#set into shared memory is slower). */
  private readonly ring: Buffer
  private readonly free: number[] = []
  private readonly waiting = new Map<number, (hex: string | undefined) => void>()
  private readonly clients = new Set<HashWorkerClient>()
  private nextId = 0
  private dead = false
  private idleTimer: NodeJS.Timeout | undefined

  private constructor () {
    const ring = new SharedArrayBuffer(SLOTS * SLOT_STRIDE)
    this.ring = Buffer.from(ring)
    for (let i = SLOTS - 1; i >= 0; i--) this.free.push(i)
    // execArgv: [] keeps a TypeScript loader (tsx in development) out of a worker that needs none.
    this.worker = new Worker(SOURCE, { eval: true, workerData: { ring }, execArgv: [], stdout: false, stderr: false })
    this.worker.unref()
    this.worker.on('message', ([slot, id, hex]: [number, number, string | null]) => {
      this.free.push(slot)
      if (hex !== null) {
        const done = this.waiting.get(id)
        this.waiting.delete(id)
        done?.(hex)
      }
      this.afterChange()
    })
    this.worker.on('error', () => { this.die() })
    this.worker.on('exit', () => { this.die() })
  }

  /** Starts a tensor: its id for the pieces, and `done` called once with its hash (undefined if lost). */
  open (done: (hex: string | undefined) => void): number {
    const id = this.nextId++
    this.waiting.set(id, done)
    return id
  }

  /**
   * Copies `bytes[start, end)` (at most SLOT_BYTES) into a free slot and hands it to the worker;
   * false when no slot is free (or the worker is gone), and nothing was done.
   */
  put (id: number, bytes: Buffer, start: number, end: number, last: boolean): boolean {
    if (this.dead) return false
    const slot = this.free.pop()
    if (slot === undefined) return false
    const at = slot * SLOT_STRIDE + ((bytes.byteOffset + start) & 7)
    bytes.copy(this.ring, at, start, end)
    this.worker.postMessage([id, slot, at, end - start, last])
    return true
  }

  /** Forgets a tensor whose last piece will never come. */
  drop (id: number): void {
    const done = this.waiting.get(id)
    this.waiting.delete(id)
    if (!this.dead) this.worker.postMessage([id, -1, 0, 0, true])
    done?.(undefined)
  }

  get alive (): boolean {
    return !this.dead
  }

  /** While a client is attached, the worker keeps the process alive and is not ended for idleness. */
  attach (client: HashWorkerClient): void {
    this.clients.add(client)
    this.afterChange()
  }

  detach (client: HashWorkerClient): void {
    this.clients.delete(client)
    this.afterChange()
  }

  private afterChange (): void {
    for (const client of this.clients) client.onSlotFree()
    const busy = this.clients.size > 0 || this.waiting.size > 0
    if (this.dead) return
    if (busy) {
      if (this.idleTimer !== undefined) { clearTimeout(this.idleTimer); this.idleTimer = undefined }
      this.worker.ref()
    } else {
      this.worker.unref()
      if (this.idleTimer === undefined) {
        this.idleTimer = setTimeout(() => {
          if (HashWorker.current === this) HashWorker.current = undefined
          void this.end()
        }, IDLE_MS)
        this.idleTimer.unref()
      }
    }
  }

  private die (): void {
    if (this.dead) return
    this.dead = true
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer)
    // Tensors in flight are simply not known: the manifest hashes them itself.
    const lost = [...this.waiting.values()]
    this.waiting.clear()
    for (const done of lost) done(undefined)
    for (const client of this.clients) client.onSlotFree()
  }

  private async end (): Promise<void> {
    this.die()
    await this.worker.terminate()
  }
}
