/**
 * Builders for prefix files, valid and deliberately broken, for the format
 * tests and (later) the upload API tests. Everything here is written without
 * the code under test — its own safetensors writer, its own float16/bfloat16
 * rounding — so a test that reads these files checks the reader against an
 * independent implementation, not against itself.
 */

export type FixtureDtype = 'F32' | 'F16' | 'BF16' | 'F64'

/** Deterministic floats in roughly [-1, 1): mulberry32, so fixtures are stable across runs. */
export function seededFloats(count: number, seed: number): Float32Array {
  let state = seed >>> 0
  const out = new Float32Array(count)
  for (let i = 0; i < count; i++) {
    state = (state + 0x6d2b79f5) >>> 0
    let z = state
    z = Math.imul(z ^ (z >>> 15), z | 1)
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61)
    out[i] = ((z ^ (z >>> 14)) >>> 0) / 2 ** 31 - 1
  }
  return out
}

const f32 = new Float32Array(1)
const u32 = new Uint32Array(f32.buffer)

function roundHalfEven(v: number): number {
  const floor = Math.floor(v)
  const frac = v - floor
  if (frac !== 0.5) return frac < 0.5 ? floor : floor + 1
  return floor % 2 === 0 ? floor : floor + 1
}

/** float → IEEE binary16 bits, round to nearest even, overflow to ±Infinity. */
export function floatToHalfBits(x: number): number {
  f32[0] = x
  const bits = u32[0]
  const sign = (bits >>> 16) & 0x8000
  const exponent = (bits >>> 23) & 0xff
  const mantissa = bits & 0x7fffff
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 : 0)
  const magnitude = Math.abs(f32[0])
  // Below the smallest normal half (2^-14): a multiple of 2^-24, rounded.
  if (magnitude < 2 ** -14) return sign | roundHalfEven(magnitude * 2 ** 24)
  const halfExponent = exponent - 127 + 15
  if (halfExponent >= 0x1f) return sign | 0x7c00
  let result = (halfExponent << 10) | (mantissa >>> 13)
  const rest = mantissa & 0x1fff
  if (rest > 0x1000 || (rest === 0x1000 && (result & 1) === 1)) result += 1 // a carry may roll into the exponent: correct
  return sign | Math.min(result, 0x7c00)
}

/** float → bfloat16 bits, round to nearest even. */
export function floatToBF16Bits(x: number): number {
  f32[0] = x
  const bits = u32[0]
  if (Number.isNaN(f32[0])) return ((bits >>> 16) & 0x8000) | 0x7fc0
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff
}

/** Little-endian bytes of `values` in `dtype`. */
export function encodeFloats(values: ArrayLike<number>, dtype: FixtureDtype): Buffer {
  const size = { F32: 4, F16: 2, BF16: 2, F64: 8 }[dtype]
  const out = Buffer.alloc(values.length * size)
  for (let i = 0; i < values.length; i++) {
    if (dtype === 'F32') out.writeFloatLE(values[i], i * 4)
    else if (dtype === 'F64') out.writeDoubleLE(values[i], i * 8)
    else if (dtype === 'F16') out.writeUInt16LE(floatToHalfBits(values[i]), i * 2)
    else out.writeUInt16LE(floatToBF16Bits(values[i]), i * 2)
  }
  return out
}

/** A safetensors file from a literal header (object, text or raw bytes) and data, with no validation at all. */
export function rawSafetensors(header: unknown, data: Uint8Array = new Uint8Array(0), opts: { headerLength?: bigint } = {}): Buffer {
  const json = Buffer.isBuffer(header) ? header : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8')
  const prefix = Buffer.alloc(8)
  prefix.writeBigUInt64LE(opts.headerLength ?? BigInt(json.length))
  return Buffer.concat([prefix, json, data])
}

export interface FixtureTensor {
  dtype: string
  shape: number[]
  data: Uint8Array
}

/** A valid safetensors file, tensors laid out in the given order, header padded to 8 bytes. */
export function buildSafetensors(tensors: Record<string, FixtureTensor>, metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {}
  let offset = 0
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length] }
    offset += t.data.length
  }
  let text = JSON.stringify(header)
  text += ' '.repeat((8 - (Buffer.byteLength(text) % 8)) % 8)
  return rawSafetensors(text, Buffer.concat(Object.values(tensors).map((t) => t.data)))
}

