/**
 * Deterministic builders of signed record chains for tests of every part: a fixed seed gives the
 * same keys, records, envelopes and hashes on every run (Ed25519 signing is deterministic).
 * `makeChain` covers the common case; `ChainBuilder` adds reboots, key rotation and dropped ranges.
 */
import {
  createSigner, fixedKey, sha256, signRecord, ZERO_HASH,
  type InferenceBody, type KeyLookup, type ProvenanceRecord, type RecordBody, type RecordKind,
  type SignedRecord, type Signer
} from '../../protocol/index.js'

/** The seed of the published vectors: bytes 0x01..0x20. */
export const TEST_SEED: Uint8Array = Uint8Array.from({ length: 32 }, (_, i) => i + 1)
export const TEST_DEVICE_ID = 'dev-0001'
/** 2023-11-14T22:13:20Z: any fixed instant will do. */
export const TEST_START_TIME_MS = 1_700_000_000_000

const encoder = new TextEncoder()

/** A 32-byte seed derived from a label or number, so that tests can ask for "another key". */
export function seedFrom (label: string | number): Uint8Array {
  return sha256(encoder.encode(`test-seed/${String(label)}`))
}

/** A fixed 32-byte value derived from a label: model hashes, tensor commitments, and the like. */
export function fakeHash (label: string): Uint8Array {
  return sha256(encoder.encode(`test-hash/${label}`))
}

export interface ChainOptions {
  /** Ed25519 seed of the device key (default TEST_SEED), or a number/label passed to seedFrom. */
  seed?: Uint8Array | number | string
  deviceId?: string
  /** Boot counter of the first record (default 1). */
  boot?: number
  /** Seq of the first record (default 0). */
  startSeq?: number
  /** Device time of the first record (default TEST_START_TIME_MS). */
  startTimeMs?: number
  /** Device time between consecutive records (default 1000). */
  stepMs?: number
  /** `prev` of the first record (default 32 zero bytes, the genesis). */
  prev?: Uint8Array
}

export interface MakeChainOptions extends ChainOptions {
  /** Number of records, the boot record included (default 10). */
  count?: number
}

/** A deterministic body of each kind; `n` varies the contents. The gap body declares seq 1..1, so its record needs seq ≥ 2. */
export function sampleBody (kind: RecordKind, n = 0): RecordBody {
  switch (kind) {
    case 'boot': return { kind, agentVersion: '0.1.0', profile: 'generic-x86-64' }
    case 'model-load': return {
      kind,
      modelHash: fakeHash(`model/${n}`),
      manifestHash: fakeHash(`manifest/${n}`),
      graphHash: fakeHash(`graph/${n}`),
      name: `detector-v${n}.onnx`,
      sizeBytes: 4_718_592 + n,
      policy: 'approved',
      providers: ['CPUExecutionProvider']
    }
    case 'inference': return sampleInference(n)
    case 'gap': return { kind, firstSeq: 1, lastSeq: 1, beforeHash: fakeHash(`before/${n}`), lastHash: fakeHash(`last/${n}`), reason: 'disk-budget' }
    case 'key-rotation': return { kind, newPublicKey: createSigner(seedFrom(`rotated/${n}`)).publicKey, validFromMs: TEST_START_TIME_MS + 1_000_000 }
    case 'shutdown': return { kind, reason: 'sigterm' }
    case 'policy': return { kind, version: n + 1, mode: 'enforce', fleetId: 'fleet-test', policyHash: fakeHash(`policy/${n}`) }
    case 'oversight': return { kind, reviewer: `reviewer-${n}`, decisionDeviceId: 'dev-0002', decisionSeq: n, decisionHash: fakeHash(`decision/${n}`), verdict: 'confirmed', reason: 'matches the image' }
    case 'session': return { kind, phase: 'start', sessionId: `use-${n}`, referenceName: 'watchlist', referenceHash: fakeHash(`reference/${n}`) }
    case 'data-capture': return { kind, commitment: fakeHash(`capture/${n}`), sizeBytes: 1024 + n, dataset: 'street-photos', label: n % 2 === 0 ? 'car' : null, capturedAtMs: TEST_START_TIME_MS + n }
  }
}

/** The inference body builders use: commitments derived from `n` (usually the seq). */
export function sampleInference (n: number, modelHash: Uint8Array = fakeHash('model/0')): InferenceBody {
  return {
    kind: 'inference',
    modelHash,
    inputs: [{ name: 'input', hash: fakeHash(`input/${n}`) }],
    outputs: [{ name: 'output', hash: fakeHash(`output/${n}`) }],
    latencyUs: 1500 + (n % 997),
    decision: `class-${n % 3}`
  }
}

/** A bare (unsigned) record with defaults for every header field. */
export function makeRecord<B extends RecordBody> (body: B, header: Partial<Omit<ProvenanceRecord, 'body'>> = {}): ProvenanceRecord<B> {
  return {
    deviceId: header.deviceId ?? TEST_DEVICE_ID,
    boot: header.boot ?? 1,
    seq: header.seq ?? 0,
    timeMs: header.timeMs ?? TEST_START_TIME_MS,
    prev: header.prev ?? ZERO_HASH,
    body
  }
}

/** A range of records written, chained and then left out of `records` (lost to disk budget). */
export interface DroppedRange { firstSeq: number, lastSeq: number, beforeHash: Uint8Array, lastHash: Uint8Array }

/**
 * Writes one device's chain the way the agent does: seq +1, `prev` = hash of the last envelope,
 * time +stepMs. Records that `drop` writes are chained but not kept, so a later `appendGap`
 * can declare them honestly.
 */
