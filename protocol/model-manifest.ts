/**
 * The second model identity: a manifest of every weight tensor (name, dtype, dims, SHA-256 of its
 * canonical little-endian bytes) plus a hash of the graph without its weights, so two versions of a
 * model can be compared tensor by tensor. Pure: bytes in, manifest out; no I/O.
 */

import { createRequire } from 'node:module'
import type { onnx } from 'onnx-proto'
import { ModelError, type ModelErrorCode } from './model-errors.js'
import { checkModelWireFormat } from './onnx-wire-check.js'
import { readModelOnePass } from './onnx-one-pass.js'
import { sha256, sha256Hex, toHex } from './hash.js'

/**
 * onnx-proto's ModelProto (protobufjs), loaded on first use: the one pass reads the models
 * exporters write without it, and loading it costs a process ~25 ms (~70 through the ESM loader,
 * which scans CommonJS sources for their exports).
 */
function protobufModelProto (): typeof onnx.ModelProto {
  if (modelProto === undefined) {
    const proto = createRequire(import.meta.url)('onnx-proto') as { onnx: typeof onnx }
    modelProto = proto.onnx.ModelProto
  }
  return modelProto
}
let modelProto: typeof onnx.ModelProto | undefined

/** onnx.TensorProto.DataLocation.EXTERNAL. */
const DATA_LOCATION_EXTERNAL = 1

/** Ranks above this are refused: no real model has them, and they only make the checks slower. */
export const MAX_TENSOR_RANK = 32
/** Nesting limit for subgraphs (If/Loop/Scan bodies inside bodies). */
export const MAX_SUBGRAPH_DEPTH = 64
/** IR versions outside 1..MAX_IR_VERSION mean the bytes are not a model (ONNX is at 10-11 now). */
const MAX_IR_VERSION = 100

/** One weight tensor: a graph initializer, a subgraph initializer or a node's tensor attribute. */
export interface ManifestTensor {
  /**
   * Unique name. Top-level initializers keep their own name; a subgraph's initializer is
   * `<node>/<attribute>/<name>`, a tensor attribute `<node>/<attribute>` (`[i]` for lists), where
   * `<node>` is the node's name, else its first output, else `<opType>#<index in its graph>`
   * (so an unnamed Constant producing `conv1.w` gives `conv1.w/value`); functions prefix
   * `function:<domain>:<name>/`, training graphs `training_info[i]/<initialization|algorithm>/`.
   * Clashing names get `~2`, `~3`… in traversal order.
   */
  readonly name: string
  /** Element type, e.g. 'float32', 'int64', 'string', 'float16' (onnxruntime's spelling). */
  readonly dtype: string
  readonly dims: readonly number[]
  /** Length of the canonical bytes that were hashed. */
  readonly byteLength: number
  /** SHA-256 (hex) of the canonical bytes: what `raw_data` holds (see canonicalTensorBytes). */
  readonly sha256: string
}

/** A graph input or output. `dims` entries: a size, a symbolic name, or null when unknown. */
export interface ManifestValue {
  readonly name: string
  /** Element type of a tensor, or 'sequence' | 'map' | 'optional' | 'sparse_tensor' | 'unknown'. */
  readonly dtype: string
  /** null when the model declares no shape. */
  readonly dims: ReadonlyArray<number | string | null> | null
}

export interface ModelManifest {
  /** SHA-256 (hex) of the file bytes: the model's name. */
  readonly fileHash: string
  /** SHA-256 (hex) of the model without tensor data (see computeGraphHash below). */
  readonly graphHash: string
  /** SHA-256 (hex) of the canonical manifest text (see encodeManifestText). */
  readonly manifestHash: string
  readonly irVersion: number
  /** Operator sets; domain '' is the default ai.onnx domain. */
  readonly opsets: ReadonlyArray<{ readonly domain: string, readonly version: number }>
  readonly producer: { readonly name: string, readonly version: string }
  /** Graph inputs a caller must feed (inputs that are also initializers are left out). */
  readonly inputs: readonly ManifestValue[]
  readonly outputs: readonly ManifestValue[]
  /** All weight tensors, sorted by the UTF-8 bytes of their names. */
  readonly initializers: readonly ManifestTensor[]
  /**
   * Fields unknown to onnx-proto's schema (ONNX 1.10.2), e.g. node metadata_props of newer
   * exporters. Decoding drops them, so neither graphHash nor the tensors cover them: when this is
   * not 0, a manifest diff can miss a change there. fileHash still covers every byte.
   */
  readonly unknownFields: number
}

