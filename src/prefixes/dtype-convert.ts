/**
 * Turns a tensor's raw little-endian bytes into float32, the one dtype the
 * engine feeds to the model. Only the float dtypes a prefix is trained or saved
 * in are accepted (F32, F16, BF16); F64 or integers are refused by name rather
 * than silently narrowed, and NaN or ±Infinity anywhere is refused because one
 * such value poisons every token of every request that uses the prefix.
 */
import { endianness } from 'node:os'
import { InvalidPrefixError } from '../errors.js'

export const FLOAT_DTYPES = ['F32', 'F16', 'BF16'] as const
export type FloatDtype = (typeof FLOAT_DTYPES)[number]

const BYTES: Record<FloatDtype, number> = { F32: 4, F16: 2, BF16: 2 }
const hostIsLittleEndian = endianness() === 'LE'

export function isFloatDtype(dtype: string): dtype is FloatDtype {
  return (FLOAT_DTYPES as readonly string[]).includes(dtype)
}

/** IEEE 754 binary16 bits → number, including subnormals, infinities and NaN. */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1
  const exponent = (bits >> 10) & 0x1f
  const fraction = bits & 0x3ff
  if (exponent === 0) return sign * fraction * 2 ** -24
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : NaN
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15)
}

function roundHalfToEven(v: number): number {
  const r = Math.round(v)
  // Math.round rounds halves up; a tie goes to the even neighbour instead.
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r
}

/**
 * number → IEEE 754 binary16 bits, round to nearest even, overflow to
 * ±Infinity: the inverse of halfToFloat (float16 model weights, float16 feeds).
 */
export function floatToHalfBits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0
  const a = Math.abs(x)
  // 65520 is halfway between the largest half (65504) and the next step: it rounds to infinity.
  if (a >= 65520) return sign | 0x7c00
  if (a < 2 ** -14) return sign | roundHalfToEven(a * 2 ** 24)
  let e = Math.floor(Math.log2(a))
  if (2 ** e > a) e--
  else if (2 ** (e + 1) <= a) e++
  let m = roundHalfToEven((a / 2 ** e - 1) * 1024)
  if (m === 1024) {
    m = 0
    e++
  }
  return sign | ((e + 15) << 10) | m
}

function decodeF32(bytes: Uint8Array, count: number): Float32Array {
  const out = new Float32Array(count)
  if (hostIsLittleEndian) {
    // A byte copy into a fresh, aligned buffer: the source view may sit at any offset.
    new Uint8Array(out.buffer).set(bytes)
  } else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true)
  }
  return out
}

function decodeF16(bytes: Uint8Array, count: number): Float32Array {
  const out = new Float32Array(count)
  for (let i = 0; i < count; i++) out[i] = halfToFloat(bytes[2 * i] | (bytes[2 * i + 1] << 8))
  return out
}

function decodeBF16(bytes: Uint8Array, count: number): Float32Array {
  // bfloat16 is the top half of a float32: shift the 16 bits into place. The
  // Uint32Array and Float32Array views share the host's byte order, so this
  // holds on any host.
  const out = new Float32Array(count)
  const words = new Uint32Array(out.buffer)
  for (let i = 0; i < count; i++) words[i] = ((bytes[2 * i] | (bytes[2 * i + 1] << 8)) << 16) >>> 0
  return out
}

/** Throws if any value is NaN or infinite, saying how many and where the first one is. */
export function assertAllFinite(values: Float32Array, what: string): void {
  let bad = 0
  let first = -1
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) {
      if (first < 0) first = i
      bad++
    }
  }
  if (bad > 0) {
    throw new InvalidPrefixError(
      `${what} holds ${bad} NaN or infinite value${bad === 1 ? '' : 's'} (first at flat index ${first}, ${values[first]})`,
    )
  }
}

/**
 * Decodes `bytes` of `dtype` into a new Float32Array and checks every value is
 * finite. `what` names the tensor in error messages.
 */
export function decodeFloatTensor(bytes: Uint8Array, dtype: string, what: string): Float32Array {
  if (!isFloatDtype(dtype)) {
    throw new InvalidPrefixError(`${what} has dtype ${dtype}; only ${FLOAT_DTYPES.join(', ')} are accepted`)
  }
  const size = BYTES[dtype]
  if (bytes.byteLength % size !== 0) {
    throw new InvalidPrefixError(`${what}: ${bytes.byteLength} bytes is not a whole number of ${dtype} values`)
  }
  const count = bytes.byteLength / size
  const out = dtype === 'F32' ? decodeF32(bytes, count) : dtype === 'F16' ? decodeF16(bytes, count) : decodeBF16(bytes, count)
  assertAllFinite(out, what)
  return out
}

/** Float32 → little-endian F32 bytes (the dtype prefixd writes). */
export function encodeF32(values: Float32Array): Uint8Array {
  const out = new Uint8Array(values.length * 4)
  if (hostIsLittleEndian) {
    out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength))
  } else {
    const view = new DataView(out.buffer)
    for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i], true)
  }
  return out
}