export class ChainBuilder {
  readonly deviceId: string
  signer: Signer
  boot: number
  seq: number
  timeMs: number
  prev: Uint8Array
  readonly stepMs: number
  /** Records kept, in order. */
  readonly records: SignedRecord[] = []
  /** Every key the device has used, with the device time it became valid. */
  readonly keys: Array<{ validFromMs: number, publicKey: Uint8Array }>
  private lastDropped: DroppedRange | undefined

  constructor (options: ChainOptions = {}) {
    this.deviceId = options.deviceId ?? TEST_DEVICE_ID
    this.signer = createSigner(toSeed(options.seed))
    this.boot = options.boot ?? 1
    this.seq = options.startSeq ?? 0
    this.timeMs = options.startTimeMs ?? TEST_START_TIME_MS
    this.stepMs = options.stepMs ?? 1000
    this.prev = options.prev ?? ZERO_HASH
    this.keys = [{ validFromMs: 0, publicKey: this.signer.publicKey }]
  }

  /** Signs and keeps the next record. */
  append<B extends RecordBody> (body: B): SignedRecord<B> {
    const signed = this.write(body)
    this.records.push(signed)
    return signed
  }

  /** Next record: an inference with contents derived from its seq. */
  appendInference (): SignedRecord<InferenceBody> {
    return this.append(sampleInference(this.seq))
  }

  /** Increments the boot counter and writes the boot record. */
  reboot (): SignedRecord {
    this.boot++
    return this.append(sampleBody('boot'))
  }

  /**
   * Writes a key-rotation record (signed by the current key) naming the key of `seed`, valid from
   * `validFromMs` (default: the next record's time); later records are signed by the new key.
   */
  rotateKey (seed: Uint8Array | number | string, validFromMs?: number): SignedRecord {
    const next = createSigner(toSeed(seed))
    const from = validFromMs ?? this.timeMs + this.stepMs
    const signed = this.append({ kind: 'key-rotation', newPublicKey: next.publicKey, validFromMs: from })
    this.signer = next
    this.keys.push({ validFromMs: from, publicKey: next.publicKey })
    if (this.timeMs < from) this.timeMs = from
    return signed
  }

  /** Writes `count` inference records that are chained but not kept, as a disk budget would. */
  drop (count: number): DroppedRange {
    if (count < 1) throw new RangeError('drop at least one record')
    const beforeHash = this.prev
    const firstSeq = this.seq
    for (let i = 0; i < count; i++) this.write(sampleInference(this.seq))
    this.lastDropped = { firstSeq, lastSeq: this.seq - 1, beforeHash, lastHash: this.prev }
    return this.lastDropped
  }

  /** Writes the honest gap record for the range the last `drop` made (or for `range`). */
  appendGap (reason = 'disk-budget', range: DroppedRange | undefined = this.lastDropped): SignedRecord {
    if (range === undefined) throw new Error('no dropped range to declare')
    return this.append({ kind: 'gap', ...range, reason })
  }

  /** The device key valid at a device time, as a registry would answer. */
  keyAt: KeyLookup = (deviceId, timeMs) => {
    if (deviceId !== this.deviceId) return undefined
    let key: Uint8Array | undefined
    for (const k of this.keys) if (k.validFromMs <= timeMs) key = k.publicKey
    return key
  }

  private write<B extends RecordBody> (body: B): SignedRecord<B> {
    const record: ProvenanceRecord<B> = { deviceId: this.deviceId, boot: this.boot, seq: this.seq, timeMs: this.timeMs, prev: this.prev, body }
    const signed = signRecord(record, this.signer)
    this.seq++
    this.timeMs += this.stepMs
    this.prev = signed.hash
    return signed
  }
}

/** A chain of `count` records: one boot record, then inference records. Deterministic. */
export function makeChain (options: MakeChainOptions = {}): SignedRecord[] {
  const count = options.count ?? 10
  const b = new ChainBuilder(options)
  if (count > 0) b.append(sampleBody('boot'))
  for (let i = 1; i < count; i++) b.appendInference()
  return b.records
}

/**
 * A chain of mixed kinds across two boots: 20 records kept of seqs 0..21 (6 and 7 dropped and
 * declared by the gap record at seq 8): boot, model-load, inferences, gap, key rotation (seq 10;
 * seq 11 on signs with the new key), shutdown, then boot 2 with its own model-load and inferences.
 * Returns the builder so tests can use its `keyAt` (the chain rotates keys).
 */
export function makeMixedChain (options: ChainOptions = {}): ChainBuilder {
  const b = new ChainBuilder(options)
  b.append(sampleBody('boot'))
  b.append(sampleBody('model-load', 0))
  for (let i = 0; i < 4; i++) b.appendInference()
  b.drop(2)
  b.appendGap()
  b.appendInference()
  b.rotateKey('rotated')
  for (let i = 0; i < 3; i++) b.appendInference()
  b.append({ ...sampleInference(b.seq), decision: null, inputs: [], outputs: [] })
  b.append(sampleBody('shutdown'))
  b.reboot()
  b.append(sampleBody('model-load', 1))
  for (let i = 0; i < 4; i++) b.append(sampleInference(b.seq, fakeHash('model/1')))
  return b
}

/** A key lookup that knows one key, for chains that never rotate. */
export function keyOf (seed: Uint8Array | number | string = TEST_SEED): KeyLookup {
  return fixedKey(createSigner(toSeed(seed)).publicKey)
}

/** Re-signs `record` under `seed` without touching anything else (for forgery tests). */
export function resign<B extends RecordBody> (record: ProvenanceRecord<B>, seed: Uint8Array | number | string = TEST_SEED): SignedRecord<B> {
  return signRecord(record, createSigner(toSeed(seed)))
}

function toSeed (seed: Uint8Array | number | string | undefined): Uint8Array {
  if (seed === undefined) return TEST_SEED
  return seed instanceof Uint8Array ? seed : seedFrom(seed)
}
