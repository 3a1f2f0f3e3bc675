/**
 * A short identity of the base model's shape, written into every stored blob
 * (`model_fingerprint`), so a prefix file carried to a server with another
 * model is recognised even when layers, heads and head size happen to agree.
 */
import { createHash } from 'node:crypto'
import type { ModelSpec } from '../../domain/model-spec.js'

export function modelFingerprint(spec: ModelSpec): string {
  // The fields of config.json that fix the meaning of a layer's keys and values.
  const shape = {
    model_type: spec.modelType,
    hidden_size: spec.hiddenSize,
    num_hidden_layers: spec.numLayers,
    num_attention_heads: spec.numAttentionHeads,
    num_key_value_heads: spec.numKvHeads,
    head_dim: spec.headDim,
    vocab_size: spec.vocabSize,
  }
  return `sha256:${createHash('sha256').update(JSON.stringify(shape)).digest('hex')}`
}
