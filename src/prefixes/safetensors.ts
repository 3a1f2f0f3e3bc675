/**
 * The safetensors container, read and written without trusting a byte of it.
 *
 * Layout: an 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON
 * `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {k: v}}`,
 * then the data region that every offset is relative to. The checks follow the
 * reference implementation (huggingface/safetensors `validate`): the tensors,
 * sorted by offset, must tile the data region exactly — no overlap, no gap, no
 * trailing bytes — and each one's byte length must equal product(shape) × the
 * dtype's size. Anything else is an InvalidPrefixError whose message says what
 * is wrong, because these files arrive from tenants over HTTP.
 */
import { InvalidPrefixError } from '../errors.js'

/** Bytes per element of every dtype the safetensors format defines. */
export const DTYPE_SIZES: Readonly<Record<string, number>> = Object.freeze({
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  F8_E8M0: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
})

/** The reference implementation's own cap is 100 MB; a prefix header is a few hundred bytes. */
export const DEFAULT_MAX_HEADER_BYTES = 1024 * 1024

export interface TensorInfo {
  name: string
  dtype: string
  shape: number[]
  /** Byte offsets relative to the start of the data region, end exclusive. */
  begin: number
  end: number
}

export interface SafetensorsFile {
  tensors: Map<string, TensorInfo>
  metadata: Record<string, string>
  /** Absolute offset of the data region in the buffer the file was parsed from. */
  dataStart: number
  /** The raw bytes of one tensor (a view, not a copy). */
  bytesOf(name: string): Uint8Array
}

export interface ParseOptions {
  /** Largest JSON header accepted, in bytes (default 1 MiB). */
  maxHeaderBytes?: number
}

function invalid(message: string): never {
  throw new InvalidPrefixError(`invalid safetensors file: ${message}`)
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function parseShape(name: string, raw: unknown): number[] {
  if (!Array.isArray(raw)) invalid(`tensor '${name}': "shape" must be an array of integers`)
  return raw.map((dim, axis) => {
    if (typeof dim !== 'number' || !Number.isSafeInteger(dim) || dim < 0) {
      invalid(`tensor '${name}': dimension ${axis} of "shape" is ${JSON.stringify(dim)}, not a non-negative integer`)
    }
    return dim
  })
}

function parseOffsets(name: string, raw: unknown): [number, number] {
  if (!Array.isArray(raw) || raw.length !== 2) {
    invalid(`tensor '${name}': "data_offsets" must be [begin, end]`)
  }
  for (const v of raw) {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      invalid(`tensor '${name}': "data_offsets" holds ${JSON.stringify(v)}, not a non-negative integer`)
    }
  }
  const [begin, end] = raw as [number, number]
  if (end < begin) invalid(`tensor '${name}': "data_offsets" end ${end} is before begin ${begin}`)
  return [begin, end]
}

function parseTensorEntry(name: string, raw: unknown): TensorInfo {
  if (!isPlainObject(raw)) invalid(`tensor '${name}' must be an object with dtype, shape and data_offsets`)
  for (const field of ['dtype', 'shape', 'data_offsets']) {
    if (!Object.hasOwn(raw, field)) invalid(`tensor '${name}' has no "${field}"`)
  }
  const { dtype } = raw
  if (typeof dtype !== 'string') invalid(`tensor '${name}': "dtype" must be a string`)
  const size = Object.hasOwn(DTYPE_SIZES, dtype) ? DTYPE_SIZES[dtype] : undefined
  if (size === undefined) invalid(`tensor '${name}' has unknown dtype '${dtype}'`)
  const shape = parseShape(name, raw.shape)
  const [begin, end] = parseOffsets(name, raw.data_offsets)
  // Multiply in floating point: any product beyond 2^53 is far beyond any real buffer anyway.
  const expected = shape.reduce((n, d) => n * d, 1) * size
  if (expected !== end - begin) {
    invalid(
      `tensor '${name}' is ${dtype} [${shape.join(', ')}], which needs ${expected} bytes, ` +
        `but its data_offsets span ${end - begin}`,
    )
  }
  return { name, dtype, shape, begin, end }
}

function parseMetadata(raw: unknown): Record<string, string> {
  if (!isPlainObject(raw)) invalid('"__metadata__" must be an object of strings')
  const out: Record<string, string> = Object.create(null)
  for (const [key, value] of Object.entries(raw)) {
    if (typeof value !== 'string') invalid(`"__metadata__" entry '${key}' must be a string`)
    out[key] = value
  }
  return out
}

