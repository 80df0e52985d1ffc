/**
 * Tensor commitments and salts (docs/PROTOCOL.md §Tensor commitments): the published vectors,
 * the byte layout rebuilt here independently, sensitivity to every covered part, and the
 * TENSOR_INVALID rules.
 */
import { createHash, createHmac } from 'node:crypto'
import { readFileSync } from 'node:fs'
import t from 'tap'
import {
  commitDigest, commitTensor, deriveSalt, deriveSubjectSalt, digestTensor, fromHex, toHex, ProtocolError, SALT_BYTES, TENSOR_DTYPES,
  type TensorLike
} from '../../protocol/index.js'

const vectors = JSON.parse(readFileSync(new URL('../vectors/records.json', import.meta.url), 'utf8')) as {
  salt: { secret: string, seq: number, salt: string }
  tensors: Array<{ name: string, type: string, dims: number[], data: string | string[], salt: string, preimage: string, commitment: string }>
}

const SALT = Uint8Array.from({ length: 32 }, (_, i) => 0xa0 + i)

// The layout of docs/PROTOCOL.md, written out again: domain ‖ salt ‖ u32be name length ‖ name ‖
// u8 dtype ‖ u8 rank ‖ u64be dims ‖ u64be data length ‖ SHA-256(data).
function referenceCommit (salt: Uint8Array, name: string, code: number, dims: number[], data: Uint8Array): string {
  const u32 = Buffer.alloc(4)
  const name8 = Buffer.from(name, 'utf8')
  u32.writeUInt32BE(name8.length)
  const dims8 = Buffer.alloc(8 * dims.length)
  dims.forEach((d, i) => dims8.writeBigUInt64BE(BigInt(d), 8 * i))
  const len = Buffer.alloc(8)
  len.writeBigUInt64BE(BigInt(data.length))
  return createHash('sha256')
    .update('edge-provenance/tensor/v1\0').update(salt).update(u32).update(name8).update(Uint8Array.of(code, dims.length))
    .update(dims8).update(len).update(createHash('sha256').update(data).digest())
    .digest('hex')
}

function stringBytes (values: string[]): Uint8Array {
  return new Uint8Array(Buffer.concat(values.map(s => {
    const b = Buffer.from(s, 'utf8')
    const len = Buffer.alloc(4)
    len.writeUInt32BE(b.length)
    return Buffer.concat([len, b])
  })))
}

t.test('behavior: the published tensor and salt vectors', async t => {
  const salt = deriveSalt(fromHex(vectors.salt.secret), vectors.salt.seq)
  t.equal(toHex(salt), vectors.salt.salt)
  t.ok(vectors.tensors.length >= 2)
  for (const v of vectors.tensors) {
    const tensor: TensorLike = Array.isArray(v.data)
      ? { type: v.type, dims: v.dims, data: v.data }
      : { type: v.type, dims: v.dims, data: new Float32Array(fromHex(v.data).buffer) }
    t.equal(toHex(commitTensor(fromHex(v.salt), v.name, tensor)), v.commitment, `commitment of ${v.name}`)
    t.equal(toHex(createHash('sha256').update(fromHex(v.preimage)).digest()), v.commitment, `preimage of ${v.name}`)
  }
})

t.test('behavior: deriveSalt is HMAC-SHA256(secret, "edge-provenance/salt/v1\\0" ‖ u64be(seq))', async t => {
  const secret = new Uint8Array(32).fill(7)
  for (const seq of [0, 1, 255, 256, 2 ** 32, 2 ** 53 - 1]) {
    const seqBytes = Buffer.alloc(8)
    seqBytes.writeBigUInt64BE(BigInt(seq))
    const expected = createHmac('sha256', secret).update('edge-provenance/salt/v1\0').update(seqBytes).digest('hex')
    t.equal(toHex(deriveSalt(secret, seq)), expected, `seq ${seq}`)
  }
  t.not(toHex(deriveSalt(secret, 1)), toHex(deriveSalt(secret, 2)), 'salts differ per seq')
  t.not(toHex(deriveSalt(secret, 1)), toHex(deriveSalt(new Uint8Array(32).fill(8), 1)), 'salts differ per secret')
  t.equal(deriveSalt(new Uint8Array(64), 0).length, SALT_BYTES, 'a longer secret is fine')
  t.throws(() => deriveSalt(new Uint8Array(31), 0), RangeError, 'secret under 32 bytes')
  for (const seq of [-1, 1.5, NaN, 2 ** 53]) t.throws(() => deriveSalt(secret, seq), RangeError, `seq ${seq}`)
})

