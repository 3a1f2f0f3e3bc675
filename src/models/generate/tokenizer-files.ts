import type { ModelDims } from './model-dims.js'
import { gpt2TokenizerFiles } from './tokenizer-gpt2.js'
import { llamaTokenizerFiles } from './tokenizer-llama.js'

/** The contents of tokenizer.json and tokenizer_config.json. */
export interface TokenizerFiles {
  tokenizer: Record<string, unknown>
  config: Record<string, unknown>
}

/**
 * The tokenizer for a generated model: its vocabulary has exactly
 * dims.vocabSize ids, so every id the model can emit decodes. It depends on
 * the architecture and the vocabulary size only, never on the weight seed.
 */
export function tokenizerFiles(dims: ModelDims): TokenizerFiles {
  return dims.arch === 'llama'
    ? llamaTokenizerFiles(dims.vocabSize, dims.maxPositions)
    : gpt2TokenizerFiles(dims.vocabSize, dims.maxPositions)
}