/** Sorted by begin, the tensors must cover [0, dataLength) exactly, as the reference demands. */
function checkTiling(tensors: TensorInfo[], dataLength: number): void {
  const sorted = [...tensors].sort((a, b) => a.begin - b.begin || a.end - b.end)
  let cursor = 0
  let previous: TensorInfo | undefined
  for (const t of sorted) {
    if (t.begin < cursor) invalid(`tensor '${t.name}' overlaps tensor '${previous?.name}' (data_offsets ${t.begin} < ${cursor})`)
    if (t.begin > cursor) invalid(`unused gap in the data region before tensor '${t.name}' (bytes ${cursor}..${t.begin})`)
    if (t.end > dataLength) {
      invalid(`tensor '${t.name}' data_offsets end ${t.end} points past the data region of ${dataLength} bytes`)
    }
    cursor = t.end
    previous = t
  }
  if (cursor !== dataLength) invalid(`${dataLength - cursor} trailing bytes after the last tensor`)
}

/** Parses and fully validates a safetensors buffer; throws InvalidPrefixError on anything malformed. */
export function parseSafetensors(buf: Uint8Array, opts: ParseOptions = {}): SafetensorsFile {
  const maxHeaderBytes = opts.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES
  if (buf.length < 8) invalid(`the file is ${buf.length} bytes, shorter than the 8-byte header length`)
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  const headerLength = view.getBigUint64(0, true)
  if (headerLength > BigInt(maxHeaderBytes)) {
    invalid(`header length ${headerLength} exceeds the limit of ${maxHeaderBytes} bytes`)
  }
  const n = Number(headerLength)
  if (8 + n > buf.length) invalid(`header length ${n} runs past the end of the ${buf.length}-byte file`)

  let header: unknown
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(buf.subarray(8, 8 + n))
    header = JSON.parse(text)
  } catch {
    invalid('header is not valid UTF-8 JSON')
  }
  if (!isPlainObject(header)) invalid('header must be a JSON object')

  let metadata: Record<string, string> = Object.create(null)
  const tensors = new Map<string, TensorInfo>()
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') metadata = parseMetadata(entry)
    else tensors.set(name, parseTensorEntry(name, entry))
  }
  const dataStart = 8 + n
  checkTiling([...tensors.values()], buf.length - dataStart)

  return {
    tensors,
    metadata,
    dataStart,
    bytesOf(name: string): Uint8Array {
      const t = tensors.get(name)
      if (t === undefined) invalid(`no tensor named '${name}'`)
      return buf.subarray(dataStart + t.begin, dataStart + t.end)
    },
  }
}

export interface TensorToWrite {
  dtype: string
  shape: number[]
  /** Raw little-endian bytes, product(shape) × dtype size long. */
  data: Uint8Array
}

/**
 * Writes a safetensors file the way the reference implementation does: the JSON
 * header padded with spaces to a multiple of 8 bytes so the data region starts
 * aligned, and tensors laid out back to back, widest dtype first (then by name)
 * so that every tensor's data is aligned to its element size too.
 */
export function serializeSafetensors(
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Buffer {
  const header: Record<string, unknown> = {}
  if (metadata !== undefined && Object.keys(metadata).length > 0) header.__metadata__ = { ...metadata }
  const names = Object.keys(tensors).sort(
    (a, b) => (DTYPE_SIZES[tensors[b].dtype] ?? 0) - (DTYPE_SIZES[tensors[a].dtype] ?? 0) || (a < b ? -1 : a > b ? 1 : 0),
  )
  let offset = 0
  for (const name of names) {
    const { dtype, shape, data } = tensors[name]
    const size = DTYPE_SIZES[dtype]
    if (size === undefined) throw new InvalidPrefixError(`cannot write tensor '${name}': unknown dtype '${dtype}'`)
    const expected = shape.reduce((n, d) => n * d, 1) * size
    if (expected !== data.byteLength) {
      throw new InvalidPrefixError(
        `cannot write tensor '${name}': ${dtype} [${shape.join(', ')}] needs ${expected} bytes, got ${data.byteLength}`,
      )
    }
    header[name] = { dtype, shape, data_offsets: [offset, offset + data.byteLength] }
    offset += data.byteLength
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8')
  const padded = Math.ceil(json.length / 8) * 8
  if (padded !== json.length) json = Buffer.concat([json, Buffer.alloc(padded - json.length, 0x20)])

  const out = Buffer.alloc(8 + json.length + offset)
  out.writeBigUInt64LE(BigInt(json.length), 0)
  json.copy(out, 8)
  let at = 8 + json.length
  for (const name of names) {
    out.set(tensors[name].data, at)
    at += tensors[name].data.byteLength
  }
  return out
}
