/**
 * A throwaway PostgreSQL cluster (Debian's package) for tests and benchmarks: initdb'd as the
 * `postgres` user (the server refuses to run as root) in a temp folder of its own, on a free
 * loopback port, stoppable and restartable on that port, removed for good by close().
 */
import { execFile } from 'node:child_process'
import { chown, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import { freePort } from './mosquitto.js'

const run = promisify(execFile)

export interface Postgres {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string
  port: number
  /** Stops the server now (pg_ctl stop -m immediate: no clean shutdown, like a crash). */
  stop: () => Promise<void>
  /** Starts it again on the same port and data folder, after stop(). */
  restart: () => Promise<void>
  /** Creates a fresh database and returns its URL (one per test keeps tests independent). */
  createDatabase: (name: string) => Promise<string>
  /** Stops it for good and removes its folder. */
  close: () => Promise<void>
}

async function binDir (): Promise<string> {
  if (process.env.PG_BIN !== undefined) return process.env.PG_BIN
  const versions = (await readdir('/usr/lib/postgresql').catch(() => [])).sort((a, b) => Number(b) - Number(a))
  for (const v of versions) if (existsSync(`/usr/lib/postgresql/${v}/bin/initdb`)) return `/usr/lib/postgresql/${v}/bin`
  throw new Error('PostgreSQL binaries not found under /usr/lib/postgresql (run scripts/ensure-system-deps.sh)')
}

/** Runs a PostgreSQL binary as the `postgres` user when we are root, as ourselves otherwise. */
async function asPostgres (bin: string, args: string[]): Promise<string> {
  const root = userInfo().uid === 0
  const [cmd, argv] = root ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args]
  try {
    const { stdout } = await run(cmd, argv, { timeout: 60_000 })
    return stdout
  } catch (e) {
    const err = e as { stderr?: string, message: string }
    throw new Error(`${bin.split('/').pop() ?? bin} failed: ${err.stderr ?? err.message}`)
  }
}

async function pgUid (): Promise<{ uid: number, gid: number } | undefined> {
  if (userInfo().uid !== 0) return undefined
  const { stdout } = await run('id', ['-u', 'postgres'])
  const { stdout: g } = await run('id', ['-g', 'postgres'])
  return { uid: Number(stdout.trim()), gid: Number(g.trim()) }
}

async function waitReady (url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const c = new pg.Client({ connectionString: url })
    c.on('error', () => {})
    try {
      await c.connect()
      await c.query('SELECT 1')
      await c.end()
      return
    } catch (e) {
      await c.end().catch(() => {})
      if (Date.now() > deadline) throw new Error(`postgres did not accept connections within ${timeoutMs} ms: ${(e as Error).message}`)
      await new Promise(resolve => setTimeout(resolve, 100))
    }
  }
}

/** Starts a cluster. Call close() in teardown. */
export async function startPostgres (): Promise<Postgres> {
  const bin = await binDir()
  const dir = await mkdtemp(join(tmpdir(), 'prov-pg-'))
  const owner = await pgUid()
  if (owner !== undefined) await chown(dir, owner.uid, owner.gid)
  const data = join(dir, 'data')
  const port = await freePort()
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`
  await asPostgres(`${bin}/initdb`, ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync', '--no-instructions'])
  // Loopback TCP only, and a socket folder of our own (never the system's /var/run/postgresql).
  // fsync off is safe for a process kill (the OS keeps the WAL); synchronous_commit stays on, as
  // an immediate stop would otherwise lose commits the tests were told about.
  const conf = [`port = ${port}`, "listen_addresses = '127.0.0.1'", `unix_socket_directories = '${dir}'`,
    'fsync = off', 'full_page_writes = off', 'max_connections = 200', 'shared_buffers = 32MB']
  const confFile = join(data, 'postgresql.auto.conf')
  await writeFile(confFile, conf.join('\n') + '\n')
  if (owner !== undefined) await chown(confFile, owner.uid, owner.gid)
  let pid: number | undefined
  const start = async (): Promise<void> => {
    await asPostgres(`${bin}/pg_ctl`, ['-D', data, '-l', join(dir, 'log'), '-w', '-t', '60', 'start'])
    await waitReady(url, 30_000)
    const { stdout } = await run('head', ['-1', join(data, 'postmaster.pid')])
    pid = Number(stdout.trim())
  }
  const stop = async (): Promise<void> => {
    if (pid === undefined) return
    try {
      await asPostgres(`${bin}/pg_ctl`, ['-D', data, '-m', 'immediate', '-w', '-t', '20', 'stop'])
    } catch {
      // pg_ctl could not stop it: the postmaster's pid is ours to kill (its children follow it).
      try { process.kill(pid, 'SIGKILL') } catch { /* gone */ }
    }
    pid = undefined
  }
  try {
    await start()
  } catch (e) {
    await rm(dir, { recursive: true, force: true })
    throw e
  }
  return {
    url,
    port,
    stop,
    restart: start,
    createDatabase: async (name) => {
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`bad database name ${name}`)
      const c = new pg.Client({ connectionString: url })
      await c.connect()
      try { await c.query(`CREATE DATABASE ${name}`) } finally { await c.end() }
      return `postgres://postgres@127.0.0.1:${port}/${name}`
    },
    close: async () => {
      await stop()
      await rm(dir, { recursive: true, force: true })
    }
  }
}
