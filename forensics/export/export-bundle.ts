/**
 * Export of an incident bundle: a device's records, their inclusion proofs and its anchored tip
 * from the gateway's HTTP API, and the registry's facts (key history, models, anchors) read at ONE block, so that the
 * bundle is a consistent snapshot an investigator can verify offline, and online against the chain.
 * Nothing the gateway serves is trusted here; bad records are kept as evidence for verify to name.
 */
import {
  BUNDLE_FORMAT, assertBundle, decodeBundleRecord, decodeEnvelope, fromHex, parseCheckpoint, parseProof, parseTipProof, toHex, verifyPruningStatement,
  type Bundle, type BundleGateway, type BundleProof, type BundlePruning, type SignedRecord
} from '../../protocol/index.js'
import { openChainReader, readAnchorFacts, readBlockHash, readDeviceFacts, readLatestBlock, readModelFacts } from '../chain/index.js'
import { ForensicsError } from '../errors.js'
import { DEFAULT_PAGE_LIMIT, GatewayClient } from './gateway-client.js'

export const DEFAULT_EXPORT_CONCURRENCY = 8

export interface ExportProgress {
  /** `records`: listing the gateway; `proofs`: fetching proofs; `facts`: reading the chain. */
  phase: 'records' | 'proofs' | 'facts'
  done: number
  /** 0 while unknown. */
  total: number
}

export interface ExportOptions {
  /** Gateway HTTP API base URL. */
  gatewayUrl: string
  /** JSON-RPC endpoint of the chain the registry lives on. */
  rpcUrl: string
  /** Registry contract address. */
  registry: string
  /** Device id string, as in its records. */
  deviceId: string
  /** Keep records from the first one with device time >= fromMs (Unix ms). */
  fromMs?: number
  /** ... to the last one with device time <= toMs; records in between are kept whatever their time. */
  toMs?: number
  /** Proof requests in flight. Default 8. */
  concurrency?: number
  /** Records per listing request. Default 500. */
  pageLimit?: number
  /** Per HTTP request. Default 30 000 ms. */
  timeoutMs?: number
  /** Bearer token of the gateway's API. Never logged. */
  gatewayToken?: string
  /** The device's shredding statements (envelopes, PROTOCOL.md §12.2), carried as they are: verify judges them. */
  shreddings?: readonly Uint8Array[]
  /** Clock for `createdAtMs`. Default Date.now. */
  now?: () => number
  onProgress?: (progress: ExportProgress) => void
}

/**
 * Reads one device's records (optionally a time window of them), their proofs and the chain's
 * facts into a bundle.
 * @throws ForensicsError `DEVICE_NOT_REGISTERED`, `EXPORT_EMPTY`, `GATEWAY_FAILED`,
 *   `GATEWAY_BAD_RESPONSE`, `RPC_FAILED`, `REGISTRY_NOT_FOUND`.
 * @throws TypeError / RangeError for bad options.
 */
