/**
 * What the engine and the prefix code need to know about the loaded model,
 * discovered from config.json and the ONNX session metadata (never hard-coded).
 */
export interface ModelSpec {
  /** config.json `model_type` ("llama", "gpt2", ...). */
  modelType: string
  numLayers: number
  numAttentionHeads: number
  /** Key/value heads: fewer than attention heads for grouped-query attention. */
  numKvHeads: number
  /** Head size of keys (and of the prefix's key tensors). */
  headDim: number
  /** Head size of values: equals headDim except in multi-head latent attention (DeepSeek). */
  valueHeadDim: number
  hiddenSize: number
  vocabSize: number
  /** Longest sequence the model supports, prefix included. */
  maxPositions: number
  bosTokenId: number | null
  eosTokenIds: number[]
  padTokenId: number | null
  /** Why this model cannot take prefixes (PEFT cannot build them for its family); null when it can. */
  prefixRefusal: string | null
  /**
   * How the graph is quantized, when it is: 'int8-dynamic' scales activations
   * over the whole batch, so a row's output depends on its batch companions.
   */
  quantization: 'int8-dynamic' | null
  /**
   * Measured at load (batch-invariance-probe.ts): whether a row gets the same
   * logits alone and padded in a batch. False for dynamically quantized graphs.
   */
  batchInvariant: boolean
  /** Graph rewrites applied at load (position_ids, float32_io, ...), in order. */
  graphRewrites: string[]
  /**
   * 'encoder-decoder' for BART/T5-style models (config.json is_encoder_decoder);
   * absent means decoder-only. Prefixes made for one kind never fit the other.
   */
  architecture?: ModelArchitecture
  /** Encoder-decoder models: the id every decoder sequence starts from. */
  decoderStartTokenId?: number
}

export type ModelArchitecture = 'decoder-only' | 'encoder-decoder'

export function architectureOf(spec: Pick<ModelSpec, 'architecture'>): ModelArchitecture {
  return spec.architecture ?? 'decoder-only'
}