export interface ManifestDiff {
  /** Tensors only in the second manifest, sorted. */
  readonly added: string[]
  /** Tensors only in the first manifest, sorted. */
  readonly removed: string[]
  /** Tensors in both whose dtype, dims or bytes differ, sorted by name. */
  readonly changed: Array<{ readonly name: string, readonly before: ManifestTensor, readonly after: ManifestTensor }>
  readonly graphChanged: boolean
}

export interface BuildManifestOptions {
  /** SHA-256 of `bytes` when the caller already has it (the loader does); computed otherwise. */
  readonly fileHash?: Uint8Array
  /**
   * Reads the model the defining way - wire check, protobufjs decode, graph re-encoded - even
   * where the one pass (onnx-one-pass.ts) would give the same manifest. For cross-checks.
   */
  readonly viaProtobufjs?: boolean
}

/**
 * Parses an ONNX model and computes its manifest. The bytes are not modified.
 * @throws {ModelError} MODEL_NOT_ONNX, MODEL_CORRUPT, MODEL_EXTERNAL_DATA
 */
export function buildModelManifest (bytes: Uint8Array, options: BuildManifestOptions = {}): ModelManifest {
  return prepareManifest(bytes, options.fileHash, options.viaProtobufjs === true)(sha256Hex)
}

/** buildModelManifest in two steps (see prepareModelManifest). */
export interface PendingModelManifest {
  /**
   * The manifest, once the tensor hashes are in: `known` maps a byte range of `bytes`
   * (`<offset>:<length>`) to the SHA-256 (hex) of exactly those bytes. A tensor whose raw_data is
   * such a range takes that hash; any other is hashed here.
   */
  complete: (known: ReadonlyMap<string, string>) => ModelManifest
}

/**
 * buildModelManifest for the loader, which may hash the raw_data of many tensors on other threads
 * while it reads the file: this first step does all the rest (the one pass, or wire check, decode
 * and re-encoding; canonical bytes; graph hash) while those hashes are still being computed;
 * `complete` adds them, hashing any tensor not in the map. Same manifest as
 * buildModelManifest on the same bytes. Internal to agent/model (not exported by index.ts): a
 * wrong map gives a wrong manifest.
 * @throws {ModelError} MODEL_NOT_ONNX, MODEL_CORRUPT, MODEL_EXTERNAL_DATA
 */
export function prepareModelManifest (bytes: Uint8Array, fileHash: Uint8Array): PendingModelManifest {
  const finish = prepareManifest(bytes, fileHash, false)
  return {
    complete: (known) => finish((data) => {
      if (data.buffer === bytes.buffer && known.size > 0) {
        const hit = known.get(`${data.byteOffset - bytes.byteOffset}:${data.byteLength}`)
        if (hit !== undefined) return hit
      }
      return sha256Hex(data)
    })
  }
}

