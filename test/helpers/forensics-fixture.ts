/**
 * An incident to investigate, for the forensics tests: a real anvil chain with the registry, a
 * device history (reboot, key rotation, honest gap, two models) registered there, the records of
 * two devices batched into RFC 9162 trees whose roots are anchored on chain through the real
 * RegistryClient, and a stand-in for the gateway's HTTP API (records listing and tlog-proofs,
 * exactly the contract export relies on) while the real gateway is being written.
 * (No tests here: tap lists this file as skipped.)
 */
import { createServer, type Server } from 'node:http'
import type { Test } from 'tap'
import { startDevChain, deviceIdOf, type DevChain } from '../../contracts/index.js'
import {
  BUNDLE_FORMAT, MerkleTree, createSigner, formatCheckpoint, formatProof, hashLeaf, sha256, signCheckpoint, toHex, encodeBundleRecord,
  type Bundle, type BundleGateway, type BundleModel, type Checkpoint, type ProofExtra, type SignedRecord, type TlogProof
} from '../../protocol/index.js'
import { ChainBuilder, fakeHash, makeChain, makeMixedChain, sampleBody, sampleInference } from './records.js'

export const MAIN_DEVICE = 'dev-0001'
export const OTHER_DEVICE = 'dev-0002'
export const MODEL_0 = toHex(fakeHash('model/0'))
export const MODEL_1 = toHex(fakeHash('model/1'))
/** A model the device loads in `withUnknownModel` histories and nobody registered. */
export const MODEL_X = toHex(fakeHash('model/x'))

export interface Batch {
  id: number
  root: Uint8Array
  size: number
  firstRecordTimeMs: number
  lastRecordTimeMs: number
  checkpoint: string
  /** Leaves: [device, seq] in tree order. */
  leaves: Array<{ device: string, signed: SignedRecord }>
  anchored?: { batchId: bigint, txHash: string, blockNumber: number, blockHash: string }
}

/** The stand-in gateway's fixed log key, which signs its checkpoints (PROTOCOL.md §7.8). */
export const FIXTURE_GATEWAY_ID = 'fixture-gateway'
export const FIXTURE_GATEWAY_KEY_NAME = 'test-gateway'
export const FIXTURE_GATEWAY_SIGNER = createSigner(sha256(new TextEncoder().encode('fixture gateway log key')))
/** The bundle entry of that key. */
export const FIXTURE_GATEWAY: BundleGateway = { id: FIXTURE_GATEWAY_ID, keyName: FIXTURE_GATEWAY_KEY_NAME, publicKey: toHex(FIXTURE_GATEWAY_SIGNER.publicKey) }

/** A checkpoint signed by the stand-in gateway's log key: what the real gateway stores and serves. */
export function fixtureSignedCheckpoint (checkpoint: Checkpoint): string {
  return signCheckpoint(checkpoint, FIXTURE_GATEWAY_KEY_NAME, FIXTURE_GATEWAY_SIGNER)
}

/** A proof file ending in the signed checkpoint, as gateway/batch/proofs.ts formatRecordProof writes it. */
export function fixtureSignedProof (proof: TlogProof): string {
  const signed = fixtureSignedCheckpoint(proof.checkpoint)
  return formatProof(proof) + signed.slice(signed.indexOf('\n\n') + 2)
}

/** The bearer token the stand-in gateway asks for, as the real one does. */
export const FIXTURE_GATEWAY_TOKEN = 'fixture-gateway-token-0123456789'

export interface IncidentOptions {
  /** The stand-in gateway predates signed checkpoints: unsigned proofs and no /v1/log-key. */
  unsignedCheckpoints?: boolean
  /** Most records per listing page whatever `limit` asks (a gateway's byte cap), with a `next` cursor. */
  pageCap?: number
  /** Leaves per batch. Default 12. */
  batchSize?: number
  /** The last sealed batch is not anchored on chain. */
  lastBatchNotAnchored?: boolean
  /** Records of the main device at the end left in the open batch (no proof: HTTP 409). */
  openTail?: number
  /** The device also loads and runs MODEL_X, which is not registered. */
  withUnknownModel?: boolean
  /**
   * Varies the other device's records, so that every batch root differs from the roots of earlier
   * incidents on the same chain (a root is anchored once). Default: a counter per process.
   */
  variant?: string
  /** Changes the bytes the stand-in gateway lists for a record of the main device (a corrupted store). */
  tamper?: (seq: number, envelope: Uint8Array) => Uint8Array
}

let incidents = 0

