/**
 * The incident bundle: one self-contained JSON document with everything an investigator needs to
 * verify a device's history without the gateway (records, inclusion proofs, key history, model and
 * anchor facts read from the chain at one block). Specified in docs/FORENSICS.md; decoding treats
 * the file as hostile: sizes are checked before anything is allocated, and only BundleError leaves.
 */
import { ProvenanceError } from './errors.js'
import { DEVICE_ID_PATTERN, LIMITS } from './record.js'
import { MAX_PROOF_BYTES, hasZeroPaddingBits, isBase64Text } from './checkpoint.js'
import { isValidKeyName } from './note.js'
import { MAX_TIP_PROOF_BYTES } from './tip-tree.js'

/** Codes of bundle decoding. Stable API. */
export type BundleErrorCode =
  /** Larger than the limit (bytes of the document, or too many entries in a list). */
  | 'BUNDLE_TOO_LARGE'
  /** Not UTF-8 or not JSON. */
  | 'BUNDLE_MALFORMED'
  /** JSON, but a field is missing, of the wrong type or out of range; `problems` lists the paths. */
  | 'BUNDLE_INVALID'
  /** Another `format` (a later version, or not a bundle at all). */
  | 'BUNDLE_UNSUPPORTED'

export class BundleError extends ProvenanceError<BundleErrorCode> {
  /** `path: problem` for each bad field (at most BUNDLE_LIMITS.problems). */
  readonly problems: readonly string[]

  constructor (code: BundleErrorCode, message: string, options?: { cause?: unknown, problems?: readonly string[] }) {
    super(code, message, options)
    this.problems = options?.problems ?? []
  }
}

export const BUNDLE_FORMAT = 'edge-provenance-bundle/v1'

export const BUNDLE_LIMITS = {
  /**
   * Largest document decoded. V8 cannot hold a string above ~512 Mi characters, and a bundle
   * costs ~1.6 KB per record with its proof: split longer histories by time window.
   */
  bundleBytes: 256 * 1024 * 1024,
  records: 1_000_000,
  keys: 1024,
  models: 4096,
  anchors: 100_000,
  captures: 10_000,
  /** Pruning and shredding statements (PROTOCOL.md §12). */
  statements: 10_000,
  gateways: 64,
  nameBytes: 256,
  metadataUriBytes: 2048,
  /** Problems collected before giving up on a document. */
  problems: 50
} as const

/** Model statuses as the registry names them. */
export const BUNDLE_MODEL_STATUSES = ['none', 'registered', 'approved', 'deprecated', 'revoked'] as const
export type BundleModelStatus = typeof BUNDLE_MODEL_STATUSES[number]

/** One period of the device's key history (registry `deviceKeys`). */
export interface BundleKey {
  /** Raw Ed25519 public key, 64 lower-case hex digits. */
  publicKey: string
  /** Device time from which the key signs, Unix ms. */
  validFromMs: number
  /** Exclusive end: the next key's validFromMs; absent for the current key. */
  validUntilMs?: number
}

export interface BundleDevice {
  /** The device id string of the records (the chain knows it as sha256 of it). */
  id: string
  /** Oldest first; each validUntilMs is the next key's validFromMs. */
  keys: BundleKey[]
  /** Device time from which the registry counts the device as revoked; absent when not revoked. */
  revokedFromMs?: number
}

export interface BundleChain {
  /** EIP-155 chain id. */
  chainId: number
  /** Registry contract address, 0x-hex. */
  registry: string
  /** Block at which device and model facts were read. */
  readAtBlock: number
  /** Hash of that block, 0x-hex (pins the facts to one fork). */
  readAtBlockHash?: string
}

export interface BundleModel {
  /** SHA-256 of the model file, hex. */
  hash: string
  name: string
  version: string
  /** Parent model hash, hex; null for none. */
  parentHash: string | null
  /** Registered tensor-manifest hash, hex (zeros for none). */
  manifestHash: string
  /** `none`: asked, and the registry does not know the hash (name and version are then empty). */
  status: BundleModelStatus
  metadataUri: string
}

export interface BundleProof {
  seq: number
  /** The gateway's C2SP tlog-proof text, anchoring facts in its `extra` line (unauthenticated). */
  proof: string
}

