/**
 * Hash-chain verification (docs/PROTOCOL.md §Chain rules): honest chains across boots and key
 * rotations, the tampering matrix (every byte of every envelope of a mixed chain), deletion,
 * reordering, replay across devices and boots, foreign keys, and honest versus lying gaps.
 */
import t from 'tap'
import {
  assertChain, decodeEnvelope, encodeRecord, fixedKey, isErrorCode, signRecord, toHex, verifyChain, ChainVerifier,
  ProtocolError, ZERO_HASH, createSigner, type ChainFailure, type GapBody, type ChainVerifierOptions, type SignedRecord
} from '../../protocol/index.js'
import {
  ChainBuilder, keyOf, makeChain, makeMixedChain, resign, sampleBody, sampleInference, seedFrom, TEST_DEVICE_ID, TEST_SEED
} from '../helpers/records.js'

const defaultKey = keyOf()
const options = (extra: Partial<ChainVerifierOptions> = {}): ChainVerifierOptions => ({ deviceId: TEST_DEVICE_ID, keyAt: defaultKey, ...extra })

function failureOf (records: SignedRecord[], opts: ChainVerifierOptions = options()): ChainFailure | undefined {
  return verifyChain(records, opts).failure
}

t.test('behavior: an honest chain verifies on both backends', async t => {
  const chain = makeChain({ count: 20 })
  t.equal(chain.length, 20)
  t.equal(chain[0]!.record.body.kind, 'boot')
  t.ok(chain.slice(1).every(r => r.record.body.kind === 'inference'))
  for (const backend of ['node', 'noble'] as const) {
    const result = verifyChain(chain, options({ backend }))
    t.same(result.failure, undefined, backend)
    t.equal(result.count, 20)
    t.same(result.gaps, [])
    t.same(result.last, { seq: 19, boot: 1, hash: chain[19]!.hash })
  }
  t.same(assertChain(chain, options()).count, 20)
  // Deterministic: the same options give the same bytes.
  t.equal(toHex(makeChain({ count: 20 })[19]!.hash), toHex(chain[19]!.hash))
  t.not(toHex(makeChain({ count: 20, seed: 2 })[19]!.hash), toHex(chain[19]!.hash))
})

t.test('behavior: the mixed chain (two boots, a gap, a key rotation) verifies with keyAt by time', async t => {
  const b = makeMixedChain()
  t.equal(b.records.length, 20)
  t.same([...new Set(b.records.map(r => r.record.body.kind))].sort(), ['boot', 'gap', 'inference', 'key-rotation', 'model-load', 'shutdown'])
  for (const backend of ['node', 'noble'] as const) {
    const result = verifyChain(b.records, options({ keyAt: b.keyAt, backend }))
    t.same(result.failure, undefined, backend)
    t.same(result.gaps, [{ firstSeq: 6, lastSeq: 7, reason: 'disk-budget' }])
    t.same(result.last, { seq: 21, boot: 2, hash: b.records[19]!.hash })
  }
  // With the old key only, the first record signed by the new key fails; with the new key only, the first.
  const oldKey = createSigner(TEST_SEED).publicKey
  const newKey = createSigner(seedFrom('rotated')).publicKey
  const firstNew = b.records.findIndex(r => r.record.seq === 11)
  t.match(failureOf(b.records, options({ keyAt: fixedKey(oldKey) })), { reason: 'bad-signature', seq: 11, index: firstNew })
  t.match(failureOf(b.records, options({ keyAt: fixedKey(newKey) })), { reason: 'bad-signature', seq: 0, index: 0 })
})

