// The systemd unit and its installer: the rendered unit passes `systemd-analyze verify` (installed
// by scripts/ensure-system-deps.sh), is hardened as the design asks, and install.sh --dry-run
// changes nothing.
import t from 'tap'
import { execFile } from 'node:child_process'
import { access, readFile, readdir, writeFile, mkdir } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { INSTALL_SCRIPT_PATH, UNIT_TEMPLATE_PATH, renderUnit } from '../../../agent/systemd/index.js'
import { makeTempDir } from '../../helpers/tmp.js'

const run = promisify(execFile)
const APP_DIR = resolve(UNIT_TEMPLATE_PATH, '../../..')

async function verify (unitPath: string): Promise<{ code: number, output: string }> {
  try {
    const { stdout, stderr } = await run('systemd-analyze', ['verify', unitPath])
    return { code: 0, output: stdout + stderr }
  } catch (e) {
    const err = e as { code?: number, stdout?: string, stderr?: string }
    return { code: err.code ?? 1, output: (err.stdout ?? '') + (err.stderr ?? '') }
  }
}

async function install (args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  try {
    const { stdout, stderr } = await run('bash', [INSTALL_SCRIPT_PATH, ...args])
    return { code: 0, stdout, stderr }
  } catch (e) {
    const err = e as { code?: number, stdout?: string, stderr?: string }
    return { code: err.code ?? 1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' }
  }
}

async function files (dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true, withFileTypes: true })).filter(e => e.isFile()).map(e => join(e.parentPath ?? (e as { path: string }).path, e.name)).sort()
}

t.test('behavior: the unit, rendered with this node and this checkout, passes systemd-analyze verify', async t => {
  const dir = await makeTempDir(t, 'prov-systemd-')
  const unitPath = join(dir, 'provenance-agent.service')
  const template = await readFile(UNIT_TEMPLATE_PATH, 'utf8')
  await writeFile(unitPath, renderUnit(template, { node: process.execPath, appDir: APP_DIR }))
  const result = await verify(unitPath)
  t.equal(result.code, 0, result.output)
  t.notMatch(result.output, /provenance-agent\.service/, `no warnings about the unit: ${result.output}`)
  await access(join(APP_DIR, 'agent', 'cli', 'bin.mjs'))

  // The check has teeth: the template with its placeholders does not verify.
  await writeFile(unitPath, template)
  t.not((await verify(unitPath)).code, 0, 'an unrendered ExecStart fails verify')
})

t.test('behavior: the unit is hardened and stops cleanly', async t => {
  const unit = await readFile(UNIT_TEMPLATE_PATH, 'utf8')
  const directives = new Map(unit.split('\n').filter(l => /^[A-Za-z]+=/.test(l)).map(l => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]))
  const expected: Record<string, string> = {
    Type: 'exec',
    User: 'provenance',
    Group: 'provenance',
    StateDirectory: 'provenance-agent',
    ConfigurationDirectory: 'provenance-agent',
    ProtectSystem: 'strict',
    ProtectHome: 'true',
    PrivateTmp: 'true',
    NoNewPrivileges: 'true',
    RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX',
    Restart: 'on-failure',
    RestartPreventExitStatus: '78',
    KillSignal: 'SIGTERM',
    TimeoutStopSec: '30s',
    CapabilityBoundingSet: ''
  }
  for (const [k, v] of Object.entries(expected)) t.equal(directives.get(k), v, `${k}=${v}`)
  t.match(directives.get('ExecStart'), /^@NODE@ @APP_DIR@\/agent\/cli\/bin\.mjs start --config \/etc\/provenance-agent\/config\.json$/)
  for (const absent of ['WatchdogSec', 'MemoryDenyWriteExecute', 'PrivateDevices', 'ProtectClock']) t.notOk(directives.has(absent), `no ${absent}`)
})

t.test('behavior: install.sh --dry-run prints what it would do and changes nothing', async t => {
  const root = await makeTempDir(t, 'prov-install-')
  const result = await install(['--dry-run', '--root', root, '--node', process.execPath])
  t.equal(result.code, 0, result.stderr)
  t.match(result.stdout, /would run: install -d/)
  t.match(result.stdout, /would write: .*provenance-agent\.service/)
  t.match(result.stdout, /dry run: nothing was changed/)
  t.same(await files(root), [], 'no file written')
  const system = await install(['--dry-run', '--node', process.execPath])
  t.equal(system.code, 0, system.stderr)
  t.match(system.stdout, /would run: useradd --system --gid provenance .*provenance/, 'the dedicated user')
  t.match(system.stdout, /would run: systemctl daemon-reload/)
  t.notMatch(system.stdout, /enable --now/, 'starts nothing unless asked')
})

t.test('behavior: install.sh installs the rendered unit and a config, and never overwrites the config', async t => {
  const root = await makeTempDir(t, 'prov-install-')
  const first = await install(['--root', root, '--node', process.execPath, '--app-dir', APP_DIR])
  t.equal(first.code, 0, first.stderr)
  const unitPath = join(root, 'etc', 'systemd', 'system', 'provenance-agent.service')
  const unit = await readFile(unitPath, 'utf8')
  t.match(unit, `ExecStart=${process.execPath} ${APP_DIR}/agent/cli/bin.mjs start`)
  t.notMatch(unit, /@NODE@|@APP_DIR@/)
  const verified = await verify(unitPath)
  t.equal(verified.code, 0, verified.output)
  const config = join(root, 'etc', 'provenance-agent', 'config.json')
  t.match(JSON.parse(await readFile(config, 'utf8')), { deviceId: '', stateDir: '/var/lib/provenance-agent' }, 'an empty deviceId: the service refuses to start until it is set')
  await writeFile(config, '{"deviceId":"mine"}')
  const second = await install(['--root', root, '--node', process.execPath, '--app-dir', APP_DIR])
  t.equal(second.code, 0)
  t.match(second.stdout, /keeping existing/)
  t.equal(await readFile(config, 'utf8'), '{"deviceId":"mine"}')
})

t.test('error: install.sh refuses bad arguments and a folder without the agent', async t => {
  const root = await makeTempDir(t, 'prov-install-')
  t.equal((await install(['--frobnicate'])).code, 2)
  t.equal((await install(['--root'])).code, 2)
  await mkdir(join(root, 'empty'))
  const bad = await install(['--root', root, '--node', process.execPath, '--app-dir', join(root, 'empty')])
  t.equal(bad.code, 1)
  t.match(bad.stderr, /does not hold agent\/cli\/bin\.mjs/)
  t.same(await files(root), [])
})