/** An Anchored event of the registry, with the block it is in. */
export interface BundleAnchor {
  /** RFC 9162 Merkle root, hex. */
  root: string
  /** Leaves in the anchored tree: what inclusion proofs are checked against. */
  size: number
  /** Registry batch id, decimal. */
  onChainBatchId: string
  /** 0x-hex. */
  txHash: string
  blockNumber: number
  /** 0x-hex. */
  blockHash: string
  firstRecordTimeMs: number
  lastRecordTimeMs: number
  /** hex (the gateway puts sha256 of the batch checkpoint text there). */
  metadataHash: string
}

/**
 * A gateway whose checkpoints the proofs carry, with the log key that signs them (PROTOCOL.md
 * §7.8): what an offline verifier checks checkpoint signatures with, and what an online one
 * compares with the key registered on chain under `id`.
 */
export interface BundleGateway {
  /** The gateway id, under which its log key is registered on chain (registerDevice). */
  id: string
  /** The key name its checkpoints are signed under (its checkpointOrigin, e.g. `edge-provenance/gw-1`). */
  keyName: string
  /** Raw Ed25519 log key, 64 lower-case hex digits. */
  publicKey: string
}

/** A gateway's pruning statement (PROTOCOL.md §12.1) with the checkpoint that commits it. */
export interface BundlePruning {
  /** The statement envelope, standard base64. */
  statement: string
  /** The signed checkpoint of the batch whose extension line commits the statement; absent while none does yet. Its anchor is in `anchors`. */
  checkpoint?: string
}

/** A device's anchored tip, as the gateway proved it. */
export interface BundleTip {
  /** The tip proof file, its checkpoint included (unauthenticated: verify checks it on chain). */
  proof: string
}

export interface Bundle {
  format: typeof BUNDLE_FORMAT
  createdAtMs: number
  device: BundleDevice
  chain: BundleChain
  /** The time window the exporter was asked for, informational. */
  window?: { fromMs?: number, toMs?: number }
  models: BundleModel[]
  /** Signed envelopes (docs/PROTOCOL.md §3), standard base64, in seq order. */
  records: string[]
  proofs: BundleProof[]
  anchors: BundleAnchor[]
  /** Optional: the gateways whose signed checkpoints the proofs carry; absent in bundles before issue 12. */
  gateways?: BundleGateway[]
  /**
   * Optional: the device's tip proof file (PROTOCOL.md §7.10) at the gateway's newest anchored
   * batch when the bundle was exported; what `verify --online` proves the bundle complete with.
   * Absent in bundles before issue 14 and in windowed exports.
   */
  tip?: BundleTip
  /**
   * Incident captures (agent/capture, forensics/replay): objects opaque to this format, by
   * convention `{ "capture": base64 of a capture file (protocol/capture.ts) }`.
   */
  captures?: Array<Record<string, unknown>>
  /** Optional: what the gateways pruned of this device by retention (PROTOCOL.md §12.1). */
  prunings?: BundlePruning[]
  /** Optional: the device's shredding statements (PROTOCOL.md §12.2), standard base64 envelopes. */
  shreddings?: string[]
}

const HEX32 = /^[0-9a-f]{64}$/
const HEX32_0X = /^0x[0-9a-fA-F]{64}$/
const ADDRESS = /^0x[0-9a-fA-F]{40}$/
const DECIMAL = /^(0|[1-9][0-9]{0,19})$/
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
/** Longest base64 text of an envelope of LIMITS.envelopeBytes. */
const MAX_RECORD_BASE64 = 4 * Math.ceil(LIMITS.envelopeBytes / 3)

const TOP_KEYS = new Set(['format', 'createdAtMs', 'device', 'chain', 'window', 'models', 'records', 'proofs', 'anchors', 'gateways', 'tip', 'captures', 'prunings', 'shreddings'])
/** Longest base64 text of a statement envelope (MAX_STATEMENT_BYTES, protocol/erasure.ts). */
const MAX_STATEMENT_BASE64 = 4 * Math.ceil(64 * 1024 / 3)

// Collects problems up to the limit, then stops the walk: a hostile document with a million bad
// fields costs no more than one with fifty.
class Problems {
  readonly list: string[] = []
  add (path: string, problem: string): void {
    this.list.push(`${path}: ${problem}`)
    if (this.list.length >= BUNDLE_LIMITS.problems) throw new StopWalk()
  }
}
class StopWalk extends Error {}

