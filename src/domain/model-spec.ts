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
  headDim: number
  hiddenSize: number
  vocabSize: number
  /** Longest sequence the model supports, prefix included. */
  maxPositions: number
  bosTokenId: number | null
  eosTokenIds: number[]
  padTokenId: number | null
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
