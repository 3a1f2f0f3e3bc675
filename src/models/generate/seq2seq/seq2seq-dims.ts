/**
 * Shapes of the generated encoder-decoder models (BART and T5 families) and
 * the config.json transformers would write for them. Encoder and decoder have
 * the same depth; token ids follow the project's tokenizer (<unk> 0, <s> 1,
 * </s> 2), with each family's own decoder start (BART </s>, T5 pad).
 */
export const SEQ2SEQ_ARCHS = ['bart', 't5'] as const
export type Seq2seqArch = (typeof SEQ2SEQ_ARCHS)[number]
export const SEQ2SEQ_SIZES = ['tiny', 'bench'] as const
export type Seq2seqSize = (typeof SEQ2SEQ_SIZES)[number]

export interface Seq2seqDims {
  arch: Seq2seqArch
  hiddenSize: number
  /** Layers of the encoder, and of the decoder. */
  numLayers: number
  numHeads: number
  headDim: number
  ffnSize: number
  vocabSize: number
  /** BART's learned position table (without its offset of 2); T5 has none and uses relative buckets. */
  maxPositions: number
  relativeBuckets: number
  relativeMaxDistance: number
  normEps: number
}

const SHAPES: Record<Seq2seqSize, Pick<Seq2seqDims, 'hiddenSize' | 'numLayers' | 'numHeads' | 'ffnSize' | 'vocabSize' | 'maxPositions'>> = {
  // Like the shared bart-toy / t5-toy: small enough for every test.
  tiny: { hiddenSize: 64, numLayers: 2, numHeads: 4, ffnSize: 128, vocabSize: 512, maxPositions: 128 },
  // A BART-shaped model of useful size for the bench (about 10M parameters).
  bench: { hiddenSize: 256, numLayers: 4, numHeads: 8, ffnSize: 1024, vocabSize: 8192, maxPositions: 256 },
}

export const PAD_ID = 0
export const BOS_ID = 1
export const EOS_ID = 2

export function seq2seqDims(arch: Seq2seqArch, size: Seq2seqSize): Seq2seqDims {
  const s = SHAPES[size]
  return {
    arch,
    ...s,
    headDim: s.hiddenSize / s.numHeads,
    relativeBuckets: 32,
    relativeMaxDistance: 128,
    normEps: arch === 'bart' ? 1e-5 : 1e-6,
  }
}

export function decoderStartId(arch: Seq2seqArch): number {
  return arch === 'bart' ? EOS_ID : PAD_ID
}

/** config.json as transformers writes it for BartForConditionalGeneration / T5ForConditionalGeneration. */
export function seq2seqConfig(d: Seq2seqDims): Record<string, unknown> {
  const common = { is_encoder_decoder: true, vocab_size: d.vocabSize, pad_token_id: PAD_ID, eos_token_id: EOS_ID, decoder_start_token_id: decoderStartId(d.arch), tie_word_embeddings: false, use_cache: true }
  if (d.arch === 'bart') {
    return {
      ...common,
      architectures: ['BartForConditionalGeneration'],
      model_type: 'bart',
      bos_token_id: BOS_ID,
      d_model: d.hiddenSize,
      encoder_layers: d.numLayers,
      decoder_layers: d.numLayers,
      encoder_attention_heads: d.numHeads,
      decoder_attention_heads: d.numHeads,
      encoder_ffn_dim: d.ffnSize,
      decoder_ffn_dim: d.ffnSize,
      activation_function: 'gelu',
      max_position_embeddings: d.maxPositions,
      scale_embedding: false,
    }
  }
  return {
    ...common,
    architectures: ['T5ForConditionalGeneration'],
    model_type: 't5',
    d_model: d.hiddenSize,
    d_kv: d.headDim,
    d_ff: d.ffnSize,
    num_layers: d.numLayers,
    num_decoder_layers: d.numLayers,
    num_heads: d.numHeads,
    feed_forward_proj: 'relu',
    relative_attention_num_buckets: d.relativeBuckets,
    relative_attention_max_distance: d.relativeMaxDistance,
    layer_norm_epsilon: d.normEps,
  }
}