function isObject (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function utf8Length (s: string): number {
  return Buffer.byteLength(s, 'utf8')
}

/**
 * Asserts that `value` (parsed JSON) is a well-formed v1 bundle, collecting the path of every bad
 * field (e.g. `device.keys[1].validFromMs`, `records[42]`). Checks form, not truth: envelopes are
 * checked as base64 of at most one envelope, proofs as bounded text; verification decodes them
 * and names any bad one by its seq.
 * @throws BundleError `BUNDLE_UNSUPPORTED` for another format, `BUNDLE_TOO_LARGE` for a list
 *   over its limit, `BUNDLE_INVALID` with `problems` for anything else.
 */
export function assertBundle (value: unknown): asserts value is Bundle {
  if (!isObject(value)) throw new BundleError('BUNDLE_INVALID', 'bundle must be a JSON object', { problems: ['(root): not an object'] })
  const format = value.format
  if (format !== BUNDLE_FORMAT) {
    throw new BundleError('BUNDLE_UNSUPPORTED', `unsupported bundle format ${JSON.stringify(typeof format === 'string' ? format.slice(0, 64) : typeof format)}; expected ${BUNDLE_FORMAT}`)
  }
  // List lengths first, before walking any of them.
  const limits: Array<[string, number]> = [['records', BUNDLE_LIMITS.records], ['proofs', BUNDLE_LIMITS.records], ['anchors', BUNDLE_LIMITS.anchors],
    ['models', BUNDLE_LIMITS.models], ['captures', BUNDLE_LIMITS.captures], ['gateways', BUNDLE_LIMITS.gateways],
    ['prunings', BUNDLE_LIMITS.statements], ['shreddings', BUNDLE_LIMITS.statements]]
  for (const [key, max] of limits) {
    const list = value[key]
    if (Array.isArray(list) && list.length > max) throw new BundleError('BUNDLE_TOO_LARGE', `${key}: ${list.length} entries, at most ${max}`)
  }
  const keys = isObject(value.device) ? value.device.keys : undefined
  if (Array.isArray(keys) && keys.length > BUNDLE_LIMITS.keys) throw new BundleError('BUNDLE_TOO_LARGE', `device.keys: ${keys.length} entries, at most ${BUNDLE_LIMITS.keys}`)

  const p = new Problems()
  try {
    walkBundle(value, p)
  } catch (e) {
    if (!(e instanceof StopWalk)) throw e
  }
  if (p.list.length > 0) {
    const more = p.list.length >= BUNDLE_LIMITS.problems ? ' (stopped at the first ' + String(BUNDLE_LIMITS.problems) + ')' : ''
    throw new BundleError('BUNDLE_INVALID', `invalid bundle${more}: ${p.list.join('; ')}`, { problems: p.list })
  }
}

/** The per-field checks, each reporting into one {@link Problems}. */
class Checks {
  constructor (readonly p: Problems) {}
  uint (v: unknown, path: string, min = 0): boolean {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) { this.p.add(path, `not a safe integer ≥ ${min}`); return false }
    return true
  }

  match (v: unknown, re: RegExp, path: string, what: string): boolean {
    if (typeof v !== 'string' || !re.test(v)) { this.p.add(path, `not ${what}`); return false }
    return true
  }

  text (v: unknown, path: string, maxBytes: number): void {
    if (typeof v !== 'string' || v.length > maxBytes || utf8Length(v) > maxBytes) this.p.add(path, `not a string of at most ${maxBytes} bytes`)
    else if (LONE_SURROGATE.test(v)) this.p.add(path, 'not well-formed Unicode')
  }

  onlyKeys (o: Record<string, unknown>, allowed: readonly string[], path: string): void {
    for (const k of Object.keys(o)) if (!allowed.includes(k)) this.p.add(path === '' ? k : `${path}.${k}`, 'unknown field')
  }

  list (v: unknown, path: string): unknown[] {
    if (!Array.isArray(v)) { this.p.add(path, 'not an array'); return [] }
    return v
  }

  /** Each element that is an object goes to `each`; any other element is reported. */
  objects (v: unknown, key: string, each: (o: Record<string, unknown>, path: string) => void): void {
    this.list(v, key).forEach((x, i) => {
      const path = `${key}[${i}]`
      if (!isObject(x)) { this.p.add(path, 'not an object'); return }
      each(x, path)
    })
  }
}

