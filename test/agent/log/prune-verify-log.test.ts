// Issue 10 item 4: pruning acknowledged records must never break what verify-log checks. For every
// firmware profile: a device acks at its head (the case that leaked one record per ack and left a
// pruned boot record behind), reboots twice, and verify-log passes on what is left.
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { RecordLog } from '../../../agent/log/index.js'
import { KeyRing } from '../../../agent/keys/index.js'
import { verifyLog, type RecordSource } from '../../../agent/cli/index.js'
import type { FirmwareProfile } from '../../../agent/profile/index.js'
import { sha256 } from '../../../protocol/index.js'
import { makeTempDir } from '../../helpers/tmp.js'

const PROFILES = fileURLToPath(new URL('../../../firmware-profiles/', import.meta.url))
const body = (n: number) => ({ kind: 'inference' as const, modelHash: sha256(new Uint8Array([n & 0xff])), inputs: [], outputs: [], latencyUs: n, decision: null })
const source = (log: RecordLog): RecordSource => ({ via: 'log', headSeq: log.head.seq, ackedSeq: log.acked, records: (a, b) => log.iterate(a, b), close: async () => {} })

for (const file of readdirSync(PROFILES).filter(f => f.endsWith('.json')).sort()) {
  const profile = JSON.parse(readFileSync(join(PROFILES, file), 'utf8')) as FirmwareProfile
  t.test(`behavior: ${profile.name} (keepUntil ${profile.uplink.keepUntil}): acks at the head and reboots, then verify-log passes`, async t => {
    const dir = await makeTempDir(t, 'prov-prune-')
    const ring = await KeyRing.open(join(dir, 'key.json'), { create: true })
    const openLog = async (): Promise<RecordLog> => await RecordLog.open({
      dir: join(dir, 'records'), deviceId: 'dev-p', signer: ring.signer, clock: ring.clock, syncWrites: false, reserveBytes: 0,
      budgetBytes: profile.storage.budgetBytes, budgetMode: profile.storage.budgetMode, maxBatchRecords: profile.storage.maxBatchRecords
    })
    // What the uplink does with an ack (agent/uplink/uplink.ts applyAck).
    const ack = async (log: RecordLog, stored: number, anchored: number): Promise<void> => {
      await log.acknowledge(stored, { deleteAcked: profile.uplink.keepUntil === 'stored' })
      if (profile.uplink.keepUntil === 'anchored') await log.deleteAcknowledged(Math.min(anchored, log.acked))
    }
    let n = 0
    for (let boot = 0; boot < 3; boot++) {
      const log = await openLog()
      await log.appendBoot({ agentVersion: 't', profile: profile.name })
      for (let round = 0; round < 4; round++) {
        for (let i = 0; i < 3; i++) await log.append(() => body(n++))
        // Acked at the head (the record that used to be skipped), and anchored a little behind.
        await ack(log, log.head.seq, log.head.seq - 2)
      }
      for (let i = 0; i < 2; i++) await log.append(() => body(n++))
      await ack(log, log.head.seq - 1, log.head.seq - 3)
      const verdict = await verifyLog(source(log), { deviceId: 'dev-p', history: ring.history })
      t.equal(verdict.ok, true, `boot ${boot + 1}: ${JSON.stringify(verdict.failure)}`)
      await log.close()
    }
    const log = await openLog()
    t.teardown(async () => await log.close())
    const kept = await log.range(0, Number.MAX_SAFE_INTEGER)
    const verdict = await verifyLog(source(log), { deviceId: 'dev-p', history: ring.history })
    t.match(verdict, { ok: true, lastSeq: log.head.seq, boots: { last: 3 } }, JSON.stringify(verdict.failure))
    if (profile.uplink.keepUntil === 'stored') {
      t.same(kept.map(r => r.record.seq), [log.head.seq], 'every acked record is deleted: none leaks')
    } else {
      t.ok(kept.every(r => r.record.seq > log.acked - 3), 'acked records are kept until anchored, then deleted')
    }
  })
}