export interface Incident {
  chain: DevChain
  device: ChainBuilder
  other: SignedRecord[]
  batches: Batch[]
  gatewayUrl: string
  /** The stand-in gateway's bearer token (FIXTURE_GATEWAY_TOKEN). */
  gatewayToken: string
  /** Requests the stand-in gateway served, e.g. `/v1/proof/dev-0001/3`. */
  requests: string[]
  exportOptions: { gatewayUrl: string, gatewayToken: string, rpcUrl: string, registry: string, deviceId: string }
}

/** A started dev chain, stopped when the test (file) ends. */
export async function startChain (t: Test): Promise<DevChain> {
  const chain = await startDevChain()
  t.teardown(chain.stop)
  return chain
}

/** The device history: makeMixedChain (20 records, seq 0..21, gap 6..7, rotation at 10, reboot at 16) and 10 more inferences. */
export function makeDeviceHistory (options: IncidentOptions = {}): ChainBuilder {
  const b = makeMixedChain({ deviceId: MAIN_DEVICE })
  for (let i = 0; i < 6; i++) b.append(sampleInference(b.seq, fakeHash('model/1')))
  if (options.withUnknownModel === true) {
    b.append({ ...sampleBody('model-load', 0), modelHash: fakeHash('model/x'), name: 'x.onnx' })
    for (let i = 0; i < 2; i++) b.append(sampleInference(b.seq, fakeHash('model/x')))
  }
  for (let i = 0; i < 2; i++) b.append(sampleInference(b.seq, fakeHash('model/1')))
  return b
}

/** Registers the device (both keys) and models 0 and 1 (approved) on the chain. Idempotent per chain. */
export async function registerFacts (chain: DevChain, device: ChainBuilder): Promise<void> {
  const registrar = chain.registryAs('deviceRegistrar')
  const id = deviceIdOf(device.deviceId)
  if (await registrar.getDevice(id) === undefined) {
    const [first, ...rest] = device.keys
    await registrar.registerDevice({ deviceId: id, publicKey: (first as { publicKey: Uint8Array }).publicKey, validFromMs: 0 })
    for (const k of rest) await registrar.rotateDeviceKey({ deviceId: id, publicKey: k.publicKey, validFromMs: k.validFromMs })
  }
  const gatewayId = deviceIdOf(FIXTURE_GATEWAY_ID)
  if (await registrar.getDevice(gatewayId) === undefined) {
    await registrar.registerDevice({ deviceId: gatewayId, publicKey: FIXTURE_GATEWAY_SIGNER.publicKey, validFromMs: 0 })
  }
  const publisher = chain.registryAs('modelPublisher')
  if (await publisher.modelStatus('0x' + MODEL_0) === 'none') {
    await publisher.registerModel({ modelHash: '0x' + MODEL_0, name: 'detector', version: '1.0.0', manifestHash: fakeHash('manifest/0'), metadataURI: 'https://models.example/detector/1.0.0' })
    await publisher.approveModel('0x' + MODEL_0)
  }
  if (await publisher.modelStatus('0x' + MODEL_1) === 'none') {
    await publisher.registerModel({ modelHash: '0x' + MODEL_1, name: 'detector', version: '1.1.0', parentHash: '0x' + MODEL_0, manifestHash: fakeHash('manifest/1') })
    await publisher.approveModel('0x' + MODEL_1)
  }
}

/**
 * Builds the incident on `chain` (a fresh device id per call is not needed: each call uses a
 * fresh chain or the same facts) and starts the stand-in gateway; closed when the test ends.
 */
