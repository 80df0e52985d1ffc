// `provenance dataset …` and `provenance training …` end to end through the forensics CLI: exit
// codes, stdout/stderr split, progress only on a terminal, and bad input as one `CODE: message` line.
import t from 'tap'
import { mkdir, writeFile, symlink, truncate } from 'node:fs/promises'
import { join } from 'node:path'
import { createSigner } from '../../../protocol/index.js'
import { runCli, type CliIo } from '../../../forensics/cli.js'
import { makeTempDir } from '../../helpers/tmp.js'

interface Run { code: number, stdout: string, stderr: string }
async function run (args: string[], isTTY = false): Promise<Run> {
  let stdout = ''
  let stderr = ''
  const io: CliIo = { stdout: s => { stdout += s }, stderr: { write: s => { stderr += s }, isTTY }, env: {} }
  const code = await runCli(args, io)
  return { code, stdout, stderr }
}

async function fixture (t: Parameters<typeof makeTempDir>[0]): Promise<{ dir: string, ds: string, key: string, publicKey: string }> {
  const dir = await makeTempDir(t, 'lineage-cli-')
  const ds = join(dir, 'ds')
  await mkdir(join(ds, 'sub'), { recursive: true })
  await writeFile(join(ds, 'a.csv'), 'x\n1\n')
  await writeFile(join(ds, 'sub', 'b.csv'), Buffer.alloc(2_000_000, 3))
  await writeFile(join(dir, 'model.onnx'), 'model bytes')
  await writeFile(join(dir, 'base.onnx'), 'base bytes')
  await writeFile(join(dir, 'hp.json'), '{"lr":0.01,"epochs":3}')
  await writeFile(join(dir, 'hp2.json'), '{"epochs":3,"lr":0.02}')
  const seed = Buffer.alloc(32, 5)
  await writeFile(join(dir, 'trainer.key'), seed.toString('hex') + '\n')
  return { dir, ds, key: join(dir, 'trainer.key'), publicKey: Buffer.from(createSigner(seed).publicKey).toString('hex') }
}

t.test('behavior: dataset hash writes a manifest that dataset verify accepts; a change is named and exits 1', async t => {
  const { dir, ds } = await fixture(t)
  const m = join(dir, 'm.json')
  const hashed = await run(['dataset', 'hash', ds, '--out', m, '--json'])
  t.equal(hashed.code, 0, hashed.stderr)
  t.equal(hashed.stderr, '', 'no progress with --json')
  t.match(JSON.parse(hashed.stdout), { out: m, name: 'ds', files: 2, bytes: 2_000_004 })
  t.equal((await run(['dataset', 'verify', ds, '--manifest', m])).code, 0)
  await writeFile(join(ds, 'a.csv'), 'x\n2\n')
  await writeFile(join(ds, 'c.csv'), 'new')
  const v = await run(['dataset', 'verify', ds, '--manifest', m, '--json'])
  t.equal(v.code, 1)
  t.match(JSON.parse(v.stdout), { equal: false, added: ['c.csv'], removed: [], changed: ['a.csv'] })
  t.match(v.stderr, /^DATASET_CHANGED: 1 added, 0 removed, 1 changed$/m)
})

t.test('behavior: a manifest written inside the folder leaves itself out; --root hashes given files', async t => {
  const { ds } = await fixture(t)
  const inside = join(ds, 'MANIFEST.json')
  t.equal((await run(['dataset', 'hash', ds, '--out', inside, '--quiet'])).code, 0)
  const v = await run(['dataset', 'verify', ds, '--manifest', inside])
  t.equal(v.code, 0, v.stdout + v.stderr)
  const files = await run(['dataset', 'hash', '--root', ds, join(ds, 'a.csv')])
  t.equal(files.code, 0, files.stderr)
  t.same(JSON.parse(files.stdout).predicate.resources.map((r: { name: string }) => r.name), ['a.csv'])
})

t.test('behavior: a progress bar on a terminal only', async t => {
  const { ds } = await fixture(t)
  const tty = await run(['dataset', 'hash', ds], true)
  t.equal(tty.code, 0)
  t.match(tty.stderr, /hash: bytes/)
  const pipe = await run(['dataset', 'hash', ds], false)
  t.equal(pipe.stderr, '')
})