t.test('behavior: the salts are createHmac\'s bytes for secrets of every length around the SHA-256 block, subject salts too', async t => {
  const hmac = (key: Uint8Array, domain: string, seq: number): string => {
    const seqBytes = Buffer.alloc(8)
    seqBytes.writeBigUInt64BE(BigInt(seq))
    return createHmac('sha256', key).update(domain).update(seqBytes).digest('hex')
  }
  for (const length of [32, 63, 64, 65, 100, 200]) {
    const secret = Uint8Array.from({ length }, (_, i) => (i * 37 + length) & 0xff)
    for (const seq of [0, 7, 2 ** 32 - 1, 2 ** 32 + 5, 2 ** 53 - 1]) {
      t.equal(toHex(deriveSalt(secret, seq)), hmac(secret, 'edge-provenance/salt/v1\0', seq), `secret of ${length} bytes, seq ${seq}`)
    }
    t.same([...secret], Array.from({ length }, (_, i) => (i * 37 + length) & 0xff), 'the secret is left as it was')
  }
  const key = new Uint8Array(32).fill(9)
  t.equal(toHex(deriveSubjectSalt(key, 2 ** 40 + 3)), hmac(key, 'edge-provenance/salt/v2\0', 2 ** 40 + 3))
})

t.test('behavior: commitDigest writes dims and lengths above 2^32 as u64be, as the layout says', async t => {
  const digest = { dtypeCode: 2, dims: [2 ** 33 + 1, 0, 3], byteLength: 2 ** 40 + 7, dataHash: new Uint8Array(32).fill(0xab) }
  const u64 = (n: number): Buffer => { const b = Buffer.alloc(8); b.writeBigUInt64BE(BigInt(n)); return b }
  const name = Buffer.from('größe', 'utf8')
  const nameLength = Buffer.alloc(4)
  nameLength.writeUInt32BE(name.length)
  const expected = createHash('sha256').update('edge-provenance/tensor/v1\0').update(SALT).update(nameLength).update(name)
    .update(Uint8Array.of(2, 3)).update(u64(2 ** 33 + 1)).update(u64(0)).update(u64(3)).update(u64(2 ** 40 + 7)).update(digest.dataHash).digest('hex')
  t.equal(toHex(commitDigest(SALT, 'größe', digest)), expected)
  for (const dims of [[-1], [1.5], [2 ** 53]]) t.throws(() => commitDigest(SALT, 'x', { ...digest, dims }), RangeError, `dims ${String(dims)}`)
  t.throws(() => commitDigest(SALT, 'x', { ...digest, dims: new Array<number>(256).fill(1) }), RangeError, 'rank above 255')
})

t.test('behavior: every dtype commits to the layout, from typed arrays of the matching width', async t => {
  const cases: Array<[keyof typeof TENSOR_DTYPES, ArrayBufferView]> = [
    ['float32', new Float32Array([1.5, -2, 0, 3.25, 1e-7, Infinity])],
    ['uint8', new Uint8Array([0, 1, 2, 253, 254, 255])],
    ['int8', new Int8Array([-128, -1, 0, 1, 2, 127])],
    ['uint16', new Uint16Array([0, 1, 2, 3, 65534, 65535])],
    ['int16', new Int16Array([-32768, -1, 0, 1, 2, 32767])],
    ['int32', new Int32Array([-(2 ** 31), -1, 0, 1, 2, 2 ** 31 - 1])],
    ['int64', new BigInt64Array([-(2n ** 63n), -1n, 0n, 1n, 2n, 2n ** 63n - 1n])],
    ['bool', new Uint8Array([0, 1, 1, 0, 0, 1])],
    ['float16', new Uint16Array([0x3c00, 0xbc00, 0, 0x7c00, 0x7e00, 1])],
    ['float64', new Float64Array([Math.PI, -0, 0, 1e300, -1e-300, NaN])],
    ['uint32', new Uint32Array([0, 1, 2, 3, 2 ** 32 - 2, 2 ** 32 - 1])],
    ['uint64', new BigUint64Array([0n, 1n, 2n, 3n, 2n ** 64n - 2n, 2n ** 64n - 1n])]
  ]
  for (const [type, data] of cases) {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    const got = toHex(commitTensor(SALT, 'x', { type, dims: [2, 3], data }))
    t.equal(got, referenceCommit(SALT, 'x', TENSOR_DTYPES[type], [2, 3], bytes), `${type} (code ${TENSOR_DTYPES[type]})`)
  }
  const strings = ['', 'a', 'résumé', '\u{1F600}']
  t.equal(toHex(commitTensor(SALT, 'labels', { type: 'string', dims: [2, 2], data: strings })),
    referenceCommit(SALT, 'labels', 8, [2, 2], stringBytes(strings)), 'string (code 8)')
  t.same(TENSOR_DTYPES, { float32: 1, uint8: 2, int8: 3, uint16: 4, int16: 5, int32: 6, int64: 7, string: 8, bool: 9, float16: 10, float64: 11, uint32: 12, uint64: 13 },
    'codes are ONNX TensorProto.DataType')
})

