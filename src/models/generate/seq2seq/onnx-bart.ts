/**
 * BART's three optimum graphs (encoder, decoder, decoder with past) from the
 * generator's weights: learned positions with BART's offset 2 (decoder
 * positions = past length + i), layernorm_embedding, post-LayerNorm layers,
 * exact GELU, biases everywhere, separate output head (seq2seq-weights.ts says why).
 */
import { float, GraphBuilder } from '../onnx-graph-builder.js'
import {
  attend,
  causalBias,
  crossKeysValues,
  declareDecoder,
  declareEncoder,
  decoderPositions,
  encoderPositions,
  keyPaddingBias,
  linear,
  selfKeysValues,
  splitHeads,
  outputLogits,
  weightsOf,
} from './seq2seq-graph-parts.js'
import type { Seq2seqWeights } from './seq2seq-weights.js'

const POSITION_OFFSET = 2

/** Weight accessors and the building blocks of one graph. */
function tensors(g: GraphBuilder, w: Seq2seqWeights) {
  const tensor = weightsOf(g, w)
  const d = w.dims
  const norm = (x: string, p: string) => g.op1('LayerNormalization', [x, tensor(`${p}.weight`), tensor(`${p}.bias`)], { axis: -1, epsilon: float(d.normEps) })
  const proj = (x: string, p: string) => linear(g, x, tensor(`${p}.weight`), tensor(`${p}.bias`))
  /** Exact GELU: 0.5·x·(1 + erf(x/√2)); opset 17 has no Gelu op. */
  const gelu = (x: string) => g.op1('Mul', [g.op1('Mul', [x, g.op1('Add', [g.op1('Erf', [g.op1('Mul', [x, g.constFloat([Math.SQRT1_2])])]), g.constFloat([1])])]), g.constFloat([0.5])])
  const ffn = (x: string, p: string) => norm(g.op1('Add', [x, proj(gelu(proj(x, `${p}.fc1`)), `${p}.fc2`)]), `${p}.final_layer_norm`)
  const embed = (ids: string, positions: string, side: string) => {
    const tokens = g.op1('Gather', [tensor('model.shared.weight'), ids], { axis: 0 })
    const shifted = g.op1('Add', [positions, g.constInt([POSITION_OFFSET], [])])
    const pos = g.op1('Gather', [tensor(`model.${side}.embed_positions.weight`), shifted], { axis: 0 })
    return norm(g.op1('Add', [tokens, pos]), `model.${side}.layernorm_embedding`)
  }
  return { tensor, norm, proj, ffn, embed }
}

export function buildBartEncoder(w: Seq2seqWeights): GraphBuilder {
  const d = w.dims
  const g = new GraphBuilder()
  const io = declareEncoder(g, d)
  const { norm, proj, ffn, embed } = tensors(g, w)
  const padding = keyPaddingBias(g, io.attentionMask)
  let hidden = embed(io.inputIds, encoderPositions(g, io), 'encoder')
  const scale = 1 / Math.sqrt(d.headDim)
  for (let i = 0; i < d.numLayers; i++) {
    const p = `model.encoder.layers.${i}`
    const heads = (x: string) => splitHeads(g, d, proj(hidden, `${p}.self_attn.${x}`))
    const context = attend(g, d, heads('q_proj'), heads('k_proj'), heads('v_proj'), [padding], scale)
    hidden = norm(g.op1('Add', [hidden, proj(context, `${p}.self_attn.out_proj`)]), `${p}.self_attn_layer_norm`)
    hidden = ffn(hidden, p)
  }
  g.op1('Identity', [hidden], {}, 'last_hidden_state')
  return g
}

export function buildBartDecoder(w: Seq2seqWeights, withPast: boolean): GraphBuilder {
  const d = w.dims
  const g = new GraphBuilder()
  const io = declareDecoder(g, d, withPast)
  const { tensor, norm, proj, ffn, embed } = tensors(g, w)
  const pos = decoderPositions(g, io)
  const causal = causalBias(g, pos)
  const padding = keyPaddingBias(g, io.encoderMask)
  let hidden = embed(io.inputIds, pos.query, 'decoder')
  const scale = 1 / Math.sqrt(d.headDim)
  for (let i = 0; i < d.numLayers; i++) {
    const p = `model.decoder.layers.${i}`
    const heads = (x: string, from: string) => splitHeads(g, d, proj(from, x))
    const self = selfKeysValues(g, io, i, heads(`${p}.self_attn.k_proj`, hidden), heads(`${p}.self_attn.v_proj`, hidden))
    const selfContext = attend(g, d, heads(`${p}.self_attn.q_proj`, hidden), self.key, self.value, [causal], scale)
    hidden = norm(g.op1('Add', [hidden, proj(selfContext, `${p}.self_attn.out_proj`)]), `${p}.self_attn_layer_norm`)
    const cross = crossKeysValues(g, io, i, () => ({
      key: heads(`${p}.encoder_attn.k_proj`, io.encoderHidden),
      value: heads(`${p}.encoder_attn.v_proj`, io.encoderHidden),
    }))
    const crossContext = attend(g, d, heads(`${p}.encoder_attn.q_proj`, hidden), cross.key, cross.value, [padding], scale)
    hidden = norm(g.op1('Add', [hidden, proj(crossContext, `${p}.encoder_attn.out_proj`)]), `${p}.encoder_attn_layer_norm`)
    hidden = ffn(hidden, p)
  }
  outputLogits(g, d, hidden, tensor('lm_head.weight'), io)
  return g
}
