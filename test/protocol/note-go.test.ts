/**
 * Our signed checkpoints against an implementation not written here: golang.org/x/mod/sumdb/note
 * (Debian golang-golang-x-mod-dev), through a small Go program built in the test setup. Go opens
 * what we sign, refuses what was tampered with, and we open what Go signs with a key it generated.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import {
  createSigner, formatCheckpoint, formatVerifierKey, openCheckpoint, openNote, parseVerifierKey, sha256, signCheckpoint
} from '../../protocol/index.js'
import { makeTempDir } from '../helpers/tmp.js'
import { BATCH_VECTORS_PATH, type BatchVectors } from '../../scripts/gen-batch-vectors.js'
import { CONFORMANCE_DIR } from '../../scripts/gen-conformance.js'

const GOPATH = '/usr/share/gocode'
const NOTE_PACKAGE = join(GOPATH, 'src', 'golang.org', 'x', 'mod', 'sumdb', 'note', 'note.go')
const hasGo = spawnSync('go', ['version'], { stdio: 'ignore' }).status === 0
const skip = !hasGo
  ? 'the go toolchain is missing (Debian golang-go; scripts/ensure-system-deps.sh installs it)'
  : !existsSync(NOTE_PACKAGE)
      ? 'golang.org/x/mod is missing (Debian golang-golang-x-mod-dev; scripts/ensure-system-deps.sh installs it)'
      : false

// open <vkey> <file>: note.Open with that one verifier, prints the text; exit 1 when it refuses.
// generate <name>: note.GenerateKey, prints skey and vkey. sign <skey> <file>: note.Sign of the text.
const PROGRAM = `package main

import (
	"crypto/rand"
	"fmt"
	"os"

	"golang.org/x/mod/sumdb/note"
)

func fail(code int, what string, err error) {
	fmt.Fprintln(os.Stderr, what+":", err)
	os.Exit(code)
}

func main() {
	switch os.Args[1] {
	case "open":
		v, err := note.NewVerifier(os.Args[2])
		if err != nil {
			fail(2, "verifier", err)
		}
		msg, err := os.ReadFile(os.Args[3])
		if err != nil {
			fail(2, "read", err)
		}
		n, err := note.Open(msg, note.VerifierList(v))
		if err != nil {
			fail(1, "open", err)
		}
		fmt.Print(n.Text)
	case "generate":
		skey, vkey, err := note.GenerateKey(rand.Reader, os.Args[2])
		if err != nil {
			fail(2, "generate", err)
		}
		fmt.Println(skey)
		fmt.Println(vkey)
	case "sign":
		s, err := note.NewSigner(os.Args[2])
		if err != nil {
			fail(2, "signer", err)
		}
		text, err := os.ReadFile(os.Args[3])
		if err != nil {
			fail(2, "read", err)
		}
		msg, err := note.Sign(&note.Note{Text: string(text)}, s)
		if err != nil {
			fail(1, "sign", err)
		}
		os.Stdout.Write(msg)
	default:
		os.Exit(2)
	}
}
`

const LOG = 'edge-provenance/gw-1'
const log = createSigner(new Uint8Array(32).map((_, i) => 0x61 + i))
const checkpoint = { origin: `${LOG}/batch/7`, size: 6, rootHash: sha256(Uint8Array.of(7)) }

t.test('interop: golang.org/x/mod/sumdb/note', { skip }, async t => {
  const dir = await makeTempDir(t, 'prov-note-go-')
  await writeFile(join(dir, 'main.go'), PROGRAM)
  const bin = join(dir, 'notecheck')
  // GOPATH mode reads the Debian package's sources; the build cache stays the user's default.
  execFileSync('go', ['build', '-o', bin, 'main.go'], { cwd: dir, env: { ...process.env, GO111MODULE: 'off', GOPATH, GOFLAGS: '' }, stdio: ['ignore', 'ignore', 'pipe'] })

  const goOpen = async (vkey: string, note: string | Uint8Array): Promise<{ status: number | null, text: string, stderr: string }> => {
    const file = join(dir, 'note.txt')
    await writeFile(file, note)
    const r = spawnSync(bin, ['open', vkey, file], { encoding: 'utf8' })
    return { status: r.status, text: r.stdout, stderr: r.stderr }
  }
  const vkey = formatVerifierKey(LOG, log.publicKey)

  t.test('interop: note.Open verifies our signed checkpoint and returns its text', async t => {
    const note = signCheckpoint(checkpoint, LOG, log)
    const r = await goOpen(vkey, note)
    t.equal(r.status, 0, r.stderr)
    t.equal(r.text + '\n', formatCheckpoint(checkpoint), 'Go\'s note text is the checkpoint without its empty line')
  })

  t.test('interop: note.Open verifies the signed checkpoint vector of docs/PROTOCOL.md §7.7 with its documented verifier key', async t => {
    const file = JSON.parse(readFileSync(BATCH_VECTORS_PATH, 'utf8')) as BatchVectors
    const r = await goOpen(file.logKey.verifierKey, file.signedCheckpoint.note)
    t.equal(r.status, 0, r.stderr)
    t.equal(r.text, file.signedCheckpoint.signedText)
  })

  t.test('interop: note.Open agrees on non-ASCII names and origins, sizes up to 2^53 - 1 and extension lines', async t => {
    const cases = [
      { name: 'prov\u00e9nance.example/gw-\u00fc', checkpoint: { origin: 'prov\u00e9nance.example/gw-\u00fc/batch/1', size: 1, rootHash: sha256(Uint8Array.of(1)) } },
      { name: 'log.example', checkpoint: { origin: 'log.example', size: Number.MAX_SAFE_INTEGER, rootHash: sha256(Uint8Array.of(2)) } },
      { name: 'log.example/\u65e5\u672c', checkpoint: { origin: 'log.example/\u65e5\u672c/batch/3', size: 0, rootHash: sha256(), extensions: ['ext one', '\u2014 not a signature'] } }
    ]
    for (const c of cases) {
      const note = signCheckpoint(c.checkpoint, c.name, log)
      const r = await goOpen(formatVerifierKey(c.name, log.publicKey), note)
      t.equal(r.status, 0, `${c.checkpoint.origin}: ${r.stderr}`)
      t.equal(r.text + '\n', formatCheckpoint(c.checkpoint))
      t.same(openCheckpoint(note, [parseVerifierKey(formatVerifierKey(c.name, log.publicKey))]).checkpoint, c.checkpoint, 'and ours')
    }
  })

  t.test('interop: note.Open refuses a tampered checkpoint and a signature by another key', async t => {
    const note = signCheckpoint(checkpoint, LOG, log)
    const tampered = await goOpen(vkey, note.replace('\n6\n', '\n7\n'))
    t.equal(tampered.status, 1)
    t.match(tampered.stderr, /invalid signature/)
    const other = createSigner(new Uint8Array(32).fill(9))
    const forged = await goOpen(vkey, signCheckpoint(checkpoint, LOG, other))
    t.equal(forged.status, 1, 'unknown key: unverified')
    t.match(forged.stderr, /no verifiable signatures/)
  })

  t.test('interop: Go accepts our verifier key string, and we accept one Go generated', async t => {
    const generated = execFileSync(bin, ['generate', LOG], { encoding: 'utf8' }).trim().split('\n')
    const [skey, goVkey] = generated as [string, string]
    t.match(skey, /^PRIVATE\+KEY\+edge-provenance\/gw-1\+[0-9a-f]{8}\+/)
    const key = parseVerifierKey(goVkey)
    t.equal(formatVerifierKey(key.name, key.publicKey), goVkey, 'same string both ways')

    const textFile = join(dir, 'text.txt')
    await writeFile(textFile, formatCheckpoint(checkpoint).slice(0, -1))
    const signed = execFileSync(bin, ['sign', skey, textFile])
    const opened = openCheckpoint(signed, [key])
    t.same(opened.checkpoint, checkpoint, 'a checkpoint Go signed opens with ours')
    t.equal(openCheckpoint(signed, [key], 'noble').checkpointText, formatCheckpoint(checkpoint))

    const tampered = Buffer.from(signed)
    tampered[tampered.indexOf('\n6\n') + 1] = 0x37
    t.throws(() => openNote(tampered, [key]), { name: 'ProtocolError', code: 'SIGNATURE_INVALID' })
  })
  t.test('interop: note.Open gives the verdict of every checkpoint case of the conformance suite', async t => {
    const dir = join(CONFORMANCE_DIR)
    const manifest = JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8')) as { cases: Array<{ name: string, kind: string, file: string, inputs?: { verifierKey?: string }, expect: { verdict: string } }> }
    const cases = manifest.cases.filter(c => c.kind === 'checkpoint')
    t.ok(cases.length >= 5)
    for (const c of cases) {
      const r = await goOpen(c.inputs?.verifierKey as string, readFileSync(join(dir, c.file)))
      t.equal(r.status === 0 ? 'valid' : 'invalid', c.expect.verdict, `${c.name}: ${r.stderr.trim()}`)
    }
  })
})