t.test('behavior: scalars, empty tensors and offset views', async t => {
  t.equal(toHex(commitTensor(SALT, 's', { type: 'float32', dims: [], data: new Float32Array([2]) })),
    referenceCommit(SALT, 's', 1, [], new Uint8Array(new Float32Array([2]).buffer)), 'rank 0: one element')
  t.equal(toHex(commitTensor(SALT, 'e', { type: 'int32', dims: [3, 0], data: new Int32Array(0) })),
    referenceCommit(SALT, 'e', 6, [3, 0], new Uint8Array()), 'an empty tensor')
  t.equal(toHex(commitTensor(SALT, '', { type: 'uint8', dims: [1], data: new Uint8Array(1) })),
    referenceCommit(SALT, '', 2, [1], new Uint8Array(1)), 'an empty name')
  // Only the view's own bytes count, not the rest of its buffer (onnxruntime hands out views).
  const backing = new Float32Array([9, 9, 1, 2, 3, 4, 9, 9])
  const view = backing.subarray(2, 6)
  t.equal(toHex(commitTensor(SALT, 'v', { type: 'float32', dims: [4], data: view })),
    toHex(commitTensor(SALT, 'v', { type: 'float32', dims: [4], data: new Float32Array([1, 2, 3, 4]) })), 'offset view')
  const bytes = new Uint8Array(new Float32Array([1, 2]).buffer)
  const unaligned = new Uint8Array(9)
  unaligned.set(bytes, 1)
  t.equal(toHex(commitTensor(SALT, 'v', { type: 'float32', dims: [2], data: new DataView(unaligned.buffer, 1, 8) })),
    toHex(commitTensor(SALT, 'v', { type: 'float32', dims: [2], data: new Float32Array([1, 2]) })), 'a DataView over raw bytes')
})

t.test('behavior: the commitment changes with salt, name, dtype, shape and every data byte', async t => {
  const data = new Uint8Array(24).map((_, i) => i)
  const base = toHex(commitTensor(SALT, 'input', { type: 'int32', dims: [2, 3], data }))
  const seen = new Set([base])
  const differs = (what: string, c: Uint8Array): void => {
    const hex = toHex(c)
    t.notOk(seen.has(hex), what)
    seen.add(hex)
  }
  differs('another salt', commitTensor(SALT.map(b => b ^ 1), 'input', { type: 'int32', dims: [2, 3], data }))
  differs('another name', commitTensor(SALT, 'input2', { type: 'int32', dims: [2, 3], data }))
  differs('same bytes as float32', commitTensor(SALT, 'input', { type: 'float32', dims: [2, 3], data }))
  differs('same bytes as uint32', commitTensor(SALT, 'input', { type: 'uint32', dims: [2, 3], data }))
  differs('same bytes as int16 [4, 3]', commitTensor(SALT, 'input', { type: 'int16', dims: [4, 3], data }))
  differs('reshaped [3, 2]', commitTensor(SALT, 'input', { type: 'int32', dims: [3, 2], data }))
  differs('reshaped [6]', commitTensor(SALT, 'input', { type: 'int32', dims: [6], data }))
  differs('reshaped [1, 2, 3]', commitTensor(SALT, 'input', { type: 'int32', dims: [1, 2, 3], data }))
  for (let i = 0; i < data.length; i++) {
    const d = data.slice()
    d[i]! ^= 0x80
    differs(`byte ${i} changed`, commitTensor(SALT, 'input', { type: 'int32', dims: [2, 3], data: d }))
  }
  // Length prefixes keep element boundaries: ["ab", "c"] is not ["a", "bc"].
  differs('strings ab|c', commitTensor(SALT, 's', { type: 'string', dims: [2], data: ['ab', 'c'] }))
  differs('strings a|bc', commitTensor(SALT, 's', { type: 'string', dims: [2], data: ['a', 'bc'] }))
  // The name is length-prefixed too: name "ab" + data is not name "a" + shifted bytes.
  differs('name a', commitTensor(SALT, 'a', { type: 'uint8', dims: [1], data: Uint8Array.of(0x62) }))
  differs('name ab', commitTensor(SALT, 'ab', { type: 'uint8', dims: [1], data: Uint8Array.of(0x62) }))
})

