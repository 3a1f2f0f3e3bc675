/**
 * Everything the worker loads from a model folder, checked against each other:
 * config.json's shape, the ONNX session's signature and the tokenizer.
 */
import type * as ort from 'onnxruntime-node'
import { readModelSpec } from './model-config.js'
import type { ModelSpec } from '../domain/model-spec.js'
import { createSession, type SessionOptions } from './onnx-session.js'
import { readSignature, type OnnxSignature, type TensorMeta } from './onnx-signature.js'
import { TextTokenizer } from './tokenizer.js'

export interface LoadedModel {
  spec: ModelSpec
  session: ort.InferenceSession
  signature: OnnxSignature
  tokenizer: TextTokenizer
}

export async function loadModel(modelDir: string, opts: SessionOptions): Promise<LoadedModel> {
  const spec = await readModelSpec(modelDir)
  const tokenizer = await TextTokenizer.load(modelDir, spec.bosTokenId)
  const session = await createSession(modelDir, opts)
  const meta = session as unknown as { inputMetadata: TensorMeta[]; outputMetadata: TensorMeta[] }
  const signature = readSignature(meta.inputMetadata, meta.outputMetadata, spec)
  return { spec, session, signature, tokenizer }
}