/** The shape and values of a fixture prefix, whatever its file format. */
export interface FixtureShape {
  layers: number
  kvHeads: number
  headDim: number
  P: number
  dtype?: FixtureDtype
  seed?: number
}

export interface PeftFixtureOptions extends FixtureShape {
  /** Merged into adapter_config.json after the defaults (use undefined to drop a field). */
  config?: Record<string, unknown>
  /** Replace the embeddings (row-major [P, layers * 2 * kvHeads * headDim]). */
  embeddings?: Float32Array
}

export interface PeftFixture {
  config: Record<string, unknown>
  configJson: string
  safetensors: Buffer
  /** The float32 values written (before any F16/BF16 rounding). */
  embeddings: Float32Array
}

/** A PEFT prefix-tuning adapter as save_pretrained writes it. */
export function buildPeftAdapter(opts: PeftFixtureOptions): PeftFixture {
  const { layers, kvHeads, headDim, P, dtype = 'F32', seed = 1 } = opts
  const tokenDim = kvHeads * headDim
  const config: Record<string, unknown> = {
    peft_type: 'PREFIX_TUNING',
    task_type: 'CAUSAL_LM',
    num_virtual_tokens: P,
    num_layers: layers,
    num_attention_heads: kvHeads,
    token_dim: tokenDim,
    num_transformer_submodules: 1,
    prefix_projection: false,
    ...opts.config,
  }
  for (const k of Object.keys(config)) if (config[k] === undefined) delete config[k]
  const embeddings = opts.embeddings ?? seededFloats(P * layers * 2 * tokenDim, seed)
  const safetensors = buildSafetensors(
    { prompt_embeddings: { dtype, shape: [P, layers * 2 * tokenDim], data: encodeFloats(embeddings, dtype) } },
    { format: 'pt' },
  )
  return { config, configJson: JSON.stringify(config, null, 1), safetensors, embeddings }
}

export interface NativeFixtureOptions extends FixtureShape {
  /** Merged into __metadata__ (use undefined to drop a field). */
  metadata?: Record<string, string | undefined>
  keysShape?: number[]
  valuesDtype?: FixtureDtype
}

/** A native prefix file built by hand (not by writeNativePrefix), optionally bent out of shape. */
export function buildNativeFile(opts: NativeFixtureOptions): { file: Buffer; keys: Float32Array; values: Float32Array } {
  const { layers, kvHeads, headDim, P, dtype = 'F32', seed = 7 } = opts
  const count = layers * kvHeads * P * headDim
  const keys = seededFloats(count, seed)
  const values = seededFloats(count, seed + 1)
  const metadata: Record<string, string> = {}
  const merged: Record<string, string | undefined> = {
    format: 'prefixd.prefix',
    format_version: '1',
    num_virtual_tokens: String(P),
    num_layers: String(layers),
    num_kv_heads: String(kvHeads),
    head_dim: String(headDim),
    ...opts.metadata,
  }
  for (const [k, v] of Object.entries(merged)) if (v !== undefined) metadata[k] = v
  const shape = [layers, kvHeads, P, headDim]
  const keysShape = opts.keysShape ?? shape
  const keysData = encodeFloats(keys, dtype).subarray(0, keysShape.reduce((a, b) => a * b, 1) * (dtype === 'F32' ? 4 : dtype === 'F64' ? 8 : 2))
  const file = buildSafetensors(
    {
      'prefix.keys': { dtype, shape: keysShape, data: keysData },
      'prefix.values': { dtype: opts.valuesDtype ?? dtype, shape, data: encodeFloats(values, opts.valuesDtype ?? dtype) },
    },
    metadata,
  )
  return { file, keys, values }
}

/** Overwrites the float32 at flat index `index` of the (single) tensor whose data starts at the data region. */
export function poisonFloat32(file: Buffer, index: number, value: number): Buffer {
  const copy = Buffer.from(file)
  const headerLength = Number(copy.readBigUInt64LE(0))
  copy.writeFloatLE(value, 8 + headerLength + index * 4)
  return copy
}

/** What pickled weights look like on disk: a protocol-2 pickle and torch.save's zip container. */
export const PICKLE_BYTES = Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e])
export const TORCH_ZIP_BYTES = Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), Buffer.alloc(26), Buffer.from('archive/data.pkl')])

export interface Corruption {
  name: string
  bytes: Buffer
  /** What the error message must mention. */
  message: RegExp
}