/** Everything but the tensor hashes; what it returns takes a hash function and completes the manifest. */
function prepareManifest (bytes: Uint8Array, givenFileHash: Uint8Array | undefined, viaProtobufjs: boolean): (hashData: (data: Uint8Array) => string) => ModelManifest {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('bytes must be a Uint8Array')
  const fileHash = givenFileHash ?? sha256(bytes)
  if (fileHash.length !== 32) throw new RangeError('fileHash must be 32 bytes')
  if (bytes.length === 0) throw new ModelError('MODEL_NOT_ONNX', 'model file is empty')

  // Whether a failure means "not a model at all" or "a broken model" depends on how the bytes begin.
  const structuralCode: ModelErrorCode = startsLikeOnnx(bytes) ? 'MODEL_CORRUPT' : 'MODEL_NOT_ONNX'
  // The models exporters write are read in one pass; any other form goes the defining way below.
  const onePass = viaProtobufjs ? undefined : readModelOnePass(bytes)
  if (onePass !== undefined) {
    const graphHash = sha256Hex(onePass.graphBytes)
    return checkedSummary(onePass.model, structuralCode, fileHash, onePass.unknownFields, () => graphHash)
  }
  let unknownFields: number
  try {
    unknownFields = checkModelWireFormat(bytes).unknownFields
  } catch (e) {
    // WireFormatError, or a RangeError from the stack on absurdly nested groups.
    throw new ModelError(structuralCode, `malformed ModelProto: ${describe(e)}`, { cause: e })
  }
  // A Buffer view (no copy) makes protobufjs decode strings with Node's UTF-8 decoder, which
  // replaces invalid sequences instead of producing lone surrogates.
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  let model: onnx.ModelProto
  try {
    model = protobufModelProto().decode(buffer)
  } catch (e) {
    // After the wire check this is rare (a bad varint inside a packed block): still the bytes' fault.
    throw new ModelError(structuralCode, `cannot decode ModelProto: ${describe(e)}`, { cause: e })
  }
  return checkedSummary(model, structuralCode, fileHash, unknownFields, (tensors) => computeGraphHash(model, tensors))
}

/** The model-level checks, then summarise (both ways of reading a model end here). */
function checkedSummary (model: onnx.IModelProto, structuralCode: ModelErrorCode, fileHash: Uint8Array, unknownFields: number, graphHashOf: (tensors: readonly onnx.ITensorProto[]) => string): (hashData: (data: Uint8Array) => string) => ModelManifest {
  const irVersion = toSafeNumber(model.irVersion)
  if (irVersion === undefined || irVersion < 1 || irVersion > MAX_IR_VERSION) {
    throw new ModelError(structuralCode, 'no plausible ir_version')
  }
  const graph = model.graph
  if (graph === null || graph === undefined || !Object.hasOwn(model, 'graph')) {
    throw new ModelError(structuralCode, 'ModelProto has no graph')
  }
  if ((model.opsetImport ?? []).length === 0) throw new ModelError(structuralCode, 'ModelProto has no opset_import')
  const finish = asCorrupt(() => summarise(model, graph, irVersion, fileHash, unknownFields, graphHashOf))
  return (hashData) => asCorrupt(() => finish(hashData))
}

function asCorrupt<T> (fn: () => T): T {
  try {
    return fn()
  } catch (e) {
    if (e instanceof ModelError) throw e
    // Nothing else is expected to throw; if it does, the cause is in these bytes.
    throw new ModelError('MODEL_CORRUPT', `cannot process model: ${describe(e)}`, { cause: e })
  }
}

/** Walks the tensors and hashes the graph; what it returns hashes the tensors and summarises. */
function summarise (model: onnx.IModelProto, graph: onnx.IGraphProto, irVersion: number, fileHash: Uint8Array, unknownFields: number, graphHashOf: (tensors: readonly onnx.ITensorProto[]) => string): (hashData: (data: Uint8Array) => string) => ModelManifest {
  const collector = new TensorCollector()
  collector.walkGraph(graph, '', 0)
  ;(model.trainingInfo ?? []).forEach((info, i) => {
    if (info.initialization != null) collector.walkGraph(info.initialization, `training_info[${i}]/initialization`, 0)
    if (info.algorithm != null) collector.walkGraph(info.algorithm, `training_info[${i}]/algorithm`, 0)
  })
  for (const fn of model.functions ?? []) {
    collector.walkNodes(fn.node ?? [], `function:${fn.domain ?? ''}:${fn.name ?? ''}`, 0)
  }

  const graphHash = graphHashOf(collector.tensors)

  const initializerNames = new Set((graph.initializer ?? []).map((t) => t.name))
  const head = {
    fileHash: toHex(fileHash),
    graphHash,
    irVersion,
    opsets: (model.opsetImport ?? []).map((o) => ({ domain: o.domain ?? '', version: toSafeNumber(o.version) ?? 0 })),
    producer: { name: model.producerName ?? '', version: model.producerVersion ?? '' },
    inputs: (graph.input ?? []).filter((v) => !initializerNames.has(v.name)).map(describeValue),
    outputs: (graph.output ?? []).map(describeValue)
  }
  const pending = sortByName(collector.entries)
  return (hashData) => {
    const initializers = pending.map(({ name, dtype, dims, bytes }): ManifestTensor => ({ name, dtype, dims, byteLength: bytes.length, sha256: hashData(bytes) }))
    const { fileHash, irVersion, opsets, producer, inputs, outputs } = head
    return { fileHash, graphHash, manifestHash: hashManifest({ graphHash, initializers }), irVersion, opsets, producer, inputs, outputs, initializers, unknownFields }
  }
}

