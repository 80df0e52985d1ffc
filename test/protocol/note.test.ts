/**
 * C2SP signed notes and signed checkpoints (protocol/note.ts, docs/PROTOCOL.md §7.8): the example
 * of golang.org/x/mod/sumdb/note's documentation reproduced byte for byte, round trips on both
 * Ed25519 backends, and each way an outsider could forge, splice or malform a note.
 */
import t from 'tap'
import fc from 'fast-check'
import {
  createSigner, formatCheckpoint, formatVerifierKey, noteKeyId, openCheckpoint, openNote, parseVerifierKey, sha256,
  signCheckpoint, signNote, toHex, ProtocolError, MAX_NOTE_BYTES, MAX_NOTE_SIGNATURES, type Checkpoint, type NoteVerifierKey
} from '../../protocol/index.js'

// The example in the package documentation of golang.org/x/mod/sumdb/note (note.go, "Example").
const GO_SKEY = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz'
const GO_VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW'
const GO_TEXT = 'If you think cryptography is the answer to your problem,\n' +
  "then you don't know what your problem is.\n"
const GO_NOTE = GO_TEXT + '\n' +
  '\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n'

const LOG = 'edge-provenance/gw-1'
const seed = (first: number): Uint8Array => new Uint8Array(32).map((_, i) => first + i)
const log = createSigner(seed(0x61))
const other = createSigner(seed(0x81))
const logKey: NoteVerifierKey = parseVerifierKey(formatVerifierKey(LOG, log.publicKey))
const checkpoint: Checkpoint = { origin: `${LOG}/batch/7`, size: 6, rootHash: sha256(Uint8Array.of(7)) }

function code (fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (e) {
    if (e instanceof ProtocolError) return e.code
    throw e
  }
  return undefined
}

t.test('behavior: the Go package example: its keys parse, its note opens, and we sign the same bytes', async t => {
  const key = parseVerifierKey(GO_VKEY)
  t.equal(key.name, 'PeterNeumann')
  t.equal(key.keyId, 0xc74f20a3)
  const opened = openNote(GO_NOTE, [key])
  t.equal(opened.text, GO_TEXT)
  t.same(opened.verified.map(s => [s.name, s.keyId]), [['PeterNeumann', 0xc74f20a3]])
  t.same(openNote(Buffer.from(GO_NOTE, 'utf8'), [key], 'noble').text, GO_TEXT, 'noble verifies it too')

  const skey = Buffer.from(GO_SKEY.split('+').slice(4).join('+'), 'base64')
  t.equal(skey[0], 1, 'Ed25519 type byte')
  const signer = createSigner(new Uint8Array(skey.subarray(1)))
  t.equal(formatVerifierKey('PeterNeumann', signer.publicKey), GO_VKEY, 'our verifier key string is Go\'s')
  t.equal(noteKeyId('PeterNeumann', signer.publicKey), 0xc74f20a3)
  t.equal(signNote(GO_TEXT, 'PeterNeumann', signer), GO_NOTE, 'Ed25519 is deterministic: the very same note')
})

t.test('behavior: a signed checkpoint is the checkpoint bytes plus one signature line, and opens on both backends', async t => {
  const note = signCheckpoint(checkpoint, LOG, log)
  const text = formatCheckpoint(checkpoint)
  t.ok(note.startsWith(text), 'metadataHash = SHA-256(checkpoint bytes) is unchanged by signing')
  t.match(note.slice(text.length), /^\u2014 edge-provenance\/gw-1 [A-Za-z0-9+/]{91}=\n$/)
  for (const backend of ['node', 'noble'] as const) {
    const opened = openCheckpoint(note, [logKey], backend)
    t.same(opened.checkpoint, checkpoint)
    t.equal(opened.checkpointText, text)
  }
  const raw = Buffer.from(note.slice(text.length + '\u2014 edge-provenance/gw-1 '.length), 'base64')
  t.equal(raw.readUInt32BE(0), logKey.keyId, 'the signature starts with the big-endian key ID')
  t.equal(toHex(raw.subarray(0, 4)), toHex(sha256(Buffer.from(`${LOG}\n`), Uint8Array.of(1), log.publicKey).subarray(0, 4)))
})

