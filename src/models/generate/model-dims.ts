/** The shapes of the models the generator can write, and their config.json. */

export type ModelArch = 'llama' | 'gpt2'
export type ModelSize = 'tiny' | '15m' | '110m'

export const MODEL_ARCHS: readonly ModelArch[] = ['llama', 'gpt2']
export const MODEL_SIZES: readonly ModelSize[] = ['tiny', '15m', '110m']

/** Everything that fixes the tensor shapes and the arithmetic of a forward pass. */
export interface ModelDims {
  arch: ModelArch
  hiddenSize: number
  numLayers: number
  numHeads: number
  /** Equals numHeads for GPT-2; fewer than numHeads means grouped-query attention. */
  numKvHeads: number
  headDim: number
  intermediateSize: number
  vocabSize: number
  maxPositions: number
  /** RMSNorm eps (llama) or LayerNorm eps (gpt2). */
  normEps: number
  /** Rotary base; unused by GPT-2, which learns its position embeddings. */
  ropeTheta: number
  bosTokenId: number
  eosTokenId: number
}

interface Shape {
  hidden: number
  layers: number
  heads: number
  kvHeads: number
  intermediate: number
  vocab: number
  positions: number
}

const LLAMA_SHAPES: Record<ModelSize, Shape> = {
  // Two kv heads for four query heads, so the tests exercise grouped-query attention.
  tiny: { hidden: 64, layers: 2, heads: 4, kvHeads: 2, intermediate: 128, vocab: 512, positions: 256 },
  // The llama2.c stories15M shape.
  '15m': { hidden: 288, layers: 6, heads: 6, kvHeads: 6, intermediate: 768, vocab: 32000, positions: 256 },
  // The llama2.c stories110M shape.
  '110m': { hidden: 768, layers: 12, heads: 12, kvHeads: 12, intermediate: 2048, vocab: 32000, positions: 1024 },
}

const GPT2_SHAPES: Record<ModelSize, Shape> = {
  tiny: { hidden: 64, layers: 2, heads: 4, kvHeads: 4, intermediate: 256, vocab: 512, positions: 256 },
  '15m': { hidden: 288, layers: 6, heads: 6, kvHeads: 6, intermediate: 1152, vocab: 32000, positions: 256 },
  // The shape of the original GPT-2 small (124M parameters with its embeddings).
  '110m': { hidden: 768, layers: 12, heads: 12, kvHeads: 12, intermediate: 3072, vocab: 50257, positions: 1024 },
}

export function modelDims(arch: ModelArch, size: ModelSize): ModelDims {
  const shape = (arch === 'llama' ? LLAMA_SHAPES : GPT2_SHAPES)[size]
  // GPT-2 has a single special token, <|endoftext|>, at the end of the vocabulary.
  const endOfText = shape.vocab - 1
  return {
    arch,
    hiddenSize: shape.hidden,
    numLayers: shape.layers,
    numHeads: shape.heads,
    numKvHeads: shape.kvHeads,
    headDim: shape.hidden / shape.heads,
    intermediateSize: shape.intermediate,
    vocabSize: shape.vocab,
    maxPositions: shape.positions,
    normEps: 1e-5,
    ropeTheta: 10000,
    bosTokenId: arch === 'llama' ? 1 : endOfText,
    eosTokenId: arch === 'llama' ? 2 : endOfText,
  }
}

/** config.json with the keys Hugging Face transformers writes for this architecture. */
export function huggingFaceConfig(dims: ModelDims): Record<string, unknown> {
  if (dims.arch === 'llama') {
    return {
      architectures: ['LlamaForCausalLM'],
      attention_bias: false,
      attention_dropout: 0.0,
      bos_token_id: dims.bosTokenId,
      eos_token_id: dims.eosTokenId,
      head_dim: dims.headDim,
      hidden_act: 'silu',
      hidden_size: dims.hiddenSize,
      initializer_range: 0.02,
      intermediate_size: dims.intermediateSize,
      max_position_embeddings: dims.maxPositions,
      mlp_bias: false,
      model_type: 'llama',
      num_attention_heads: dims.numHeads,
      num_hidden_layers: dims.numLayers,
      num_key_value_heads: dims.numKvHeads,
      pad_token_id: null,
      pretraining_tp: 1,
      rms_norm_eps: dims.normEps,
      rope_scaling: null,
      rope_theta: dims.ropeTheta,
      tie_word_embeddings: true,
      torch_dtype: 'float32',
      use_cache: true,
      vocab_size: dims.vocabSize,
    }
  }
  return {
    activation_function: 'gelu_new',
    architectures: ['GPT2LMHeadModel'],
    attn_pdrop: 0.1,
    bos_token_id: dims.bosTokenId,
    embd_pdrop: 0.1,
    eos_token_id: dims.eosTokenId,
    initializer_range: 0.02,
    layer_norm_epsilon: dims.normEps,
    model_type: 'gpt2',
    n_ctx: dims.maxPositions,
    n_embd: dims.hiddenSize,
    n_head: dims.numHeads,
    n_inner: null,
    n_layer: dims.numLayers,
    n_positions: dims.maxPositions,
    resid_pdrop: 0.1,
    scale_attn_weights: true,
    tie_word_embeddings: true,
    torch_dtype: 'float32',
    use_cache: true,
    vocab_size: dims.vocabSize,
  }
}
