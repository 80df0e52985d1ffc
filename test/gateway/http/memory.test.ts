// Memory of the gateway under huge listing requests: a gateway in a child process (the real CLI)
// holds 3 000 quarantine entries of 16 KiB, and rounds of 4 concurrent GET
// /v1/quarantine?limit=10000 (the request that took it to 4.1 GB) must each get one capped page,
// while the child's peak RSS (VmHWM, reset before the requests) stays under a stated bound.
import t from 'tap'
import mqtt from 'mqtt'
import { spawn, type ChildProcess } from 'node:child_process'
import { readFile, writeFile } from 'node:fs/promises'
import { createInterface } from 'node:readline'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { deviceTopic } from '../../../protocol/index.js'
import { DEFAULT_HTTP_MAX_PAGE_BYTES, MAX_PAGE_ITEMS } from '../../../gateway/index.js'
import { startGatewayEnv, httpGet } from '../../fixtures/gateway-env.js'

const ROOT = resolve(fileURLToPath(import.meta.url), '../../../..')
const CHILD = join(ROOT, 'test/fixtures/gateway-child.ts')
const ENTRIES = 3000
const RAW_BYTES = 16 * 1024
const ROUNDS = 4
const CONCURRENT = 4
/** The stated bound: growth of the child's peak RSS while the rounds run. */
const MAX_PEAK_GROWTH_BYTES = 128 * 1024 * 1024

async function startChild (t: { teardown: (fn: () => unknown) => void }, configPath: string): Promise<{ proc: ChildProcess, httpUrl: string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', CHILD, 'start', '--config', configPath], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  const exited = new Promise<number | null>(resolve => proc.once('exit', code => resolve(code)))
  t.teardown(async () => { if (proc.exitCode === null) { proc.kill('SIGKILL'); await exited } })
  const log: string[] = []
  proc.stderr?.on('data', (d: Buffer) => log.push(d.toString()))
  const httpUrl = await new Promise<string>((resolve, reject) => {
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', line => {
      try {
        const entry = JSON.parse(line) as { msg?: string, http?: string }
        if (entry.msg === 'gateway started' && entry.http !== undefined) resolve(entry.http)
      } catch {}
    })
    void exited.then(code => reject(new Error(`gateway child exited (${code}): ${log.join('')}`)))
  })
  return { proc, httpUrl }
}

/** VmRSS and VmHWM (peak) of a process, bytes. */
async function memoryOf (pid: number): Promise<{ rss: number, peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024
  return { rss: kb('VmRSS'), peak: kb('VmHWM') }
}

const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(0)} MiB`

t.test('behavior: concurrent limit=10000 quarantine listings get capped pages and the gateway stays under its memory bound', async t => {
  const env = await startGatewayEnv(t)
  const config = env.gatewayOptions({ name: 'gw-mem', quarantineMaxRawBytes: RAW_BYTES })
  const configPath = join(env.dir, 'gateway.json')
  await writeFile(configPath, JSON.stringify({ ...config, logLevel: 'info' }))
  const { proc, httpUrl } = await startChild(t, configPath)
  const pid = proc.pid as number

  const client = await mqtt.connectAsync(env.broker.url, { protocolVersion: 5, clientId: 'mem-flood' })
  t.teardown(async () => await client.endAsync(true))
  for (let i = 0; i < ENTRIES; i += 100) {
    await Promise.all(Array.from({ length: 100 }, async (_, k) => {
      const payload = Buffer.alloc(RAW_BYTES, (i + k) % 251)
      payload[0] = 0xff // not CBOR: payload-malformed, kept whole (16 KiB)
      await client.publishAsync(deviceTopic(`flood-${(i + k) % 50}`, 'records'), payload, { qos: 1 })
    }))
  }
  const total = async (): Promise<number> => Number(/records_quarantined_total\{reason="payload-malformed"\} (\d+)/.exec((await httpGet(`${httpUrl}/metrics`)).text)?.[1] ?? 0)
  const deadline = Date.now() + 120_000
  while (await total() < ENTRIES) {
    if (Date.now() > deadline) throw new Error(`only ${await total()} of ${ENTRIES} quarantined`)
    await new Promise(resolve => setTimeout(resolve, 200))
  }

  // The metric counts an entry before the store has it: walk the pages (every entry reachable
  // through the cursor) until all are stored.
  const walk = async (): Promise<number> => {
    let cursor: string | null = null
    let seen = 0
    do {
      const page = (await httpGet(`${httpUrl}/v1/quarantine?limit=100${cursor === null ? '' : `&before=${cursor}`}`)).json() as { entries: unknown[], next: string | null }
      seen += page.entries.length
      cursor = page.next
    } while (cursor !== null)
    return seen
  }
  let seen = await walk()
  while (seen < ENTRIES && Date.now() < deadline) seen = await walk()
  t.equal(seen, ENTRIES, 'the cursor walks all of them')

  // Let the ingest garbage settle, then reset the peak (clear_refs 5, Linux >= 4.0) so that VmHWM
  // measures the requests alone.
  await new Promise(resolve => setTimeout(resolve, 500))
  let resetPeak = true
  await writeFile(`/proc/${pid}/clear_refs`, '5').catch(() => { resetPeak = false })
  const before = await memoryOf(pid)
  let largestBody = 0
  for (let round = 0; round < ROUNDS; round++) {
    const pages = await Promise.all(Array.from({ length: CONCURRENT }, async () => await httpGet(`${httpUrl}/v1/quarantine?limit=10000`)))
    for (const page of pages) {
      t.equal(page.status, 200)
      const body = page.json() as { entries: unknown[], next: string | null }
      if (body.entries.length !== MAX_PAGE_ITEMS.quarantine || body.next === null) t.fail(`a page of ${body.entries.length} entries, next ${String(body.next)}`)
      largestBody = Math.max(largestBody, Buffer.byteLength(page.text))
    }
  }
  const after = await memoryOf(pid)
  const growth = after.peak - (resetPeak ? before.rss : before.peak)
  t.comment(`gateway child: RSS ${mib(before.rss)} before, peak ${mib(after.peak)} during ${ROUNDS} x ${CONCURRENT} concurrent limit=10000 listings ` +
    `(peak growth ${mib(growth)}, bound ${mib(MAX_PEAK_GROWTH_BYTES)}); largest answer ${(largestBody / 1024).toFixed(0)} KiB; peak reset ${resetPeak ? 'yes' : 'no (VmHWM includes the ingest)'}`)
  // Each answer: at most 100 entries of 16 KiB as base64, under the page byte cap too.
  t.ok(largestBody <= Math.ceil(MAX_PAGE_ITEMS.quarantine * RAW_BYTES * 4 / 3) + 64 * 1024, 'an answer is one capped page')
  t.ok(largestBody <= Math.ceil(DEFAULT_HTTP_MAX_PAGE_BYTES * 4 / 3) + 64 * 1024, 'and under the byte cap')
  if (resetPeak) t.ok(growth < MAX_PEAK_GROWTH_BYTES, `peak RSS grew by ${mib(growth)} < ${mib(MAX_PEAK_GROWTH_BYTES)}`)

})
