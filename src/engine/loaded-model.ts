/**
 * Everything the worker loads from a model folder, checked against each other:
 * config.json's shape, the ONNX session's signature and the tokenizer.
 */
import type * as ort from 'onnxruntime-node'
import { readModelSpec } from './model-config.js'
import type { ModelSpec } from '../domain/model-spec.js'
import { createSession, type SessionOptions } from './onnx-session.js'
import { readSignature, type OnnxSignature, type TensorMeta } from './onnx-signature.js'
import { quantizationOf } from './quantization.js'
import { TextTokenizer } from './tokenizer.js'

export interface LoadedModel {
  spec: ModelSpec
  session: ort.InferenceSession
  signature: OnnxSignature
  tokenizer: TextTokenizer
}

export async function loadModel(modelDir: string, opts: SessionOptions): Promise<LoadedModel> {
  const configSpec = await readModelSpec(modelDir)
  const tokenizer = await TextTokenizer.load(modelDir, configSpec.bosTokenId)
  const { session, derived } = await createSession(modelDir, opts)
  const meta = session as unknown as { inputMetadata: TensorMeta[]; outputMetadata: TensorMeta[] }
  const signature = readSignature(meta.inputMetadata, meta.outputMetadata, configSpec)
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
  return { spec, session, signature, tokenizer }
}
