/**
 * Text formats of a sealed batch: the checkpoint (tree head) after C2SP tlog-checkpoint and the
 * per-record proof file after C2SP tlog-proof@v1, so that standard transparency-log tooling can read
 * them. Parsers take bytes from disk or network: bounded, exact, and they only throw ProtocolError.
 *
 * Checkpoint (https://c2sp.org/tlog-checkpoint), lines separated by U+000A:
 *
 *     provenance.example/gateway-1          origin: 1..256 chars, no control characters
 *     10000                                 tree size: decimal, no leading zeroes, <= 2^53 - 1
 *     XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=   root: standard base64 of 32 bytes, canonical
 *     [extension lines]                     optional, opaque, non-empty (C2SP: not recommended)
 *     (empty line)
 *     [— signer signature lines]            signed-note signatures: tolerated, never interpreted
 *
 * {@link formatCheckpoint} writes the first three lines and the empty line, so signature lines can
 * be appended later. {@link parseCheckpoint} also accepts the note text without the empty line.
 *
 * Proof file (https://c2sp.org/tlog-proof, extension `.tlog-proof`):
 *
 *     c2sp.org/tlog-proof@v1
 *     extra <base64>                        optional, see below
 *     index 1234                            zero-based leaf index, decimal, no leading zeroes
 *     <base64 hash>                         inclusion proof, leaf sibling first (RFC 9162 §2.1.3.1),
 *     ...                                   exactly as many lines as the index and size require
 *     (empty line)
 *     <checkpoint, verbatim>
 *
 * Extra data. C2SP allows one `extra` line of opaque base64 data; ours is the base64 of UTF-8 text
 * made of `key value` lines, each ending in U+000A, which is how the gateway attaches the anchoring
 * of the batch (keys such as `chain-id`, `contract`, `batch-id`, `tx-hash`, `block`). Keys match
 * [a-z0-9][a-z0-9._-]{0,63}, values are 1..1024 printable ASCII characters without spaces, at most
 * 32 entries, no key twice, order kept. Keeping the data inside the one base64 line keeps the file
 * a valid tlog-proof for other verifiers. As C2SP says, extra data is not authenticated: the
 * anchoring it names must be checked against the chain, never trusted.
 */
import { isAscii } from 'node:buffer'
import { ProtocolError } from './errors.js'
import { HASH_BYTES, inclusionProofLength, verifyInclusion } from './merkle.js'
import { isArray } from './guards.js'

/** First line of a proof file. */
export const PROOF_HEADER = 'c2sp.org/tlog-proof@v1'
/** Largest checkpoint text accepted, in bytes (room for a few dozen witness cosignatures). */
export const MAX_CHECKPOINT_BYTES = 64 * 1024
/** Largest proof file accepted, in bytes. */
export const MAX_PROOF_BYTES = 128 * 1024

const MAX_ORIGIN_CHARS = 256
const MAX_EXTENSION_LINES = 16
const MAX_EXTENSION_CHARS = 1024
const MAX_SIGNATURE_LINES = 64
const MAX_EXTRA_ENTRIES = 32
const MAX_EXTRA_VALUE_CHARS = 1024
// The proof of a tree of up to 2^53 - 1 leaves has at most 53 hashes; `inclusionProofLength`
// gives the exact count.
const MAX_PROOF_HASHES = 64

const DECIMAL = /^(0|[1-9][0-9]{0,15})$/
const EXTRA_KEY = /^[a-z0-9][a-z0-9._-]{0,63}$/
const EXTRA_VALUE = /^[\x21-\x7e]+$/
// C0 controls, DEL, C1 controls, Unicode line separators and the byte order mark (which would
// silently become part of the origin): never part of a line we accept.
 
const CONTROL = /[\x00-\x1f\x7f-\x9f\u2028\u2029\uFEFF]/
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** A tree head: which log, how many leaves, which root. */
export interface Checkpoint {
  /** Identity of the log (the gateway), e.g. `provenance.example/gateway-1`. */
  readonly origin: string
  /** Number of leaves in the tree. */
  readonly size: number
  /** RFC 9162 §2.1.1 root of the tree, 32 bytes. */
  readonly rootHash: Uint8Array
  /** Opaque extension lines after the root; absent when there are none. */
  readonly extensions?: readonly string[]
}

