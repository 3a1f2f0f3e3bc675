import { fillNormal, mulberry32 } from '../../src/models/generate/prng.js'
import type { ModelDims } from '../../src/models/generate/index.js'
import type { PrefixKV } from '../../src/domain/prefix-kv.js'

/**
 * A seeded random prefix of `length` virtual tokens for a model, with unit
 * normal keys and values: the scale of the model's own keys and values, so
 * the prefix visibly changes the logits.
 */
export function randomPrefix(dims: Pick<ModelDims, 'numLayers' | 'numKvHeads' | 'headDim'>, length: number, seed: number): PrefixKV {
  const random = mulberry32(seed)
  const size = dims.numKvHeads * length * dims.headDim
  const fresh = (): Float32Array => fillNormal(new Float32Array(size), random, 0, 1)
  return {
    numVirtualTokens: length,
    numLayers: dims.numLayers,
    numKvHeads: dims.numKvHeads,
    headDim: dims.headDim,
    keys: Array.from({ length: dims.numLayers }, fresh),
    values: Array.from({ length: dims.numLayers }, fresh),
  }
}