t.test('behavior: signatures by unknown keys are ignored, as C2SP requires (witness cosignatures)', async t => {
  const note = signCheckpoint(checkpoint, LOG, log)
  const cosigned = note + signNote(formatCheckpoint(checkpoint).slice(0, -1), 'witness.example/w1', other).split('\n\n')[1]
  const opened = openCheckpoint(cosigned, [logKey])
  t.equal(opened.verified.length, 1)
  t.same(opened.unknown.map(s => s.name), ['witness.example/w1'])
  const longName = 'w'.repeat(1000)
  const long = note + signNote(formatCheckpoint(checkpoint).slice(0, -1), 'w', other).split('\n\n')[1]?.replace('\u2014 w ', `\u2014 ${longName} `)
  t.same(openCheckpoint(long, [logKey]).unknown.map(s => s.name), [longName], 'an unknown key\'s name of any length is ignored, not refused')
})

t.test('error: a tampered checkpoint (size, root or origin) fails the log signature', async t => {
  const note = signCheckpoint(checkpoint, LOG, log)
  t.equal(code(() => openCheckpoint(note.replace('\n6\n', '\n7\n'), [logKey])), 'SIGNATURE_INVALID')
  t.equal(code(() => openCheckpoint(note.replace('/batch/7', '/batch/8'), [logKey])), 'SIGNATURE_INVALID')
  const root = Buffer.from(checkpoint.rootHash).toString('base64')
  const other = Buffer.from(sha256(Uint8Array.of(8))).toString('base64')
  t.equal(code(() => openCheckpoint(note.replace(root, other), [logKey])), 'SIGNATURE_INVALID')
})

t.test('error: a signature spliced from another batch\'s checkpoint does not verify', async t => {
  const a = signCheckpoint(checkpoint, LOG, log)
  const b = signCheckpoint({ ...checkpoint, origin: `${LOG}/batch/8` }, LOG, log)
  const spliced = a.split('\n\n')[0] + '\n\n' + (b.split('\n\n')[1] as string)
  t.equal(code(() => openCheckpoint(spliced, [logKey])), 'SIGNATURE_INVALID')
})

t.test('error: a forged line under the log\'s name and key ID rejects the whole note, even beside a valid one', async t => {
  const note = signCheckpoint(checkpoint, LOG, log)
  const id = Buffer.alloc(4)
  id.writeUInt32BE(logKey.keyId)
  const forged = `\u2014 ${LOG} ${Buffer.concat([id, Buffer.alloc(64, 1)]).toString('base64')}\n`
  t.equal(code(() => openCheckpoint(note + forged, [logKey])), 'SIGNATURE_INVALID')
  const short = `\u2014 ${LOG} ${Buffer.concat([id, Buffer.alloc(63, 1)]).toString('base64')}\n`
  t.equal(code(() => openCheckpoint(note.split('\n\n')[0] + '\n\n' + short, [logKey])), 'SIGNATURE_INVALID', 'a 63-byte signature is not a signature')
})

t.test('error: a note signed only by keys the verifier does not know is unverified', async t => {
  const byOther = signCheckpoint(checkpoint, LOG, other)
  t.equal(code(() => openCheckpoint(byOther, [logKey])), 'NOTE_UNVERIFIED', 'same name, other key ID: ignored, so unverified')
  t.equal(code(() => openNote(GO_NOTE, [logKey])), 'NOTE_UNVERIFIED')
})

t.test('error: a key not named for the origin cannot vouch for a checkpoint, even when the verifier trusts it', async t => {
  const otherKey = parseVerifierKey(formatVerifierKey('edge-provenance/gw-2', other.publicKey))
  const text = formatCheckpoint(checkpoint).slice(0, -1)
  const byGw2 = signNote(text, 'edge-provenance/gw-2', other)
  t.equal(code(() => openCheckpoint(byGw2, [logKey, otherKey])), 'NOTE_UNVERIFIED')
  t.throws(() => signCheckpoint(checkpoint, 'edge-provenance/gw-2', other), RangeError)
  t.throws(() => signCheckpoint(checkpoint, 'edge-provenance/gw', log), RangeError, 'a name prefix must end at a slash')
})

t.test('error: signed text with an empty line inside is not a checkpoint', async t => {
  const text = formatCheckpoint(checkpoint) + 'extension\n'
  const note = signNote(text, LOG, log)
  t.equal(code(() => openNote(note, [logKey])), undefined, 'a valid note')
  t.equal(code(() => openCheckpoint(note, [logKey])), 'MERKLE_INVALID_PROOF')
})