/** One `key value` entry of a proof's extra data. */
export interface ProofExtra {
  readonly key: string
  readonly value: string
}

/** A proof file: leaf `index` is in the tree of `checkpoint`, by the inclusion proof `hashes`. */
export interface TlogProof {
  readonly index: number
  /** Inclusion proof, leaf sibling first (RFC 9162 §2.1.3.1). */
  readonly hashes: readonly Uint8Array[]
  readonly checkpoint: Checkpoint
  /** Unauthenticated context such as the anchoring of the batch; absent when there is none. */
  readonly extra?: readonly ProofExtra[]
}

// ---------------------------------------------------------------------------------------------
// Checkpoint

/**
 * The checkpoint text: origin, size, root, extension lines, then an empty line.
 * @throws TypeError / RangeError for a field our parser would reject (bad origin, size, root length,
 *   extension lines).
 */
export function formatCheckpoint (checkpoint: Checkpoint): string {
  const { origin, size, rootHash, extensions = [] } = checkpoint
  if (typeof origin !== 'string' || !isValidOrigin(origin)) {
    throw new RangeError(`checkpoint origin must be 1..${MAX_ORIGIN_CHARS} characters without control characters`)
  }
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError('checkpoint size must be a safe non-negative integer')
  requireHash(rootHash, 'checkpoint rootHash')
  if (!isArray(extensions) || extensions.length > MAX_EXTENSION_LINES ||
      !extensions.every((l) => typeof l === 'string' && isValidLine(l, MAX_EXTENSION_CHARS))) {
    throw new RangeError(`checkpoint extensions must be at most ${MAX_EXTENSION_LINES} non-empty lines`)
  }
  return [origin, String(size), encodeHash(rootHash), ...extensions].join('\n') + '\n\n'
}

/**
 * Parses a checkpoint (UTF-8 bytes or text). Signature lines after the empty line are checked
 * for shape and size, then ignored: nothing here is signed or verified.
 * @throws ProtocolError `MERKLE_INVALID_PROOF` for anything but an exact, bounded checkpoint.
 * @throws TypeError when `input` is neither a string nor a Uint8Array.
 */
export function parseCheckpoint (input: string | Uint8Array): Checkpoint {
  const text = decodeText(input, MAX_CHECKPOINT_BYTES, 'checkpoint')
  return guard('checkpoint', () => parseCheckpointText(text))
}

function parseCheckpointText (text: string): Checkpoint {
  // Note text and signatures are separated by the first empty line (C2SP signed-note).
  const split = text.indexOf('\n\n')
  let body: string
  let signatures: string
  if (split === -1) {
    if (!text.endsWith('\n')) invalid('checkpoint must end with a newline')
    body = text.slice(0, -1)
    signatures = ''
  } else {
    body = text.slice(0, split)
    signatures = text.slice(split + 2)
  }

  const lines = body.split('\n')
  if (lines.length < 3) invalid('checkpoint needs origin, size and root lines')
  if (lines.length > 3 + MAX_EXTENSION_LINES) invalid(`checkpoint has more than ${MAX_EXTENSION_LINES} extension lines`)
  const [origin, sizeLine, rootLine, ...extensions] = lines as [string, string, string, ...string[]]
  if (!isValidOrigin(origin)) invalid('checkpoint origin is empty, too long or has control characters')
  const size = parseDecimal(sizeLine, 'checkpoint size')
  const rootHash = decodeHash(rootLine, 'checkpoint root')
  extensions.forEach((l, i) => {
    if (!isValidLine(l, MAX_EXTENSION_CHARS)) invalid(`checkpoint extension line ${i + 1} is empty, too long or has control characters`)
  })

  if (signatures !== '') {
    if (!signatures.endsWith('\n')) invalid('checkpoint signature lines must end with a newline')
    const sigLines = signatures.slice(0, -1).split('\n')
    if (sigLines.length > MAX_SIGNATURE_LINES) invalid(`checkpoint has more than ${MAX_SIGNATURE_LINES} signature lines`)
    sigLines.forEach((l, i) => {
      if (!isValidLine(l, MAX_CHECKPOINT_BYTES)) invalid(`checkpoint signature line ${i + 1} is empty or has control characters`)
    })
  }

  return extensions.length > 0 ? { origin, size, rootHash, extensions } : { origin, size, rootHash }
}