t.test('behavior: tampering matrix — one flipped bit in any byte of any envelope is caught at that record', async t => {
  const b = makeMixedChain()
  const chain = b.records
  let flips = 0
  let decodeErrors = 0
  const reasons = new Map<string, number>()
  for (let i = 0; i < chain.length; i++) {
    const original = chain[i]!
    const recordStart = original.envelope.length - original.signature.length - 2 - original.recordBytes.length
    const after = i === 0 ? undefined : { seq: chain[i - 1]!.record.seq, boot: chain[i - 1]!.record.boot, hash: chain[i - 1]!.hash }
    // A verified prefix stands in for records 0..i-1: the failure must be at input index 0.
    for (let pos = 0; pos < original.envelope.length; pos++) {
      const tampered = original.envelope.slice()
      tampered[pos]! ^= 1 << (pos % 8)
      flips++
      let decoded: SignedRecord
      try {
        decoded = decodeEnvelope(tampered)
      } catch (e) {
        decodeErrors++
        if (!(e instanceof ProtocolError) || !/^(CBOR_|RECORD_INVALID)/.test(e.code)) {
          t.fail(`record ${i} byte ${pos}: unexpected ${String(e)}`)
        }
        continue
      }
      const verifier = new ChainVerifier(options({ keyAt: b.keyAt, after }))
      const failure = verifier.push(decoded)
      const inSignature = pos >= original.envelope.length - original.signature.length
      const inRecord = pos >= recordStart && !inSignature
      const expected = decoded.record.deviceId !== TEST_DEVICE_ID ? 'device-mismatch' : 'bad-signature'
      if (failure?.index !== 0 || failure.reason !== expected || failure.seq !== decoded.record.seq || !(inRecord || inSignature)) {
        t.fail(`record ${i} byte ${pos}: ${JSON.stringify(failure)} (expected ${expected} at index 0)`)
      }
      reasons.set(failure?.reason ?? 'none', (reasons.get(failure?.reason ?? 'none') ?? 0) + 1)
    }
  }
  t.ok(flips > 3000, `${flips} flips over ${chain.length} envelopes`)
  t.ok(decodeErrors > 0 && (reasons.get('bad-signature') ?? 0) > 0 && (reasons.get('device-mismatch') ?? 0) > 0,
    `decode errors ${decodeErrors}, ${JSON.stringify(Object.fromEntries(reasons))}`)
})

t.test('behavior: tampering matrix — all eight bits of every byte of one record of each kind', async t => {
  const b = makeMixedChain()
  const chain = b.records
  const targets = ['boot', 'model-load', 'inference', 'gap', 'key-rotation', 'shutdown'].map(kind => chain.findIndex(r => r.record.body.kind === kind))
  let count = 0
  for (const i of targets) {
    const original = chain[i]!
    for (let pos = 0; pos < original.envelope.length; pos++) {
      for (let bit = 0; bit < 8; bit++) {
        const tampered = original.envelope.slice()
        tampered[pos]! ^= 1 << bit
        let decoded: SignedRecord
        try {
          decoded = decodeEnvelope(tampered)
        } catch (e) {
          if (!(isErrorCode(e, 'RECORD_INVALID') || /^CBOR_/.test((e as ProtocolError).code))) t.fail(`${String(e)}`)
          continue
        }
        // Records 0..i-1 verify identically every time: start from their point instead.
        const after = i === 0 ? undefined : { seq: chain[i - 1]!.record.seq, boot: chain[i - 1]!.record.boot, hash: chain[i - 1]!.hash }
        const failure = failureOf([decoded, ...chain.slice(i + 1)], options({ keyAt: b.keyAt, after }))
        count++
        if (failure === undefined || failure.index !== 0 || !['bad-signature', 'device-mismatch'].includes(failure.reason)) {
          t.fail(`record ${i} byte ${pos} bit ${bit}: ${JSON.stringify(failure)}`)
        }
      }
    }
  }
  t.ok(count > 1000, `${count} tampered records decoded and were named by the verifier`)
})

t.test('behavior: a flipped signature bit is bad-signature on both backends', async t => {
  const chain = makeChain({ count: 5 })
  for (const backend of ['node', 'noble'] as const) {
    for (const bit of [0, 100, 255, 256, 400, 511]) {
      const copy = [...chain]
      const sig = chain[2]!.signature.slice()
      sig[bit >> 3]! ^= 1 << (bit & 7)
      copy[2] = decodeEnvelope(signRecordEnvelope(chain[2]!.recordBytes, sig))
      t.match(failureOf(copy, options({ backend })), { reason: 'bad-signature', index: 2, seq: 2 }, `${backend}: signature bit ${bit}`)
    }
  }
})