const ok = (dtype = 'F32', shape = [2, 2]) => ({ dtype, shape, data_offsets: [0, shape.reduce((a, b) => a * b, 1) * 4] })

/** Malformed safetensors containers, each with the message the reader must give. */
export function corruptSafetensors(): Corruption[] {
  const data16 = new Uint8Array(16)
  return [
    { name: 'shorter than 8 bytes', bytes: Buffer.from([1, 2, 3, 4, 5]), message: /5 bytes, shorter than the 8-byte/ },
    { name: 'empty file', bytes: Buffer.alloc(0), message: /0 bytes, shorter than the 8-byte/ },
    { name: 'huge header length', bytes: rawSafetensors({}, data16, { headerLength: 1n << 40n }), message: /header length 1099511627776 exceeds the limit of 1048576/ },
    { name: 'header length past end', bytes: rawSafetensors('{}', new Uint8Array(4), { headerLength: 100n }), message: /header length 100 runs past the end of the 14-byte file/ },
    { name: 'header not JSON', bytes: rawSafetensors('{"a": ', data16), message: /not valid UTF-8 JSON/ },
    { name: 'header not UTF-8', bytes: rawSafetensors(Buffer.concat([Buffer.from('{"'), Buffer.from([0xff]), Buffer.from('":1}')]), data16), message: /not valid UTF-8 JSON/ },
    { name: 'header is an array', bytes: rawSafetensors('[1, 2]', data16), message: /header must be a JSON object/ },
    { name: 'header is a number', bytes: rawSafetensors('42', data16), message: /header must be a JSON object/ },
    { name: 'tensor entry not an object', bytes: rawSafetensors({ a: 5 }, data16), message: /tensor 'a' must be an object/ },
    { name: 'missing dtype', bytes: rawSafetensors({ a: { shape: [2, 2], data_offsets: [0, 16] } }, data16), message: /tensor 'a' has no "dtype"/ },
    { name: 'missing shape', bytes: rawSafetensors({ a: { dtype: 'F32', data_offsets: [0, 16] } }, data16), message: /tensor 'a' has no "shape"/ },
    { name: 'missing data_offsets', bytes: rawSafetensors({ a: { dtype: 'F32', shape: [4] } }, data16), message: /tensor 'a' has no "data_offsets"/ },
    { name: 'dtype not a string', bytes: rawSafetensors({ a: { ...ok(), dtype: 4 } }, data16), message: /"dtype" must be a string/ },
    { name: 'unknown dtype', bytes: rawSafetensors({ a: ok('F128') }, data16), message: /unknown dtype 'F128'/ },
    { name: 'shape not an array', bytes: rawSafetensors({ a: { ...ok(), shape: '2x2' } }, data16), message: /"shape" must be an array/ },
    { name: 'negative dimension', bytes: rawSafetensors({ a: { ...ok(), shape: [-2, -2] } }, data16), message: /dimension 0 of "shape" is -2, not a non-negative integer/ },
    { name: 'fractional dimension', bytes: rawSafetensors({ a: { ...ok(), shape: [2, 2.5] } }, data16), message: /dimension 1 of "shape" is 2.5/ },
    { name: 'string dimension', bytes: rawSafetensors({ a: { ...ok(), shape: ['2', 2] } }, data16), message: /dimension 0 of "shape" is "2"/ },
    { name: 'offsets not a pair', bytes: rawSafetensors({ a: { ...ok(), data_offsets: [0] } }, data16), message: /"data_offsets" must be \[begin, end\]/ },
    { name: 'negative offset', bytes: rawSafetensors({ a: { ...ok(), data_offsets: [-4, 12] } }, data16), message: /"data_offsets" holds -4/ },
    { name: 'offsets out of order', bytes: rawSafetensors({ a: { ...ok('F32', [0]), data_offsets: [16, 0] } }, data16), message: /end 0 is before begin 16/ },
    { name: 'byte length mismatch', bytes: rawSafetensors({ a: { ...ok(), data_offsets: [0, 12] } }, data16), message: /needs 16 bytes, but its data_offsets span 12/ },
    { name: 'overlapping tensors', bytes: rawSafetensors({ a: { ...ok('F32', [2]), data_offsets: [0, 8] }, b: { ...ok('F32', [2]), data_offsets: [4, 12] } }, data16), message: /tensor 'b' overlaps tensor 'a'/ },
    { name: 'gap between tensors', bytes: rawSafetensors({ a: { ...ok('F32', [2]), data_offsets: [0, 8] }, b: { ...ok('F32', [1]), data_offsets: [12, 16] } }, data16), message: /gap in the data region before tensor 'b' \(bytes 8..12\)/ },
    { name: 'offsets outside the data', bytes: rawSafetensors({ a: ok('F32', [4, 2]) }, data16), message: /end 32 points past the data region of 16 bytes/ },
    { name: 'trailing bytes', bytes: rawSafetensors({ a: ok('F32', [2]) }, data16), message: /8 trailing bytes/ },
    { name: 'metadata not an object', bytes: rawSafetensors({ __metadata__: ['x'], a: ok() }, data16), message: /"__metadata__" must be an object/ },
    { name: 'metadata value not a string', bytes: rawSafetensors({ __metadata__: { n: 3 }, a: ok() }, data16), message: /"__metadata__" entry 'n' must be a string/ },
  ]
}

