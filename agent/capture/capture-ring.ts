/**
 * The device side of incident capture: a ring of the most recent runs' raw inputs and outputs,
 * with their seq and salt, bounded by entry count and bytes. `freeze` turns it into one capture
 * file (protocol/capture.ts) in `<stateDir>/captures/`; a trigger can freeze it automatically.
 */
import {
  CAPTURE_LIMITS, captureTensor, encodeCapture, sha256, toHex, sizeCaptureEntry,
  type CaptureEntry, type CapturedTensor, type SignedRecord, type TensorLike
} from '../../protocol/index.js'
import { listFrozenCaptures, writeFrozenCapture } from './capture-store.js'
import { SILENT_LOGGER, type Logger } from '../../common/logger.js'
import { SpareBuffers } from '../../common/spare-buffers.js'

/** Most runs kept by default. */
export const DEFAULT_RING_MAX_ENTRIES = 16
/** Largest ring by default, in bytes of encoded capture (raw tensor bytes plus a small overhead). */
export const DEFAULT_RING_MAX_BYTES = 64 * 1024 * 1024
/** Least device time between two automatic freezes by default, in ms. */
export const DEFAULT_TRIGGER_COOLDOWN_MS = 60_000
/** Automatic freezes pause while this many frozen captures wait in the folder (uploads delete them). */
export const DEFAULT_MAX_FROZEN_CAPTURES = 16

/**
 * How a watched run ended, as the ring needs it: the shape of the agent's `ObservedRun`
 * (AgentOptions.watchRun). The outputs are read during the call only.
 */
export interface CaptureRun {
  record: SignedRecord
  salt: Uint8Array
  outputs: Readonly<Record<string, TensorLike>>
}

/** What {@link CaptureRing.watch} returns: told once how the run ended, `undefined` when it left no record. */
export type CaptureRunEnd = (run: CaptureRun | undefined) => void

/**
 * Decides after each run whether to freeze now: `true` freezes with reason "trigger", a string
 * freezes with that reason (at most 256 bytes; otherwise "trigger"), `false`/`null` does nothing.
 */
export type CaptureTrigger = (decision: string | null, outputs: Readonly<Record<string, TensorLike>>, record: SignedRecord) => boolean | string | null

// The logger (common's seam) gets only counts, seqs, names and reasons: never salts or tensor data.
export interface CaptureRingOptions {
  /** The agent's state folder: frozen captures go to `<stateDir>/captures/` (0700, files 0600). */
  stateDir: string
  /** The device id written into captures; runs of another device are ignored. */
  deviceId: string
  /** Most runs kept. Default 16. */
  maxEntries?: number
  /** Bytes kept, counted as each entry's upper bound in the capture file (sizeCaptureEntry). Default 64 MiB. */
  maxBytes?: number
  /** Freezes automatically after a run (e.g. on low confidence). */
  triggerOn?: CaptureTrigger
  /** Least device time between automatic freezes, ms. Default 60 000. */
  triggerCooldownMs?: number
  /** Automatic freezes are skipped while this many frozen captures are stored. Default 16. */
  maxFrozenCaptures?: number
  /** Told of every capture written (e.g. to start an upload). Exceptions are logged. */
  onFrozen?: (frozen: FrozenCapture) => void
  /** Device clock, Unix ms. Default Date.now. */
  clock?: () => number
  logger?: Logger
}

/** A capture that was frozen and written. */
export interface FrozenCapture {
  /** File name in `<stateDir>/captures/`. */
  name: string
  path: string
  /** The capture file's bytes (what an upload sends). */
  bytes: Uint8Array
  /** Hex SHA-256 of `bytes`. */
  sha256: string
  reason: string
  frozenAtMs: number
  /** Seqs of the runs it holds, ascending. */
  seqs: number[]
  /** 'request' for `freeze()`, 'trigger' for an automatic freeze. */
  origin: 'request' | 'trigger'
}