export async function startIncident (t: Test, chain: DevChain, options: IncidentOptions = {}): Promise<Incident> {
  const device = makeDeviceHistory(options)
  await registerFacts(chain, device)
  const variant = options.variant ?? String(incidents++)
  // As many records as the device's and interleaved with them: every batch holds some.
  const other = makeChain({ deviceId: OTHER_DEVICE, seed: `other/${variant}`, count: device.records.length, stepMs: 1000 })

  // Leaves in arrival order at a gateway serving both devices.
  const arrivals: Array<{ device: string, signed: SignedRecord }> = []
  const main = device.records
  const tail = options.openTail ?? 0
  const batchedMain = main.slice(0, main.length - tail)
  for (let i = 0; i < Math.max(batchedMain.length, other.length); i++) {
    const m = batchedMain[i]
    if (m !== undefined) arrivals.push({ device: MAIN_DEVICE, signed: m })
    const o = other[i]
    if (o !== undefined) arrivals.push({ device: OTHER_DEVICE, signed: o })
  }
  const batchSize = options.batchSize ?? 12
  const batches: Batch[] = []
  for (let at = 0; at < arrivals.length; at += batchSize) {
    const leaves = arrivals.slice(at, at + batchSize)
    const tree = new MerkleTree(leaves.map(l => hashLeaf(l.signed.envelope)))
    const id = batches.length + 1
    const times = leaves.map(l => l.signed.record.timeMs)
    const root = tree.root()
    batches.push({
      id,
      root,
      size: tree.size,
      firstRecordTimeMs: Math.min(...times),
      lastRecordTimeMs: Math.max(...times),
      checkpoint: formatCheckpoint({ origin: `test-gateway/batch/${id}`, size: tree.size, rootHash: root }),
      leaves
    })
  }
  const anchorer = chain.registryAs('anchorer')
  for (const [i, b] of batches.entries()) {
    if (options.lastBatchNotAnchored === true && i === batches.length - 1) continue
    const r = await anchorer.anchor({
      root: b.root, size: b.size, firstRecordTimeMs: b.firstRecordTimeMs, lastRecordTimeMs: b.lastRecordTimeMs,
      metadataHash: sha256(new TextEncoder().encode(b.checkpoint))
    })
    const block = await chain.provider.getBlock(r.blockNumber)
    b.anchored = { batchId: r.batchId, txHash: r.txHash, blockNumber: r.blockNumber, blockHash: block?.hash as string }
  }

  const records = new Map<string, SignedRecord[]>([[MAIN_DEVICE, main], [OTHER_DEVICE, other]])
  const place = new Map<string, { batch: Batch, index: number }>()
  for (const b of batches) b.leaves.forEach((l, index) => place.set(`${l.device}/${l.signed.record.seq}`, { batch: b, index }))
  const chainId = chain.anvil.chainId
  const registry = chain.deployment.address
  const requests: string[] = []

  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://stand-in.invalid')
    requests.push(url.pathname + url.search)
    const send = (status: number, type: string, body: string): void => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) })
      res.end(body)
    }
    if (req.headers.authorization !== `Bearer ${FIXTURE_GATEWAY_TOKEN}`) {
      send(req.headers.authorization === undefined ? 401 : 403, 'application/json', JSON.stringify({ error: { code: req.headers.authorization === undefined ? 'UNAUTHENTICATED' : 'FORBIDDEN', message: 'token' } }))
      return
    }
    if (url.pathname === '/v1/log-key') {
      if (options.unsignedCheckpoints === true) { send(404, 'application/json', JSON.stringify({ error: { code: 'NOT_FOUND', message: 'no such route' } })); return }
      send(200, 'application/json', JSON.stringify({ gatewayId: FIXTURE_GATEWAY.id, keyName: FIXTURE_GATEWAY.keyName, publicKey: FIXTURE_GATEWAY.publicKey }))
      return
    }
    const list = /^\/v1\/devices\/([^/]+)\/records$/.exec(url.pathname)
    if (list !== null) {
      const rs = records.get(decodeURIComponent(list[1] as string))
      if (rs === undefined) { send(404, 'application/json', JSON.stringify({ error: { code: 'DEVICE_NOT_FOUND', message: 'no such device' } })); return }
      const fromSeq = Number(url.searchParams.get('fromSeq') ?? 0)
      const limit = Math.min(Number(url.searchParams.get('limit') ?? 1000), options.pageCap ?? Number.POSITIVE_INFINITY)
      const from = rs.filter(r => r.record.seq >= fromSeq)
      const page = from.slice(0, limit)
      const next = from[limit]?.record.seq ?? null
      const served = page.map(r => rs === main && options.tamper !== undefined ? options.tamper(r.record.seq, r.envelope) : r.envelope)
      send(200, 'application/json', JSON.stringify({ records: served.map(encodeBundleRecord), next }))
      return
    }
    const proof = /^\/v1\/proof\/([^/]+)\/([0-9]+)$/.exec(url.pathname)
    if (proof !== null) {
      const device = decodeURIComponent(proof[1] as string)
      const seq = Number(proof[2])
      const stored = records.get(device)?.some(r => r.record.seq === seq) ?? false
      if (!stored) { send(404, 'application/json', JSON.stringify({ error: { code: 'RECORD_NOT_FOUND', message: 'not stored' } })); return }
      const p = place.get(`${device}/${seq}`)
      if (p === undefined) { send(409, 'application/json', JSON.stringify({ error: { code: 'BATCH_OPEN', message: 'not sealed yet' } })); return }
      const tree = new MerkleTree(p.batch.leaves.map(l => hashLeaf(l.signed.envelope)))
      const proofFile = {
        index: p.index,
        hashes: tree.proveInclusion(p.index),
        checkpoint: { origin: `test-gateway/batch/${p.batch.id}`, size: p.batch.size, rootHash: p.batch.root },
        extra: proofExtra(device, seq, p.batch, chainId, registry)
      }
      send(200, 'text/plain; charset=utf-8', options.unsignedCheckpoints === true ? formatProof(proofFile) : fixtureSignedProof(proofFile))
      return
    }
    send(404, 'application/json', JSON.stringify({ error: { code: 'NOT_FOUND', message: 'no such route' } }))
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise(resolve => server.close(resolve))
  })
  const address = server.address()
  const gatewayUrl = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
  return {
    chain,
    device,
    other,
    batches,
    gatewayUrl,
    gatewayToken: FIXTURE_GATEWAY_TOKEN,
    requests,
    exportOptions: { gatewayUrl, gatewayToken: FIXTURE_GATEWAY_TOKEN, rpcUrl: chain.anvil.rpcUrl, registry, deviceId: MAIN_DEVICE }
  }
}

