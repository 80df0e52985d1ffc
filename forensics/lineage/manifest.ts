/**
 * Dataset and model-folder manifests in the OpenSSF model-signing (OMS) v1.0 layout: an in-toto
 * Statement v1 whose predicate lists `resources` (name, algorithm, digest) and whose subject digest
 * is SHA-256 over the raw resource digests in order. Followed: sigstore/model-transparency
 * src/model_signing/_signing/signing.py (class Payload, dsse_payload_to_manifest). docs/LINEAGE.md §1.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { basename, resolve } from 'node:path'
import { ForensicsError } from '../errors.js'
import { compareNames, listFiles, walkTree, type ListTreeOptions, type TreeFile } from './tree.js'
import { DEFAULT_HASH_WORKERS, openHashPool, type HashRange, type RangeDigest } from './hash-pool.js'

export const IN_TOTO_STATEMENT_V1 = 'https://in-toto.io/Statement/v1'
/** OMS v1.0 predicate type (signing.py `_PREDICATE_TYPE`). */
export const OMS_PREDICATE_TYPE = 'https://model_signing/signature/v1.0'
/** Manifests larger than this are refused before they are read. */
export const DEFAULT_MANIFEST_MAX_BYTES = 256 * 1024 * 1024
/** Resources a manifest may list (10x the 100k-file target). */
export const MAX_MANIFEST_RESOURCES = 1_000_000

/** How the files became resources: OMS `serialization`. */
export type Serialization =
  | { method: 'files', hash_type: 'sha256', allow_symlinks: boolean, ignore_paths: string[] }
  | { method: 'shards', hash_type: 'sha256', allow_symlinks: boolean, ignore_paths: string[], shard_size: number }

/** One resource: a whole file (`files`) or `name:start:end` of one (`shards`). `size` is our addition. */
export interface Resource {
  name: string
  algorithm: string
  digest: string
  size: number
}

/** An OMS v1.0 manifest statement. */
export interface Manifest {
  _type: typeof IN_TOTO_STATEMENT_V1
  subject: [{ name: string, digest: { sha256: string } }]
  predicateType: typeof OMS_PREDICATE_TYPE
  predicate: { serialization: Serialization, resources: Resource[] }
}

export interface HashTreeOptions extends ListTreeOptions {
  /** Subject name. Default: the folder's base name. */
  name?: string
  /** Split every file into shards of this many bytes (OMS `shards` method). Default: whole files. */
  shardSizeBytes?: number
  /** Hashing threads (hash-pool.ts). */
  workers?: number
  /** Files given instead of the whole folder: their names are relative to the folder. */
  files?: readonly string[]
  /** Progress: bytes hashed of the total listed. */
  onProgress?: (doneBytes: number, totalBytes: number, files: number) => void
}

function shardAlgorithm (shardSize: number): string {
  return `sha256-sharded-${shardSize}`
}

/** The OMS root digest: SHA-256 over the raw digests of `resources`, in their order. */
export function rootDigest (resources: readonly Resource[]): string {
  const h = createHash('sha256')
  for (const r of resources) h.update(Buffer.from(r.digest, 'hex'))
  return h.digest('hex')
}

function rangesOf (files: readonly TreeFile[], shardSize: number | undefined): Array<HashRange & { name: string }> {
  const out: Array<HashRange & { name: string }> = []
  for (const f of files) {
    if (shardSize === undefined) { out.push({ name: f.name, path: f.path, startByte: 0, endByte: null, sizeHintBytes: f.sizeBytes }); continue }
    // OMS shards: `name:start:end`; an empty file is one empty shard so it is still covered.
    if (f.sizeBytes === 0) out.push({ name: `${f.name}:0:0`, path: f.path, startByte: 0, endByte: 0 })
    for (let start = 0; start < f.sizeBytes; start += shardSize) {
      const end = Math.min(start + shardSize, f.sizeBytes)
      out.push({ name: `${f.name}:${start}:${end}`, path: f.path, startByte: start, endByte: end })
    }
  }
  return out
}