// The steps run in document order, so problems are listed as before the walk was split.
function walkBundle (b: Record<string, unknown>, p: Problems): void {
  const c = new Checks(p)
  for (const k of Object.keys(b)) if (!TOP_KEYS.has(k)) p.add(k, 'unknown field')
  c.uint(b.createdAtMs, 'createdAtMs')
  checkDevice(c, b.device)
  checkChain(c, b.chain)
  if (b.window !== undefined) checkWindow(c, b.window)
  if (b.gateways !== undefined) checkGateways(c, b.gateways)
  checkModels(c, b.models)
  checkRecords(c, b.records)
  checkProofs(c, b.proofs)
  checkAnchors(c, b.anchors)
  if (b.tip !== undefined) checkTip(c, b.tip)
  checkStatements(c, b)
  // captures: opaque objects (the document's size bounds them)
  if (b.captures !== undefined) c.objects(b.captures, 'captures', () => {})
}

function checkDevice (c: Checks, d: unknown): void {
  const p = c.p
  if (!isObject(d)) { p.add('device', 'not an object'); return }
  c.onlyKeys(d, ['id', 'keys', 'revokedFromMs'], 'device')
  if (typeof d.id !== 'string' || d.id.length > LIMITS.deviceIdChars || !DEVICE_ID_PATTERN.test(d.id)) {
    p.add('device.id', `not a device id (${DEVICE_ID_PATTERN.source}, at most ${LIMITS.deviceIdChars} characters)`)
  }
  const keys = c.list(d.keys, 'device.keys')
  if (Array.isArray(d.keys) && keys.length === 0) p.add('device.keys', 'empty: the device has at least one key')
  keys.forEach((k, i) => {
    const path = `device.keys[${i}]`
    if (!isObject(k)) { p.add(path, 'not an object'); return }
    checkKey(c, k, keys[i + 1], path, i)
  })
  if (d.revokedFromMs !== undefined) c.uint(d.revokedFromMs, 'device.revokedFromMs')
}

/** One device key; its validity ends where the next key's begins. */
function checkKey (c: Checks, k: Record<string, unknown>, next: unknown, path: string, i: number): void {
  const p = c.p
  c.onlyKeys(k, ['publicKey', 'validFromMs', 'validUntilMs'], path)
  c.match(k.publicKey, HEX32, `${path}.publicKey`, '64 lower-case hex digits')
  c.uint(k.validFromMs, `${path}.validFromMs`)
  const nextFrom = isObject(next) ? next.validFromMs : undefined
  if (next === undefined) {
    if (k.validUntilMs !== undefined) p.add(`${path}.validUntilMs`, 'present on the current (last) key')
  } else if (k.validUntilMs !== nextFrom || !c.uint(k.validUntilMs, `${path}.validUntilMs`)) {
    p.add(`${path}.validUntilMs`, 'not the next key\'s validFromMs')
  }
  if (typeof k.validFromMs === 'number' && typeof nextFrom === 'number' && nextFrom <= k.validFromMs) {
    p.add(`device.keys[${i + 1}].validFromMs`, 'not after the previous key\'s')
  }
}

function checkChain (c: Checks, ch: unknown): void {
  if (!isObject(ch)) { c.p.add('chain', 'not an object'); return }
  c.onlyKeys(ch, ['chainId', 'registry', 'readAtBlock', 'readAtBlockHash'], 'chain')
  c.uint(ch.chainId, 'chain.chainId', 1)
  c.match(ch.registry, ADDRESS, 'chain.registry', 'a 0x-hex address')
  c.uint(ch.readAtBlock, 'chain.readAtBlock')
  if (ch.readAtBlockHash !== undefined) c.match(ch.readAtBlockHash, HEX32_0X, 'chain.readAtBlockHash', 'a 0x-hex block hash')
}

function checkWindow (c: Checks, w: unknown): void {
  if (!isObject(w)) { c.p.add('window', 'not an object'); return }
  c.onlyKeys(w, ['fromMs', 'toMs'], 'window')
  if (w.fromMs !== undefined) c.uint(w.fromMs, 'window.fromMs')
  if (w.toMs !== undefined) c.uint(w.toMs, 'window.toMs')
  if (typeof w.fromMs === 'number' && typeof w.toMs === 'number' && w.toMs < w.fromMs) c.p.add('window.toMs', 'before fromMs')
}

