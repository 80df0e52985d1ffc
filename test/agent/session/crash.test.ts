import t from 'tap'
import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { RecordLog } from '../../../agent/log/index.js'
import { loadOrCreateDeviceKey } from '../../../agent/keys/index.js'
import { verifyChain, fixedKey } from '../../../protocol/index.js'
import { makeClassifierModel } from '../../helpers/onnx-models.js'
import { makeTempDir } from '../../helpers/tmp.js'

const child = fileURLToPath(new URL('../../fixtures/crash-child.ts', import.meta.url))
const KILLS = 20

function mulberry32 (seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

/** Runs the child until it has printed `ready`, then kills it after `delayMs`; returns the acked seqs. */
async function runAndKill (stateDir: string, modelPath: string, delayMs: number): Promise<number[]> {
  const proc = spawn(process.execPath, ['--import', 'tsx', child, stateDir, modelPath], { stdio: ['ignore', 'pipe', 'pipe'] })
  const acked: number[] = []
  let buffered = ''
  let stderr = ''
  proc.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  return await new Promise((resolve, reject) => {
    const guard = setTimeout(() => { proc.kill('SIGKILL'); reject(new Error(`child never became ready: ${stderr}`)) }, 60_000)
    proc.stdout.on('data', (d: Buffer) => {
      buffered += d.toString()
      const lines = buffered.split('\n')
      buffered = lines.pop() ?? ''
      for (const line of lines) {
        if (line === 'ready') setTimeout(() => proc.kill('SIGKILL'), delayMs)
        else if (line.startsWith('ok ')) acked.push(Number(line.slice(3)))
      }
    })
    proc.on('exit', (code, signal) => {
      clearTimeout(guard)
      if (signal === 'SIGKILL') resolve(acked)
      else reject(new Error(`child exited on its own (code ${code}): ${stderr}`))
    })
  })
}

t.test('behavior: after SIGKILL at random moments every resolved run() is in the log and the chain verifies', async t => {
  const dir = await makeTempDir(t, 'prov-crash-')
  const stateDir = join(dir, 'state')
  const modelPath = join(dir, 'tiny.onnx')
  await writeFile(modelPath, makeClassifierModel({ seed: 7 }))
  const random = mulberry32(2026)
  const acked = new Set<number>()
  for (let i = 0; i < KILLS; i++) {
    for (const seq of await runAndKill(stateDir, modelPath, 20 + Math.floor(random() * 400))) acked.add(seq)
  }
  t.ok(acked.size > KILLS, `runs resolved before the kills: ${acked.size}`)

  const key = await loadOrCreateDeviceKey(join(stateDir, 'device-key.json'))
  const log = await RecordLog.open({ dir: join(stateDir, 'records'), deviceId: 'crash-device', signer: key.signer })
  t.teardown(async () => await log.close())
  const records = await log.range(0, Number.MAX_SAFE_INTEGER)
  const present = new Set(records.map(r => r.record.seq))
  const lost = [...acked].filter(s => !present.has(s))
  t.same(lost, [], 'no resolved run lost')
  const verdict = verifyChain(records, { deviceId: 'crash-device', keyAt: fixedKey(key.publicKey) })
  t.equal(verdict.failure, undefined, 'chain verifies across all restarts')
  t.equal(verdict.count, records.length)
  t.equal(records.filter(r => r.record.body.kind === 'boot').length, KILLS, 'one boot record per start')
  t.equal(records.at(-1)?.record.boot, KILLS)
})
