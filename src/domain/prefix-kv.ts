/**
 * A materialized prefix: per layer, one key and one value tensor laid out
 * [numKvHeads, numVirtualTokens, headDim] in float32, ready to be copied into a
 * request's past_key_values ahead of its own tokens. Never written to.
 */
export interface PrefixKV {
  numVirtualTokens: number
  numLayers: number
  numKvHeads: number
  headDim: number
  /** keys[i] is layer i's key, length numKvHeads * numVirtualTokens * headDim. */
  keys: Float32Array[]
  values: Float32Array[]
}

export function prefixKVBytes(p: PrefixKV): number {
  return 2 * p.numLayers * p.numKvHeads * p.numVirtualTokens * p.headDim * 4
}