function checkGateways (c: Checks, gateways: unknown): void {
  const seen = new Set<string>()
  c.objects(gateways, 'gateways', (g, path) => {
    c.onlyKeys(g, ['id', 'keyName', 'publicKey'], path)
    if (typeof g.id !== 'string' || g.id.length > LIMITS.deviceIdChars || !DEVICE_ID_PATTERN.test(g.id)) c.p.add(`${path}.id`, 'not a gateway id (a device id)')
    if (!isValidKeyName(g.keyName)) c.p.add(`${path}.keyName`, 'not a C2SP key name (1..256 characters, no space, no +)')
    c.match(g.publicKey, HEX32, `${path}.publicKey`, '64 lower-case hex digits')
    const key = `${String(g.keyName)}\n${String(g.publicKey)}`
    if (seen.has(key)) c.p.add(path, 'the same key name and key twice')
    seen.add(key)
  })
}

function checkModels (c: Checks, models: unknown): void {
  const seen = new Set<string>()
  c.objects(models, 'models', (m, path) => {
    c.onlyKeys(m, ['hash', 'name', 'version', 'parentHash', 'manifestHash', 'status', 'metadataUri'], path)
    if (c.match(m.hash, HEX32, `${path}.hash`, '64 lower-case hex digits')) {
      if (seen.has(m.hash as string)) c.p.add(`${path}.hash`, 'listed twice')
      seen.add(m.hash as string)
    }
    c.text(m.name, `${path}.name`, BUNDLE_LIMITS.nameBytes)
    c.text(m.version, `${path}.version`, BUNDLE_LIMITS.nameBytes)
    if (m.parentHash !== null) c.match(m.parentHash, HEX32, `${path}.parentHash`, 'null or 64 lower-case hex digits')
    c.match(m.manifestHash, HEX32, `${path}.manifestHash`, '64 lower-case hex digits')
    if (!(BUNDLE_MODEL_STATUSES as readonly unknown[]).includes(m.status)) c.p.add(`${path}.status`, `not one of ${BUNDLE_MODEL_STATUSES.join(', ')}`)
    c.text(m.metadataUri, `${path}.metadataUri`, BUNDLE_LIMITS.metadataUriBytes)
  })
}

/** Records: form only (base64 of at most one envelope); decoding is the verifier's job. */
function checkRecords (c: Checks, records: unknown): void {
  c.list(records, 'records').forEach((r, i) => {
    if (typeof r !== 'string' || r.length === 0 || r.length > MAX_RECORD_BASE64 || r.length % 4 !== 0 || !isBase64Text(r)) {
      c.p.add(`records[${i}]`, `not standard base64 of at most ${LIMITS.envelopeBytes} bytes`)
    }
  })
}

function checkProofs (c: Checks, proofs: unknown): void {
  const seen = new Set<number>()
  c.objects(proofs, 'proofs', (x, path) => {
    c.onlyKeys(x, ['seq', 'proof'], path)
    if (c.uint(x.seq, `${path}.seq`)) {
      if (seen.has(x.seq as number)) c.p.add(`${path}.seq`, 'listed twice')
      seen.add(x.seq as number)
    }
    if (typeof x.proof !== 'string' || x.proof.length === 0 || x.proof.length > MAX_PROOF_BYTES) c.p.add(`${path}.proof`, `not a text of 1..${MAX_PROOF_BYTES} characters`)
  })
}

function checkAnchors (c: Checks, anchors: unknown): void {
  const seen = new Set<string>()
  c.objects(anchors, 'anchors', (a, path) => {
    c.onlyKeys(a, ['root', 'size', 'onChainBatchId', 'txHash', 'blockNumber', 'blockHash', 'firstRecordTimeMs', 'lastRecordTimeMs', 'metadataHash'], path)
    if (c.match(a.root, HEX32, `${path}.root`, '64 lower-case hex digits')) {
      if (seen.has(a.root as string)) c.p.add(`${path}.root`, 'listed twice')
      seen.add(a.root as string)
    }
    c.uint(a.size, `${path}.size`, 1)
    c.match(a.onChainBatchId, DECIMAL, `${path}.onChainBatchId`, 'a decimal batch id')
    c.match(a.txHash, HEX32_0X, `${path}.txHash`, 'a 0x-hex transaction hash')
    c.uint(a.blockNumber, `${path}.blockNumber`)
    c.match(a.blockHash, HEX32_0X, `${path}.blockHash`, 'a 0x-hex block hash')
    c.uint(a.firstRecordTimeMs, `${path}.firstRecordTimeMs`)
    c.uint(a.lastRecordTimeMs, `${path}.lastRecordTimeMs`)
    if (typeof a.firstRecordTimeMs === 'number' && typeof a.lastRecordTimeMs === 'number' && a.lastRecordTimeMs < a.firstRecordTimeMs) {
      c.p.add(`${path}.lastRecordTimeMs`, 'before firstRecordTimeMs')
    }
    c.match(a.metadataHash, HEX32, `${path}.metadataHash`, '64 lower-case hex digits')
  })
}