function signRecordEnvelope (recordBytes: Uint8Array, signature: Uint8Array): Uint8Array {
  // [record bytes, signature] by hand: 0x82, then two byte strings (lengths below 65536).
  const bstr = (b: Uint8Array): number[] => b.length < 24 ? [0x40 | b.length, ...b] : b.length < 256 ? [0x58, b.length, ...b] : [0x59, b.length >> 8, b.length & 0xff, ...b]
  return Uint8Array.from([0x82, ...bstr(recordBytes), ...bstr(signature)])
}

t.test('error: a deleted record is a seq-gap at the first missing seq once the input ends', async t => {
  const chain = makeChain({ count: 12 })
  for (const k of [0, 1, 5, 10]) {
    const records = chain.filter((_, i) => i !== k)
    const verifier = new ChainVerifier(options())
    t.ok(records.every(r => verifier.push(r) === undefined), `deleting ${k}: no failure while the hole may still be explained`)
    t.same(verifier.openHoles(), [{ firstSeq: k, lastSeq: k }])
    const result = verifier.result()
    t.match(result.failure, { reason: 'seq-gap', seq: k, lastSeq: k, index: k }, `deleting seq ${k}`)
    t.match(result.failure?.message, new RegExp(`records ${k}\\.\\.${k} are missing`))
    t.throws(() => assertChain(records, options()), { constructor: ProtocolError, code: 'CHAIN_BROKEN', cause: { reason: 'seq-gap', seq: k } })
  }
  const records = chain.filter((_, i) => i < 3 || i > 6)
  t.match(failureOf(records), { reason: 'seq-gap', seq: 3, lastSeq: 6, index: 3, message: /records 3\.\.6 are missing/ }, 'deleting a run')
  // Dropping the tail is invisible to the chain alone: that is what acks and anchored roots are for.
  t.same(failureOf(chain.slice(0, 8)), undefined, 'a truncated chain is a valid prefix')
})

t.test('error: reordered records are named', async t => {
  const chain = makeChain({ count: 10 })
  const swap = (i: number, j: number): SignedRecord[] => { const c = [...chain]; [c[i], c[j]] = [c[j]!, c[i]!]; return c }
  t.match(failureOf(swap(4, 5)), { reason: 'seq-reuse', index: 5, seq: 4 }, 'adjacent swap')
  // Seq 7 first opens a hole 2..6 (pending), then seq 3 no longer advances.
  t.match(failureOf(swap(2, 7)), { reason: 'seq-reuse', index: 3, seq: 3 }, 'distant swap')
  t.match(failureOf(swap(0, 1)), { reason: 'seq-reuse', index: 1, seq: 0 }, 'swap with the genesis')
  t.match(failureOf([...chain.slice(0, 5), chain[4]!, ...chain.slice(5)]), { reason: 'seq-reuse', index: 5, seq: 4 }, 'a duplicate')
  t.match(failureOf([...chain.slice(0, 5), chain[2]!, ...chain.slice(5)]), { reason: 'seq-reuse', index: 5, seq: 2 }, 'a replayed old record')
})

t.test('error: a record replayed from another device is device-mismatch, or bad-signature when relabelled', async t => {
  const mine = makeChain({ count: 6 })
  const theirs = makeChain({ count: 6, deviceId: 'dev-0002', seed: 2 })
  const mixed = [...mine.slice(0, 3), theirs[3]!, ...mine.slice(4)]
  t.match(failureOf(mixed), { reason: 'device-mismatch', index: 3, seq: 3 })
  // Their record rewritten to claim our device id, keeping their signature.
  const relabelled = { ...theirs[3]!.record, deviceId: TEST_DEVICE_ID }
  const forged = decodeEnvelope(signRecordEnvelope(encodeRecord(relabelled), theirs[3]!.signature))
  t.match(failureOf([...mine.slice(0, 3), forged, ...mine.slice(4)]), { reason: 'bad-signature', index: 3, seq: 3 })
  // Even their whole, valid chain is refused for our device.
  t.match(failureOf(theirs), { reason: 'device-mismatch', index: 0 })
  t.same(failureOf(theirs, options({ deviceId: 'dev-0002', keyAt: keyOf(2) })), undefined)
})

