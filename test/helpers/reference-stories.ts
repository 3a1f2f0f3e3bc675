import { readFileSync } from 'node:fs'
import { fromBinary } from '@bufbuild/protobuf'
import { ModelProtoSchema } from 'onnx-buf'
import type { ModelDims, ModelWeights, WeightTensor } from '../../src/models/generate/index.js'
import type { PrefixKV } from '../../src/domain/prefix-kv.js'
import { storiesModelDir as STORIES_MODEL_DIR, storiesPrefixesDir as STORIES_PREFIXES_DIR } from './shared-data.js'

/**
 * The real stories260K model (a PyTorch export of HF LlamaForCausalLM) and
 * its PEFT prefix adapters, read into the generator's weight layout: the
 * yardstick that pins the reference forward pass, and the graph the generator
 * writes, to transformers' and PEFT's own numbers (the repository's copies,
 * see shared-data.ts).
 */
export { STORIES_MODEL_DIR, STORIES_PREFIXES_DIR }

export interface StoriesExpected {
  cases: { prompt: string; prompt_ids: number[]; generated_ids: number[] }[]
  last_prompt_position_logits: { prompt_ids: number[]; values: number[] }
}

export function readStoriesExpected(path: string): StoriesExpected {
  return JSON.parse(readFileSync(path, 'utf8')) as StoriesExpected
}

function storiesDims(): ModelDims {
  const c = JSON.parse(readFileSync(`${STORIES_MODEL_DIR}config.json`, 'utf8')) as Record<string, number>
  return {
    arch: 'llama',
    hiddenSize: c.hidden_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    numKvHeads: c.num_key_value_heads,
    headDim: c.head_dim,
    intermediateSize: c.intermediate_size,
    vocabSize: c.vocab_size,
    maxPositions: c.max_position_embeddings,
    normEps: c.rms_norm_eps,
    ropeTheta: c.rope_theta,
    bosTokenId: c.bos_token_id,
    eosTokenId: c.eos_token_id,
  }
}

/**
 * The exporter names norm and embedding initializers after the module
 * ("model.model.…") but the pre-transposed [in, out] projection weights
 * "onnx::MatMul_N"; those are named here after the MatMul node that reads
 * them ("/model/model/layers.0/self_attn/q_proj/MatMul"). The separate
 * lm_head copy is skipped: the head is tied to the embedding.
 */
export function loadStoriesWeights(): ModelWeights {
  const model = fromBinary(ModelProtoSchema, readFileSync(`${STORIES_MODEL_DIR}model.onnx`))
  const graph = model.graph!
  const matmulOwner = new Map<string, string>()
  for (const node of graph.node) {
    const match = /^\/model\/model\/(layers\.\d+)\/(self_attn|mlp)\/(\w+_proj)\/MatMul$/.exec(node.name)
    if (match) matmulOwner.set(node.input[1], `model.${match[1]}.${match[2]}.${match[3]}.weight`)
  }
  const tensors = new Map<string, WeightTensor>()
  for (const init of graph.initializer) {
    const name = init.name.startsWith('model.model.') ? init.name.slice('model.'.length) : matmulOwner.get(init.name)
    if (!name) continue
    tensors.set(name, { dims: init.dims.map(Number), data: new Float32Array(new Uint8Array(init.rawData).buffer) })
  }
  return { dims: storiesDims(), tensors }
}

/**
 * A PEFT prefix adapter: adapter_model.safetensors holds prompt_embeddings
 * [P, layers * 2 * kv_heads * head_dim]; row t viewed as [2 * layers, kv_heads,
 * head_dim] holds layer i's key at 2i and value at 2i + 1 for virtual token t.
 */
export function loadStoriesPrefix(name: string, dims: ModelDims): PrefixKV {
  const file = readFileSync(`${STORIES_PREFIXES_DIR}${name}/adapter_model.safetensors`)
  const headerLength = Number(file.readBigUInt64LE(0))
  const header = JSON.parse(file.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>
  const entry = header.prompt_embeddings
  if (entry.dtype !== 'F32') throw new Error(`prompt_embeddings is ${entry.dtype}, expected F32`)
  const start = 8 + headerLength + entry.data_offsets[0]
  const data = new Float32Array(file.buffer.slice(file.byteOffset + start, file.byteOffset + 8 + headerLength + entry.data_offsets[1]))
  const [length, width] = entry.shape
  const { numLayers, numKvHeads, headDim } = dims
  const keys = Array.from({ length: numLayers }, () => new Float32Array(numKvHeads * length * headDim))
  const values = Array.from({ length: numLayers }, () => new Float32Array(numKvHeads * length * headDim))
  for (let t = 0; t < length; t++) {
    for (let layer = 0; layer < numLayers; layer++) {
      for (let h = 0; h < numKvHeads; h++) {
        const target = (h * length + t) * headDim
        const keyAt = t * width + ((2 * layer) * numKvHeads + h) * headDim
        const valueAt = t * width + ((2 * layer + 1) * numKvHeads + h) * headDim
        keys[layer].set(data.subarray(keyAt, keyAt + headDim), target)
        values[layer].set(data.subarray(valueAt, valueAt + headDim), target)
      }
    }
  }
  return { numVirtualTokens: length, numLayers, numKvHeads, headDim, keys, values }
}
