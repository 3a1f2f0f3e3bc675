/**
 * Everything the worker loads from a model folder, checked against each other:
 * config.json's shape, the ONNX session's signature and the tokenizer.
 */
import { readModelSpec } from './model-config.js'
import type { ModelSpec } from '../domain/model-spec.js'
import { createSession, type SessionOptions } from './onnx-session.js'
import { readSignature, type OnnxSignature } from './onnx-signature.js'
import type { PassSession } from './session/pass-session.js'
import type { LoraInput } from './batch/lora-feed.js'
import { readLoraInputs } from './lora-signature.js'
import { quantizationOf } from './quantization.js'
import { TextTokenizer } from './tokenizer.js'

export interface LoadedModel {
  spec: ModelSpec
  session: PassSession
  signature: OnnxSignature
  tokenizer: TextTokenizer
  /** The per-row LoRA inputs the derived graph takes (none: LoRA is not served). */
  loraInputs: LoraInput[]
}

export async function loadModel(modelDir: string, opts: SessionOptions): Promise<LoadedModel> {
  const configSpec = await readModelSpec(modelDir)
  const tokenizer = await TextTokenizer.load(modelDir, configSpec.bosTokenId)
  const { session, derived } = await createSession(modelDir, opts)
  const signature = {
    ...readSignature(session.inputMetadata, session.outputMetadata, configSpec),
    presentInPlace: session.bindsOutputs && derived.applied.includes('present_in_place'),
  }
  const valueHeadDim = signature.valueHeadDim ?? configSpec.valueHeadDim
  const spec = {
    ...configSpec,
    valueHeadDim,
    // A prefix is one key/value size per head; PEFT shapes no other.
    prefixRefusal:
      configSpec.prefixRefusal ??
      (valueHeadDim !== configSpec.headDim ? `keys (${configSpec.headDim}) and values (${valueHeadDim}) have different head sizes, which PEFT's prefix tuning cannot shape` : null),
    quantization: quantizationOf(derived.opTypes),
    graphRewrites: derived.applied,
  }
  return { spec, session, signature, tokenizer, loraInputs: readLoraInputs(session.inputMetadata) }
}
