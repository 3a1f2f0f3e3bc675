/**
 * prefixd's own prefix file: one self-describing safetensors file, so a stored
 * blob needs no side-car config. `__metadata__` carries
 *   format "prefixd.prefix", format_version "1", num_virtual_tokens,
 *   num_layers, num_kv_heads, head_dim (decimal strings: safetensors metadata
 *   is string-only) and optionally model_fingerprint,
 * and two tensors, `prefix.keys` and `prefix.values`, each
 * [num_layers, num_kv_heads, P, head_dim] — so layer i's slice is already the
 * [H, P, D] block past_key_values wants. Written as F32; F16 and BF16 are
 * accepted on read. The metadata and the tensor shapes must agree exactly.
 */
import { InvalidPrefixError } from '../errors.js'
import { assertAllFinite, decodeFloatTensor, encodeF32 } from './dtype-convert.js'
import type { PrefixKV } from '../domain/prefix-kv.js'
import { parseSafetensors, serializeSafetensors, type ParseOptions, type SafetensorsFile } from './safetensors.js'

export const NATIVE_FORMAT = 'prefixd.prefix'
export const NATIVE_FORMAT_VERSION = '1'
export const NATIVE_FILE = 'prefix.safetensors'
export const KEYS_TENSOR = 'prefix.keys'
export const VALUES_TENSOR = 'prefix.values'

export interface NativePrefixMetadata {
  numVirtualTokens: number
  numLayers: number
  numKvHeads: number
  headDim: number
  /** Identifies the model the prefix was made for, when the writer knew it. */
  modelFingerprint?: string
}

export interface NativePrefixHeader {
  metadata: NativePrefixMetadata
  /** The stored dtype of both tensors. */
  dtype: string
  file: SafetensorsFile
}

function invalid(message: string): never {
  throw new InvalidPrefixError(`invalid ${NATIVE_FORMAT} file: ${message}`)
}

function metadataInteger(meta: Record<string, string>, key: string): number {
  const text = meta[key]
  if (text === undefined) invalid(`"__metadata__" has no "${key}"`)
  const n = Number(text)
  if (!/^[1-9][0-9]*$/.test(text) || !Number.isSafeInteger(n)) {
    invalid(`"__metadata__" "${key}" is ${JSON.stringify(text)}, not a positive integer`)
  }
  return n
}

function parseMetadata(meta: Record<string, string>): NativePrefixMetadata {
  if (meta.format !== NATIVE_FORMAT) {
    invalid(`"__metadata__" "format" is ${JSON.stringify(meta.format ?? null)}, expected "${NATIVE_FORMAT}"`)
  }
  if (meta.format_version !== NATIVE_FORMAT_VERSION) {
    invalid(`unsupported format_version ${JSON.stringify(meta.format_version ?? null)}; this server reads "${NATIVE_FORMAT_VERSION}"`)
  }
  const out: NativePrefixMetadata = {
    numVirtualTokens: metadataInteger(meta, 'num_virtual_tokens'),
    numLayers: metadataInteger(meta, 'num_layers'),
    numKvHeads: metadataInteger(meta, 'num_kv_heads'),
    headDim: metadataInteger(meta, 'head_dim'),
  }
  if (meta.model_fingerprint !== undefined) out.modelFingerprint = meta.model_fingerprint
  return out
}

/** Validates header, metadata and tensor shapes without decoding any values. */
export function inspectNativePrefix(buf: Uint8Array, opts: ParseOptions = {}): NativePrefixHeader {
  return inspectNativePrefixFile(parseSafetensors(buf, opts))
}

/** As inspectNativePrefix, on a file already parsed (the kind table reads the header once). */
export function inspectNativePrefixFile(file: SafetensorsFile): NativePrefixHeader {
  const metadata = parseMetadata(file.metadata)
  const extra = [...file.tensors.keys()].filter((n) => n !== KEYS_TENSOR && n !== VALUES_TENSOR)
  if (extra.length > 0) invalid(`unexpected tensors ${extra.map((n) => `'${n}'`).join(', ')}`)
  const { numLayers: L, numKvHeads: H, numVirtualTokens: P, headDim: D } = metadata
  const dtypes = [KEYS_TENSOR, VALUES_TENSOR].map((name) => {
    const t = file.tensors.get(name)
    if (t === undefined) invalid(`missing tensor '${name}'`)
    if (t.shape.length !== 4 || t.shape[0] !== L || t.shape[1] !== H || t.shape[2] !== P || t.shape[3] !== D) {
      invalid(
        `tensor '${name}' is [${t.shape.join(', ')}], but the metadata ` +
          `(num_layers, num_kv_heads, num_virtual_tokens, head_dim) says [${L}, ${H}, ${P}, ${D}]`,
      )
    }
    return t.dtype
  })
  if (dtypes[0] !== dtypes[1]) invalid(`'${KEYS_TENSOR}' is ${dtypes[0]} but '${VALUES_TENSOR}' is ${dtypes[1]}`)
  return { metadata, dtype: dtypes[0], file }
}

