/**
 * The benchmark workload (bench/README.md, "The workload"): a 15M-parameter
 * Llama shape (hidden 288, 6 layers, 6 heads, vocabulary 32000), 16 requests of 16 prompt tokens and 64 new tokens, each with
 * its own 16-token prefix, 2 intra-op threads. Everything is seeded, so every
 * variant and every round sees the same prompts and prefixes.
 */
import { access } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { generateModel } from '../src/models/generate/index.js'
import { mulberry32 } from '../src/models/generate/prng.js'
import { randomPrefix } from '../test/helpers/reference-prefix.js'

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
export const benchPrefix = randomPrefix

/** `count` seeded prompts of `length` ids: BOS, then ids past the special tokens. */
export function benchPrompts(count: number, length: number, vocabSize: number, bos: number): number[][] {
  const random = mulberry32(4242)
  return Array.from({ length: count }, () => [bos, ...Array.from({ length: length - 1 }, () => 3 + Math.floor(random() * (vocabSize - 3)))])
}
