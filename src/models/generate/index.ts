import { modelDims, type ModelArch, type ModelSize } from './model-dims.js'
import { writeModelDirectory } from './model-directory.js'
import type { ModelLayout } from './model-layout.js'
import { buildWeightsForDims } from './weights.js'

export { buildDecoderGraph, writeModelDirectory } from './model-directory.js'
export { huggingFaceConfig, MODEL_ARCHS, MODEL_SIZES, modelDims } from './model-dims.js'
export type { ModelArch, ModelDims, ModelSize } from './model-dims.js'
export type { ModelLayout } from './model-layout.js'
export { MASKED_SCORE } from './onnx-decoder-parts.js'
export { OPSET_VERSION, writeOnnxModel } from './onnx-writer.js'
export { tokenizerFiles, type TokenizerFiles } from './tokenizer-files.js'
export { buildWeights, buildWeightsForDims, weight } from './weights.js'
export type { ModelWeights, WeightTensor } from './weights.js'

export interface GenerateModelOptions {
  arch: ModelArch
  size: ModelSize
  /** Directory to write into; created if missing. */
  out: string
  /** Weight seed, default 0: the same seed writes byte-identical files. */
  seed?: number
  /** float16, external data, merged decoder; default a plain float32 model.onnx. */
  layout?: ModelLayout
  onProgress?: (msg: string) => void
}

/** Writes a deterministic random-weight model in the optimum ONNX layout into `out`. */
export async function generateModel(opts: GenerateModelOptions): Promise<void> {
  const dims = modelDims(opts.arch, opts.size)
  const started = Date.now()
  const weights = buildWeightsForDims(dims, opts.seed ?? 0)
  let parameters = 0
  for (const t of weights.tensors.values()) parameters += t.data.length
  opts.onProgress?.(`${opts.arch} ${opts.size}: ${(parameters / 1e6).toFixed(2)}M parameters built in ${Date.now() - started} ms`)
  await writeModelDirectory(weights, opts.out, opts.onProgress, opts.layout)
  opts.onProgress?.(`done in ${((Date.now() - started) / 1000).toFixed(1)} s: ${opts.out}`)
}