/** The tip: one bounded text; verify parses it. */
function checkTip (c: Checks, tip: unknown): void {
  if (!isObject(tip)) { c.p.add('tip', 'not an object'); return }
  c.onlyKeys(tip, ['proof'], 'tip')
  if (typeof tip.proof !== 'string' || tip.proof.length === 0 || tip.proof.length > MAX_TIP_PROOF_BYTES) c.p.add('tip.proof', `not a text of 1..${MAX_TIP_PROOF_BYTES} characters`)
}

/** Statements: form only (base64 of at most one envelope); the verifier decodes and judges them. */
function checkStatements (c: Checks, b: Record<string, unknown>): void {
  const statement = (v: unknown, path: string): void => {
    if (typeof v !== 'string' || v.length === 0 || v.length > MAX_STATEMENT_BASE64 || v.length % 4 !== 0 || !isBase64Text(v)) c.p.add(path, 'not standard base64 of at most 64 KiB')
  }
  if (b.prunings !== undefined) {
    c.objects(b.prunings, 'prunings', (x, path) => {
      c.onlyKeys(x, ['statement', 'checkpoint'], path)
      statement(x.statement, `${path}.statement`)
      if (x.checkpoint !== undefined && (typeof x.checkpoint !== 'string' || x.checkpoint.length === 0 || x.checkpoint.length > MAX_PROOF_BYTES)) c.p.add(`${path}.checkpoint`, `not a text of 1..${MAX_PROOF_BYTES} characters`)
    })
  }
  if (b.shreddings !== undefined) c.list(b.shreddings, 'shreddings').forEach((x, i) => statement(x, `shreddings[${i}]`))
}

/**
 * The JSON text of a bundle: compact, one list entry per line (greppable, diff-friendly, still
 * one JSON document).
 * @throws BundleError as {@link assertBundle} (a bundle we would not read back is never written).
 */
export function encodeBundle (bundle: Bundle): string {
  assertBundle(bundle)
  const s = JSON.stringify
  const lines: string[] = ['{']
  const fields: string[] = []
  const listField = (key: string, items: readonly unknown[]): string =>
    items.length === 0 ? `${s(key)}: []` : `${s(key)}: [\n${items.map(x => '  ' + s(x)).join(',\n')}\n]`
  fields.push(`${s('format')}: ${s(bundle.format)}`, `${s('createdAtMs')}: ${bundle.createdAtMs}`,
    `${s('device')}: ${s(bundle.device)}`, `${s('chain')}: ${s(bundle.chain)}`)
  if (bundle.window !== undefined) fields.push(`${s('window')}: ${s(bundle.window)}`)
  fields.push(listField('models', bundle.models), listField('records', bundle.records), listField('proofs', bundle.proofs),
    listField('anchors', bundle.anchors))
  if (bundle.gateways !== undefined) fields.push(`${s('gateways')}: ${s(bundle.gateways)}`)
  if (bundle.tip !== undefined) fields.push(`${s('tip')}: ${s(bundle.tip)}`)
  if (bundle.captures !== undefined) fields.push(listField('captures', bundle.captures))
  if (bundle.prunings !== undefined) fields.push(listField('prunings', bundle.prunings))
  if (bundle.shreddings !== undefined) fields.push(listField('shreddings', bundle.shreddings))
  lines.push(fields.join(',\n'), '}')
  return lines.join('\n') + '\n'
}

/**
 * Parses a bundle file (UTF-8 bytes or text): size first, then UTF-8, JSON, and
 * {@link assertBundle}.
 * @throws BundleError `BUNDLE_TOO_LARGE` (checked before decoding), `BUNDLE_MALFORMED` (not UTF-8 or
 *   not JSON), `BUNDLE_UNSUPPORTED`, `BUNDLE_INVALID`.
 * @throws TypeError when `input` is neither a string nor a Uint8Array (a bug in the caller).
 */
