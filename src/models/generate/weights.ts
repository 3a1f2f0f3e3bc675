import { fillNormal, mulberry32, tensorSeed } from './prng.js'
import { modelDims, type ModelArch, type ModelDims, type ModelSize } from './model-dims.js'

/**
 * A model's parameters by their Hugging Face names. Linear weights are laid out
 * [in, out] (the transpose of torch's nn.Linear, the layout of GPT-2's Conv1D),
 * so `x · W` is a plain MatMul in the graph and a plain loop in the reference.
 * The embedding is [vocab, hidden] and also serves as the (tied) output head.
 */
export interface WeightTensor {
  dims: number[]
  data: Float32Array
}

export interface ModelWeights {
  dims: ModelDims
  tensors: Map<string, WeightTensor>
}

interface WeightSpec {
  name: string
  dims: number[]
  mean: number
  std: number
}

/**
 * Why these scales: the tests compare greedy argmax across batch layouts, so
 * the logits must not be near-uniform (near-ties would flip on float noise).
 * With the output head tied to the embedding and a final norm of rms ~1, the
 * logit std is about sqrt(hidden) * embeddingStd, so embeddingStd =
 * LOGIT_STD / sqrt(hidden) gives logits with a std of a few units at every
 * size. Projections use std 1/sqrt(fan_in) so each keeps an rms of ~1, and
 * attention scores have a std of ~1: attention neither collapses onto one key
 * nor flattens to a plain average, so masks and positions visibly matter.
 * Norm gains (1 ± 0.1) and biases (std 0.1) are random so that a graph that
 * forgot one would fail the comparison with the reference.
 */
const LOGIT_STD = 4
const GAIN_STD = 0.1
const BIAS_STD = 0.1

function linear(name: string, fanIn: number, fanOut: number): WeightSpec {
  return { name, dims: [fanIn, fanOut], mean: 0, std: 1 / Math.sqrt(fanIn) }
}

function gain(name: string, size: number): WeightSpec {
  return { name, dims: [size], mean: 1, std: GAIN_STD }
}

function bias(name: string, size: number): WeightSpec {
  return { name, dims: [size], mean: 0, std: BIAS_STD }
}

function llamaSpecs(d: ModelDims): WeightSpec[] {
  const h = d.hiddenSize
  const qWidth = d.numHeads * d.headDim
  const kvWidth = d.numKvHeads * d.headDim
  const specs: WeightSpec[] = [
    { name: 'model.embed_tokens.weight', dims: [d.vocabSize, h], mean: 0, std: LOGIT_STD / Math.sqrt(h) },
  ]
  for (let i = 0; i < d.numLayers; i++) {
    const p = `model.layers.${i}`
    specs.push(
      gain(`${p}.input_layernorm.weight`, h),
      linear(`${p}.self_attn.q_proj.weight`, h, qWidth),
      linear(`${p}.self_attn.k_proj.weight`, h, kvWidth),
      linear(`${p}.self_attn.v_proj.weight`, h, kvWidth),
      linear(`${p}.self_attn.o_proj.weight`, qWidth, h),
      gain(`${p}.post_attention_layernorm.weight`, h),
      linear(`${p}.mlp.gate_proj.weight`, h, d.intermediateSize),
      linear(`${p}.mlp.up_proj.weight`, h, d.intermediateSize),
      linear(`${p}.mlp.down_proj.weight`, d.intermediateSize, h),
    )
  }
  specs.push(gain('model.norm.weight', h))
  return specs
}

function gpt2Specs(d: ModelDims): WeightSpec[] {
  const h = d.hiddenSize
  const embeddingStd = LOGIT_STD / Math.sqrt(h)
  const specs: WeightSpec[] = [
    { name: 'transformer.wte.weight', dims: [d.vocabSize, h], mean: 0, std: embeddingStd },
    // As large as the token embedding, so that position ids change the output.
    { name: 'transformer.wpe.weight', dims: [d.maxPositions, h], mean: 0, std: embeddingStd },
  ]
  for (let i = 0; i < d.numLayers; i++) {
    const p = `transformer.h.${i}`
    specs.push(
      gain(`${p}.ln_1.weight`, h),
      bias(`${p}.ln_1.bias`, h),
      linear(`${p}.attn.c_attn.weight`, h, 3 * h),
      bias(`${p}.attn.c_attn.bias`, 3 * h),
      linear(`${p}.attn.c_proj.weight`, h, h),
      bias(`${p}.attn.c_proj.bias`, h),
      gain(`${p}.ln_2.weight`, h),
      bias(`${p}.ln_2.bias`, h),
      linear(`${p}.mlp.c_fc.weight`, h, d.intermediateSize),
      bias(`${p}.mlp.c_fc.bias`, d.intermediateSize),
      linear(`${p}.mlp.c_proj.weight`, d.intermediateSize, h),
      bias(`${p}.mlp.c_proj.bias`, h),
    )
  }
  specs.push(gain('transformer.ln_f.weight', h), bias('transformer.ln_f.bias', h))
  return specs
}

/** Deterministic random weights for a model shape: the same seed, the same floats. */
export function buildWeightsForDims(dims: ModelDims, seed = 0): ModelWeights {
  const specs = dims.arch === 'llama' ? llamaSpecs(dims) : gpt2Specs(dims)
  const tensors = new Map<string, WeightTensor>()
  for (const spec of specs) {
    const data = new Float32Array(spec.dims.reduce((a, b) => a * b, 1))
    fillNormal(data, mulberry32(tensorSeed(seed, spec.name)), spec.mean, spec.std)
    tensors.set(spec.name, { dims: spec.dims, data })
  }
  return { dims, tensors }
}

export function buildWeights(arch: ModelArch, size: ModelSize, seed = 0): ModelWeights {
  return buildWeightsForDims(modelDims(arch, size), seed)
}

/** The tensor named `name`; throws so that a misspelt name fails loudly. */
export function weight(weights: ModelWeights, name: string): WeightTensor {
  const tensor = weights.tensors.get(name)
  if (!tensor) throw new Error(`model has no weight named ${name}`)
  return tensor
}