/**
 * The canonical manifest text whose SHA-256 is `manifestHash`, in UTF-8:
 *
 *   graph\t<graphHash hex>\n
 *   <name>\t<dtype>\t<dims joined by ','>\t<sha256 hex>\n      one line per tensor
 *
 * Tensor lines are sorted by the UTF-8 bytes of the name (names are unique). In names, `\` is
 * written `\\`, TAB `\t`, LF `\n` and CR `\r`, so a name cannot forge a field or a line. A scalar
 * has an empty dims field. Hex is lower case.
 */
export function encodeManifestText (manifest: Pick<ModelManifest, 'graphHash' | 'initializers'>): string {
  const lines = [`graph\t${manifest.graphHash}\n`]
  for (const t of sortByName(manifest.initializers)) {
    lines.push(`${escapeName(t.name)}\t${t.dtype}\t${t.dims.join(',')}\t${t.sha256}\n`)
  }
  return lines.join('')
}

/** SHA-256 (hex) of encodeManifestText: recomputes a manifest's `manifestHash`. */
export function hashManifest (manifest: Pick<ModelManifest, 'graphHash' | 'initializers'>): string {
  return sha256Hex(Buffer.from(encodeManifestText(manifest), 'utf8'))
}

/** Names the tensors added, removed and changed from `before` to `after`; linear in their size. */
export function diffManifests (before: Pick<ModelManifest, 'graphHash' | 'initializers'>, after: Pick<ModelManifest, 'graphHash' | 'initializers'>): ManifestDiff {
  const old = new Map(before.initializers.map((t) => [t.name, t]))
  const added: ManifestTensor[] = []
  const changed: Array<{ name: string, before: ManifestTensor, after: ManifestTensor }> = []
  for (const t of after.initializers) {
    const prev = old.get(t.name)
    if (prev === undefined) {
      added.push(t)
    } else {
      old.delete(t.name)
      if (prev.sha256 !== t.sha256 || prev.dtype !== t.dtype || prev.dims.join(',') !== t.dims.join(',')) {
        changed.push({ name: t.name, before: prev, after: t })
      }
    }
  }
  return {
    added: sortByName(added).map((t) => t.name),
    removed: sortByName([...old.values()]).map((t) => t.name),
    changed: sortByName(changed),
    graphChanged: before.graphHash !== after.graphHash
  }
}

// ---------------------------------------------------------------------------------------------
// Graph hash

/**
 * graphHash = SHA-256 of `onnx.ModelProto.encode(m).finish()`, where `m` is the model as decoded
 * by onnx-proto (protobufjs 6, ONNX 1.10.2 schema) after, in every tensor the manifest lists, the
 * data fields raw_data (9), float_data (4), int32_data (5), string_data (6), int64_data (7),
 * double_data (10) and uint64_data (11) were cleared. Names, data types, dims, doc strings, nodes,
 * attributes, inputs/outputs, opsets, metadata and sparse tensors (not listed, so hashed here in
 * full) all stay.
 *
 * Assumption: protobufjs's static encoder is deterministic for a decoded object: it writes the
 * fields of each message in field-number order, repeated numeric fields in their declared
 * (packed/unpacked) form, varints minimal, and only fields present in the decoded bytes. So the
 * hash depends on the decoded content, not on how the exporter laid the bytes out. Fields unknown
 * to the schema are dropped by decoding and are not covered (see ModelManifest.unknownFields);
 * checkModelWireFormat has already refused the inputs protobufjs would read differently from
 * onnxruntime (duplicate singular messages, wrong wire types), so what is hashed is what runs.
 * onnx-one-pass.ts writes the same bytes from the wire bytes in one pass for the forms exporters
 * write; this re-encoding is the definition and the path for every other input.
 * Mutates `model`: call it last.
 */
