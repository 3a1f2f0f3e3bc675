import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { huggingFaceConfig } from './model-dims.js'
import { buildGpt2Graph } from './onnx-gpt2.js'
import { buildLlamaGraph } from './onnx-llama.js'
import type { GraphBuilder } from './onnx-graph-builder.js'
import { buildLayoutGraph, modelFileName, type ModelLayout } from './model-layout.js'
import { writeOnnxModel } from './onnx-writer.js'
import { tokenizerFiles } from './tokenizer-files.js'
import type { ModelWeights } from './weights.js'

export function buildDecoderGraph(weights: ModelWeights, layout: ModelLayout = {}): GraphBuilder {
  return buildLayoutGraph(weights, weights.dims.arch === 'llama' ? buildLlamaGraph : buildGpt2Graph, layout)
}

function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`
}

/**
 * Writes a model directory in the optimum layout (model.onnx, config.json,
 * generation_config.json, tokenizer.json, tokenizer_config.json) from any
 * weights in the generator's layout: random ones, or imported ones.
 */
export async function writeModelDirectory(
  weights: ModelWeights,
  out: string,
  onProgress?: (msg: string) => void,
  layout: ModelLayout = {},
): Promise<void> {
  const dims = weights.dims
  await mkdir(out, { recursive: true })
  let reported = 0
  const file = modelFileName(layout)
  const progress = (written: number, total: number): void => {
    const percent = Math.floor((100 * written) / total)
    if (percent >= reported + 25) {
      reported = percent - (percent % 25)
      onProgress?.(`${file}: ${percent}% of ${(total / 1e6).toFixed(1)} MB`)
    }
  }
  const bytes = await writeOnnxModel(join(out, file), buildDecoderGraph(weights, layout), progress, { externalData: layout.externalData })
  onProgress?.(`wrote ${file}${layout.externalData ? ' and its external data' : ''} (${(bytes / 1e6).toFixed(1)} MB)`)
  const tokenizer = tokenizerFiles(dims)
  const config = { ...huggingFaceConfig(dims), ...(layout.dtype === 'float16' ? { torch_dtype: 'float16' } : {}) }
  await writeFile(join(out, 'config.json'), json(config))
  await writeFile(join(out, 'generation_config.json'), json({ bos_token_id: dims.bosTokenId, eos_token_id: dims.eosTokenId }))
  // Compact, like the files Hugging Face writes: the 32000-piece vocabulary is large.
  await writeFile(join(out, 'tokenizer.json'), JSON.stringify(tokenizer.tokenizer))
  await writeFile(join(out, 'tokenizer_config.json'), json(tokenizer.config))
  onProgress?.('wrote config.json, generation_config.json, tokenizer.json, tokenizer_config.json')
}
