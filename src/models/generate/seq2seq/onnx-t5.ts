/**
 * T5's three optimum graphs from the generator's weights: relative position
 * buckets (bidirectional in the encoder, causal in the decoder, computed once
 * per stack from layer 0's table; none in cross-attention), unscaled attention
 * scores, pre-RMSNorm layers, ReLU feed-forward, no biases, head tied to the
 * shared embedding and scaled by d_model^-0.5.
 */
import { TensorProto_DataType } from 'onnx-buf'
import { rmsNorm } from '../onnx-llama.js'
import { GraphBuilder } from '../onnx-graph-builder.js'
import type { Seq2seqDims } from './seq2seq-dims.js'
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

/**
 * transformers' T5Attention._relative_position_bucket, then the table lookup:
 * [1, heads, queries, keys] from query and key positions.
 */
function relativeBias(g: GraphBuilder, d: Seq2seqDims, table: string, query: string, key: string, bidirectional: boolean): string {
  const { INT64, FLOAT } = TensorProto_DataType
  const int = (v: number) => g.constInt([v], [])
  const rel = g.op1('Sub', [g.op1('Unsqueeze', [key, g.constInt([0])]), g.op1('Unsqueeze', [query, g.constInt([1])])])
  const buckets = bidirectional ? d.relativeBuckets / 2 : d.relativeBuckets
  const n = bidirectional ? g.op1('Abs', [rel]) : g.op1('Max', [g.op1('Neg', [rel]), int(0)])
  const maxExact = buckets / 2
  // log(0) never matters (small distances take the exact branch), but keep it finite.
  const nFloat = g.op1('Cast', [g.op1('Max', [n, int(1)])], { to: FLOAT })
  const scaled = g.op1('Mul', [g.op1('Log', [g.op1('Div', [nFloat, g.constFloat([maxExact])])]), g.constFloat([(buckets - maxExact) / Math.log(d.relativeMaxDistance / maxExact)])])
  const large = g.op1('Min', [g.op1('Add', [g.op1('Cast', [scaled], { to: INT64 }), int(maxExact)]), int(buckets - 1)])
  let bucket = g.op1('Where', [g.op1('Less', [n, int(maxExact)]), n, large])
  if (bidirectional) bucket = g.op1('Add', [bucket, g.op1('Mul', [g.op1('Cast', [g.op1('Greater', [rel, int(0)])], { to: INT64 }), int(buckets)])])
  const perHead = g.op1('Transpose', [g.op1('Gather', [table, bucket], { axis: 0 })], { perm: [2, 0, 1] })
  return g.op1('Unsqueeze', [perHead, g.constInt([0])])
}

function tensors(g: GraphBuilder, w: Seq2seqWeights) {
  const tensor = weightsOf(g, w)
  const d = w.dims
  const norm = (x: string, name: string) => rmsNorm(g, x, tensor(name), d.normEps)
  const proj = (x: string, name: string) => linear(g, x, tensor(name))
  const ffn = (x: string, p: string) => {
    const inner = g.op1('Relu', [proj(norm(x, `${p}.layer_norm.weight`), `${p}.DenseReluDense.wi.weight`)])
    return g.op1('Add', [x, proj(inner, `${p}.DenseReluDense.wo.weight`)])
  }
  return { tensor, norm, proj, ffn }
}

export function buildT5Encoder(w: Seq2seqWeights): GraphBuilder {
  const d = w.dims
  const g = new GraphBuilder()
  const io = declareEncoder(g, d)
  const { tensor, norm, proj, ffn } = tensors(g, w)
  const positions = encoderPositions(g, io)
  const position = relativeBias(g, d, tensor('encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight'), positions, positions, true)
  const biases = [position, keyPaddingBias(g, io.attentionMask)]
  let hidden = g.op1('Gather', [tensor('shared.weight'), io.inputIds], { axis: 0 })
  for (let i = 0; i < d.numLayers; i++) {
    const p = `encoder.block.${i}.layer`
    const x = norm(hidden, `${p}.0.layer_norm.weight`)
    const heads = (name: string) => splitHeads(g, d, proj(x, `${p}.0.SelfAttention.${name}.weight`))
    hidden = g.op1('Add', [hidden, proj(attend(g, d, heads('q'), heads('k'), heads('v'), biases, 1), `${p}.0.SelfAttention.o.weight`)])
    hidden = ffn(hidden, `${p}.1`)
  }
  g.op1('Identity', [norm(hidden, 'encoder.final_layer_norm.weight')], {}, 'last_hidden_state')
  return g
}

export function buildT5Decoder(w: Seq2seqWeights, withPast: boolean): GraphBuilder {
  const d = w.dims
  const g = new GraphBuilder()
  const io = declareDecoder(g, d, withPast)
  const { tensor, norm, proj, ffn } = tensors(g, w)
  const pos = decoderPositions(g, io)
  const selfBiases = [relativeBias(g, d, tensor('decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight'), pos.query, pos.key, false), causalBias(g, pos)]
  const padding = keyPaddingBias(g, io.encoderMask)
  let hidden = g.op1('Gather', [tensor('shared.weight'), io.inputIds], { axis: 0 })
  for (let i = 0; i < d.numLayers; i++) {
    const p = `decoder.block.${i}.layer`
    const x = norm(hidden, `${p}.0.layer_norm.weight`)
    const heads = (from: string, name: string) => splitHeads(g, d, proj(from, `${name}.weight`))
    const self = selfKeysValues(g, io, i, heads(x, `${p}.0.SelfAttention.k`), heads(x, `${p}.0.SelfAttention.v`))
    const selfContext = attend(g, d, heads(x, `${p}.0.SelfAttention.q`), self.key, self.value, selfBiases, 1)
    hidden = g.op1('Add', [hidden, proj(selfContext, `${p}.0.SelfAttention.o.weight`)])
    const y = norm(hidden, `${p}.1.layer_norm.weight`)
    const cross = crossKeysValues(g, io, i, () => ({ key: heads(io.encoderHidden, `${p}.1.EncDecAttention.k`), value: heads(io.encoderHidden, `${p}.1.EncDecAttention.v`) }))
    const crossContext = attend(g, d, heads(y, `${p}.1.EncDecAttention.q`), cross.key, cross.value, [padding], 1)
    hidden = g.op1('Add', [hidden, proj(crossContext, `${p}.1.EncDecAttention.o.weight`)])
    hidden = ffn(hidden, `${p}.2`)
  }
  outputLogits(g, d, norm(hidden, 'decoder.final_layer_norm.weight'), tensor('lm_head.weight'), io, 1 / Math.sqrt(d.hiddenSize))
  return g
}