export function decodeBundle (input: string | Uint8Array, options: { maxBytes?: number } = {}): Bundle {
  const maxBytes = options.maxBytes ?? BUNDLE_LIMITS.bundleBytes
  let text: string
  if (typeof input === 'string') {
    // A UTF-16 code unit is at least one UTF-8 byte: the cheap length bounds the work first.
    if (input.length > maxBytes || utf8Length(input) > maxBytes) throw new BundleError('BUNDLE_TOO_LARGE', `bundle is larger than ${maxBytes} bytes`)
    if (LONE_SURROGATE.test(input)) throw new BundleError('BUNDLE_MALFORMED', 'bundle is not well-formed Unicode')
    text = input
    if (text.charCodeAt(0) === 0xfeff) throw new BundleError('BUNDLE_MALFORMED', 'bundle starts with a byte order mark (docs/FORENSICS.md §2: UTF-8, no BOM)')
  } else if (input instanceof Uint8Array) {
    if (input.byteLength > maxBytes) throw new BundleError('BUNDLE_TOO_LARGE', `bundle is larger than ${maxBytes} bytes`)
    // ignoreBOM: true keeps a leading U+FEFF in the text, where it is refused below rather than
    // silently stripped: the spec says no BOM, and a verifier must not accept more than it says.
    try {
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(input)
    } catch (cause) {
      throw new BundleError('BUNDLE_MALFORMED', 'bundle is not valid UTF-8', { cause })
    }
    if (text.charCodeAt(0) === 0xfeff) throw new BundleError('BUNDLE_MALFORMED', 'bundle starts with a byte order mark (docs/FORENSICS.md §2: UTF-8, no BOM)')
  } else {
    throw new TypeError('bundle input must be a string or a Uint8Array')
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (cause) {
    // SyntaxError, or a RangeError from a pathological nesting depth: either way not a bundle.
    throw new BundleError('BUNDLE_MALFORMED', 'bundle is not JSON', { cause })
  }
  try {
    assertBundle(value)
  } catch (e) {
    if (e instanceof BundleError) throw e
    throw new BundleError('BUNDLE_INVALID', 'bundle could not be checked', { cause: e })
  }
  return value
}

/**
 * Bytes of one `records` entry. Strict RFC 4648 §4: the text must be what encoding the bytes
 * gives back (Buffer.from alone skips bad characters).
 * @throws BundleError `BUNDLE_INVALID` for text that is not canonical base64 of at most one envelope.
 */
export function decodeBundleRecord (base64: string): Uint8Array {
  checkBundleRecord(base64)
  const bytes = Buffer.from(base64, 'base64')
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/**
 * {@link decodeBundleRecord} into `out` at `offset` (room for `base64.length / 4 * 3` bytes), for
 * a reader of many records that keeps them in one buffer instead of one object each; returns the
 * number of bytes written.
 * @throws BundleError `BUNDLE_INVALID` as decodeBundleRecord, before writing anything.
 * @throws RangeError when `out` has no room for them.
 */
export function decodeBundleRecordInto (base64: string, out: Buffer, offset: number): number {
  checkBundleRecord(base64)
  const room = out.byteLength - offset
  if (!Number.isSafeInteger(offset) || offset < 0 || room < base64.length / 4 * 3) throw new RangeError('no room for the record in the buffer')
  return out.write(base64, offset, room, 'base64')
}

function checkBundleRecord (base64: string): void {
  if (typeof base64 !== 'string' || base64.length > MAX_RECORD_BASE64 || base64.length % 4 !== 0 || !isBase64Text(base64)) {
    throw new BundleError('BUNDLE_INVALID', 'record is not base64 of at most one envelope')
  }
  // isBase64Text has passed: only the padding is left to check (isCanonicalBase64 would scan the text again).
  if (!hasZeroPaddingBits(base64)) throw new BundleError('BUNDLE_INVALID', 'record is not canonical base64')
}

/** Standard base64 of an envelope, as `records` holds it. */
export function encodeBundleRecord (envelope: Uint8Array): string {
  return Buffer.from(envelope.buffer, envelope.byteOffset, envelope.byteLength).toString('base64')
}