export interface PeftCorruption {
  name: string
  configJson: string
  safetensors: Buffer
  message: RegExp
}

/**
 * Broken PEFT adapters (config or weights), each with the message the reader
 * must give. Built around a 2-layer, 2-head, head-size-4, 3-token adapter.
 */
export function corruptPeftAdapters(): PeftCorruption[] {
  const base = { layers: 2, kvHeads: 2, headDim: 4, P: 3 }
  const good = buildPeftAdapter(base)
  const withConfig = (name: string, config: Record<string, unknown>, message: RegExp): PeftCorruption => ({
    name,
    configJson: buildPeftAdapter({ ...base, config }).configJson,
    safetensors: good.safetensors,
    message,
  })
  const withWeights = (name: string, safetensors: Buffer, message: RegExp): PeftCorruption => ({
    name,
    configJson: good.configJson,
    safetensors,
    message,
  })
  const embeddings = (n: number) => ({ dtype: 'F32', shape: [n], data: encodeFloats(seededFloats(n, 3), 'F32') })
  const width = 2 * 2 * 2 * 4
  return [
    withConfig('IA3 adapter (a PEFT type prefixd does not serve)', { peft_type: 'IA3' }, /peft_type "IA3"; only PREFIX_TUNING/),
    withConfig('no peft_type', { peft_type: undefined }, /no "peft_type"/),
    withConfig('peft_type not a string', { peft_type: 7 }, /no "peft_type"/),
    withConfig('zero virtual tokens', { num_virtual_tokens: 0 }, /"num_virtual_tokens" is 0, not a positive integer/),
    withConfig('fractional layers', { num_layers: 2.5 }, /"num_layers" is 2.5, not a positive integer/),
    withConfig('string heads', { num_attention_heads: '2' }, /"num_attention_heads" is "2", not a positive integer/),
    withConfig('negative token_dim', { token_dim: -8 }, /"token_dim" is -8/),
    withConfig('missing num_layers', { num_layers: undefined }, /has no "num_layers"/),
    withConfig('token_dim not divisible by heads', { token_dim: 9, num_attention_heads: 2 }, /token_dim 9 is not divisible by num_attention_heads 2/),
    withConfig('encoder-decoder adapter', { num_transformer_submodules: 2 }, /"num_transformer_submodules" is 2/),
    withConfig('config shape disagrees with weights', { num_virtual_tokens: 4 }, /'prompt_embeddings' is \[3, 32\], but adapter_config\.json .* needs \[4, 32\]/),
    { name: 'config not JSON', configJson: '{"peft_type": "PREFIX_TUNING",', safetensors: good.safetensors, message: /adapter_config\.json is not valid UTF-8 JSON/ },
    { name: 'config is an array', configJson: '[]', safetensors: good.safetensors, message: /adapter_config\.json must be a JSON object/ },
    withWeights('no prompt_embeddings', buildSafetensors({ embeddings: embeddings(3 * width) }), /no 'prompt_embeddings' tensor \(found 'embeddings'\)/),
    withWeights('extra tensor', buildSafetensors({ prompt_embeddings: { ...embeddings(3 * width), shape: [3, width] }, extra: embeddings(2) }), /unexpected tensors besides 'prompt_embeddings': 'extra'/),
    withWeights('1-D prompt_embeddings', buildSafetensors({ prompt_embeddings: embeddings(3 * width) }), /'prompt_embeddings' is \[96\]/),
    withWeights('wrong width', buildSafetensors({ prompt_embeddings: { ...embeddings(3 * 16), shape: [3, 16] } }), /is \[3, 16\].* needs \[3, 32\]/),
    withWeights('F64 weights', buildPeftAdapter({ ...base, dtype: 'F64' }).safetensors, /dtype F64; only F32, F16, BF16 are accepted/),
    withWeights('I64 weights', buildSafetensors({ prompt_embeddings: { dtype: 'I64', shape: [3, width], data: new Uint8Array(3 * width * 8) } }), /dtype I64; only F32, F16, BF16/),
    withWeights('one NaN', poisonFloat32(good.safetensors, 5, NaN), /holds 1 NaN or infinite value \(first at flat index 5, NaN\)/),
    withWeights('infinities', poisonFloat32(poisonFloat32(good.safetensors, 9, -Infinity), 30, Infinity), /holds 2 NaN or infinite values \(first at flat index 9, -Infinity\)/),
    withWeights('pickled weights', PICKLE_BYTES, /pickle files are not accepted; save with safe_serialization=True/),
    withWeights('torch zip weights', TORCH_ZIP_BYTES, /pickle files are not accepted/),
    withWeights('garbage weights', Buffer.from('not a safetensors file at all'), /invalid safetensors file/),
  ]
}