t.test('error: symlinks, a FIFO-free missing folder and bad flags exit with a code or usage', async t => {
  const { ds } = await fixture(t)
  await symlink(join(ds, 'a.csv'), join(ds, 'link'))
  const r = await run(['dataset', 'hash', ds])
  t.equal(r.code, 1)
  t.match(r.stderr, /^LINEAGE_SYMLINK: link is a symbolic link/)
  t.equal((await run(['dataset', 'hash', ds, '--follow-symlinks'])).code, 0)
  t.match((await run(['dataset', 'hash', join(ds, 'nope')])).stderr, /^LINEAGE_UNREADABLE: /)
  t.equal((await run(['dataset', 'hash'])).code, 2)
  t.equal((await run(['dataset', 'hash', ds, '--shard-size', '0'])).code, 2)
  t.equal((await run(['dataset', 'frobnicate'])).code, 2)
  t.equal((await run(['dataset', 'verify', ds])).code, 2, '--manifest required')
  t.equal((await run(['dataset'])).code, 2)
  t.equal((await run(['dataset', 'hash', '--help'])).code, 0)
})

t.test('error: garbage, truncated and huge manifests and envelopes give one CODE line, no stack', async t => {
  const { dir, ds } = await fixture(t)
  const cases: Array<[string, string | Buffer, string[], RegExp]> = [
    ['garbage.json', Buffer.from([0xde, 0xad, 0xbe, 0xef]), ['dataset', 'verify', ds, '--manifest'], /^MANIFEST_INVALID: /],
    ['truncated.json', '{"_type":"https://in-toto.io/Statement/v1","subject":[{"na', ['dataset', 'verify', ds, '--manifest'], /^MANIFEST_INVALID: /],
    ['wrong.json', '{"a":1}', ['dataset', 'verify', ds, '--manifest'], /^MANIFEST_INVALID: manifest: _type/],
    ['garbage.dsse', 'garbage', ['training', 'verify', '--trainer-keys', '00'.repeat(32)], /^STATEMENT_INVALID: /],
    ['empty.dsse', '', ['training', 'diff', 'x'], /^STATEMENT_INVALID: /]
  ]
  for (const [name, content, args, re] of cases) {
    await writeFile(join(dir, name), content)
    const argv = args[0] === 'training' && args[1] === 'diff' ? ['training', 'diff', join(dir, name), join(dir, name)] : args[0] === 'training' ? [...args.slice(0, 2), join(dir, name), ...args.slice(2)] : [...args, join(dir, name)]
    const r = await run(argv)
    t.equal(r.code, 1, name)
    t.match(r.stderr, re, name)
    t.equal(r.stderr.trim().split('\n').length, 1, `${name}: one line`)
    t.notMatch(r.stderr, /\n\s+at /, `${name}: no stack`)
  }
  // A sparse 300 MiB file: refused by size before any byte is read.
  const huge = join(dir, 'huge.json')
  await writeFile(huge, '')
  await truncate(huge, 300 * 1024 * 1024)
  const r = await run(['dataset', 'verify', ds, '--manifest', huge])
  t.equal(r.code, 1)
  t.match(r.stderr, /^LINEAGE_INPUT_TOO_LARGE: /)
  const e = await run(['training', 'verify', huge, '--trainer-keys', '00'.repeat(32)])
  t.match(e.stderr, /^LINEAGE_INPUT_TOO_LARGE: /)
})

