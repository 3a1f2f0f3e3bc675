/**
 * Loops-only building blocks of the reference forward pass, in float64 so
 * that the reference is more precise than the float32 graph it checks.
 */

/** x · W for W laid out [in, out] row-major (the generator's layout), plus an optional bias. */
export function matVec(x: Float64Array, w: Float32Array, outSize: number, bias?: Float32Array): Float64Array {
  const out = new Float64Array(outSize)
  if (bias) for (let o = 0; o < outSize; o++) out[o] = bias[o]
  for (let i = 0; i < x.length; i++) {
    const xi = x[i]
    const row = i * outSize
    for (let o = 0; o < outSize; o++) out[o] += xi * w[row + o]
  }
  return out
}

/** E · x for E laid out [rows, x.length]: the tied output head. */
export function rowsDot(e: Float32Array, x: Float64Array, rows: number): Float64Array {
  const out = new Float64Array(rows)
  for (let r = 0; r < rows; r++) {
    let sum = 0
    const base = r * x.length
    for (let i = 0; i < x.length; i++) sum += e[base + i] * x[i]
    out[r] = sum
  }
  return out
}

export function rmsNorm(x: Float64Array, gain: Float32Array, eps: number): Float64Array {
  let meanSquare = 0
  for (const v of x) meanSquare += v * v
  const scale = 1 / Math.sqrt(meanSquare / x.length + eps)
  return x.map((v, i) => v * scale * gain[i])
}

export function layerNorm(x: Float64Array, gain: Float32Array, bias: Float32Array, eps: number): Float64Array {
  let mean = 0
  for (const v of x) mean += v
  mean /= x.length
  let variance = 0
  for (const v of x) variance += (v - mean) * (v - mean)
  const scale = 1 / Math.sqrt(variance / x.length + eps)
  return x.map((v, i) => (v - mean) * scale * gain[i] + bias[i])
}

/** softmax(scores / temperature) in plain float64. */
export function softmax(scores: ArrayLike<number>, temperature = 1): number[] {
  const xs = Array.from(scores, (s) => s / temperature)
  const max = Math.max(...xs)
  const exps = xs.map((s) => Math.exp(s - max))
  const sum = exps.reduce((a, b) => a + b, 0)
  return exps.map((e) => e / sum)
}

export function silu(x: number): number {
  return x / (1 + Math.exp(-x))
}

/** Hugging Face "gelu_new", the tanh approximation GPT-2 uses. */
export function geluTanh(x: number): number {
  return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)))
}

/**
 * Rotary embedding of one head vector in place, HF "rotate_half" layout:
 * element i pairs with i + D/2 and turns by position · theta^(-2i/D).
 */
export function rotate(v: Float64Array, position: number, theta: number): void {
  const half = v.length / 2
  for (let i = 0; i < half; i++) {
    const angle = position * Math.pow(theta, (-2 * i) / v.length)
    const cos = Math.cos(angle)
    const sin = Math.sin(angle)
    const a = v[i]
    const b = v[i + half]
    v[i] = a * cos - b * sin
    v[i + half] = b * cos + a * sin
  }
}
