/** Helpers for the prefix store benchmarks: quantiles, timing, a teardown list, prefix builders. */
import { performance } from 'node:perf_hooks'
import type { ModelSpec } from '../src/domain/model-spec.js'
import { buildNativeFile, buildPeftAdapter } from '../test/helpers/prefix-fixtures.js'

export function quantile(values: readonly number[], q: number): number {
  const s = [...values].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]
}

export function summary(values: readonly number[]): string {
  return `${quantile(values, 0.5).toFixed(2)} / ${quantile(values, 0.99).toFixed(2)}`
}

export async function timed<T>(fn: () => Promise<T> | T): Promise<{ value: T; ms: number }> {
  const started = performance.now()
  const value = await fn()
  return { value, ms: performance.now() - started }
}

/** Teardowns run in reverse order, like tap's. */
export class Teardowns {
  private readonly fns: Array<() => unknown> = []
  teardown(fn: () => unknown): void {
    this.fns.push(fn)
  }
  async run(): Promise<void> {
    for (const fn of this.fns.reverse()) await fn()
  }
}

export interface Shape {
  layers: number
  kvHeads: number
  headDim: number
}

export const LLAMA_110M: Shape = { layers: 12, kvHeads: 12, headDim: 64 }

export function specOf(shape: Shape, maxPositions = 1024): ModelSpec {
  return {
    modelType: 'llama', numLayers: shape.layers, numAttentionHeads: shape.kvHeads, numKvHeads: shape.kvHeads,
    headDim: shape.headDim, hiddenSize: shape.kvHeads * shape.headDim, vocabSize: 32000, maxPositions,
    bosTokenId: 1, eosTokenIds: [2], padTokenId: null,
    valueHeadDim: shape.headDim, prefixRefusal: null, quantization: null, batchInvariant: true, graphRewrites: [],
  }
}

export function peftUpload(shape: Shape, P: number, seed: number) {
  const f = buildPeftAdapter({ ...shape, P, seed })
  return [
    { filename: 'adapter_config.json', data: Buffer.from(f.configJson) },
    { filename: 'adapter_model.safetensors', data: f.safetensors },
  ]
}

export function nativeUpload(shape: Shape, P: number, seed: number) {
  return [{ filename: 'prefix.safetensors', data: buildNativeFile({ ...shape, P, seed }).file }]
}

export const log = { warn: () => undefined, info: () => undefined, debug: () => undefined, error: () => undefined }