t.test('behavior: training record, verify against files, and diff', async t => {
  const { dir, ds, key, publicKey } = await fixture(t)
  const m = join(dir, 'm.json')
  t.equal((await run(['dataset', 'hash', ds, '--out', m, '--name', 'photos'])).code, 0)
  const common = ['--model', join(dir, 'model.onnx'), '--name', 'detector', '--key-file', key, '--datasets', `photos@1.0=${m}`, '--base-model', join(dir, 'base.onnx'),
    '--started-at', '2026-01-01T00:00:00Z', '--finished-at', '2026-01-01T01:00:00Z', '--env', 'torch=2.3.1,cuda=none']
  const rec = await run(['training', 'record', ...common, '--hyperparameters', join(dir, 'hp.json'), '--code-revision', 'git:aaa', '--out', join(dir, 'run1.json'), '--json'])
  t.equal(rec.code, 0, rec.stderr)
  t.match(JSON.parse(rec.stdout), { trainerKey: publicKey, statementHash: /^[0-9a-f]{64}$/ })
  t.equal((await run(['training', 'record', ...common, '--hyperparameters', join(dir, 'hp2.json'), '--code-revision', 'git:bbb', '--out', join(dir, 'run2.json')])).code, 0)
  const ok = await run(['training', 'verify', join(dir, 'run1.json'), '--trainer-keys', publicKey, '--model', join(dir, 'model.onnx'), '--base-model', join(dir, 'base.onnx'), '--datasets', `photos=${m}=${ds}`, '--json'])
  t.equal(ok.code, 0, ok.stdout + ok.stderr)
  t.equal(JSON.parse(ok.stdout).checks.length, 5)
  const unknown = await run(['training', 'verify', join(dir, 'run1.json'), '--trainer-keys', '11'.repeat(32)])
  t.equal(unknown.code, 1)
  t.match(unknown.stderr, /^TRAINING_RUN_INVALID: 1 check\(s\) failed; first: signature TRAINER_UNKNOWN/m)
  await writeFile(join(ds, 'a.csv'), 'tampered')
  const changed = await run(['training', 'verify', join(dir, 'run1.json'), '--trainer-keys', publicKey, '--datasets', `photos=${m}=${ds}`])
  t.equal(changed.code, 1)
  t.match(changed.stdout, /FAIL\s+dataset photos files\s+DATASET_MISMATCH: changed a\.csv/)
  await writeFile(join(dir, 'model.onnx'), 'other model')
  t.match((await run(['training', 'verify', join(dir, 'run1.json'), '--trainer-keys', publicKey, '--model', join(dir, 'model.onnx')])).stdout, /MODEL_MISMATCH/)
  const diff = await run(['training', 'diff', join(dir, 'run1.json'), join(dir, 'run2.json')])
  t.equal(diff.code, 0)
  t.match(diff.stdout, /hyperparameters: 1 change\(s\)\n {2}~ \/lr: 0\.01 -> 0\.02\nother claims: 1 change\(s\)\n {2}~ \/codeRevision: "git:aaa" -> "git:bbb"/)
})

t.test('error: training record refuses a bad key file and bad hyperparameters with a code', async t => {
  const { dir } = await fixture(t)
  await writeFile(join(dir, 'bad.key'), 'not hex')
  await writeFile(join(dir, 'nan.json'), '[1,2]')
  const base = ['training', 'record', '--model', join(dir, 'model.onnx'), '--name', 'm', '--code-revision', 'r']
  t.match((await run([...base, '--key-file', join(dir, 'bad.key')])).stderr, /^TRAINER_KEY_INVALID: /)
  t.match((await run([...base, '--key-file', join(dir, 'trainer.key'), '--hyperparameters', join(dir, 'nan.json')])).stderr, /^CANONICAL_JSON_INVALID: /)
  t.equal((await run([...base])).code, 2, 'no key file')
  t.equal((await run([...base, '--key-file', join(dir, 'trainer.key'), '--started-at', 'yesterday'])).code, 2)
})

t.test('behavior: provenance --help lists the subcommands each lineage group takes, and help <group> <sub> shows that subcommand\'s help', async t => {
  const program = await run(['--help'])
  for (const group of ['dataset', 'training', 'fl']) {
    const usage = await run([group])
    t.equal(usage.code, 2, `${group} alone is a usage error`)
    const groupHelp = await run(['help', group])
    const taken = /<([a-z|-]+)>/.exec(groupHelp.stdout)?.[1]?.split('|')
    t.ok(taken !== undefined && taken.length > 1, `${group}: the group's help names its subcommands`)
    t.match(usage.stderr, new RegExp(`^usage: ${group} needs a subcommand: ${(taken ?? []).join(', ')}`), `${group} alone names what the group takes`)
    for (const s of taken ?? []) t.match(program.stdout, new RegExp(`^ {2}${group} ${s} {2,}`, 'm'), `${group} ${s}: the program's help lists it`)
    const sub = taken?.[0] as string
    const help = await run(['help', group, sub])
    t.equal(help.code, 0)
    t.match(help.stdout, new RegExp(`^Usage: provenance ${group} ${sub}`))
  }
})