export interface CaptureRingStats {
  entries: number
  bytes: number
  /** Runs pushed out by a newer one. */
  evicted: number
  /** Runs larger than the whole byte budget, never kept. */
  oversized: number
  /** Captures written. */
  frozen: number
  /** Triggers that fired during the cooldown or while too many captures waited. */
  triggersSkipped: number
  /** Automatic freezes that failed to write (logged). */
  freezeFailures: number
}

interface Slot { entry: CaptureEntry, bytes: number }

const LONE_SURROGATE = /[\uD800-\uDFFF]/u
/** Spare buffers kept per byte length: a run's tensors of one size (a burst of evictions needs no more). */
const MAX_SPARE_PER_SIZE = 4
/** Bytes of spare buffers kept in all (at most the ring's own bound): tensors of ever other sizes cannot grow them. */
const MAX_SPARE_BYTES = 32 * 1024 * 1024

export class CaptureRing {
  readonly stateDir: string
  readonly deviceId: string
  readonly maxEntries: number
  readonly maxBytes: number
  private readonly triggerOn: CaptureTrigger | undefined
  private readonly cooldownMs: number
  private readonly maxFrozen: number
  private readonly onFrozen: ((frozen: FrozenCapture) => void) | undefined
  private readonly clock: () => number
  private readonly logger: Logger
  /** Ascending by seq. */
  private slots: Slot[] = []
  private totalBytes = 0
  private lastTriggerMs = -Infinity
  private readonly pending = new Set<Promise<unknown>>()
  /**
   * Data buffers of evicted runs, by byte length, that the next runs copy into: a fresh copy per
   * run would leave the evicted ones as garbage that V8 collects only once tens of MiB of it
   * have piled up (issue 11: daemon RSS under load). Nothing else holds them: a freeze encodes
   * its copy at once, and shredded or frozen runs leave without being recycled.
   */
  private readonly spare: SpareBuffers<Uint8Array>
  private readonly counters = { evicted: 0, oversized: 0, frozen: 0, triggersSkipped: 0, freezeFailures: 0 }
  /** Runs whose inputs wait, held, to be copied at their end. */
  private holding = 0

  /** @throws TypeError, RangeError for bad options. */
  constructor (options: CaptureRingOptions) {
    if (typeof options.stateDir !== 'string' || options.stateDir === '') throw new TypeError('stateDir must be a non-empty string')
    if (typeof options.deviceId !== 'string' || options.deviceId === '') throw new TypeError('deviceId must be a non-empty string')
    this.stateDir = options.stateDir
    this.deviceId = options.deviceId
    this.maxEntries = positiveInt(options.maxEntries ?? DEFAULT_RING_MAX_ENTRIES, 'maxEntries', CAPTURE_LIMITS.entries)
    this.maxBytes = positiveInt(options.maxBytes ?? DEFAULT_RING_MAX_BYTES, 'maxBytes', Number.MAX_SAFE_INTEGER)
    this.spare = new SpareBuffers(MAX_SPARE_PER_SIZE, Math.min(this.maxBytes, MAX_SPARE_BYTES))
    this.cooldownMs = nonNegativeInt(options.triggerCooldownMs ?? DEFAULT_TRIGGER_COOLDOWN_MS, 'triggerCooldownMs')
    this.maxFrozen = positiveInt(options.maxFrozenCaptures ?? DEFAULT_MAX_FROZEN_CAPTURES, 'maxFrozenCaptures', 1_000_000)
    this.triggerOn = options.triggerOn
    this.onFrozen = options.onFrozen
    this.clock = options.clock ?? Date.now
    this.logger = options.logger ?? SILENT_LOGGER
  }

  /** Runs held. */
  get size (): number { return this.slots.length }
  /** Bytes held (the bound of their share of a capture file). */
  get bytes (): number { return this.totalBytes }
  /** Seqs held, ascending. */
  get seqs (): number[] { return this.slots.map(s => s.entry.seq) }