// ---------------------------------------------------------------------------------------------
// Proof

/**
 * The proof file text (C2SP tlog-proof@v1) with the checkpoint as {@link formatCheckpoint} writes it.
 * @throws TypeError / RangeError for a proof our parser would reject: index not below the size, a
 *   proof length that does not fit index and size, bad hashes, bad extra entries or checkpoint.
 */
export function formatProof (proof: TlogProof): string {
  const { index, hashes, checkpoint, extra } = proof
  const checkpointText = formatCheckpoint(checkpoint)
  if (!Number.isSafeInteger(index) || index < 0 || index >= checkpoint.size) {
    throw new RangeError(`proof index must be an integer below the tree size ${checkpoint.size}`)
  }
  if (!Array.isArray(hashes)) throw new TypeError('proof hashes must be an array')
  const expected = inclusionProofLength(index, checkpoint.size)
  if (hashes.length !== expected) throw new RangeError(`proof has ${hashes.length} hashes, index and size need ${expected}`)
  hashes.forEach((h, i) => requireHash(h, `proof hashes[${i}]`))

  const lines = [PROOF_HEADER]
  if (extra !== undefined && extra.length > 0) lines.push(`extra ${encodeExtra(extra)}`)
  lines.push(`index ${index}`, ...hashes.map(encodeHash))
  return lines.join('\n') + '\n\n' + checkpointText
}

/**
 * Parses a proof file (UTF-8 bytes or text). Checks its shape only (index below the size, exact
 * proof length, 32-byte hashes); {@link verifyProof} checks that it proves anything.
 * @throws ProtocolError `MERKLE_INVALID_PROOF` for anything but an exact, bounded proof file.
 * @throws TypeError when `input` is neither a string nor a Uint8Array.
 */
export function parseProof (input: string | Uint8Array): TlogProof {
  const text = decodeText(input, MAX_PROOF_BYTES, 'proof')
  return guard('proof', () => {
    const { hashLines, ...rest } = parseProofText(text, parseCheckpointText)
    return { ...rest, hashes: hashLines.map(decodeHashLine) }
  })
}

/**
 * A proof file as {@link parseProof} checks it, with its hashes left as their base64 lines (each
 * already checked to be the canonical base64 of 32 bytes): for verifiers of many proofs of one
 * tree, which decode only the hashes they have not met before (InclusionChecker.verifyEncoded).
 */
export interface EncodedTlogProof extends Omit<TlogProof, 'hashes'> {
  readonly hashLines: readonly string[]
}

/** Distinct checkpoints a ProofParser keeps: a bundle's proofs name one checkpoint per batch. */
const PARSED_CHECKPOINTS_KEPT = 64

/**
 * Parses many proof files that share a few checkpoints (every record of a batch carries the same
 * one): each distinct checkpoint text is parsed once and its result reused, the hash lines are
 * checked but not decoded. Accepts and rejects exactly what {@link parseProof} does, with the same
 * errors; the Checkpoint objects it returns are shared between proofs, so callers must not change them.
 */
export class ProofParser {
  private readonly checkpoints = new Map<string, Checkpoint>()
  /** The hash lines of the last proof parsed, every one checked canonical. */
  private lastHashLines: readonly string[] = []

  /**
   * @throws ProtocolError `MERKLE_INVALID_PROOF` as {@link parseProof}.
   * @throws TypeError when `input` is neither a string nor a Uint8Array.
   */
  parse (input: string | Uint8Array): EncodedTlogProof {
    const text = decodeText(input, MAX_PROOF_BYTES, 'proof')
    const proof = guard('proof', () => parseProofText(text, (checkpointText) => {
      const known = this.checkpoints.get(checkpointText)
      if (known !== undefined) return known
      const parsed = parseCheckpointText(checkpointText)
      if (this.checkpoints.size >= PARSED_CHECKPOINTS_KEPT) this.checkpoints.clear()
      this.checkpoints.set(checkpointText, parsed)
      return parsed
    }, this.lastHashLines))
    this.lastHashLines = proof.hashLines
    return proof
  }
}