/** Broken native prefix files, each with the message the reader must give. */
export function corruptNativeFiles(): Corruption[] {
  const base = { layers: 2, kvHeads: 2, headDim: 4, P: 3 }
  const native = (name: string, opts: Partial<NativeFixtureOptions>, message: RegExp): Corruption => ({
    name,
    bytes: buildNativeFile({ ...base, ...opts }).file,
    message,
  })
  const good = buildNativeFile(base).file
  return [
    native('no format', { metadata: { format: undefined } }, /"format" is null, expected "prefixd\.prefix"/),
    native('wrong format', { metadata: { format: 'pt' } }, /"format" is "pt"/),
    native('future version', { metadata: { format_version: '2' } }, /unsupported format_version "2"/),
    native('missing num_layers', { metadata: { num_layers: undefined } }, /has no "num_layers"/),
    native('zero-padded head_dim', { metadata: { head_dim: '04' } }, /"head_dim" is "04", not a positive integer/),
    native('negative heads', { metadata: { num_kv_heads: '-2' } }, /"num_kv_heads" is "-2"/),
    native('metadata disagrees with tensors', { metadata: { num_virtual_tokens: '4' } }, /'prefix\.keys' is \[2, 2, 3, 4\], but the metadata .* says \[2, 2, 4, 4\]/),
    native('keys wrong rank', { keysShape: [2, 2, 12] }, /'prefix\.keys' is \[2, 2, 12\]/),
    native('mixed dtypes', { valuesDtype: 'F16' }, /'prefix\.keys' is F32 but 'prefix\.values' is F16/),
    native('F64 tensors', { dtype: 'F64' }, /dtype F64; only F32, F16, BF16/),
    { name: 'NaN in keys', bytes: poisonFloat32(good, 2, NaN), message: /'prefix\.keys' holds 1 NaN/ },
    {
      name: 'missing values',
      bytes: buildSafetensors({ 'prefix.keys': { dtype: 'F32', shape: [2, 2, 3, 4], data: new Uint8Array(2 * 2 * 3 * 4 * 4) } }, {
        format: 'prefixd.prefix', format_version: '1', num_virtual_tokens: '3', num_layers: '2', num_kv_heads: '2', head_dim: '4',
      }),
      message: /missing tensor 'prefix\.values'/,
    },
    {
      name: 'extra tensor',
      bytes: buildSafetensors(
        {
          'prefix.keys': { dtype: 'F32', shape: [1, 1, 1, 1], data: new Uint8Array(4) },
          'prefix.values': { dtype: 'F32', shape: [1, 1, 1, 1], data: new Uint8Array(4) },
          bias: { dtype: 'F32', shape: [1], data: new Uint8Array(4) },
        },
        { format: 'prefixd.prefix', format_version: '1', num_virtual_tokens: '1', num_layers: '1', num_kv_heads: '1', head_dim: '1' },
      ),
      message: /unexpected tensors 'bias'/,
    },
  ]
}
