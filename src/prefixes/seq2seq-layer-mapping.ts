/**
 * Which slices of a PEFT prefix's `prompt_embeddings` (viewed [P, 2L, H, D])
 * become each layer's key and value.
 *
 * Decoder-only (CAUSAL_LM): layer i takes slices 2i (key) and 2i + 1 (value).
 *
 * Encoder-decoder (SEQ_2_SEQ_LM, num_transformer_submodules 2): PEFT's
 * get_prompt concatenates the 2L axis with itself and cuts it into L groups of
 * four (self key, self value, cross key, cross value), then throws the cross
 * pair away. Decoder layer i therefore reads slices 2j, 2j + 1 with
 * j = (2i) mod L, and only the decoder's self-attention gets a prefix (verified
 * against PEFT 0.21 for L = 1..4: L = 2 → both layers (0,1); L = 3 → (0,1),
 * (4,5), (2,3); L = 4 → (0,1), (4,5), (0,1), (4,5)).
 */
import type { ModelArchitecture } from '../domain/model-spec.js'

export interface LayerSlices {
  key: number
  value: number
}

export function layerSlices(layer: number, numLayers: number, architecture: ModelArchitecture): LayerSlices {
  const j = architecture === 'encoder-decoder' ? (2 * layer) % numLayers : layer
  return { key: 2 * j, value: 2 * j + 1 }
}
