/**
 * The benchmark workload of DESIGN.md ("Numbers to beat"): a 15M-parameter
 * Llama shape, 16 requests of 16 prompt tokens and 64 new tokens, each with
 * its own 16-token prefix, 2 intra-op threads. Everything is seeded, so every
 * variant and every round sees the same prompts and prefixes.
 */
import { access } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { generateModel } from '../src/models/generate/index.js'
import { fillNormal, mulberry32 } from '../src/models/generate/prng.js'
import type { PrefixKV } from '../src/prefixes/prefix-kv.js'

export const WORKLOAD = {
  streams: 16,
  promptTokens: 16,
  newTokens: 64,
  prefixTokens: 16,
  threads: 2,
} as const

export interface KvDims {
  numLayers: number
  numKvHeads: number
  headDim: number
}

/** Generates the 15m llama once into the (git-ignored) cache folder; later runs reuse it. */
export async function ensureModel(cacheDir: string, log: (msg: string) => void): Promise<string> {
  const dir = resolve(join(cacheDir, 'llama-15m-seed0'))
  try {
    await access(join(dir, 'config.json'))
    await access(join(dir, 'model.onnx'))
    return dir
  } catch {
    log(`generating the 15m llama into ${dir}`)
    await generateModel({ arch: 'llama', size: '15m', out: dir, seed: 0 })
    return dir
  }
}

/** A seeded prefix with unit-normal keys and values (the scale of the model's own). */
export function benchPrefix(dims: KvDims, length: number, seed: number): PrefixKV {
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

/** `count` seeded prompts of `length` ids: BOS, then ids past the special tokens. */
export function benchPrompts(count: number, length: number, vocabSize: number, bos: number): number[][] {
  const random = mulberry32(4242)
  return Array.from({ length: count }, () => [bos, ...Array.from({ length: length - 1 }, () => 3 + Math.floor(random() * (vocabSize - 3)))])
}
