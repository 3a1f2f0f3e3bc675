/**
 * What a pass with no LoRA row feeds a graph derived for LoRA: rank-0 factors
 * for every LoRA input (the engine's own ForwardRunner does the same), so
 * bench loops that drive sessions directly can run the graph the server loads.
 */
import * as ort from 'onnxruntime-node'
import { buildLoraFeed } from '../src/engine/batch/lora-feed.js'
import { readLoraInputs } from '../src/engine/lora-signature.js'
import type { TensorMeta } from '../src/engine/onnx-signature.js'

export function noLoraFeeds(session: ort.InferenceSession, batch: number): Record<string, ort.Tensor> {
  const inputs = readLoraInputs((session as unknown as { inputMetadata: TensorMeta[] }).inputMetadata)
  const feeds: Record<string, ort.Tensor> = {}
  for (const [name, t] of buildLoraFeed(inputs, new Array(batch).fill(null))) feeds[name] = new ort.Tensor('float32', t.data, t.dims)
  return feeds
}