t.test('error: records from another boot are boot-went-back, boot-mismatch or seq-reuse', async t => {
  // The real history: boot 1 (seq 0..5), boot 2 (seq 6..11).
  const real = new ChainBuilder()
  real.append(sampleBody('boot'))
  for (let i = 0; i < 5; i++) real.appendInference()
  real.reboot()
  for (let i = 0; i < 5; i++) real.appendInference()
  t.same(failureOf(real.records), undefined)
  // A fork signed with the same key that never rebooted: boot 1 continues with seq 6..11.
  const fork = new ChainBuilder()
  fork.append(sampleBody('boot'))
  for (let i = 0; i < 11; i++) fork.appendInference()
  const withFork = (i: number): SignedRecord[] => { const c = [...real.records]; c[i] = fork.records[i]!; return c }
  t.match(failureOf(withFork(8)), { reason: 'boot-went-back', index: 8, seq: 8 }, 'boot 1 record inside boot 2')
  t.match(failureOf([...real.records.slice(0, 9), real.records[3]!]), { reason: 'seq-reuse', index: 9, seq: 3 }, 'boot 1 record replayed after boot 2')
  // A boot 2 record inside boot 1, with no boot record before it.
  const early = [...fork.records.slice(0, 6), real.records[7]!]
  t.match(failureOf(early), { reason: 'boot-mismatch', index: 6, seq: 7 }, 'boot counter changed without a boot record')
  // A boot record that does not advance the counter.
  const b = new ChainBuilder()
  b.append(sampleBody('boot'))
  b.appendInference()
  b.append(sampleBody('boot'))
  t.match(failureOf(b.records), { reason: 'boot-mismatch', index: 2, seq: 2, message: /does not advance/ })
})

t.test('error: a record signed by another key is bad-signature; an unknown key is unknown-key', async t => {
  const chain = makeChain({ count: 8 })
  const copy = [...chain]
  copy[4] = resign(chain[4]!.record, 'attacker')
  t.match(failureOf(copy), { reason: 'bad-signature', index: 4, seq: 4 })
  // Re-signing a changed record with the real key would need the key; with another key it fails.
  const changed = { ...chain[4]!.record, body: sampleInference(999) }
  copy[4] = resign(changed, 'attacker')
  t.match(failureOf(copy), { reason: 'bad-signature', index: 4 })
  t.match(failureOf(chain, options({ keyAt: (_d, timeMs) => timeMs < chain[3]!.record.timeMs ? createSigner(TEST_SEED).publicKey : undefined })),
    { reason: 'unknown-key', index: 3, seq: 3 })
})

t.test('error: a wrong prev is prev-hash-mismatch; a non-zero genesis prev is bad-genesis', async t => {
  const chain = makeChain({ count: 6 })
  const copy = [...chain]
  copy[3] = resign({ ...chain[3]!.record, prev: chain[1]!.hash })
  t.match(failureOf(copy), { reason: 'prev-hash-mismatch', index: 3, seq: 3 })
  copy[0] = resign({ ...chain[0]!.record, prev: new Uint8Array(32).fill(1) })
  t.match(failureOf(copy), { reason: 'bad-genesis', index: 0, seq: 0 })
  // A chain that continues a verified prefix starts from its point, not from genesis.
  const tail = chain.slice(3)
  t.same(failureOf(tail, options({ after: { seq: 2, boot: 1, hash: chain[2]!.hash } })), undefined)
  t.match(failureOf(tail, options({ after: { seq: 2, boot: 1, hash: ZERO_HASH } })), { reason: 'prev-hash-mismatch', index: 0, seq: 3 })
  t.match(failureOf(tail), { reason: 'seq-gap', seq: 0, lastSeq: 2 }, 'without `after`, a tail is missing its genesis')
})

