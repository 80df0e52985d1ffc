/**
 * C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys, byte for byte as
 * golang.org/x/mod/sumdb/note writes and reads them, and the checkpoint of a sealed batch signed
 * as such a note by the gateway's log key, so that Go's note.Open and the transparency-dev tools
 * check our checkpoints with no code of ours. Pure: no I/O; parsers are bounded and throw
 * ProtocolError only.
 *
 *     <note text, each line ending in U+000A>
 *     (empty line)
 *     — <key name> <base64(key ID (4 bytes, big-endian) ‖ Ed25519 signature of the note text)>
 *
 *     key ID       = SHA-256(key name ‖ 0x0A ‖ 0x01 ‖ 32-byte public key)[:4]
 *     verifier key = <key name>+<key ID, 8 lower-case hex digits>+<base64(0x01 ‖ public key)>
 */
import { ProtocolError } from './errors.js'
import { verifySignature, PUBLIC_KEY_BYTES, SIGNATURE_BYTES, type Signer, type VerifierBackend } from './ed25519.js'
import { sha256 } from './hash.js'
import { formatCheckpoint, parseCheckpoint, MAX_CHECKPOINT_BYTES, type Checkpoint } from './checkpoint.js'
import { isArray } from './guards.js'

/** Signature type byte of Ed25519 in key IDs and verifier keys (C2SP signed-note §Signature types). */
export const NOTE_ED25519_TYPE = 0x01
/** Largest signed note accepted, in bytes: a checkpoint with room for many cosignatures. */
export const MAX_NOTE_BYTES = MAX_CHECKPOINT_BYTES
/** Most signature lines accepted; C2SP asks for at least 16, Go's note.Open stops at 100. */
export const MAX_NOTE_SIGNATURES = 100
/** Longest key name accepted, in UTF-16 code units (the checkpoint origin's limit). */
export const MAX_NOTE_KEY_NAME_CHARS = 256

// "— " (U+2014 EM DASH, U+0020) opens every signature line.
const SIG_PREFIX = Buffer.from('\u2014 ', 'utf8')
const NEWLINE = 0x0a
const BLANK_LINE = Buffer.from('\n\n', 'latin1')
// Go's unicode.IsSpace: the Unicode White_Space property. JavaScript's \s also matches U+FEFF,
// which Go accepts in a name, so the class is spelled out.
const UNICODE_SPACE = /[\t\n\v\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]/
// C2SP: no ASCII control characters other than newline anywhere in a signed note.
 
const CONTROL = /[\x00-\x09\x0b-\x1f]/
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/
const KEY_ID_HEX = /^[0-9a-f]{8}$/
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