t.test('error: malformed notes are NOTE_MALFORMED, never another error', async t => {
  const note = signCheckpoint(checkpoint, LOG, log)
  const [body, sig] = note.split('\n\n') as [string, string]
  const cases: Array<[string, string | Uint8Array]> = [
    ['no empty line', note.replace('\n\n', '\n')],
    ['no signature lines', body + '\n\n'],
    ['hyphen instead of em dash', body + '\n\n' + sig.replace('\u2014', '-')],
    ['en dash instead of em dash', body + '\n\n' + sig.replace('\u2014', '\u2013')],
    ['no final newline', note.slice(0, -1)],
    ['carriage return', note.replace('\n6\n', '\r\n6\n')],
    ['tab in text', note.replace('\n6\n', '\n6\t\n')],
    ['NUL in text', note.replace('\n6\n', '\n6\0\n')],
    ['invalid UTF-8', Buffer.concat([Buffer.from([0xff]), Buffer.from(note)])],
    ['lone surrogate', '\uD800' + note],
    ['non-canonical base64', body + '\n\n' + sig.replace(/=\n$/, '\n')],
    ['base64 with a space', body + '\n\n' + sig.replace(/(.{10})=\n$/, '$1 =\n')],
    ['name with a plus', body + '\n\n' + sig.replace(LOG, 'a+b')],
    ['no-break space in name', body + '\n\n' + sig.replace(LOG, 'a\u00a0b')],
    ['signature of 4 bytes', `${body}\n\n\u2014 ${LOG} AAAAAA==\n`],
    ['empty signature line', body + '\n\n' + sig + '\n'],
    ['too many signatures', body + '\n\n' + sig.repeat(MAX_NOTE_SIGNATURES + 1)],
    ['too large', 'x'.repeat(MAX_NOTE_BYTES) + '\n\n' + sig]
  ]
  for (const [what, input] of cases) t.equal(code(() => openNote(input, [logKey])), 'NOTE_MALFORMED', what)
})

t.test('error: verifier keys that are not exactly Go\'s format are NOTE_KEY_INVALID', async t => {
  const good = formatVerifierKey(LOG, log.publicKey)
  const [name, id, key] = good.split('+') as [string, string, string]
  const raw = Buffer.from(key, 'base64')
  const cases: Array<[string, unknown]> = [
    ['upper-case key ID', `${name}+${id.toUpperCase()}+${key}`],
    ['wrong key ID', `${name}+${(parseInt(id, 16) ^ 1).toString(16).padStart(8, '0')}+${key}`],
    ['7-digit key ID', `${name}+${id.slice(1)}+${key}`],
    ['ECDSA type byte', `${name}+${id}+${Buffer.concat([Buffer.from([2]), raw.subarray(1)]).toString('base64')}`],
    ['31-byte key', `${name}+${id}+${raw.subarray(0, 32).toString('base64')}`],
    ['name with a space', `a b+${id}+${key}`],
    ['empty name', `+${id}+${key}`],
    ['no key', `${name}+${id}`],
    ['not a string', 42]
  ]
  for (const [what, input] of cases) t.equal(code(() => parseVerifierKey(input)), 'NOTE_KEY_INVALID', what)
  t.same(parseVerifierKey(good).publicKey, log.publicKey, 'a base64 key with + in it parses')
})

t.test('error: bad arguments from our own code are RangeError / TypeError', async t => {
  t.throws(() => signNote('no newline', LOG, log), RangeError)
  t.throws(() => signNote('a\tb\n', LOG, log), RangeError)
  t.throws(() => signNote('text\n', 'has space', log), RangeError)
  t.throws(() => openNote(GO_NOTE, [logKey, logKey]), RangeError, 'two known keys with the same name and key ID')
  t.throws(() => openNote(GO_NOTE, [{ ...logKey, keyId: logKey.keyId ^ 1 }]), RangeError)
  t.throws(() => openNote(42 as unknown as string, [logKey]), TypeError)
})

t.test('behavior: random mutations of a signed checkpoint only ever fail with documented codes', async t => {
  const note = Buffer.from(signCheckpoint(checkpoint, LOG, log), 'utf8')
  const allowed = /^(NOTE_MALFORMED|NOTE_UNVERIFIED|SIGNATURE_INVALID|MERKLE_INVALID_PROOF)$/
  fc.assert(fc.property(fc.nat(note.byteLength - 1), fc.integer({ min: 0, max: 255 }), (at, value) => {
    const mutated = Buffer.from(note)
    mutated[at] = value
    const c = code(() => openCheckpoint(mutated, [logKey]))
    return mutated.equals(note) ? c === undefined : (c !== undefined && allowed.test(c))
  }), { seed: 12, numRuns: 2000 })
  t.pass('2000 mutations')
})