/** Reads and fully validates a native prefix file. */
export function readNativePrefix(
  buf: Uint8Array,
  opts: ParseOptions = {},
): { prefix: PrefixKV; metadata: NativePrefixMetadata; dtype: string } {
  return readNativePrefixFile(parseSafetensors(buf, opts))
}

/** As readNativePrefix, on a file already parsed. */
export function readNativePrefixFile(parsed: SafetensorsFile): { prefix: PrefixKV; metadata: NativePrefixMetadata; dtype: string } {
  const { metadata, dtype, file } = inspectNativePrefixFile(parsed)
  const { numLayers: L, numKvHeads: H, numVirtualTokens: P, headDim: D } = metadata
  const perLayer = H * P * D
  // Layer i's block is contiguous in [L, H, P, D]: slice (copy) it out so each layer stands alone.
  const layers = (name: string): Float32Array[] => {
    const all = decodeFloatTensor(file.bytesOf(name), dtype, `'${name}'`)
    return Array.from({ length: L }, (_, i) => all.slice(i * perLayer, (i + 1) * perLayer))
  }
  const prefix: PrefixKV = {
    numVirtualTokens: P,
    numLayers: L,
    numKvHeads: H,
    headDim: D,
    keys: layers(KEYS_TENSOR),
    values: layers(VALUES_TENSOR),
  }
  return { prefix, metadata, dtype }
}

/** Checks a PrefixKV is internally consistent and finite before it is written anywhere. */
export function assertValidPrefixKV(prefix: PrefixKV): void {
  const bad = (message: string): never => {
    throw new InvalidPrefixError(`invalid prefix: ${message}`)
  }
  for (const field of ['numVirtualTokens', 'numLayers', 'numKvHeads', 'headDim'] as const) {
    const v = prefix[field]
    if (!Number.isSafeInteger(v) || v <= 0) bad(`${field} is ${v}, not a positive integer`)
  }
  const perLayer = prefix.numKvHeads * prefix.numVirtualTokens * prefix.headDim
  for (const [kind, list] of [['keys', prefix.keys], ['values', prefix.values]] as const) {
    if (!Array.isArray(list) || list.length !== prefix.numLayers) {
      bad(`${kind} has ${Array.isArray(list) ? list.length : 'no'} layers, expected ${prefix.numLayers}`)
    }
    list.forEach((layer, i) => {
      if (!(layer instanceof Float32Array) || layer.length !== perLayer) {
        bad(`${kind}[${i}] must be a Float32Array of ${perLayer} values`)
      }
      assertAllFinite(layer, `${kind}[${i}]`)
    })
  }
}

/** Writes a prefix as a native file (F32). */
export function writeNativePrefix(prefix: PrefixKV, meta: { modelFingerprint?: string } = {}): Buffer {
  assertValidPrefixKV(prefix)
  const { numLayers: L, numKvHeads: H, numVirtualTokens: P, headDim: D } = prefix
  const stack = (layers: Float32Array[]): Uint8Array => {
    const all = new Float32Array(L * H * P * D)
    layers.forEach((layer, i) => all.set(layer, i * H * P * D))
    return encodeF32(all)
  }
  const metadata: Record<string, string> = {
    format: NATIVE_FORMAT,
    format_version: NATIVE_FORMAT_VERSION,
    num_virtual_tokens: String(P),
    num_layers: String(L),
    num_kv_heads: String(H),
    head_dim: String(D),
  }
  if (meta.modelFingerprint !== undefined) metadata.model_fingerprint = meta.modelFingerprint
  const shape = [L, H, P, D]
  return serializeSafetensors(
    {
      [KEYS_TENSOR]: { dtype: 'F32', shape, data: stack(prefix.keys) },
      [VALUES_TENSOR]: { dtype: 'F32', shape, data: stack(prefix.values) },
    },
    metadata,
  )
}