function computeGraphHash (model: onnx.ModelProto, tensors: readonly onnx.ITensorProto[]): string {
  for (const t of tensors) {
    delete t.rawData
    t.floatData = []
    t.int32Data = []
    t.stringData = []
    t.int64Data = []
    t.doubleData = []
    t.uint64Data = []
  }
  return sha256Hex(protobufModelProto().encode(model).finish())
}

// ---------------------------------------------------------------------------------------------
// Tensor traversal

/** A tensor of the manifest before its hash: the canonical bytes still to be hashed. */
interface UnhashedTensor {
  readonly name: string
  readonly dtype: string
  readonly dims: readonly number[]
  readonly bytes: Uint8Array
}

class TensorCollector {
  readonly entries: UnhashedTensor[] = []
  readonly tensors: onnx.ITensorProto[] = []
  private readonly taken = new Set<string>()
  private readonly nextSuffix = new Map<string, number>()

  walkGraph (graph: onnx.IGraphProto, scope: string, depth: number): void {
    if (depth > MAX_SUBGRAPH_DEPTH) throw new ModelError('MODEL_CORRUPT', `subgraphs nested deeper than ${MAX_SUBGRAPH_DEPTH}`)
    for (const init of graph.initializer ?? []) this.addTensor(joinName(scope, init.name ?? ''), init)
    for (const sparse of graph.sparseInitializer ?? []) refuseExternalSparse(sparse, scope)
    this.walkNodes(graph.node ?? [], scope, depth)
  }

  walkNodes (nodes: readonly onnx.INodeProto[], scope: string, depth: number): void {
    nodes.forEach((node, index) => {
      // Unnamed nodes (common: exporters rarely name Constant nodes) go by their first output,
      // which is unique in the graph and survives the insertion of other nodes.
      const label = nonEmpty(node.name) ?? nonEmpty(node.output?.[0]) ?? `${node.opType ?? ''}#${index}`
      for (const attr of node.attribute ?? []) {
        const base = joinName(joinName(scope, label), attr.name ?? '')
        // Walk by presence rather than by attr.type: every tensor in the file gets hashed.
        if (attr.t != null) this.addTensor(base, attr.t)
        attr.tensors?.forEach((t, i) => this.addTensor(`${base}[${i}]`, t))
        if (attr.g != null) this.walkGraph(attr.g, base, depth + 1)
        attr.graphs?.forEach((g, i) => this.walkGraph(g, `${base}[${i}]`, depth + 1))
        if (attr.sparseTensor != null) refuseExternalSparse(attr.sparseTensor, base)
        for (const s of attr.sparseTensors ?? []) refuseExternalSparse(s, base)
      }
    })
  }

  private addTensor (proposed: string, tensor: onnx.ITensorProto): void {
    refuseExternal(tensor, proposed)
    const { dtype, dims, bytes } = canonicalTensorBytes(tensor, proposed)
    const name = this.claimName(proposed)
    this.entries.push({ name, dtype, dims, bytes })
    this.tensors.push(tensor)
  }

  private claimName (proposed: string): string {
    if (!this.taken.has(proposed)) {
      this.taken.add(proposed)
      return proposed
    }
    // Per-name counters keep many clashes of one name linear rather than quadratic.
    let k = this.nextSuffix.get(proposed) ?? 2
    while (this.taken.has(`${proposed}~${k}`)) k++
    this.nextSuffix.set(proposed, k + 1)
    const name = `${proposed}~${k}`
    this.taken.add(name)
    return name
  }
}

function refuseExternal (tensor: onnx.ITensorProto, where: string): void {
  // DataLocation EXTERNAL: those bytes live in another file that onnxruntime would open by
  // path after we hashed this one: exactly the time-of-check/time-of-use gap we exist to close.
  if (Number(tensor.dataLocation) === DATA_LOCATION_EXTERNAL || (tensor.externalData?.length ?? 0) > 0) {
    throw new ModelError('MODEL_EXTERNAL_DATA', `tensor '${where}' keeps its data in an external file`)
  }
}