/**
 * Hashes a folder (or files in it) into an OMS v1.0 manifest. Each byte is read once.
 * @throws ForensicsError LINEAGE_SYMLINK, LINEAGE_UNREADABLE, LINEAGE_NOT_REGULAR_FILE, LINEAGE_PATH_OUTSIDE_ROOT
 */
export async function hashTree (root: string, options: HashTreeOptions = {}): Promise<Manifest> {
  const shardSize = options.shardSizeBytes
  if (shardSize !== undefined && (!Number.isSafeInteger(shardSize) || shardSize < 1)) throw new RangeError('shardSizeBytes must be a positive integer')
  const ignore = [...(options.ignore ?? [])]
  const listOptions = { ignore, followSymlinks: options.followSymlinks === true }
  // The threads boot while the folder is listed, and hash its first files while the walk goes on.
  const pool = openHashPool(options.workers ?? DEFAULT_HASH_WORKERS)
  const files: TreeFile[] = []
  const ranges: Array<HashRange & { name: string }> = []
  let digests: RangeDigest[]
  try {
    let listedBytes = 0
    const job = pool.stream({ onProgress: done => options.onProgress?.(done, listedBytes, files.length) })
    const take = (found: readonly TreeFile[]): void => {
      const more = rangesOf(found, shardSize)
      for (const f of found) { files.push(f); listedBytes += f.sizeBytes }
      for (const r of more) ranges.push(r)
      job.add(more)
    }
    if (options.files === undefined) await walkTree(root, listOptions, take)
    else take(await listFiles(options.files, root, listOptions))
    digests = await job.finish()
  } finally {
    await pool.close()
  }
  // Hashed in listing order; the manifest lists files by name (§1.1), a file's shards by start.
  const order = files.map((f, i) => ({ name: f.name, i })).sort((a, b) => compareNames(a.name, b.name))
  const firstRange: number[] = []
  let at = 0
  for (const f of files) { firstRange.push(at); at += shardSize === undefined ? 1 : Math.max(1, Math.ceil(f.sizeBytes / shardSize)) }
  const sorted: number[] = []
  for (const { i } of order) {
    const end = i + 1 < files.length ? firstRange[i + 1] as number : ranges.length
    for (let k = firstRange[i] as number; k < end; k++) sorted.push(k)
  }
  const resources: Resource[] = sorted.map(i => {
    const r = ranges[i] as HashRange & { name: string }
    const d = digests[i] as { digest: Uint8Array, sizeBytes: number }
    return { name: r.name, algorithm: shardSize === undefined ? 'sha256' : shardAlgorithm(shardSize), digest: Buffer.from(d.digest).toString('hex'), size: d.sizeBytes }
  })
  const serialization: Serialization = shardSize === undefined
    ? { method: 'files', hash_type: 'sha256', allow_symlinks: listOptions.followSymlinks, ignore_paths: ignore }
    : { method: 'shards', hash_type: 'sha256', allow_symlinks: listOptions.followSymlinks, ignore_paths: ignore, shard_size: shardSize }
  return {
    _type: IN_TOTO_STATEMENT_V1,
    subject: [{ name: options.name ?? basename(resolve(root)), digest: { sha256: rootDigest(resources) } }],
    predicateType: OMS_PREDICATE_TYPE,
    predicate: { serialization, resources }
  }
}

/** The manifest's bytes as written: two-space JSON, a trailing newline. */
export function encodeManifest (m: Manifest): string {
  return JSON.stringify(m, null, 2) + '\n'
}

// ---------------------------------------------------------------------------------------------
// Reading a manifest: input from disk, so every field is checked and every problem named.

const HEX64 = /^[0-9a-f]{64}$/

