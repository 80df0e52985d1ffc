/**
 * Writes test/vectors/merkle.json: the published RFC 6962 test tree of transparency-dev/merkle,
 * plus every inclusion and consistency proof of that tree up to 8 leaves, generated here.
 * Run: node --import tsx scripts/gen-merkle-vectors.ts
 *
 * The generator deliberately does not import protocol/merkle.ts: it evaluates the RFC 9162 §2.1
 * definitions literally (recursive MTH, PATH, SUBPROOF) so that the tests compare two independent
 * implementations, and it refuses to write anything unless it reproduces every published value.
 */
import { createHash } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

// Copied from github.com/transparency-dev/merkle testonly/constants.go (LeafInputs, RootHashes,
// NodeHashes) — the tree of the certificate-transparency reference tests.
const LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f']
const ROOTS = [
  'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328'
]
const NODE_HASHES = [
  [
    '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
    '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
    '0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7',
    '07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7',
    'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
    '4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658',
    'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
    '46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1'
  ],
  [
    'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
    '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
    '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
    'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0'
  ],
  [
    'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
    '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4'
  ],
  ['5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328']
]

// Copied from github.com/transparency-dev/merkle proof/verify_test.go (inclusionProofs,
// consistencyProofs). The leaf numbers there are 1-based; they are 0-based indices here. The
// entry {0, 0, nil}, which that file itself marks as an invalid path, is left out.
const PUBLISHED_INCLUSION = [
  { index: 0, size: 1, proof: [] },
  {
    index: 0,
    size: 8,
    proof: [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4'
    ]
  },
  {
    index: 5,
    size: 8,
    proof: [
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7'
    ]
  },
  { index: 2, size: 3, proof: ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125'] },
  {
    index: 1,
    size: 5,
    proof: [
      '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b'
    ]
  }
]
const PUBLISHED_CONSISTENCY = [
  { oldSize: 1, newSize: 1, proof: [] },
  {
    oldSize: 1,
    newSize: 8,
    proof: [
      '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4'
    ]
  },
  {
    oldSize: 6,
    newSize: 8,
    proof: [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7'
    ]
  },
  {
    oldSize: 2,
    newSize: 5,
    proof: [
      '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e',
      'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b'
    ]
  },
  {
    oldSize: 6,
    newSize: 7,
    proof: [
      '0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a',
      'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
      'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7'
    ]
  }
]

type Bytes = Buffer

function sha256 (...parts: Bytes[]): Bytes {
  const h = createHash('sha256')
  for (const p of parts) h.update(p)
  return h.digest()
}

// RFC 9162 §2.1.1: the largest power of two smaller than n (n > 1).
function splitPoint (n: number): number {
  let k = 1
  while (k * 2 < n) k *= 2
  return k
}

// RFC 9162 §2.1.1 MTH, recursive exactly as written.
function mth (d: Bytes[]): Bytes {
  if (d.length === 0) return sha256()
  if (d.length === 1) return sha256(Buffer.of(0x00), d[0]!)
  const k = splitPoint(d.length)
  return sha256(Buffer.of(0x01), mth(d.slice(0, k)), mth(d.slice(k)))
}

// RFC 9162 §2.1.3.1 PATH(m, D[n]).
function path (m: number, d: Bytes[]): Bytes[] {
  if (d.length === 1) return []
  const k = splitPoint(d.length)
  return m < k ? [...path(m, d.slice(0, k)), mth(d.slice(k))] : [...path(m - k, d.slice(k)), mth(d.slice(0, k))]
}

// RFC 9162 §2.1.4.1 SUBPROOF(m, D[n], b); PROOF(m, D[n]) = SUBPROOF(m, D[n], true).
function subproof (m: number, d: Bytes[], b: boolean): Bytes[] {
  if (m === d.length) return b ? [] : [mth(d)]
  const k = splitPoint(d.length)
  return m <= k
    ? [...subproof(m, d.slice(0, k), b), mth(d.slice(k))]
    : [...subproof(m - k, d.slice(k), false), mth(d.slice(0, k))]
}

function hex (b: Bytes): string {
  return b.toString('hex')
}

function check (ok: boolean, what: string): void {
  if (!ok) throw new Error(`reference implementation disagrees with the published vectors: ${what}`)
}

function main (): void {
  const data = LEAVES.map((h) => Buffer.from(h, 'hex'))

  for (let n = 0; n <= data.length; n++) check(hex(mth(data.slice(0, n))) === ROOTS[n], `root of size ${n}`)
  NODE_HASHES.forEach((level, l) => level.forEach((h, i) => {
    check(hex(mth(data.slice(i * 2 ** l, (i + 1) * 2 ** l))) === h, `node hash level ${l} index ${i}`)
  }))

  const inclusion = []
  for (let size = 1; size <= data.length; size++) {
    for (let index = 0; index < size; index++) {
      inclusion.push({ index, size, proof: path(index, data.slice(0, size)).map(hex) })
    }
  }
  const consistency = []
  for (let newSize = 1; newSize <= data.length; newSize++) {
    for (let oldSize = 1; oldSize <= newSize; oldSize++) {
      consistency.push({ oldSize, newSize, proof: subproof(oldSize, data.slice(0, newSize), true).map(hex) })
    }
  }

  for (const p of PUBLISHED_INCLUSION) {
    const g = inclusion.find((v) => v.index === p.index && v.size === p.size)
    check(JSON.stringify(g?.proof) === JSON.stringify(p.proof), `inclusion ${p.index}/${p.size}`)
  }
  for (const p of PUBLISHED_CONSISTENCY) {
    const g = consistency.find((v) => v.oldSize === p.oldSize && v.newSize === p.newSize)
    check(JSON.stringify(g?.proof) === JSON.stringify(p.proof), `consistency ${p.oldSize}->${p.newSize}`)
  }

  const vectors = {
    source: 'RFC 6962 §2.1 / RFC 9162 §2.1. Published values: github.com/transparency-dev/merkle testonly/constants.go (commit 582a6ad190b6848f1d26f8bf08ddef29955d9db1) and proof/verify_test.go (commit 02194e9afb6c1d95b5381350007963aa70fff472). Generated values: scripts/gen-merkle-vectors.ts.',
    description: 'RFC 6962 / RFC 9162 §2.1 Merkle tree over SHA-256: leaf hash SHA-256(0x00||d), node hash SHA-256(0x01||l||r). Hashes are hex. roots[n] is the root of the first n leaves; nodeHashes[level][i] is the root of leaves [i*2^level, (i+1)*2^level).',
    published: {
      source: 'github.com/transparency-dev/merkle: testonly/constants.go (LeafInputs, RootHashes, NodeHashes) and proof/verify_test.go (inclusionProofs, consistencyProofs; 1-based leaf numbers there converted to 0-based indices). The same 8-leaf tree as the RFC 6962 reference tests of google/certificate-transparency.',
      leaves: LEAVES,
      roots: ROOTS,
      nodeHashes: NODE_HASHES,
      inclusion: PUBLISHED_INCLUSION,
      consistency: PUBLISHED_CONSISTENCY
    },
    generated: {
      source: 'scripts/gen-merkle-vectors.ts: RFC 9162 §2.1.3.1 PATH and §2.1.4.1 PROOF/SUBPROOF evaluated literally (recursively) over the published leaves, after reproducing every published root, node hash and proof. Do not edit by hand.',
      inclusion,
      consistency
    }
  }

  const out = join(dirname(fileURLToPath(import.meta.url)), '..', 'test', 'vectors', 'merkle.json')
  mkdirSync(dirname(out), { recursive: true })
  writeFileSync(out, JSON.stringify(vectors, null, 2) + '\n')
  process.stderr.write(`wrote ${out}: ${inclusion.length} inclusion and ${consistency.length} consistency proofs\n`)
}

main()