function refuseExternalSparse (sparse: onnx.ISparseTensorProto, where: string): void {
  if (sparse.values != null) refuseExternal(sparse.values, where)
  if (sparse.indices != null) refuseExternal(sparse.indices, where)
}

// ---------------------------------------------------------------------------------------------
// Canonical tensor bytes

type Int64Like = number | { low: number, high: number }

interface DtypeSpec {
  readonly name: string
  /** Bytes per element; 0 for strings. Ignored when `packed`. */
  readonly size: number
  /** Two 4-bit elements per byte, first element in the low nibble (ONNX 1.16+). */
  readonly packed?: boolean
  /** The typed field that may hold the values instead of raw_data. */
  readonly field: 'floatData' | 'int32Data' | 'int64Data' | 'doubleData' | 'uint64Data' | 'stringData'
  /** How one entry of that field is written: its low bytes, little-endian. */
  readonly write: 'f32' | 'f64' | 'u8' | 'bool' | 'u16' | 'u32' | 'u64' | 'str'
  /** Entries per element (complex numbers are two floats). */
  readonly perElement?: number
}

// ONNX TensorProto.DataType numbers; names follow onnxruntime-node's tensor types where it has one.
const DTYPES: ReadonlyMap<number, DtypeSpec> = new Map<number, DtypeSpec>([
  [1, { name: 'float32', size: 4, field: 'floatData', write: 'f32' }],
  [2, { name: 'uint8', size: 1, field: 'int32Data', write: 'u8' }],
  [3, { name: 'int8', size: 1, field: 'int32Data', write: 'u8' }],
  [4, { name: 'uint16', size: 2, field: 'int32Data', write: 'u16' }],
  [5, { name: 'int16', size: 2, field: 'int32Data', write: 'u16' }],
  [6, { name: 'int32', size: 4, field: 'int32Data', write: 'u32' }],
  [7, { name: 'int64', size: 8, field: 'int64Data', write: 'u64' }],
  [8, { name: 'string', size: 0, field: 'stringData', write: 'str' }],
  [9, { name: 'bool', size: 1, field: 'int32Data', write: 'bool' }],
  [10, { name: 'float16', size: 2, field: 'int32Data', write: 'u16' }],
  [11, { name: 'float64', size: 8, field: 'doubleData', write: 'f64' }],
  [12, { name: 'uint32', size: 4, field: 'uint64Data', write: 'u32' }],
  [13, { name: 'uint64', size: 8, field: 'uint64Data', write: 'u64' }],
  [14, { name: 'complex64', size: 8, field: 'floatData', write: 'f32', perElement: 2 }],
  [15, { name: 'complex128', size: 16, field: 'doubleData', write: 'f64', perElement: 2 }],
  [16, { name: 'bfloat16', size: 2, field: 'int32Data', write: 'u16' }],
  [17, { name: 'float8e4m3fn', size: 1, field: 'int32Data', write: 'u8' }],
  [18, { name: 'float8e4m3fnuz', size: 1, field: 'int32Data', write: 'u8' }],
  [19, { name: 'float8e5m2', size: 1, field: 'int32Data', write: 'u8' }],
  [20, { name: 'float8e5m2fnuz', size: 1, field: 'int32Data', write: 'u8' }],
  [21, { name: 'uint4', size: 1, packed: true, field: 'int32Data', write: 'u8' }],
  [22, { name: 'int4', size: 1, packed: true, field: 'int32Data', write: 'u8' }],
  [23, { name: 'float4e2m1', size: 1, packed: true, field: 'int32Data', write: 'u8' }]
])

const TYPED_FIELDS = ['floatData', 'int32Data', 'int64Data', 'doubleData', 'uint64Data', 'stringData'] as const

/** Name of an ONNX element type number: 'float32', …, or 'dtype<n>' for types newer than this table. */
export function nameOnnxDtype (dataType: number): string {
  return DTYPES.get(dataType)?.name ?? `dtype${dataType}`
}

/**
 * The bytes a tensor's values are hashed as: what `raw_data` holds (little-endian, element after
 * element; 4-bit types two to a byte, low nibble first), whichever field the file used. Values in
 * typed fields are narrowed the way onnxruntime narrows them (int32_data → low 8/16 bits for
 * 8/16-bit types, nonzero → 1 for bool, uint64_data → low 32 bits for uint32). Strings, which raw_data cannot hold,
 * are each an 8-byte little-endian byte length followed by their bytes. NaN payloads in float_data
 * pass through JavaScript numbers and may be normalised; raw_data is hashed exactly.
 */
