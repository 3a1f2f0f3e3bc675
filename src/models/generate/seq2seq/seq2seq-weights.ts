/**
 * Deterministic random weights of the generated BART and T5 models, by their
 * Hugging Face names, in the generator's [in, out] layout (weights.ts says
 * why, and why these scales: logits of a few units, attention neither flat
 * nor collapsed, so that masks, positions and prefixes visibly matter).
 * The output head is its own matrix (config: tie_word_embeddings false): tied
 * to random embeddings, greedy mostly repeats the token it was fed, which
 * would hide mistakes in positions and masks.
 */
import { fillNormal, mulberry32, tensorSeed } from '../prng.js'
import type { WeightTensor } from '../weights.js'
import type { Seq2seqDims } from './seq2seq-dims.js'

export interface Seq2seqWeights {
  dims: Seq2seqDims
  tensors: Map<string, WeightTensor>
}

interface Spec {
  name: string
  dims: number[]
  mean: number
  std: number
}

const LOGIT_STD = 4
/** Scale of the cross-attention output projection (see bartSpecs). */
const CROSS_OUT = 0.3
const linear = (name: string, fanIn: number, fanOut: number, std = 1 / Math.sqrt(fanIn)): Spec => ({ name, dims: [fanIn, fanOut], mean: 0, std })
const gain = (name: string, size: number): Spec => ({ name, dims: [size], mean: 1, std: 0.1 })
const bias = (name: string, size: number): Spec => ({ name, dims: [size], mean: 0, std: 0.1 })

function bartSpecs(d: Seq2seqDims): Spec[] {
  const h = d.hiddenSize
  const std = LOGIT_STD / Math.sqrt(h)
  const projection = (p: string): Spec[] => [linear(`${p}.weight`, h, h), bias(`${p}.bias`, h)]
  const norm = (p: string): Spec[] => [gain(`${p}.weight`, h), bias(`${p}.bias`, h)]
  const attention = (p: string): Spec[] => ['q_proj', 'k_proj', 'v_proj', 'out_proj'].flatMap((x) => projection(`${p}.${x}`))
  // Cross-attention's output is the same at every step; kept small so that the decoder's own
  // tokens and positions still move the logits and greedy text does not repeat one token.
  const crossAttention = (p: string): Spec[] => [...['q_proj', 'k_proj', 'v_proj'].flatMap((x) => projection(`${p}.${x}`)), linear(`${p}.out_proj.weight`, h, h, CROSS_OUT / Math.sqrt(h)), bias(`${p}.out_proj.bias`, h)]
  const ffn = (p: string): Spec[] => [linear(`${p}.fc1.weight`, h, d.ffnSize), bias(`${p}.fc1.bias`, d.ffnSize), linear(`${p}.fc2.weight`, d.ffnSize, h), bias(`${p}.fc2.bias`, h)]
  const specs: Spec[] = [{ name: 'model.shared.weight', dims: [d.vocabSize, h], mean: 0, std }, { name: 'lm_head.weight', dims: [d.vocabSize, h], mean: 0, std }]
  for (const side of ['encoder', 'decoder']) {
    // BART's learned positions start at row 2 (its offset); as large as the embedding so positions matter.
    specs.push({ name: `model.${side}.embed_positions.weight`, dims: [d.maxPositions + 2, h], mean: 0, std }, ...norm(`model.${side}.layernorm_embedding`))
    for (let i = 0; i < d.numLayers; i++) {
      const p = `model.${side}.layers.${i}`
      specs.push(...attention(`${p}.self_attn`), ...norm(`${p}.self_attn_layer_norm`))
      if (side === 'decoder') specs.push(...crossAttention(`${p}.encoder_attn`), ...norm(`${p}.encoder_attn_layer_norm`))
      specs.push(...ffn(p), ...norm(`${p}.final_layer_norm`))
    }
  }
  return specs
}

function t5Specs(d: Seq2seqDims): Spec[] {
  const h = d.hiddenSize
  const inner = d.numHeads * d.headDim
  // T5 does not scale attention scores; its init puts 1/sqrt(head_dim) into q instead.
  const attention = (p: string, out = 1): Spec[] => [
    linear(`${p}.q.weight`, h, inner, 1 / Math.sqrt(h * d.headDim)),
    linear(`${p}.k.weight`, h, inner),
    linear(`${p}.v.weight`, h, inner),
    linear(`${p}.o.weight`, inner, h, out / Math.sqrt(inner)),
  ]
  const ffn = (p: string): Spec[] => [linear(`${p}.DenseReluDense.wi.weight`, h, d.ffnSize), linear(`${p}.DenseReluDense.wo.weight`, d.ffnSize, h)]
  // A small embedding (as BART's) keeps the residual stream from being mostly the input token, which
  // would make greedy copy its input; the head scales h·Eᵀ by d_model^-0.5, so the decoder's final
  // norm gain of about sqrt(d_model) brings the logits back to a std of LOGIT_STD.
  const std = LOGIT_STD / Math.sqrt(h)
  const specs: Spec[] = [{ name: 'shared.weight', dims: [d.vocabSize, h], mean: 0, std }, { name: 'lm_head.weight', dims: [d.vocabSize, h], mean: 0, std }]
  for (const side of ['encoder', 'decoder']) {
    specs.push({ name: `${side}.block.0.layer.0.SelfAttention.relative_attention_bias.weight`, dims: [d.relativeBuckets, d.numHeads], mean: 0, std: 1 })
    for (let i = 0; i < d.numLayers; i++) {
      const p = `${side}.block.${i}.layer`
      specs.push(...attention(`${p}.0.SelfAttention`), gain(`${p}.0.layer_norm.weight`, h))
      const ff = side === 'decoder' ? 2 : 1
      if (side === 'decoder') specs.push(...attention(`${p}.1.EncDecAttention`, CROSS_OUT), gain(`${p}.1.layer_norm.weight`, h))
      specs.push(...ffn(`${p}.${ff}`), gain(`${p}.${ff}.layer_norm.weight`, h))
    }
    const finalGain = side === 'decoder' ? Math.sqrt(h) : 1
    specs.push({ name: `${side}.final_layer_norm.weight`, dims: [h], mean: finalGain, std: 0.1 * finalGain })
  }
  return specs
}

export function buildSeq2seqWeights(dims: Seq2seqDims, seed = 0): Seq2seqWeights {
  const tensors = new Map<string, WeightTensor>()
  for (const spec of dims.arch === 'bart' ? bartSpecs(dims) : t5Specs(dims)) {
    const data = new Float32Array(spec.dims.reduce((a, b) => a * b, 1))
    fillNormal(data, mulberry32(tensorSeed(seed, spec.name)), spec.mean, spec.std)
    tensors.set(spec.name, { dims: spec.dims, data })
  }
  return { dims, tensors }
}