/**
 * `checked`: lines already checked canonical, by position; a hash line equal to the one at its
 * position there is not checked again (the same text, the same answer). Consecutive leaves of a
 * tree share the upper part of their paths, so most of a proof's lines are its predecessor's.
 */
function parseProofText (text: string, parseCheckpointOf: (checkpointText: string) => Checkpoint, checked: readonly string[] = []): EncodedTlogProof {
  const split = text.indexOf('\n\n')
  if (split === -1) invalid('proof has no empty line before the checkpoint')
  const lines = text.slice(0, split).split('\n')
  const checkpointText = text.slice(split + 2)
  if (Buffer.byteLength(checkpointText, 'utf8') > MAX_CHECKPOINT_BYTES) invalid(`checkpoint is larger than ${MAX_CHECKPOINT_BYTES} bytes`)
  const checkpoint = parseCheckpointOf(checkpointText)

  if (lines[0] !== PROOF_HEADER) invalid(`proof must start with ${PROOF_HEADER}`)
  let at = 1
  let extra: ProofExtra[] | undefined
  if (lines[at]?.startsWith('extra ') === true) {
    extra = decodeExtra((lines[at] as string).slice('extra '.length))
    at++
  }
  const indexLine = lines[at]
  if (indexLine === undefined || !indexLine.startsWith('index ')) invalid('proof has no index line')
  const index = parseDecimal(indexLine.slice('index '.length), 'proof index')
  at++

  const hashLines = lines.slice(at)
  if (hashLines.length > MAX_PROOF_HASHES) invalid(`proof has more than ${MAX_PROOF_HASHES} hashes`)
  for (let i = 0; i < hashLines.length; i++) {
    const line = hashLines[i] as string
    if (line !== checked[i]) checkHashLine(line, `proof hash ${i + 1}`)
  }

  if (index >= checkpoint.size) invalid(`proof index ${index} is not below the tree size ${checkpoint.size}`)
  const expected = inclusionProofLength(index, checkpoint.size)
  if (hashLines.length !== expected) invalid(`proof has ${hashLines.length} hashes, index and size need ${expected}`)

  return extra !== undefined ? { index, hashLines, checkpoint, extra } : { index, hashLines, checkpoint }
}

/**
 * Checks that `leafHash` is the leaf the proof names, in the tree of its checkpoint
 * (RFC 9162 §2.1.3.2). Says nothing about who issued the checkpoint or whether it is anchored.
 * @throws ProtocolError `MERKLE_INVALID_PROOF` / `MERKLE_ROOT_MISMATCH` as {@link verifyInclusion}.
 */
export function verifyProof (proof: TlogProof, leafHash: Uint8Array): void {
  verifyInclusion(leafHash, proof.index, proof.checkpoint.size, proof.hashes, proof.checkpoint.rootHash)
}

// ---------------------------------------------------------------------------------------------
// Extra data

function encodeExtra (extra: readonly ProofExtra[]): string {
  if (!Array.isArray(extra) || extra.length > MAX_EXTRA_ENTRIES) {
    throw new RangeError(`proof extra must be an array of at most ${MAX_EXTRA_ENTRIES} entries`)
  }
  const seen = new Set<string>()
  let text = ''
  for (const { key, value } of extra) {
    if (typeof key !== 'string' || !EXTRA_KEY.test(key)) throw new RangeError(`proof extra key ${JSON.stringify(key)} is not valid`)
    if (typeof value !== 'string' || value.length > MAX_EXTRA_VALUE_CHARS || !EXTRA_VALUE.test(value)) {
      throw new RangeError(`proof extra value of ${key} must be 1..${MAX_EXTRA_VALUE_CHARS} printable ASCII characters without spaces`)
    }
    if (seen.has(key)) throw new RangeError(`proof extra key ${key} given twice`)
    seen.add(key)
    text += `${key} ${value}\n`
  }
  return Buffer.from(text, 'utf8').toString('base64')
}

/**
 * Where decodeExtra decodes a proof's extra block (grown when needed, never shrunk): a
 * Buffer.from per proof took a slice of node's 8 KiB pool and a new pool every ~15 proofs, about
 * 2 µs per proof in a verify worker; the block is made into text at once, so one buffer serves.
 */