function canonicalTensorBytes (tensor: onnx.ITensorProto, where: string): { dtype: string, dims: number[], bytes: Uint8Array } {
  const dataType = tensor.dataType ?? 0
  const declared = tensor.dims ?? []
  if (declared.length > MAX_TENSOR_RANK) throw corruptTensor(where, `rank ${declared.length} exceeds ${MAX_TENSOR_RANK}`)
  const dims: number[] = []
  let count = 1n
  for (const d of declared) {
    const v = toBigInt(d as Int64Like)
    if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) throw corruptTensor(where, `dimension ${v} out of range`)
    dims.push(Number(v))
    count *= v
  }

  const spec = DTYPES.get(dataType)
  const raw = Object.hasOwn(tensor, 'rawData') ? tensor.rawData ?? undefined : undefined
  const typed = TYPED_FIELDS.filter((f) => (tensor[f]?.length ?? 0) > 0)
  if (raw !== undefined && typed.length > 0) throw corruptTensor(where, 'holds data in raw_data and in typed fields')
  if (typed.length > 1) throw corruptTensor(where, `holds data in several typed fields (${typed.join(', ')})`)
  if (spec === undefined) {
    // A type newer than this table: raw bytes can still be hashed as they are; typed values cannot
    // be canonicalised without knowing the type.
    if (dataType === 0) throw corruptTensor(where, 'data_type is UNDEFINED')
    if (typed.length > 0) throw corruptTensor(where, `data_type ${dataType} in typed fields is not supported`)
    return { dtype: nameOnnxDtype(dataType), dims, bytes: raw ?? new Uint8Array(0) }
  }

  const perElement = BigInt(spec.perElement ?? 1)
  const expectedEntries = spec.packed === true ? (count + 1n) / 2n : count * perElement
  if (raw !== undefined) {
    if (spec.write === 'str') throw corruptTensor(where, 'string tensor in raw_data')
    const expectedBytes = spec.packed === true ? expectedEntries : count * BigInt(spec.size)
    if (BigInt(raw.length) !== expectedBytes) throw corruptTensor(where, `raw_data has ${raw.length} bytes, dims need ${expectedBytes}`)
    return { dtype: spec.name, dims, bytes: raw }
  }
  const field = typed[0]
  if (field === undefined) {
    if (count !== 0n) throw corruptTensor(where, `no data for ${count} elements`)
    return { dtype: spec.name, dims, bytes: new Uint8Array(0) }
  }
  if (field !== spec.field) throw corruptTensor(where, `${spec.name} values in ${field}`)
  const entries = tensor[field] as readonly unknown[]
  if (BigInt(entries.length) !== expectedEntries) throw corruptTensor(where, `${field} has ${entries.length} entries, dims need ${expectedEntries}`)
  return { dtype: spec.name, dims, bytes: writeEntries(entries, spec.write) }
}

// A function of its own, not a closure in canonicalTensorBytes, which runs once per tensor.
function corruptTensor (where: string, why: string): ModelError {
  return new ModelError('MODEL_CORRUPT', `tensor '${where}': ${why}`)
}