export async function exportBundle (options: ExportOptions): Promise<Bundle> {
  const { deviceId, fromMs, toMs } = options
  for (const k of ['fromMs', 'toMs'] as const) {
    const v = options[k]
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) throw new RangeError(`${k} must be a non-negative safe integer`)
  }
  if (fromMs !== undefined && toMs !== undefined && toMs < fromMs) throw new RangeError('toMs is before fromMs')
  const concurrency = options.concurrency ?? DEFAULT_EXPORT_CONCURRENCY
  const pageLimit = options.pageLimit ?? DEFAULT_PAGE_LIMIT
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new RangeError('concurrency must be a positive integer')
  if (!Number.isSafeInteger(pageLimit) || pageLimit < 1) throw new RangeError('pageLimit must be a positive integer')
  const progress = options.onProgress ?? (() => {})
  const gateway = new GatewayClient({
    gatewayUrl: options.gatewayUrl,
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    ...(options.gatewayToken === undefined ? {} : { token: options.gatewayToken })
  })

  const reader = await openChainReader(options.rpcUrl, options.registry)
  try {
    // The device's tip at the gateway's newest anchored batch (PROTOCOL.md §7.10), asked FIRST: every
    // record up to it is stored before the listing starts, and its anchor is in a block before the
    // one the facts are read at. A windowed export stops where it was asked to: no tip.
    const tip = toMs === undefined ? await gateway.getTip(deviceId) : undefined
    // One block for every fact, so the bundle is a snapshot and online verification can compare exactly.
    const readAtBlock = await readLatestBlock(reader)
    const readAtBlockHash = await readBlockHash(reader, readAtBlock)
    const device = await readDeviceFacts(reader, deviceId, readAtBlock)
    if (device === undefined) throw new ForensicsError('DEVICE_NOT_REGISTERED', `the registry at ${reader.registry.address} does not know device "${deviceId}"`)

    const selected = await listWindow(gateway, deviceId, fromMs, toMs, pageLimit, progress)
    if (selected.length === 0) throw new ForensicsError('EXPORT_EMPTY', `the gateway has no record of "${deviceId}" in the window`)

    const seqs = selected.flatMap(s => s.signed === undefined ? [] : [s.signed.record.seq])
    const proofs = await fetchProofs(gateway, deviceId, seqs, concurrency, progress)
    // The key that signs the proofs' checkpoints; a gateway from before signing has none (404).
    const logKey = await gateway.getLogKey()
    // What retention removed before these records, with the checkpoints that commit it (§12.1).
    const prunings = await gateway.getPrunings(deviceId)

    progress({ phase: 'facts', done: 0, total: 2 })
    const roots = namedRoots(proofs, prunings, logKey, tip)
    const anchors = [...(await readAnchorFacts(reader, roots, readAtBlock)).values()]
    progress({ phase: 'facts', done: 1, total: 2 })
    const modelHashes = new Set<string>()
    for (const s of selected) {
      const body = s.signed?.record.body
      if (body?.kind === 'model-load' || body?.kind === 'inference') modelHashes.add(toHex(body.modelHash))
    }
    const models = await readModelFacts(reader, modelHashes, readAtBlock)
    progress({ phase: 'facts', done: 2, total: 2 })

    const bundle: Bundle = {
      format: BUNDLE_FORMAT,
      createdAtMs: (options.now ?? Date.now)(),
      device,
      chain: {
        chainId: reader.chainId,
        registry: reader.registry.address,
        readAtBlock,
        ...(readAtBlockHash === undefined ? {} : { readAtBlockHash })
      },
      ...(fromMs === undefined && toMs === undefined ? {} : { window: { ...(fromMs === undefined ? {} : { fromMs }), ...(toMs === undefined ? {} : { toMs }) } }),
      models,
      records: selected.map(s => s.base64),
      proofs,
      anchors,
      ...(logKey === undefined ? {} : { gateways: [logKey] }),
      ...(tip === undefined ? {} : { tip: { proof: tip } }),
      ...(prunings.length === 0 ? {} : { prunings }),
      ...(options.shreddings === undefined || options.shreddings.length === 0 ? {} : { shreddings: options.shreddings.map(b => Buffer.from(b).toString('base64')) })
    }
    assertBundle(bundle)
    return bundle
  } finally {
    reader.close()
  }
}

/** The proofs of `seqs` from the gateway, `concurrency` requests in flight, in seq order; a record without one is left out. */
async function fetchProofs (gateway: GatewayClient, deviceId: string, seqs: number[], concurrency: number, progress: (p: ExportProgress) => void): Promise<BundleProof[]> {
  const proofs: BundleProof[] = []
  let done = 0
  await runPool(seqs, concurrency, async seq => {
    const proof = await gateway.getProof(deviceId, seq)
    if (proof !== undefined) proofs.push({ seq, proof })
    if (++done % 100 === 0) progress({ phase: 'proofs', done, total: seqs.length })
  })
  progress({ phase: 'proofs', done: seqs.length, total: seqs.length })
  return proofs.sort((a, b) => a.seq - b.seq)
}