/** The extra lines the gateway writes (gateway/batch/proofs.ts anchorExtra). */
function proofExtra (device: string, seq: number, batch: Batch, chainId: number, contract: string): ProofExtra[] {
  const extra: ProofExtra[] = [
    { key: 'device', value: device },
    { key: 'seq', value: String(seq) },
    { key: 'gateway-batch', value: String(batch.id) }
  ]
  const a = batch.anchored
  if (a !== undefined) {
    extra.push(
      { key: 'chain-id', value: String(chainId) },
      { key: 'contract', value: contract },
      { key: 'batch-id', value: a.batchId.toString() },
      { key: 'tx-hash', value: a.txHash },
      { key: 'block', value: String(a.blockNumber) },
      { key: 'block-hash', value: a.blockHash }
    )
  }
  return extra
}

/** A deep copy of a JSON value (bundles are JSON). */
export function clone<T> (value: T): T {
  return JSON.parse(JSON.stringify(value)) as T
}

/** Registry facts of models 0 and 1 as the fixture registers them, for chain-free bundles. */
export const OFFLINE_MODELS: BundleModel[] = [
  { hash: MODEL_0, name: 'detector', version: '1.0.0', parentHash: null, manifestHash: toHex(fakeHash('manifest/0')), status: 'approved', metadataUri: 'https://models.example/detector/1.0.0' },
  { hash: MODEL_1, name: 'detector', version: '1.1.0', parentHash: MODEL_0, manifestHash: toHex(fakeHash('manifest/1')), status: 'approved', metadataUri: '' }
]

/**
 * A well-formed bundle of `device`'s records without any chain: one batch of all its records, with
 * made-up (but self-consistent) anchoring facts. Verifies offline; for tests that need no anvil.
 */
export function offlineBundle (device: ChainBuilder, models: BundleModel[] = OFFLINE_MODELS): Bundle {
  const records = device.records
  const tree = new MerkleTree(records.map(r => hashLeaf(r.envelope)))
  const checkpoint = { origin: 'test-gateway/batch/1', size: tree.size, rootHash: tree.root() }
  const times = records.map(r => r.record.timeMs)
  return {
    format: BUNDLE_FORMAT,
    createdAtMs: 1_700_000_100_000,
    device: {
      id: device.deviceId,
      keys: device.keys.map((k, i) => ({
        publicKey: toHex(k.publicKey), validFromMs: k.validFromMs, ...(i + 1 < device.keys.length ? { validUntilMs: device.keys[i + 1]?.validFromMs } : {})
      }))
    },
    chain: { chainId: 31337, registry: '0x5FbDB2315678afecb367f032d93F642f64180aa3', readAtBlock: 42, readAtBlockHash: '0x' + 'ab'.repeat(32) },
    models,
    records: records.map(r => encodeBundleRecord(r.envelope)),
    proofs: records.map((r, i) => ({ seq: r.record.seq, proof: fixtureSignedProof({ index: i, hashes: tree.proveInclusion(i), checkpoint }) })),
    gateways: [FIXTURE_GATEWAY],
    anchors: [{
      root: toHex(tree.root()), size: tree.size, onChainBatchId: '1', txHash: '0x' + 'cd'.repeat(32), blockNumber: 7, blockHash: '0x' + 'ef'.repeat(32),
      firstRecordTimeMs: Math.min(...times), lastRecordTimeMs: Math.max(...times), metadataHash: toHex(sha256(new TextEncoder().encode(formatCheckpoint(checkpoint))))
    }]
  }
}