  stats (): CaptureRingStats {
    return { entries: this.slots.length, bytes: this.totalBytes, ...this.counters }
  }

  /**
   * Starts keeping one run (the agent's `watchRun`: `(inputs, hold) => ring.watch(inputs, hold)`)
   * and returns what to call when the run has ended. The inputs are copied now, while the model
   * computes (off the way to `run()` resolving), when a spare buffer of an evicted run is at hand
   * for each and no earlier run waits to be copied at its end: one run at a time, the usual case
   * once the ring is full. Otherwise, with `hold` (the agent's snapshot, kept unchanged until
   * released), they are copied at the end, into the buffers the run ending before it let go: a
   * copy now would take them from that run, which would then allocate one, a new buffer per run
   * while runs overlap. The end copies the outputs, keeps the run by its record's seq, evicts
   * the oldest runs beyond the bounds and asks the trigger; `undefined` (no record) lets the
   * inputs go. Never throws: problems are logged.
   */
  watch (inputs: Readonly<Record<string, TensorLike>>, hold?: () => () => void): CaptureRunEnd {
    let captured: CapturedTensor[] | undefined
    let release: (() => void) | undefined
    let inputBytes = 0
    try {
      inputBytes = dataBytes(inputs)
      // Inputs alone over the byte bound: the run cannot be kept, so nothing is copied.
      if (inputBytes <= this.maxBytes) {
        if (hold === undefined || (this.holding === 0 && this.hasSpares(inputs))) {
          captured = this.captureAll(inputs)
        } else {
          release = hold()
          this.holding++
        }
      }
    } catch (e) {
      this.logger.warn({ err: (e as Error).message }, 'capture ring cannot copy a run')
      return () => {}
    }
    let ended = false
    return (run) => {
      if (ended) return
      ended = true
      if (release !== undefined) {
        try {
          if (run !== undefined) captured = this.captureAll(inputs)
        } catch (e) {
          this.logger.warn({ seq: run?.record.record.seq, err: (e as Error).message }, 'capture ring cannot copy a run')
          return
        } finally {
          release()
          this.holding--
        }
      }
      this.end(captured, inputBytes, run)
    }
  }

  private end (inputs: CapturedTensor[] | undefined, inputBytes: number, run: CaptureRun | undefined): void {
    if (run === undefined) {
      if (inputs !== undefined) this.recycle(inputs)
      return
    }
    const record = run.record.record
    if (record.body.kind !== 'inference' || record.deviceId !== this.deviceId) {
      if (inputs !== undefined) this.recycle(inputs)
      if (record.body.kind === 'inference') this.logger.warn({ seq: record.seq }, 'capture ring ignores a run of another device')
      return
    }
    if (inputs === undefined) {
      this.oversized(record.seq, inputBytes + dataBytes(run.outputs))
    } else {
      let entry: CaptureEntry
      try {
        entry = {
          seq: record.seq,
          salt: new Uint8Array(run.salt),
          modelHash: new Uint8Array(record.body.modelHash),
          inputs,
          outputs: this.captureAll(run.outputs)
        }
      } catch (e) {
        this.recycle(inputs)
        this.logger.warn({ seq: record.seq, err: (e as Error).message }, 'capture ring cannot copy a run')
        return
      }
      this.keep(entry)
    }
    if (this.triggerOn !== undefined) this.askTrigger(run, record.body.decision)
  }

  /**
   * Freezes the ring into a capture file in `<stateDir>/captures/` and returns it. The runs it holds
   * leave the ring once the file is durable (so raw data lingers in one place only); if writing
   * fails they stay. An empty ring gives a capture with no entries.
   * @throws CaptureStoreError `CAPTURE_WRITE_FAILED`; RangeError for a reason that is not text of
   *   at most 256 UTF-8 bytes.
   */
  async freeze (reason = 'request'): Promise<FrozenCapture> {
    if (!isReason(reason)) throw new RangeError('reason must be text of at most 256 UTF-8 bytes')
    return await this.track(this.write(this.snapshot(reason, 'request')))
  }

