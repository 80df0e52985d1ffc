/**
 * The cost of a TPM-rooted identity (docs/IDENTITY.md): agent boot (key, log, boot record) with a
 * TPM certification of the boot key against the file key, and records/s signed under the certified
 * boot key against the file key; ratios per interleaved round. The TPM is Debian's swtpm: a
 * hardware TPM signs in tens of ms more (one signature per boot), records/s do not involve it.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ProvenanceAgent } from '../agent/session/index.js'
import { tpmBootCertifier, openTpmIdentity } from '../agent/keys/index.js'
import { sampleInference } from '../test/helpers/records.js'
import { startSwtpm } from '../test/helpers/swtpm.js'
import { fmtSpread, interleave, ratios, spread, type Spread, exitOnHelp, intEnv } from './measure.js'
import { isEntryPoint } from '../common/entry-point.js'

const ROUNDS = intEnv('BENCH_IDENTITY_ROUNDS', 9)
const RECORDS = intEnv('BENCH_IDENTITY_RECORDS', 2000)

export async function main (): Promise<Record<string, Spread>> {
  const tpm = await startSwtpm()
  const dir = await mkdtemp(join(tmpdir(), 'bench-identity-'))
  try {
    const tpmState = join(dir, 'tpm-state')
    const { mkdir } = await import('node:fs/promises')
    await mkdir(tpmState)
    await (await openTpmIdentity({ stateDir: tpmState, tcti: tpm.tcti, create: true })).close()
    const certify = tpmBootCertifier({ stateDir: tpmState, tcti: tpm.tcti })
    let n = 0
    const start = async (withTpm: boolean): Promise<ProvenanceAgent> => await ProvenanceAgent.start({
      stateDir: join(dir, `agent-${n++}`), deviceId: 'bench-1', syncWrites: false, ...(withTpm ? { certifyBootKey: certify } : {})
    })
    const boots = await interleave(ROUNDS, {
      'file key': async () => { await (await start(false)).stop() },
      'TPM certification': async () => { await (await start(true)).stop() }
    })
    const rate: Record<string, number[]> = { 'file key': [], 'TPM certification': [] }
    for (let r = 0; r < ROUNDS; r++) {
      for (const [name, withTpm] of (r % 2 === 0 ? [['file key', false], ['TPM certification', true]] : [['TPM certification', true], ['file key', false]]) as Array<[string, boolean]>) {
        const agent = await start(withTpm)
        const t0 = performance.now()
        const pending: Array<Promise<unknown>> = []
        for (let i = 0; i < RECORDS; i++) pending.push(agent.log.append(seq => sampleInference(seq)))
        await Promise.all(pending)
        rate[name]?.push(RECORDS / ((performance.now() - t0) / 1000))
        await agent.stop()
      }
    }
    const bootFile = boots['file key']?.map(t => t.wallMs) ?? []
    const bootTpm = boots['TPM certification']?.map(t => t.wallMs) ?? []
    const out: Record<string, Spread> = {
      'boot ms, file key': spread(bootFile),
      'boot ms, TPM certification': spread(bootTpm),
      'boot ratio TPM / file': ratios(bootTpm, bootFile),
      'records/s, file key': spread(rate['file key'] ?? []),
      'records/s, certified boot key': spread(rate['TPM certification'] ?? []),
      'records/s ratio certified / file': ratios(rate['TPM certification'] ?? [], rate['file key'] ?? [])
    }
    console.log(`agent boot and ${RECORDS} records, ${ROUNDS} interleaved rounds (swtpm); median (min–max)`)
    for (const [name, s] of Object.entries(out)) console.log(`  ${name.padEnd(34)} ${fmtSpread(s, name.includes('ratio') ? 2 : 0)}`)
    return out
  } finally {
    await rm(dir, { recursive: true, force: true })
    await tpm.close()
  }
}

const USAGE = `usage: node --import tsx bench/identity.ts

Agent boot and records/s with a TPM-certified boot key (swtpm) against the file key; ratios per
interleaved round.

Environment: BENCH_IDENTITY_ROUNDS (default 9), BENCH_IDENTITY_RECORDS (default 2000).`

if (isEntryPoint(import.meta.url)) {
  exitOnHelp(USAGE)
  await main()
}
