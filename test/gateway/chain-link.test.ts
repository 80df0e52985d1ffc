import t from 'tap'
import fc from 'fast-check'
import { verifyChain, verifyRecordSignature, type SignedRecord } from '../../protocol/index.js'
import { linkRecords } from '../../gateway/index.js'
import { makeMixedChain, resign, type ChainBuilder } from '../helpers/records.js'

// The gateway checks signatures on arrival and the chain rules later (linkRecords); together
// they must judge any sequence exactly as protocol/chain.ts's ChainVerifier does.
function judgeLikeGateway (b: ChainBuilder, records: SignedRecord[]): { reason: string, index: number } | undefined {
  let sigFailure: number | undefined
  for (let i = 0; i < records.length; i++) {
    const r = records[i] as SignedRecord
    const key = b.keyAt(r.record.deviceId, r.record.timeMs)
    if (key === undefined || !verifyRecordSignature(r, key)) { sigFailure = i; break }
  }
  const checked = sigFailure === undefined ? records : records.slice(0, sigFailure)
  const linked = linkRecords(undefined, checked)
  if (linked.failure !== undefined) return { reason: linked.failure.reason, index: linked.failure.index }
  if (sigFailure !== undefined) return { reason: 'bad-signature', index: sigFailure }
  if (linked.accepted < checked.length) return { reason: 'seq-gap', index: linked.accepted }
  return undefined
}

function judgeLikeProtocol (b: ChainBuilder, records: SignedRecord[]): { reason: string, index: number } | undefined {
  const result = verifyChain(records, { deviceId: b.deviceId, keyAt: b.keyAt })
  return result.failure === undefined ? undefined : { reason: result.failure.reason, index: result.failure.index }
}

t.test('behavior: an intact chain with a key rotation, a reboot and an honest gap links completely', async t => {
  const b = makeMixedChain()
  const result = linkRecords(undefined, b.records)
  t.equal(result.failure, undefined)
  t.equal(result.accepted, b.records.length)
  t.same(result.gaps.map(g => [g.firstSeq, g.lastSeq]), [[6, 7]])
})

t.test('behavior: linkRecords after signatures judges like ChainVerifier on mutated chains', async t => {
  const b = makeMixedChain()
  const base = b.records
  const mutation = fc.oneof(
    fc.record({ op: fc.constant('drop' as const), at: fc.nat() }),
    fc.record({ op: fc.constant('swap' as const), at: fc.nat() }),
    fc.record({ op: fc.constant('duplicate' as const), at: fc.nat() }),
    fc.record({ op: fc.constant('forge' as const), at: fc.nat() }),
    fc.record({ op: fc.constant('reboot' as const), at: fc.nat() }),
    fc.record({ op: fc.constant('relink' as const), at: fc.nat() })
  )
  fc.assert(fc.property(fc.array(mutation, { maxLength: 3 }), fc.nat({ max: base.length }), (mutations, cut) => {
    let records = base.slice(0, Math.max(1, cut))
    for (const m of mutations) {
      const i = m.at % records.length
      const r = records[i] as SignedRecord
      const rec = r.record
      const seed = rec.seq >= 11 ? 'rotated' : undefined
      switch (m.op) {
        case 'drop': records = records.filter((_, k) => k !== i); break
        case 'swap': if (i + 1 < records.length) records = [...records.slice(0, i), records[i + 1] as SignedRecord, r, ...records.slice(i + 2)]; break
        case 'duplicate': records = [...records.slice(0, i + 1), r, ...records.slice(i + 1)]; break
        case 'forge': records = records.map((x, k) => k === i ? resign(rec, 'someone-else') : x); break
        case 'reboot': records = records.map((x, k) => k === i ? resign({ ...rec, boot: rec.boot + 1 }, seed) : x); break
        case 'relink': records = records.map((x, k) => k === i ? resign({ ...rec, prev: new Uint8Array(32).fill(9) }, seed) : x); break
      }
      if (records.length === 0) return
    }
    t.same(judgeLikeGateway(b, records), judgeLikeProtocol(b, records), mutations.map(m => `${m.op}@${m.at}`).join(','))
  }), { numRuns: 300, seed: 42 })
})