function writeEntries (entries: readonly unknown[], write: DtypeSpec['write']): Uint8Array {
  if (write === 'str') {
    const strings = entries as readonly Uint8Array[]
    let total = 0
    for (const s of strings) total += 8 + s.length
    const out = Buffer.alloc(total)
    let at = 0
    for (const s of strings) {
      out.writeBigUInt64LE(BigInt(s.length), at)
      out.set(s, at + 8)
      at += 8 + s.length
    }
    return out
  }
  const width = { f32: 4, f64: 8, u8: 1, bool: 1, u16: 2, u32: 4, u64: 8 }[write]
  const out = Buffer.alloc(entries.length * width)
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength)
  for (let i = 0; i < entries.length; i++) {
    const v = entries[i]
    switch (write) {
      case 'f32': view.setFloat32(i * 4, v as number, true); break
      case 'f64': view.setFloat64(i * 8, v as number, true); break
      case 'u8': view.setUint8(i, Number(v) & 0xff); break
      case 'bool': view.setUint8(i, Number(v) !== 0 ? 1 : 0); break
      case 'u16': view.setUint16(i * 2, Number(v) & 0xffff, true); break
      case 'u32': view.setUint32(i * 4, Number(BigInt.asUintN(32, toBigInt(v as Int64Like))), true); break
      case 'u64': view.setBigUint64(i * 8, BigInt.asUintN(64, toBigInt(v as Int64Like)), true); break
    }
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Small helpers

function describeValue (v: onnx.IValueInfoProto): ManifestValue {
  const name = v.name ?? ''
  const type = v.type
  if (type?.tensorType != null) {
    const shape = type.tensorType.shape
    if (shape == null) return { name, dtype: nameOnnxDtype(type.tensorType.elemType ?? 0), dims: null }
    const dim = shape.dim ?? []
    if (dim.length > MAX_TENSOR_RANK) throw new ModelError('MODEL_CORRUPT', `value '${name}' has rank ${dim.length}`)
    return {
      name,
      dtype: nameOnnxDtype(type.tensorType.elemType ?? 0),
      dims: dim.map((d) => Object.hasOwn(d, 'dimValue')
        ? toSafeNumber(d.dimValue) ?? null
        : Object.hasOwn(d, 'dimParam') ? d.dimParam ?? null : null)
    }
  }
  const kind = type?.sequenceType != null
    ? 'sequence'
    : type?.mapType != null
      ? 'map'
      : type?.optionalType != null
        ? 'optional'
        : type?.sparseTensorType != null ? 'sparse_tensor' : 'unknown'
  return { name, dtype: kind, dims: null }
}

/**
 * True when the bytes open with ModelProto field 1 (ir_version, varint) holding a plausible value.
 * Protobuf encoders write fields in field-number order and every exporter sets ir_version, so a
 * real model always starts this way; other files almost never do.
 */
function startsLikeOnnx (bytes: Uint8Array): boolean {
  if (bytes[0] !== 0x08) return false
  let value = 0
  for (let i = 1; i < Math.min(bytes.length, 4); i++) {
    const b = bytes[i] as number
    value |= (b & 0x7f) << (7 * (i - 1))
    if ((b & 0x80) === 0) return value >= 1 && value <= MAX_IR_VERSION
  }
  return false
}

function toBigInt (v: Int64Like): bigint {
  if (typeof v === 'number') return BigInt(Math.trunc(v))
  // protobufjs hands out Long objects (from the `long` package) for 64-bit fields.
  return (BigInt(v.high) << 32n) + BigInt(v.low >>> 0)
}

function toSafeNumber (v: unknown): number | undefined {
  if (v === null || v === undefined) return undefined
  const big = toBigInt(v as Int64Like)
  return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : undefined
}

function nonEmpty (s: string | null | undefined): string | undefined {
  return s === null || s === undefined || s === '' ? undefined : s
}

function joinName (scope: string, name: string): string {
  return scope === '' ? name : `${scope}/${name}`
}

function escapeName (name: string): string {
  return name.replace(/[\\\t\n\r]/g, (c) => ({ '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' })[c] as string)
}

/** Sorts by the UTF-8 bytes of `name` (JavaScript's own order is UTF-16 code units). */
function sortByName<T extends { readonly name: string }> (items: readonly T[]): T[] {
  // UTF-16 code units order strings as UTF-8 bytes do unless a surrogate meets a unit from U+E000
  // up: names without either (nearly all) sort as JavaScript strings, without a buffer per name.
  if (items.every((item) => !SURROGATE_OR_ABOVE.test(item.name))) {
    return [...items].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  }
  const keyed = items.map((item) => ({ item, key: Buffer.from(item.name, 'utf8') }))
  keyed.sort((a, b) => Buffer.compare(a.key, b.key))
  return keyed.map((k) => k.item)
}

const SURROGATE_OR_ABOVE = /[\uD800-\uFFFF]/

function describe (e: unknown): string {
  return e instanceof Error ? e.message : String(e)
}
