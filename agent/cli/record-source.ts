/**
 * Where `verify-log` and `export` read records: the LevelDB log itself, or, when the running
 * daemon holds its lock, the daemon's GET /v1/records in pages.
 */
import { decodeCanonical, decodeEnvelope, type SignedRecord, type Signer } from '../../protocol/index.js'
import { RecordLog } from '../log/index.js'
import { MAX_RECORDS_PER_REQUEST } from '../daemon/index.js'
import type { AgentSetup } from './context.js'
import { findDaemon, requestDaemon, type DaemonEndpoint } from './daemon-client.js'
import { CliError } from './errors.js'

export interface RecordSource {
  via: 'log' | 'daemon'
  /** Newest durable seq (-1: empty). */
  headSeq: number
  /** Highest seq the gateway acknowledged (-1: none); records up to it may be deleted. */
  ackedSeq: number
  /** Records with seq in [fromSeq, toSeq], oldest first; may be called more than once. */
  records: (fromSeq: number, toSeq: number) => AsyncGenerator<SignedRecord>
  close: () => Promise<void>
}

// Reading never signs: a signer that refuses keeps a reader from ever writing a record.
const READ_ONLY_SIGNER: Signer = {
  publicKey: new Uint8Array(32),
  sign () { throw new Error('the record log is open read-only') }
}

/**
 * Opens the log, or falls back to the daemon when the log is locked by it.
 * @throws AgentError `LOG_*`; CliError `DAEMON_NOT_RUNNING` (locked but no daemon answers).
 */
export async function openRecordSource (setup: AgentSetup): Promise<RecordSource> {
  let log: RecordLog
  try {
    log = await RecordLog.open({ dir: setup.logDir, deviceId: setup.config.deviceId, signer: READ_ONLY_SIGNER })
  } catch (e) {
    if ((e as { code?: string }).code !== 'LOG_LOCKED') throw e
    return await openDaemonSource(setup)
  }
  return {
    via: 'log',
    headSeq: log.head.seq,
    ackedSeq: log.acked,
    records: (from, to) => log.iterate(from, to),
    close: async () => await log.close()
  }
}

async function openDaemonSource (setup: AgentSetup): Promise<RecordSource> {
  const daemon = await findDaemon(setup)
  const first = await fetchPage(daemon, 0, -1, 0)
  return {
    via: 'daemon',
    headSeq: first.headSeq,
    ackedSeq: first.ackedSeq,
    records: async function * (from, to) {
      let next = from
      while (next <= to) {
        const page = await fetchPage(daemon, next, to, MAX_RECORDS_PER_REQUEST)
        for (const r of page.records) yield r
        const last = page.records.at(-1)
        // A page may be short of the limit (the daemon caps its bytes): only an empty one ends.
        if (last === undefined) return
        next = last.record.seq + 1
      }
    },
    close: async () => {}
  }
}

async function fetchPage (daemon: DaemonEndpoint, from: number, to: number, limit: number): Promise<{ records: SignedRecord[], headSeq: number, ackedSeq: number }> {
  const res = await requestDaemon(daemon, 'GET', `/v1/records?from=${from}&to=${Math.max(to, 0)}&limit=${limit}`)
  if (res.status !== 200) throw new CliError('DAEMON_REQUEST_FAILED', `the daemon answered ${res.status} to GET /v1/records: ${res.body.toString('utf8').slice(0, 300)}`)
  const value = decodeCanonical(new Uint8Array(res.body), { maxBytes: 128 * 1024 * 1024, maxDepth: 1 })
  if (!Array.isArray(value)) throw new CliError('DAEMON_REQUEST_FAILED', 'GET /v1/records did not answer with a CBOR array')
  return {
    records: value.map(v => decodeEnvelope(v as Uint8Array)),
    headSeq: Number(res.headers['x-head-seq'] ?? -1),
    ackedSeq: Number(res.headers['x-acked-seq'] ?? -1)
  }
}