t.test('behavior: an honest gap — written right after the hole or later — is accepted and listed', async t => {
  const b = new ChainBuilder()
  b.append(sampleBody('boot'))
  for (let i = 0; i < 4; i++) b.appendInference()
  const dropped = b.drop(3) // seqs 5..7
  t.same([dropped.firstSeq, dropped.lastSeq], [5, 7])
  b.appendInference() // seq 8, its prev is the hash of the dropped seq 7
  b.appendInference()
  const verifier = new ChainVerifier(options())
  for (const r of b.records) t.equal(verifier.push(r), undefined)
  t.same(verifier.openHoles(), [{ firstSeq: 5, lastSeq: 7 }], 'the hole is pending')
  t.match(verifier.result().failure, { reason: 'seq-gap', seq: 5, lastSeq: 7 })
  b.appendGap('disk-budget') // seq 10, declares 5..7
  b.appendInference()
  const result = verifyChain(b.records, options())
  t.same(result.failure, undefined)
  t.same(result.gaps, [{ firstSeq: 5, lastSeq: 7, reason: 'disk-budget' }])
  t.equal(result.count, b.records.length)

  // Two holes explained out of order, and a hole at genesis.
  const c = new ChainBuilder()
  const first = c.drop(2) // 0..1: beforeHash is the zero hash
  c.append(sampleBody('boot'))
  c.appendInference()
  const second = c.drop(1)
  c.appendInference()
  c.appendGap('disk-budget', second)
  c.appendGap('retention', first)
  const r2 = verifyChain(c.records, options())
  t.same(r2.failure, undefined)
  t.same(r2.gaps, [{ firstSeq: 4, lastSeq: 4, reason: 'disk-budget' }, { firstSeq: 0, lastSeq: 1, reason: 'retention' }])
})

t.test('behavior: one hole declared by two gap records, front part first, is accepted', async t => {
  // The device dropped 5..6 and then 7..8 before writing either gap record: the verifier sees one
  // hole 5..8 when seq 9 arrives, and each declaration settles its part, chained by hashes.
  const build = (): { b: ChainBuilder, a: ReturnType<ChainBuilder['drop']>, c: ReturnType<ChainBuilder['drop']> } => {
    const b = new ChainBuilder()
    b.append(sampleBody('boot'))
    for (let i = 0; i < 4; i++) b.appendInference()
    const a = b.drop(2)
    const c = b.drop(2)
    b.appendInference() // seq 9
    return { b, a, c }
  }
  const { b, a, c } = build()
  b.appendGap('disk-budget', a)
  const verifier = new ChainVerifier(options())
  for (const r of b.records) t.equal(verifier.push(r), undefined)
  t.same(verifier.openHoles(), [{ firstSeq: 7, lastSeq: 8 }], 'the front part is settled, the rest pending')
  b.appendGap('retention', c)
  const result = verifyChain(b.records, options())
  t.same(result.failure, undefined)
  t.same(result.gaps, [{ firstSeq: 5, lastSeq: 6, reason: 'disk-budget' }, { firstSeq: 7, lastSeq: 8, reason: 'retention' }])

  const lie = build()
  lie.b.appendGap('disk-budget', lie.a)
  const second = lie.b.appendGap('retention', { ...lie.c, beforeHash: lie.a.beforeHash })
  t.match(failureOf(lie.b.records), { reason: 'bad-gap', seq: second.record.seq }, 'the second part must start where the first ended')
  const back = build()
  const first = back.b.appendGap('retention', back.c)
  t.match(failureOf(back.b.records), { reason: 'bad-gap', seq: first.record.seq }, 'the back part alone matches no hole')
})

t.test('error: a lying gap record is bad-gap', async t => {
  const build = (): { b: ChainBuilder, dropped: ReturnType<ChainBuilder['drop']> } => {
    const b = new ChainBuilder()
    b.append(sampleBody('boot'))
    for (let i = 0; i < 4; i++) b.appendInference()
    const dropped = b.drop(3) // 5..7
    b.appendInference() // 8
    return { b, dropped }
  }
  const lies: Array<[string, (d: ReturnType<ChainBuilder['drop']>, b: ChainBuilder) => Parameters<ChainBuilder['appendGap']>[1]]> = [
    ['range too wide', d => ({ ...d, lastSeq: 8 })],
    ['range too narrow', d => ({ ...d, firstSeq: 6 })],
    ['range shifted', d => ({ ...d, firstSeq: 4, lastSeq: 6 })],
    ['covering records that are present', (_d, b) => ({ firstSeq: 2, lastSeq: 3, beforeHash: b.records[1]!.hash, lastHash: b.records[3]!.hash })],
    ['wrong beforeHash', d => ({ ...d, beforeHash: new Uint8Array(32).fill(7) })],
    ['wrong lastHash', d => ({ ...d, lastHash: d.beforeHash })]
  ]
  for (const [what, lie] of lies) {
    const { b, dropped } = build()
    const gap = b.appendGap('disk-budget', lie(dropped, b))
    const failure = failureOf(b.records)
    t.match(failure, { reason: 'bad-gap', seq: gap.record.seq, index: b.records.length - 1 }, what)
  }
  // A gap record when nothing is missing at all.
  const b = new ChainBuilder()
  b.append(sampleBody('boot'))
  b.appendInference()
  const gap = b.appendGap('disk-budget', { firstSeq: 0, lastSeq: 0, beforeHash: ZERO_HASH, lastHash: b.records[0]!.hash })
  t.match(failureOf(b.records), { reason: 'bad-gap', seq: gap.record.seq, message: /no such hole/ })
})