function isObject (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * Parses manifest bytes and checks them: layout, names sorted and unique, root digest equal to
 * the resources' (signing.py `dsse_payload_to_manifest` refuses the same inconsistency).
 * @throws ForensicsError MANIFEST_INVALID (listing the bad fields), LINEAGE_INPUT_TOO_LARGE
 */
export function parseManifest (bytes: Uint8Array, maxBytes = DEFAULT_MANIFEST_MAX_BYTES): Manifest {
  if (bytes.byteLength > maxBytes) throw new ForensicsError('LINEAGE_INPUT_TOO_LARGE', `manifest has ${bytes.byteLength} bytes, at most ${maxBytes}`)
  let value: unknown
  try {
    value = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'))
  } catch (e) {
    throw new ForensicsError('MANIFEST_INVALID', 'manifest is not valid JSON', { cause: e })
  }
  assertManifest(value)
  return value
}

/**
 * Asserts `value` is an OMS v1.0 manifest of this tool.
 * @throws ForensicsError MANIFEST_INVALID naming up to 10 bad fields
 */
export function assertManifest (value: unknown): asserts value is Manifest {
  const problems: string[] = []
  const bad = (path: string, want: string): void => { problems.push(`${path}: ${want}`) }
  if (!isObject(value)) throw new ForensicsError('MANIFEST_INVALID', 'manifest: expected a JSON object')
  if (value._type !== IN_TOTO_STATEMENT_V1) bad('_type', IN_TOTO_STATEMENT_V1)
  if (value.predicateType !== OMS_PREDICATE_TYPE) bad('predicateType', OMS_PREDICATE_TYPE)
  const subject = value.subject
  let root: string | undefined
  if (!Array.isArray(subject) || subject.length !== 1 || !isObject(subject[0])) bad('subject', 'exactly one subject')
  else {
    const s = subject[0]
    if (typeof s.name !== 'string') bad('subject[0].name', 'a string')
    if (!isObject(s.digest) || typeof s.digest.sha256 !== 'string' || !HEX64.test(s.digest.sha256)) bad('subject[0].digest.sha256', '64 lower-case hex digits')
    else root = s.digest.sha256
  }
  const p = value.predicate
  if (!isObject(p)) bad('predicate', 'an object')
  else {
    const s = p.serialization
    let algorithm = 'sha256'
    if (!isObject(s)) bad('predicate.serialization', 'an object')
    else {
      if (s.method !== 'files' && s.method !== 'shards') bad('predicate.serialization.method', '"files" or "shards"')
      if (s.hash_type !== 'sha256') bad('predicate.serialization.hash_type', '"sha256"')
      if (typeof s.allow_symlinks !== 'boolean') bad('predicate.serialization.allow_symlinks', 'a boolean')
      if (!Array.isArray(s.ignore_paths) || !s.ignore_paths.every(x => typeof x === 'string' && x !== '' && !x.includes('\0'))) bad('predicate.serialization.ignore_paths', 'an array of non-empty strings')
      if (s.method === 'shards') {
        if (typeof s.shard_size !== 'number' || !Number.isSafeInteger(s.shard_size) || s.shard_size < 1) bad('predicate.serialization.shard_size', 'a positive integer')
        else algorithm = shardAlgorithm(s.shard_size)
      }
    }
    const rs = p.resources
    if (!Array.isArray(rs)) bad('predicate.resources', 'an array')
    else if (rs.length > MAX_MANIFEST_RESOURCES) bad('predicate.resources', `at most ${MAX_MANIFEST_RESOURCES} entries`)
    else {
      let previous: string | undefined
      for (let i = 0; i < rs.length && problems.length < 10; i++) {
        const r = rs[i] as unknown
        const at = `predicate.resources[${i}]`
        if (!isObject(r)) { bad(at, 'an object'); continue }
        if (typeof r.name !== 'string' || r.name === '' || r.name.startsWith('/') || r.name.split('/').some(x => x === '..' || x === '.' || x === '') || r.name.includes('\0')) { bad(`${at}.name`, 'a relative POSIX path'); continue }
        if (r.algorithm !== algorithm) bad(`${at}.algorithm`, JSON.stringify(algorithm))
        if (typeof r.digest !== 'string' || !HEX64.test(r.digest)) bad(`${at}.digest`, '64 lower-case hex digits')
        if (typeof r.size !== 'number' || !Number.isSafeInteger(r.size) || r.size < 0) bad(`${at}.size`, 'a byte count')
        if (previous !== undefined && !inOrder(previous, r.name, algorithm !== 'sha256')) bad(`${at}.name`, 'sorted by UTF-8 bytes after the previous name, no duplicates')
        previous = r.name
      }
    }
  }
  if (problems.length === 0 && root !== undefined) {
    const m = value as unknown as Manifest
    const expected = Buffer.from(rootDigest(m.predicate.resources), 'hex')
    if (!timingSafeEqual(expected, Buffer.from(root, 'hex'))) problems.push('subject[0].digest.sha256: does not match the resources (inconsistent manifest)')
  }
  if (problems.length > 0) throw new ForensicsError('MANIFEST_INVALID', `manifest: ${problems.join('; ')}`)
}

/**
 * Resource order (docs/LINEAGE.md §1.1): by file name bytes; a file's shards by start byte, which
 * the plain name order would break (`f:10:` sorts before `f:2:`, `a.b:` before `a:`).
 */
function inOrder (a: string, b: string, shards: boolean): boolean {
  if (!shards) return compareNames(a, b) < 0
  const pa = splitShard(a)
  const pb = splitShard(b)
  if (pa === undefined || pb === undefined) return false
  const byFile = compareNames(pa.file, pb.file)
  return byFile < 0 || (byFile === 0 && pb.start > pa.start)
}

function splitShard (name: string): { file: string, start: number } | undefined {
  const m = /^(.*):(\d+):(\d+)$/s.exec(name)
  return m === null ? undefined : { file: m[1] as string, start: Number(m[2]) }
}

/** The file a resource belongs to (a shard's file, or the resource itself). */
export function fileOfResource (m: Manifest, r: Resource): string {
  return m.predicate.serialization.method === 'shards' ? (splitShard(r.name)?.file ?? r.name) : r.name
}

// ---------------------------------------------------------------------------------------------
// Comparing

/** What differs between a manifest and the folder now, per file. */
export interface ManifestDiff {
  /** True when nothing was added, removed or changed. */
  equal: boolean
  added: string[]
  removed: string[]
  changed: string[]
  expectedRoot: string
  actualRoot: string
}

/** Files added, removed and changed from `expected` to `actual` (both in the same serialization). */
export function diffManifests (expected: Manifest, actual: Manifest): ManifestDiff {
  const byFile = (m: Manifest): Map<string, string> => {
    const out = new Map<string, string>()
    for (const r of m.predicate.resources) {
      const f = fileOfResource(m, r)
      out.set(f, (out.get(f) ?? '') + `${r.name}=${r.digest};`)
    }
    return out
  }
  const a = byFile(expected)
  const b = byFile(actual)
  const added = [...b.keys()].filter(k => !a.has(k))
  const removed = [...a.keys()].filter(k => !b.has(k))
  const changed = [...a.keys()].filter(k => b.has(k) && b.get(k) !== a.get(k))
  const expectedRoot = expected.subject[0].digest.sha256
  const actualRoot = actual.subject[0].digest.sha256
  return { equal: added.length + removed.length + changed.length === 0 && expectedRoot === actualRoot, added, removed, changed, expectedRoot, actualRoot }
}

/**
 * Re-hashes `root` with the manifest's own serialization and names every difference.
 * @throws ForensicsError as hashTree
 */
export async function verifyTree (root: string, expected: Manifest, options: Pick<HashTreeOptions, 'workers' | 'onProgress'> = {}): Promise<ManifestDiff> {
  const s = expected.predicate.serialization
  const actual = await hashTree(root, {
    ...options,
    name: expected.subject[0].name,
    ignore: s.ignore_paths,
    followSymlinks: s.allow_symlinks,
    ...(s.method === 'shards' ? { shardSizeBytes: s.shard_size } : {})
  })
  return diffManifests(expected, actual)
}