/** An Ed25519 key a verifier trusts, under the name it signs with. */
export interface NoteVerifierKey {
  /** Key name, e.g. `edge-provenance/gw-1`. */
  readonly name: string
  /** Key ID: the first 4 bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ publicKey), as a uint32. */
  readonly keyId: number
  /** Raw 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array
}

/** One signature line of a note. */
export interface NoteSignature {
  readonly name: string
  readonly keyId: number
  /** The signature bytes after the 4-byte key ID. */
  readonly signature: Uint8Array
}

/** A note whose signatures were checked against the known keys. */
export interface OpenedNote {
  /** The signed text, ending in U+000A (the empty line and signatures excluded). */
  readonly text: string
  /** Signatures by known keys, each verified (at least one). */
  readonly verified: readonly NoteSignature[]
  /** Signatures by keys not among the known ones: ignored, as C2SP requires. */
  readonly unknown: readonly NoteSignature[]
}

/** A checkpoint whose note signature by the log key verified. */
export interface SignedCheckpoint {
  readonly checkpoint: Checkpoint
  /** The checkpoint bytes as §7.4 defines them (note text and empty line): what metadataHash covers. */
  readonly checkpointText: string
  readonly verified: readonly NoteSignature[]
  readonly unknown: readonly NoteSignature[]
}

/**
 * True for a key name we sign with or trust: a C2SP key name (non-empty well-formed text, no
 * Unicode space, no `+`, no control character) of at most {@link MAX_NOTE_KEY_NAME_CHARS}.
 */
export function isValidKeyName (name: unknown): name is string {
  return typeof name === 'string' && name.length <= MAX_NOTE_KEY_NAME_CHARS && isNoteName(name)
}

// The C2SP rule alone: names in signature lines of keys we do not know may be of any length (the
// note's size bounds them), since C2SP says to ignore such signatures, not to refuse the note.
function isNoteName (name: string): boolean {
  return name.length > 0 && !UNICODE_SPACE.test(name) && !name.includes('+') && !CONTROL.test(name) && !LONE_SURROGATE.test(name)
}

/**
 * The key ID of an Ed25519 key under `name` (C2SP signed-note §Ed25519 signatures).
 * @throws RangeError for an invalid name or a public key that is not 32 bytes.
 */
export function noteKeyId (name: string, publicKey: Uint8Array): number {
  requireName(name)
  requirePublicKey(publicKey)
  return keyIdOf(name, publicKey)
}

function keyIdOf (name: string, publicKey: Uint8Array): number {
  const digest = sha256(Buffer.from(name + '\n', 'utf8'), Uint8Array.of(NOTE_ED25519_TYPE), publicKey)
  return Buffer.from(digest.buffer, digest.byteOffset, 4).readUInt32BE(0)
}

/**
 * The verifier key string Go's note.NewVerifier reads: `<name>+<hex key ID>+<base64(0x01 ‖ key)>`.
 * @throws RangeError for an invalid name or a public key that is not 32 bytes.
 */
export function formatVerifierKey (name: string, publicKey: Uint8Array): string {
  const keyId = noteKeyId(name, publicKey)
  const encoded = Buffer.concat([Uint8Array.of(NOTE_ED25519_TYPE), publicKey]).toString('base64')
  return `${name}+${keyId.toString(16).padStart(8, '0')}+${encoded}`
}

/**
 * Parses a verifier key string, as note.NewVerifier does but strictly: lower-case hex key ID,
 * canonical base64, Ed25519 type byte, 32-byte key, and a key ID that matches name and key.
 * @throws ProtocolError `NOTE_KEY_INVALID` for anything else.
 */
export function parseVerifierKey (text: unknown): NoteVerifierKey {
  if (typeof text !== 'string' || text.length > MAX_NOTE_KEY_NAME_CHARS + 64) keyInvalid('verifier key must be a string of bounded length')
  // Split at the first two `+` only: the base64 key may contain `+` itself.
  const a = text.indexOf('+')
  const b = a === -1 ? -1 : text.indexOf('+', a + 1)
  if (b === -1) keyInvalid('verifier key must be <name>+<key ID>+<key>')
  const name = text.slice(0, a)
  const idHex = text.slice(a + 1, b)
  const encoded = text.slice(b + 1)
  if (!isValidKeyName(name)) keyInvalid('verifier key name is empty, too long or has spaces, `+` or control characters')
  if (!KEY_ID_HEX.test(idHex)) keyInvalid('verifier key ID must be 8 lower-case hex digits')
  const key = Buffer.from(encoded, 'base64')
  if (key.toString('base64') !== encoded) keyInvalid('verifier key is not canonical base64')
  if (key[0] !== NOTE_ED25519_TYPE) keyInvalid(`verifier key type ${String(key[0])} is not Ed25519 (1)`)
  if (key.byteLength !== 1 + PUBLIC_KEY_BYTES) keyInvalid(`verifier key must hold ${PUBLIC_KEY_BYTES} key bytes`)
  const publicKey = new Uint8Array(key.subarray(1))
  const keyId = parseInt(idHex, 16)
  if (keyId !== keyIdOf(name, publicKey)) keyInvalid('verifier key ID does not match its name and key')
  return { name, keyId, publicKey }
}

/**
 * Signs `text` as a note: the text, an empty line, one signature line by `signer` under `keyName`.
 * The signature covers the UTF-8 bytes of `text`, final newline included.
 * @throws RangeError when `text` is not note text (empty, no final newline, control characters,
 *   lone surrogates, too large) or `keyName` is not a key name.
 */
export function signNote (text: string, keyName: string, signer: Signer): string {
  requireName(keyName)
  if (typeof text !== 'string' || text.length === 0 || !text.endsWith('\n')) throw new RangeError('note text must be non-empty and end with a newline')
  if (CONTROL.test(text) || LONE_SURROGATE.test(text)) throw new RangeError('note text must be well-formed and free of control characters other than newline')
  const message = Buffer.from(text, 'utf8')
  if (message.byteLength + 1 > MAX_NOTE_BYTES) throw new RangeError(`note text exceeds ${MAX_NOTE_BYTES} bytes`)
  requirePublicKey(signer.publicKey)
  const signature = signer.sign(message)
  if (signature.byteLength !== SIGNATURE_BYTES) throw new RangeError(`signer returned ${signature.byteLength} bytes, not an Ed25519 signature`)
  const keyId = Buffer.alloc(4)
  keyId.writeUInt32BE(keyIdOf(keyName, signer.publicKey))
  return `${text}\n\u2014 ${keyName} ${Buffer.concat([keyId, signature]).toString('base64')}\n`
}

/**
 * Opens a signed note (UTF-8 bytes or text) as C2SP and note.Open do: the text ends at the last
 * empty line; a signature whose name and key ID both match a known key must verify, others are
 * ignored; at least one known key must have signed.
 * @throws ProtocolError `NOTE_MALFORMED` (syntax, size, encoding), `SIGNATURE_INVALID` (a known
 *   key's signature fails), `NOTE_UNVERIFIED` (no known key signed).
 * @throws RangeError when two known keys share name and key ID; TypeError for a bad `input` type.
 */
export function openNote (input: string | Uint8Array, keys: readonly NoteVerifierKey[], backend: VerifierBackend = 'node'): OpenedNote {
  const known = indexKeys(keys)
  const bytes = noteBytes(input)
  let decoded: string
  try {
    decoded = utf8.decode(bytes)
  } catch (cause) {
    throw new ProtocolError('NOTE_MALFORMED', 'note is not valid UTF-8', { cause })
  }
  if (CONTROL.test(decoded)) malformed('note has control characters other than newline')

  // C2SP: the text is separated from the signatures by the last empty line.
  const split = bytes.lastIndexOf(BLANK_LINE)
  if (split === -1) malformed('note has no empty line before its signatures')
  const message = bytes.subarray(0, split + 1)
  const sigBlock = bytes.subarray(split + 2)
  if (sigBlock.byteLength === 0 || sigBlock[sigBlock.byteLength - 1] !== NEWLINE) malformed('note signatures must be non-empty and end with a newline')

  const verified: NoteSignature[] = []
  const unknown: NoteSignature[] = []
  let at = 0
  let count = 0
  while (at < sigBlock.byteLength) {
    const end = sigBlock.indexOf(NEWLINE, at)
    const line = sigBlock.subarray(at, end)
    at = end + 1
    if (++count > MAX_NOTE_SIGNATURES) malformed(`note has more than ${MAX_NOTE_SIGNATURES} signatures`)
    const sig = parseSignatureLine(line, count)
    const key = known.get(mapKey(sig.name, sig.keyId))
    if (key === undefined) {
      unknown.push(sig)
      continue
    }
    if (!verifySignature(sig.signature, message, key.publicKey, backend)) {
      throw new ProtocolError('SIGNATURE_INVALID', `note signature ${count} by ${sig.name} does not verify`)
    }
    verified.push(sig)
  }
  if (verified.length === 0) throw new ProtocolError('NOTE_UNVERIFIED', 'no known key signed the note')
  // The text ends at a newline, so it is a whole UTF-8 prefix of the note.
  return { text: utf8.decode(message), verified, unknown }
}

/**
 * The checkpoint of §7.4 signed as a note by the log key: exactly the checkpoint bytes followed by
 * one signature line, so metadataHash (SHA-256 of the checkpoint bytes) is unchanged by signing.
 * @throws RangeError when the checkpoint is invalid or its origin is not `keyName` or under
 *   `keyName/` (the log signs only its own checkpoints).
 */
export function signCheckpoint (checkpoint: Checkpoint, keyName: string, signer: Signer): string {
  requireName(keyName)
  if (!originBelongsTo(checkpoint.origin, keyName)) {
    throw new RangeError(`checkpoint origin ${JSON.stringify(checkpoint.origin)} is not ${keyName} or under ${keyName}/`)
  }
  const text = formatCheckpoint(checkpoint)
  // formatCheckpoint ends in the empty line; the note text is everything before it.
  return signNote(text.slice(0, -1), keyName, signer)
}

/**
 * Opens a signed checkpoint: {@link openNote}, then the strict checkpoint parser on its text, then
 * checks that a verified signature is the log's own (its key name is the origin or a prefix of it
 * followed by `/`, as `<checkpointOrigin>/batch/<id>` under `<checkpointOrigin>`).
 * @throws ProtocolError as {@link openNote}; `MERKLE_INVALID_PROOF` for a malformed checkpoint
 *   text; `NOTE_UNVERIFIED` when no verified signature is by a key named for the origin.
 */
export function openCheckpoint (input: string | Uint8Array, keys: readonly NoteVerifierKey[], backend: VerifierBackend = 'node'): SignedCheckpoint {
  const opened = openNote(input, keys, backend)
  // The checkpoint body has no empty line: one inside the signed text would let the checkpoint
  // parser read signed lines as (ignored) signatures.
  if (opened.text.includes('\n\n')) throw new ProtocolError('MERKLE_INVALID_PROOF', 'checkpoint text has an empty line')
  const checkpointText = opened.text + '\n'
  const checkpoint = parseCheckpoint(checkpointText)
  if (!opened.verified.some(s => originBelongsTo(checkpoint.origin, s.name))) {
    throw new ProtocolError('NOTE_UNVERIFIED', `no verified signature is by the log of origin ${checkpoint.origin}`)
  }
  return { checkpoint, checkpointText, verified: opened.verified, unknown: opened.unknown }
}

// ---------------------------------------------------------------------------------------------

function parseSignatureLine (line: Uint8Array, n: number): NoteSignature {
  if (line.byteLength <= SIG_PREFIX.byteLength || !SIG_PREFIX.equals(line.subarray(0, SIG_PREFIX.byteLength))) {
    malformed(`note signature line ${n} does not start with "\u2014 "`)
  }
  const rest = Buffer.from(line.buffer, line.byteOffset + SIG_PREFIX.byteLength, line.byteLength - SIG_PREFIX.byteLength).toString('utf8')
  const space = rest.indexOf(' ')
  if (space === -1) malformed(`note signature line ${n} has no signature`)
  const name = rest.slice(0, space)
  const encoded = rest.slice(space + 1)
  if (!isNoteName(name)) malformed(`note signature line ${n} has an invalid key name`)
  const raw = Buffer.from(encoded, 'base64')
  if (encoded.length === 0 || raw.toString('base64') !== encoded) malformed(`note signature line ${n} is not canonical base64`)
  if (raw.byteLength < 5) malformed(`note signature line ${n} is shorter than a key ID and a signature`)
  return { name, keyId: raw.readUInt32BE(0), signature: new Uint8Array(raw.subarray(4)) }
}

function noteBytes (input: unknown): Buffer {
  if (typeof input === 'string') {
    if (input.length > MAX_NOTE_BYTES) malformed(`note is larger than ${MAX_NOTE_BYTES} bytes`)
    if (LONE_SURROGATE.test(input)) malformed('note is not well-formed Unicode')
    input = Buffer.from(input, 'utf8')
  } else if (!(input instanceof Uint8Array)) {
    throw new TypeError('note must be a string or a Uint8Array')
  }
  const bytes = input as Uint8Array
  if (bytes.byteLength > MAX_NOTE_BYTES) malformed(`note is larger than ${MAX_NOTE_BYTES} bytes`)
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

const mapKey = (name: string, keyId: number): string => `${keyId.toString(16)} ${name}`

function indexKeys (keys: readonly NoteVerifierKey[]): Map<string, NoteVerifierKey> {
  if (!isArray(keys)) throw new TypeError('keys must be an array of NoteVerifierKey')
  const known = new Map<string, NoteVerifierKey>()
  for (const k of keys) {
    requireName(k.name)
    requirePublicKey(k.publicKey)
    if (k.keyId !== keyIdOf(k.name, k.publicKey)) throw new RangeError(`key ID of ${k.name} does not match its name and key`)
    const id = mapKey(k.name, k.keyId)
    if (known.has(id)) throw new RangeError(`two known keys share the name ${k.name} and key ID`)
    known.set(id, k)
  }
  return known
}

function originBelongsTo (origin: string, keyName: string): boolean {
  return origin === keyName || origin.startsWith(keyName + '/')
}

function requireName (name: unknown): void {
  if (!isValidKeyName(name)) throw new RangeError('key name must be 1..256 characters without spaces, `+` or control characters')
}

function requirePublicKey (key: unknown): void {
  if (!(key instanceof Uint8Array) || key.byteLength !== PUBLIC_KEY_BYTES) throw new RangeError(`public key must be ${PUBLIC_KEY_BYTES} bytes`)
}

function malformed (message: string): never {
  throw new ProtocolError('NOTE_MALFORMED', message)
}

function keyInvalid (message: string): never {
  throw new ProtocolError('NOTE_KEY_INVALID', message)
}