  /** Resolves once every automatic freeze started so far has finished (written, skipped or failed). */
  async idle (): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending])
  }

  /** Drops every run held (e.g. on shutdown, so no raw data stays in memory). */
  clear (): void {
    this.slots = []
    this.totalBytes = 0
    this.spare.clear()
  }

  /**
   * Drops the runs whose seq `drop` selects (crypto-shredding: the raw inputs and salts of a
   * shredded subject must not outlive its key). Returns how many went.
   */
  forget (drop: (seq: number) => boolean): number {
    const before = this.slots.length
    this.slots = this.slots.filter(s => {
      if (!drop(s.entry.seq)) return true
      s.entry.salt.fill(0)
      this.totalBytes -= s.bytes
      return false
    })
    return before - this.slots.length
  }

  private keep (entry: CaptureEntry): void {
    const bytes = sizeCaptureEntry(entry)
    if (bytes > this.maxBytes) {
      this.oversized(entry.seq, bytes)
      this.recycle(entry.inputs)
      this.recycle(entry.outputs)
      return
    }
    // Runs normally arrive in seq order; concurrent runs may not, and a capture lists seqs ascending.
    let at = this.slots.length
    while (at > 0 && (this.slots[at - 1] as Slot).entry.seq >= entry.seq) at--
    if (this.slots[at]?.entry.seq === entry.seq) return
    this.slots.splice(at, 0, { entry, bytes })
    this.totalBytes += bytes
    while (this.slots.length > this.maxEntries || this.totalBytes > this.maxBytes) {
      const old = this.slots.shift() as Slot
      this.totalBytes -= old.bytes
      this.counters.evicted++
      this.recycle(old.entry.inputs)
      this.recycle(old.entry.outputs)
    }
  }

  private oversized (seq: number, bytes: number): void {
    this.counters.oversized++
    this.logger.warn({ seq, bytes, maxBytes: this.maxBytes }, 'run larger than the capture ring, not kept')
  }

  /** Gives the data buffers of tensors nothing holds any more to the spares. */
  private recycle (tensors: readonly CapturedTensor[]): void {
    for (const t of tensors) {
      if (t.dtype === 'string') continue
      this.spare.give(t.data)
    }
  }

  /** Whether each numeric tensor has a spare buffer of its length (copying them allocates nothing). */
  private hasSpares (tensors: Readonly<Record<string, TensorLike>>): boolean {
    return Object.values(tensors).every(t => !ArrayBuffer.isView(t.data) || t.type === 'string' || this.spare.has(t.data.byteLength))
  }

  /** Tensors in name order, as the record lists their commitments, copied into spare buffers where one fits. */
  private captureAll (tensors: Readonly<Record<string, TensorLike>>): CapturedTensor[] {
    return Object.keys(tensors).sort().map(name => {
      const t = tensors[name] as TensorLike
      return captureTensor(name, t, ArrayBuffer.isView(t.data) && t.type !== 'string' ? this.spare.take(t.data.byteLength) : undefined)
    })
  }

  private askTrigger (run: CaptureRun, decision: string | null): void {
    let verdict: boolean | string | null
    try {
      verdict = (this.triggerOn as CaptureTrigger)(decision, run.outputs, run.record)
    } catch (e) {
      this.logger.error({ seq: run.record.record.seq, err: (e as Error).message }, 'capture trigger failed')
      return
    }
    if (verdict === false || verdict === null || verdict === undefined) return
    const reason = typeof verdict === 'string' && isReason(verdict) ? verdict : 'trigger'
    const now = this.clock()
    if (now - this.lastTriggerMs < this.cooldownMs) {
      this.counters.triggersSkipped++
      this.logger.info({ seq: run.record.record.seq, reason }, 'capture trigger within cooldown, skipped')
      return
    }
    this.lastTriggerMs = now
    // The snapshot is taken now, so runs after the trigger do not slip into its capture.
    let snap: ReturnType<CaptureRing['snapshot']>
    try {
      snap = this.snapshot(reason, 'trigger')
    } catch (e) {
      this.counters.freezeFailures++
      this.logger.error({ reason, err: (e as Error).message }, 'automatic capture failed')
      return
    }
    const job = (async () => {
      const waiting = (await listFrozenCaptures(this.stateDir)).length
      if (waiting >= this.maxFrozen) {
        this.counters.triggersSkipped++
        this.logger.warn({ reason, waiting }, 'too many frozen captures waiting for upload, trigger skipped')
        return
      }
      await this.write(snap)
    })().catch((e: unknown) => {
      this.counters.freezeFailures++
      this.logger.error({ reason, code: (e as { code?: string }).code, err: (e as Error).message }, 'automatic capture failed')
    })
    void this.track(job)
  }

  private snapshot (reason: string, origin: FrozenCapture['origin']): { slots: Slot[], bytes: Uint8Array, reason: string, frozenAtMs: number, origin: FrozenCapture['origin'] } {
    const slots = [...this.slots]
    const frozenAtMs = this.clock()
    const bytes = encodeCapture({ deviceId: this.deviceId, reason, frozenAtMs, entries: slots.map(s => s.entry) })
    return { slots, bytes, reason, frozenAtMs, origin }
  }

  private async write (snap: ReturnType<CaptureRing['snapshot']>): Promise<FrozenCapture> {
    const info = await writeFrozenCapture(this.stateDir, snap.bytes, snap.frozenAtMs)
    const frozen = new Set(snap.slots)
    const kept = this.slots.filter(s => !frozen.has(s))
    this.totalBytes = kept.reduce((a, s) => a + s.bytes, 0)
    this.slots = kept
    this.counters.frozen++
    const result: FrozenCapture = {
      name: info.name,
      path: info.path,
      bytes: snap.bytes,
      sha256: toHex(sha256(snap.bytes)),
      reason: snap.reason,
      frozenAtMs: snap.frozenAtMs,
      seqs: snap.slots.map(s => s.entry.seq),
      origin: snap.origin
    }
    this.logger.info({ name: info.name, reason: snap.reason, origin: snap.origin, entries: result.seqs.length, sizeBytes: snap.bytes.byteLength }, 'capture frozen')
    try {
      this.onFrozen?.(result)
    } catch (e) {
      this.logger.error({ name: info.name, err: (e as Error).message }, 'onFrozen hook failed')
    }
    return result
  }

  private async track<T> (p: Promise<T>): Promise<T> {
    this.pending.add(p)
    try {
      return await p
    } finally {
      this.pending.delete(p)
    }
  }
}

/** The tensors' data bytes (strings as their UTF-8 bytes and length prefixes): at most what a capture entry holds of them. */
function dataBytes (tensors: Readonly<Record<string, TensorLike>>): number {
  let n = 0
  for (const t of Object.values(tensors)) {
    const data: unknown = t.data
    if (ArrayBuffer.isView(data)) n += data.byteLength
    else if (Array.isArray(data)) for (const v of data) n += 4 + Buffer.byteLength(String(v), 'utf8')
  }
  return n
}

function isReason (v: unknown): v is string {
  return typeof v === 'string' && !LONE_SURROGATE.test(v) && Buffer.byteLength(v, 'utf8') <= CAPTURE_LIMITS.textBytes
}

function positiveInt (v: number, name: string, max: number): number {
  if (!Number.isSafeInteger(v) || v < 1 || v > max) throw new RangeError(`${name} must be an integer in 1..${max}`)
  return v
}

function nonNegativeInt (v: number, name: string): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${name} must be a non-negative integer`)
  return v
}