t.test('behavior: after the first failure the verifier keeps returning it', async t => {
  const chain = makeChain({ count: 6 })
  const copy = [...chain]
  copy[2] = resign(chain[2]!.record, 'x')
  const verifier = new ChainVerifier(options())
  t.equal(verifier.push(copy[0]!), undefined)
  t.equal(verifier.push(copy[1]!), undefined)
  const failure = verifier.push(copy[2])
  t.match(failure, { reason: 'bad-signature', index: 2 })
  t.equal(verifier.push(copy[3]!), failure, 'same failure object')
  t.equal(verifier.result().failure, failure)
  t.equal(verifier.result().count, 2)
  t.throws(() => new ChainVerifier({ deviceId: 'x', keyAt: undefined as unknown as ChainVerifierOptions['keyAt'] }), TypeError)
  t.ok(signRecord(chain[0]!.record, createSigner(TEST_SEED)).hash.length === 32)
})

t.test('behavior: a hole pending across a reboot is settled by the gap record written after it, under the new boot counter', async t => {
  const b = new ChainBuilder()
  b.append(sampleBody('boot'))
  for (let i = 0; i < 3; i++) b.appendInference()
  b.drop(2) // seqs 4..5 dropped before the power cut
  b.reboot() // seq 6, boot + 1, its prev the hash of the dropped seq 5
  b.appendGap('disk-budget') // seq 7, declares 4..5 after the restart
  b.appendInference()
  const result = verifyChain(b.records, options())
  t.same(result.failure, undefined)
  t.same(result.gaps, [{ firstSeq: 4, lastSeq: 5, reason: 'disk-budget' }])
  // Without the gap record the hole stays pending through the reboot: seq-gap at its first seq.
  t.match(failureOf(b.records.filter(r => r.record.body.kind !== 'gap')), { reason: 'seq-gap', seq: 4, lastSeq: 5 })
})

t.test('behavior: a window that starts at a gap record lists its declared range; only its own prev can contradict it', async t => {
  const b = new ChainBuilder()
  b.append(sampleBody('boot'))
  for (let i = 0; i < 3; i++) b.appendInference()
  b.drop(2) // 4..5
  const gap = b.appendGap('disk-budget') // seq 6
  b.appendInference()
  const window = b.records.filter(r => r.record.seq >= 6)
  const after = { seq: 5, boot: gap.record.boot, hash: gap.record.prev }
  t.match(failureOf(window, options({ after })), { reason: 'bad-gap', seq: 6 }, 'without windowStart the hole is not in the input')
  const result = verifyChain(window, options({ after, windowStart: true }))
  t.same(result.failure, undefined)
  t.same(result.gaps, [{ firstSeq: 4, lastSeq: 5, reason: 'disk-budget' }])
  // A gap record whose last hash is not its own prev is still caught.
  const forged = resign({ ...gap.record, body: { ...(gap.record.body as GapBody), lastHash: new Uint8Array(32).fill(9) } })
  t.match(failureOf([forged], options({ after, windowStart: true })), { reason: 'bad-gap', seq: 6 })
  // Only the first record of the window gets this: a later one must still settle a hole it saw.
  const seven = window[1] as SignedRecord
  const lateGap = resign({ ...gap.record, seq: 8, timeMs: seven.record.timeMs + 1, prev: seven.hash })
  t.match(failureOf([...window, lateGap], options({ after, windowStart: true })), { reason: 'bad-gap', seq: 8 })
})