let extraScratch = Buffer.allocUnsafeSlow(4096)

function decodeExtra (encoded: string): ProofExtra[] {
  // Strict RFC 4648 §4: node's base64 decoder ignores bad characters and non-zero padding bits, so
  // the input must be what encoding the decoded bytes gives back — checked on the text (digits,
  // padding, the padding bits zero), which accepts exactly that, without encoding again.
  if (!isCanonicalBase64(encoded)) invalid('proof extra is not canonical base64')
  const most = Math.ceil(encoded.length / 4) * 3
  if (extraScratch.byteLength < most) extraScratch = Buffer.allocUnsafeSlow(most)
  const bytes = extraScratch.subarray(0, extraScratch.write(encoded, 0, 'base64'))
  if (bytes.byteLength === 0) invalid('proof extra is empty')
  // ASCII (the common case) is its own UTF-8 and latin1 text: no TextDecoder call, most of a short text's cost.
  const text = isAscii(bytes) ? bytes.toString('latin1') : decodeUtf8(bytes, 'proof extra')
  if (!text.endsWith('\n')) invalid('proof extra must end with a newline')
  const lines = text.slice(0, -1).split('\n')
  if (lines.length > MAX_EXTRA_ENTRIES) invalid(`proof extra has more than ${MAX_EXTRA_ENTRIES} entries`)
  const seen = new Set<string>()
  return lines.map((line, i) => {
    const space = line.indexOf(' ')
    const key = space === -1 ? line : line.slice(0, space)
    const value = space === -1 ? '' : line.slice(space + 1)
    if (!EXTRA_KEY.test(key)) invalid(`proof extra line ${i + 1} has no valid key`)
    if (value.length > MAX_EXTRA_VALUE_CHARS || !EXTRA_VALUE.test(value)) invalid(`proof extra value of ${key} is not valid`)
    if (seen.has(key)) invalid(`proof extra key ${key} appears twice`)
    seen.add(key)
    return { key, value }
  })
}

// ---------------------------------------------------------------------------------------------
// Helpers

function invalid (message: string): never {
  throw new ProtocolError('MERKLE_INVALID_PROOF', message)
}

// Whatever slips past the checks above (a bug) still leaves as the documented error type.
function guard<T> (what: string, parse: () => T): T {
  try {
    return parse()
  } catch (e) {
    if (e instanceof ProtocolError) throw e
    throw new ProtocolError('MERKLE_INVALID_PROOF', `malformed ${what}`, { cause: e })
  }
}

function decodeText (input: unknown, maxBytes: number, what: string): string {
  if (typeof input === 'string') {
    // UTF-16 length bounds the work before measuring the UTF-8 length.
    if (input.length > maxBytes || Buffer.byteLength(input, 'utf8') > maxBytes) invalid(`${what} is larger than ${maxBytes} bytes`)
    // A lone surrogate would not survive a round trip through UTF-8.
    if (LONE_SURROGATE.test(input)) invalid(`${what} is not well-formed Unicode`)
    return input
  }
  if (input instanceof Uint8Array) {
    if (input.byteLength > maxBytes) invalid(`${what} is larger than ${maxBytes} bytes`)
    return decodeUtf8(input, what)
  }
  throw new TypeError(`${what} must be a string or a Uint8Array`)
}

// Stateless between calls (no streaming): one for all.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

function decodeUtf8 (bytes: Uint8Array, what: string): string {
  try {
    return UTF8.decode(bytes)
  } catch (cause) {
    throw new ProtocolError('MERKLE_INVALID_PROOF', `${what} is not valid UTF-8`, { cause })
  }
}

function parseDecimal (text: string, what: string): number {
  if (!DECIMAL.test(text)) invalid(`${what} must be a decimal without leading zeroes`)
  const n = Number(text)
  if (!Number.isSafeInteger(n)) invalid(`${what} is above 2^53 - 1`)
  return n
}

function decodeHash (line: string, what: string): Uint8Array {
  checkHashLine(line, what)
  return decodeHashLine(line)
}