/** The roots whose anchors the bundle needs: of its proofs, of the pruned records' batches and their checkpoints, of the tip. */
function namedRoots (proofs: readonly BundleProof[], prunings: readonly BundlePruning[], logKey: BundleGateway | undefined, tip: string | undefined): Set<string> {
  const roots = new Set<string>()
  for (const p of proofs) {
    try {
      roots.add(toHex(parseProof(p.proof).checkpoint.rootHash))
    } catch {
      // kept as served: verify names it proof-invalid
    }
  }
  for (const p of prunings) {
    // The batches the pruned records were in: their anchors show they were anchored before.
    if (logKey !== undefined) {
      try {
        for (const b of verifyPruningStatement(Buffer.from(p.statement, 'base64'), [fromHex(logKey.publicKey)]).statement.batches) roots.add(toHex(b.root))
      } catch {
        // kept as served: verify names it pruning-invalid
      }
    }
    if (p.checkpoint === undefined) continue
    try {
      roots.add(toHex(parseCheckpoint(p.checkpoint.slice(0, p.checkpoint.indexOf('\n\n') + 2)).rootHash))
    } catch {
      // kept as served: verify names it pruning-invalid
    }
  }
  if (tip !== undefined) {
    try {
      roots.add(toHex(parseCheckpoint(parseTipProof(tip).checkpoint).rootHash))
    } catch {
      // kept as served: verify names it tip-proof-invalid
    }
  }
  return roots
}

interface Listed { base64: string, signed: SignedRecord | undefined }

/**
 * The device's records from the first one in the window to the last one in it, in the gateway's
 * (seq) order. Records that do not decode are kept where they stand: they are evidence.
 */
async function listWindow (
  gateway: GatewayClient, deviceId: string, fromMs: number | undefined, toMs: number | undefined, pageLimit: number,
  progress: (p: ExportProgress) => void
): Promise<Listed[]> {
  const kept: Listed[] = []
  // Records after the last one in the window: kept only if another in-window record follows.
  let tail: Listed[] = []
  let started = fromMs === undefined
  let fromSeq: number | null = 0
  let listed = 0
  while (fromSeq !== null) {
    const page = await gateway.listRecords(deviceId, fromSeq, pageLimit)
    let anyInWindow = false
    for (const base64 of page.records) {
      let signed: SignedRecord | undefined
      try {
        signed = decodeEnvelope(decodeBundleRecord(base64))
      } catch {
        if (!/^[A-Za-z0-9+/]*={0,2}$/.test(base64) || base64.length % 4 !== 0 || base64.length === 0) {
          throw new ForensicsError('GATEWAY_BAD_RESPONSE', `the gateway listed a record of "${deviceId}" that is not base64`)
        }
      }
      const t = signed?.record.timeMs
      const listedItem = { base64, signed }
      if (t === undefined) {
        if (started) tail.push(listedItem)
        continue
      }
      if (!started && fromMs !== undefined && t >= fromMs) started = true
      if (!started) continue
      if (toMs === undefined || t <= toMs) {
        kept.push(...tail, listedItem)
        tail = []
        anyInWindow = true
      } else {
        tail.push(listedItem)
      }
    }
    listed += page.records.length
    progress({ phase: 'records', done: listed, total: 0 })
    // Device clocks may step back a little; a whole page past the window ends the listing.
    if (toMs !== undefined && started && !anyInWindow && page.records.length > 0 && tail.length >= page.records.length) break
    fromSeq = page.next
  }
  // Unreadable records at the very end are kept too: nothing after them says they are outside.
  if (toMs === undefined) kept.push(...tail)
  return kept
}

async function runPool<T> (items: readonly T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T
      await work(item)
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker))
}