t.test('behavior: digestTensor needs no salt and commitDigest completes it', async t => {
  const tensor: TensorLike = { type: 'float32', dims: [1, 4], data: new Float32Array([1, 2, 3, 4]) }
  const digest = digestTensor('x', tensor)
  t.same({ ...digest, dataHash: toHex(digest.dataHash) }, {
    dtypeCode: 1, dims: [1, 4], byteLength: 16, dataHash: createHash('sha256').update(new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer)).digest('hex')
  })
  t.equal(toHex(commitDigest(SALT, 'x', digest)), toHex(commitTensor(SALT, 'x', tensor)))
  const s = digestTensor('s', { type: 'string', dims: [2], data: ['ab', 'c'] })
  t.equal(s.byteLength, 4 + 2 + 4 + 1)
  t.throws(() => commitDigest(new Uint8Array(31), 'x', digest), RangeError, 'salt of 31 bytes')
  t.throws(() => commitTensor(new Uint8Array(33), 'x', tensor), RangeError, 'salt of 33 bytes')
})

t.test('error: unsupported dtypes, bad dims and data that does not fit → TENSOR_INVALID', async t => {
  const bad: Array<[string, TensorLike]> = [
    ['unknown dtype', { type: 'complex64', dims: [1], data: new Float32Array(2) }],
    ['bfloat16 (not supported)', { type: 'bfloat16', dims: [1], data: new Uint16Array(1) }],
    ['negative dimension', { type: 'uint8', dims: [-1], data: new Uint8Array(0) }],
    ['fractional dimension', { type: 'uint8', dims: [1.5], data: new Uint8Array(1) }],
    ['NaN dimension', { type: 'uint8', dims: [NaN], data: new Uint8Array(1) }],
    ['dims not an array', { type: 'uint8', dims: 3 as unknown as number[], data: new Uint8Array(3) }],
    ['rank 33', { type: 'uint8', dims: new Array<number>(33).fill(1), data: new Uint8Array(1) }],
    ['too few bytes', { type: 'float32', dims: [2, 2], data: new Float32Array(3) }],
    ['too many bytes', { type: 'float32', dims: [2, 2], data: new Float32Array(5) }],
    ['wrong width: int64 from Int32Array', { type: 'int64', dims: [2], data: new Int32Array(2) }],
    ['numeric tensor with string data', { type: 'float32', dims: [1], data: ['1.0'] }],
    ['string tensor with a typed array', { type: 'string', dims: [1], data: new Uint8Array(1) }],
    ['string tensor with too few strings', { type: 'string', dims: [3], data: ['a', 'b'] }],
    ['string tensor with a non-string', { type: 'string', dims: [2], data: ['a', 1 as unknown as string] }],
    ['overflowing element count', { type: 'uint8', dims: [2 ** 30, 2 ** 30, 2 ** 30], data: new Uint8Array(8) }]
  ]
  for (const [what, tensor] of bad) {
    t.throws(() => commitTensor(SALT, 'x', tensor), { constructor: ProtocolError, code: 'TENSOR_INVALID' }, what)
  }
  t.ok(commitTensor(SALT, 'x', { type: 'uint8', dims: new Array<number>(32).fill(1), data: new Uint8Array(1) }), 'rank 32 is fine')
})