// Value of each base64 digit by character code, -1 for other characters (a table: this check runs
// for every hash line of every proof a bundle verification reads).
const BASE64_VALUE = new Int8Array(128).fill(-1)
Array.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/').forEach((c, v) => { BASE64_VALUE[c.charCodeAt(0)] = v })
const HASH_LINE_CHARS = 44
// 42 digits, a last digit whose 2 low bits (padding) are zero, and '=': the canonical base64 of
// 32 bytes, the same set checkHashLine's loop accepts.
const CANONICAL_HASH_LINE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/

/**
 * Throws unless `line` is the canonical base64 of 32 bytes: 43 digits and `=`, the last digit
 * carrying 2 bits of padding that must be zero (RFC 4648 §3.5) — exactly the lines for which
 * decoding and encoding again gives the line back, without doing either.
 */
function checkHashLine (line: string, what: string): void {
  // The common case in one native regex test; the loop below only names what is wrong.
  if (CANONICAL_HASH_LINE.test(line)) return
  let ok = line.length === HASH_LINE_CHARS && line.charCodeAt(HASH_LINE_CHARS - 1) === 0x3d
  for (let i = 0; ok && i < HASH_LINE_CHARS - 1; i++) ok = (BASE64_VALUE[line.charCodeAt(i) & 0x7f] as number) >= 0 && line.charCodeAt(i) < 0x80
  if (!ok) invalid(`${what} must be the base64 of ${HASH_BYTES} bytes`)
  if (((BASE64_VALUE[line.charCodeAt(HASH_LINE_CHARS - 2)] as number) & 3) !== 0) invalid(`${what} is not canonical base64`)
}

/** The 32 bytes of a line {@link checkHashLine} accepted. */
export function decodeHashLine (line: string): Uint8Array {
  // A copy: Buffer.from hands out slices of a shared pool, which a transfer would detach.
  return new Uint8Array(Buffer.from(line, 'base64'))
}

// Any character that is neither a digit nor '='. A search for one bad character, not an anchored
// /^[A-Za-z0-9+/]*={0,2}$/: V8 backtracks that pattern's greedy loop character by character,
// ~3–4× the time on a record's text, and this runs twice per record of a bundle (bundle.ts).
const NOT_BASE64_CHAR = /[^A-Za-z0-9+/=]/

/**
 * True when `text` is base64 digits followed by at most two '=' — what /^[A-Za-z0-9+/]*={0,2}$/
 * matches (test/protocol/checkpoint.test.ts compares the two), without backtracking.
 */
export function isBase64Text (text: string): boolean {
  if (NOT_BASE64_CHAR.test(text)) return false
  const n = text.length
  const eq = text.indexOf('=')
  return eq === -1 || eq === n - 1 || (eq === n - 2 && text.charCodeAt(n - 1) === 0x3d)
}

/** True when `text` is the one standard base64 encoding (RFC 4648 §4, padded) of some bytes. */
export function isCanonicalBase64 (text: string): boolean {
  return text.length % 4 === 0 && isBase64Text(text) && hasZeroPaddingBits(text)
}

/**
 * For a `text` that {@link isBase64Text} accepted and whose length is a multiple of 4: true when
 * the bits its padding stands for are zero, which makes it canonical (RFC 4648 §3.5).
 */
export function hasZeroPaddingBits (text: string): boolean {
  const n = text.length
  const pad = n > 0 && text.charCodeAt(n - 1) === 0x3d ? (text.charCodeAt(n - 2) === 0x3d ? 2 : 1) : 0
  if (pad === 0) return true
  const last = BASE64_VALUE[text.charCodeAt(n - pad - 1)] as number
  return (last & (pad === 2 ? 0x0f : 0x03)) === 0
}

function encodeHash (hash: Uint8Array): string {
  return Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength).toString('base64')
}

function requireHash (value: unknown, what: string): void {
  if (!(value instanceof Uint8Array)) throw new TypeError(`${what} must be a Uint8Array`)
  if (value.byteLength !== HASH_BYTES) throw new RangeError(`${what} must be ${HASH_BYTES} bytes`)
}

function isValidLine (line: string, maxChars: number): boolean {
  return line.length > 0 && line.length <= maxChars && !CONTROL.test(line)
}

function isValidOrigin (origin: string): boolean {
  return isValidLine(origin, MAX_ORIGIN_CHARS)
}
